// Run a Python file inside Pyodide 0.27.7 under Node with the working tree's webdecoder (no browser).
// Usage: node bench/pyodide_run.mjs INDEX_DIR SCRIPT.py [ARGS...]
// The host's /work-like paths are mounted read-only at the same path via NODEFS, so the script can
// open the repo's files and import `webdecoder` from the checkout. Prints whatever the script prints.
import path from "node:path";
import { pathToFileURL } from "node:url";

const [indexDir, scriptArg, ...args] = process.argv.slice(2);
const script = path.resolve(scriptArg); // Pyodide's cwd is /home/pyodide: pass absolute paths in
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const { loadPyodide } = await import(pathToFileURL(path.join(indexDir, "pyodide.mjs")).href);
const py = await loadPyodide({ indexURL: path.resolve(indexDir) + path.sep, stdout: (s) => console.log(s),
                               stderr: (s) => console.error(s) });
await py.loadPackage("numpy", { messageCallback: () => {} });
// Mount the checkout (and anything the script names) at the same absolute paths.
const mounts = new Set([root, path.dirname(path.resolve(script)),
                        ...args.filter((a) => a.startsWith("/")).map((a) => path.dirname(a))]);
for (const m of [...mounts].sort()) {
  if ([...mounts].some((o) => o !== m && m.startsWith(o + path.sep))) continue;
  py.FS.mkdirTree(m);
  py.FS.mount(py.FS.filesystems.NODEFS, { root: m }, m);
}
py.globals.set("_argv", py.toPy([script, ...args]));
try {
  await py.runPythonAsync(`
import sys
sys.argv = list(_argv)
sys.path.insert(0, ${JSON.stringify(root)})
import runpy
runpy.run_path(sys.argv[0], run_name="__main__")
`);
} catch (e) {
  console.error(e.message); // the Python traceback, without Node's dump of the minified runtime
  process.exitCode = 1;
}
