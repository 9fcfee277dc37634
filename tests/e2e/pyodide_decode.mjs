// Decode .nic files with webdecoder inside Pyodide under Node (wasm32, like the browser, minus the browser).
// Usage: node pyodide_decode.mjs INDEX_DIR WHEEL MODEL.npz[,MODEL2.npz] FILE.nic...
// Prints one JSON line per file: {file, sha256, shape} or {file, error}. Fetch is disabled to prove
// that nothing is downloaded: Pyodide reads every runtime file from INDEX_DIR.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [indexDir, wheel, models, ...files] = process.argv.slice(2);
// Uncaught errors would print Pyodide's minified source; report the message only.
process.on("uncaughtException", (e) => {
  console.log(JSON.stringify({ fatal: String((e && e.message) || e).trim().split("\n").slice(-3).join(" | ") }));
  process.exit(1);
});
globalThis.fetch = () => { throw new Error("network access attempted"); };
const { loadPyodide } = await import(pathToFileURL(path.join(indexDir, "pyodide.mjs")).href);
const py = await loadPyodide({ indexURL: indexDir + path.sep, stdout: () => {}, stderr: () => {} });
await py.loadPackage("numpy", { messageCallback: () => {} });
py.unpackArchive(new Uint8Array(fs.readFileSync(wheel)), "wheel");
py.runPython(`
import hashlib, json, webdecoder

def _reg(buf):
    return webdecoder.register_model(buf.to_bytes())

def _dec(name, buf):
    try:
        rgb = webdecoder.decode(buf.to_bytes())
        return json.dumps({"file": name, "sha256": hashlib.sha256(rgb.tobytes()).hexdigest(),
                           "shape": list(rgb.shape)})
    except Exception as e:
        return json.dumps({"file": name, "error": f"{type(e).__name__}: {e}"})
`);
const reg = py.globals.get("_reg");
for (const m of models.split(",")) reg(new Uint8Array(fs.readFileSync(m)));
const dec = py.globals.get("_dec");
for (const f of files) console.log(dec(f, new Uint8Array(fs.readFileSync(f))));
