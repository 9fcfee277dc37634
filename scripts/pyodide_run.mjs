// Run a Python file inside Pyodide 0.27.7 under Node with the working tree's webdecoder (no browser).
// Usage: node scripts/pyodide_run.mjs [--no-numpy | --helper] INDEX_DIR SCRIPT.py [ARGS...]
// The checkout, the script's folder and the folder of every absolute path among ARGS are mounted at the
// same paths via NODEFS, so the script can open the repo's files and import `webdecoder` from the
// checkout. Prints whatever the script prints; exits with its SystemExit code (1 on an exception).
// Used by the benchmarks and tests, and by nic_site.byte_compile at setup (--no-numpy: it needs none).
// --helper: a second thread for the decoder (site/nic_site/static/nic-helper.js in a worker_threads Worker,
// as globalThis.nicHelper, where webdecoder.parallel looks), as the browser's decode worker has where it may.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

const argv = process.argv.slice(2);
const flag = ["--no-numpy", "--helper"].includes(argv[0]) ? argv[0] : null;
const numpy = flag !== "--no-numpy";
const [indexDir, scriptArg, ...args] = flag ? argv.slice(1) : argv;
const script = path.resolve(scriptArg); // Pyodide's cwd is /home/pyodide: pass absolute paths in
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const { loadPyodide } = await import(pathToFileURL(path.join(indexDir, "pyodide.mjs")).href);
const py = await loadPyodide({ indexURL: path.resolve(indexDir) + path.sep, stdout: (s) => console.log(s),
                               stderr: (s) => console.error(s) });
if (numpy) await py.loadPackage("numpy", { messageCallback: () => {} });
// Mount the checkout (and anything the script names) at the same absolute paths.
const mounts = new Set([root, path.dirname(script),
                        ...args.filter((a) => a.startsWith("/")).map((a) => path.dirname(a))]);
for (const m of [...mounts].sort()) {
  if ([...mounts].some((o) => o !== m && m.startsWith(o + path.sep))) continue;
  py.FS.mkdirTree(m);
  py.FS.mount(py.FS.filesystems.NODEFS, { root: m }, m);
}
let helper = null;
if (flag === "--helper") {
  const helperJs = path.join(root, "site/nic_site/static/nic-helper.js");
  const { create } = createRequire(import.meta.url)(helperJs);
  helper = await create({
    wasm: readFileSync(path.join(root, "webdecoder/native/nicmm.wasm.so")),
    heap: () => py._module.HEAPU8,
    spawn: () => new Worker(helperJs, { workerData: { nicHelper: true } }),
  });
  globalThis.nicHelper = helper; // webdecoder.parallel finds it there, as in the browser's decode worker
}
py.globals.set("_argv", py.toPy([script, ...args]));
try {
  await py.runPythonAsync(`
import runpy, sys
sys.argv = list(_argv)
sys.path.insert(0, ${JSON.stringify(root)})
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
    _rc = 0
except SystemExit as e:
    _rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
`);
  process.exitCode = py.globals.get("_rc");
} catch (e) {
  console.error(e.message); // the Python traceback, without Node's dump of the minified runtime
  process.exitCode = 1;
} finally {
  if (helper) await helper.terminate();
}
