// Start-up of the decoder's runtime under Node: what the site serves, against the pinned originals.
//
//   node bench/boot_speed.mjs [WEB_DIR] [REPEATS]        default build/web, 5
//
// WEB_DIR/runtime is what the site serves: python_stdlib.zip and the NumPy wheel byte-compiled by
// nic_site.byte_compile. WEB_DIR/source holds the originals they were made from; the "source" runtime
// is runtime/ with those three files (stdlib, NumPy wheel, lock) put back. NumPy is loaded either the way
// nic-core.js does (unpackArchive: each extension module compiled when first imported) or with
// loadPackage (every shared library in the wheel compiled up front). Each repeat boots every variant, in
// rotating order, each in a fresh Node process, so all see the same machine load. Prints a Markdown
// table of medians (ms) and the ratios to the served variant, and writes WEB_DIR/../bench/boot_speed.json.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const STAGES = ["loadPyodide", "loadNumpy", "importNumpy", "importDecoder"];

if (process.argv[2] === "--child") {
  // One boot: Pyodide, the NumPy package, `import numpy`, then the modules webdecoder imports.
  const [indexDir, loader] = process.argv.slice(3);
  const t = [performance.now()];
  const { loadPyodide } = await import(pathToFileURL(path.join(indexDir, "pyodide.mjs")).href);
  const py = await loadPyodide({ indexURL: indexDir + path.sep });
  t.push(performance.now());
  if (loader === "unpack") {
    const lock = JSON.parse(fs.readFileSync(path.join(indexDir, "pyodide-lock.json"), "utf8"));
    const wheel = fs.readFileSync(path.join(indexDir, lock.packages.numpy.file_name));
    const site = py.runPython("import sys; next(p for p in sys.path if p.endswith('site-packages'))");
    py.unpackArchive(new Uint8Array(wheel.buffer, wheel.byteOffset, wheel.length), "wheel", { extractDir: site });
  } else {
    await py.loadPackage("numpy", { messageCallback: () => {} });
  }
  t.push(performance.now());
  py.runPython("import numpy");
  t.push(performance.now());
  py.runPython("import ctypes, hashlib, io, json, struct, zipfile, zlib");
  t.push(performance.now());
  console.log(JSON.stringify(Object.fromEntries(STAGES.map((s, i) => [s, t[i + 1] - t[i]]))));
  process.exit(0);
}

const web = path.resolve(process.argv[2] || "build/web");
const repeats = Number(process.argv[3] || 5);
const runtime = path.join(web, "runtime");
const original = fs.mkdtempSync(path.join(os.tmpdir(), "nic-boot-"));
for (const name of fs.readdirSync(runtime)) {
  const from = fs.existsSync(path.join(web, "source", name)) ? path.join(web, "source", name) : path.join(runtime, name);
  fs.symlinkSync(from, path.join(original, name));
}
const variants = {
  "byte-compiled, NumPy unpacked (served)": [runtime, "unpack"],
  "byte-compiled, NumPy by loadPackage": [runtime, "package"],
  "source (npm / PyPI originals), loadPackage": [original, "package"],
};
const runs = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
const me = new URL(import.meta.url).pathname;
const names = Object.keys(variants);
for (let r = 0; r < repeats; r++) {
  const order = names.map((_, i) => names[(i + r) % names.length]);
  for (const k of order) {
    const out = execFileSync(process.execPath, [me, "--child", ...variants[k]], { encoding: "utf8" });
    runs[k].push(JSON.parse(out.trim().split("\n").pop()));
  }
}
fs.rmSync(original, { recursive: true });
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const table = {};
for (const [k, rs] of Object.entries(runs)) {
  table[k] = Object.fromEntries(STAGES.map((s) => [s, median(rs.map((x) => x[s]))]));
  table[k].total = median(rs.map((x) => STAGES.reduce((a, s) => a + x[s], 0)));
}
const served = names[0];
console.log(`Pyodide start-up under Node ${process.version}, median of ${repeats} (ms)\n`);
console.log(`| runtime | ${STAGES.join(" | ")} | total | served / this |`);
console.log(`|---|${STAGES.map(() => "---:").join("|")}|---:|---:|`);
for (const k of names) {
  const ratio = (table[served].total / table[k].total).toFixed(2) + "x";
  console.log(`| ${k} | ${[...STAGES, "total"].map((s) => table[k][s].toFixed(0)).join(" | ")} | ${ratio} |`);
}
const outDir = path.join(web, "..", "bench");
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "boot_speed.json"), JSON.stringify({ node: process.version, repeats, runs, median: table }, null, 1) + "\n");
