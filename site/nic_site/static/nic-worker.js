/* nic decode worker (classic worker: importScripts works with Pyodide's UMD build).
 *
 * Loads Pyodide, NumPy, the webdecoder wheel and the model weights ONCE, then decodes .nic bytes with the
 * very same `webdecoder.decode` that CPython runs, and sends RGBA pixels back as a transferred buffer.
 *
 * Messages in:  {type: "init", indexURL, wheelURL, modelURLs}   (absolute URLs, from nic.js)
 *               {type: "decode", id, bytes: ArrayBuffer}
 * Messages out: {type: "ready", timings} | {type: "init-error", message}
 *               {type: "result", id, width, height, pixels: ArrayBuffer, decodeMs, info}
 *               {type: "failed", id, name, message, fatal}
 * Jobs run one at a time (Python is single-threaded here), in arrival order.
 */
"use strict";

let readyPromise = null;
let py = null;
let pyDecode = null;
let queue = Promise.resolve();

// Python side: kept tiny; all decoding logic lives in the webdecoder package itself.
const BOOT = `
import numpy as np
import webdecoder

def _nic_register(buf):
    return webdecoder.register_model(buf.to_bytes())

def _nic_decode(buf):
    data = buf.to_bytes()
    meta = webdecoder.info(data)
    rgb = webdecoder.decode(data)
    h, w, _ = rgb.shape
    rgba = np.empty((h, w, 4), np.uint8)  # canvas wants RGBA; alpha is opaque
    rgba[..., :3] = rgb
    rgba[..., 3] = 255
    return [rgba, {k: meta[k] for k in ("width", "height", "quality", "depth", "bytes", "bpp",
                                         "kmac_per_px", "model_id")}]
`;

async function init(msg) {
  const t0 = performance.now();
  const timings = {};
  importScripts(msg.indexURL + "pyodide.js");
  timings.pyodideJsMs = performance.now() - t0;
  let t = performance.now();
  py = await loadPyodide({
    indexURL: msg.indexURL,
    stdout: () => {},
    stderr: (s) => console.warn("[nic-worker]", s),
  });
  timings.loadPyodideMs = performance.now() - t;
  t = performance.now();
  const quiet = { messageCallback: () => {}, errorCallback: (s) => console.warn("[nic-worker]", s) };
  // numpy comes from the lock file next to indexURL; the wheel by full URL (it has no lock entry).
  await py.loadPackage(["numpy"], quiet);
  await py.loadPackage([msg.wheelURL], quiet);
  timings.loadPackagesMs = performance.now() - t;
  t = performance.now();
  const weights = await Promise.all(msg.modelURLs.map(async (u) => {
    const r = await fetch(u);
    if (!r.ok) throw new Error(`model weights ${u}: HTTP ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  }));
  py.runPython(BOOT);
  const register = py.globals.get("_nic_register");
  timings.modelIds = weights.map((w) => register(w));
  register.destroy();
  pyDecode = py.globals.get("_nic_decode");
  timings.weightsMs = performance.now() - t;
  timings.totalMs = performance.now() - t0;
  return timings;
}

function decodeOne(id, bytes) {
  const t0 = performance.now();
  let res = null, arr = null, meta = null, buf = null;
  try {
    res = pyDecode(new Uint8Array(bytes));
    arr = res.get(0);
    meta = res.get(1);
    const info = meta.toJs({ dict_converter: Object.fromEntries });
    buf = arr.getBuffer("u8");
    // One copy out of the wasm heap (which cannot be transferred), then a zero-copy transfer.
    const pixels = new Uint8ClampedArray(buf.data);
    const decodeMs = performance.now() - t0;
    postMessage({ type: "result", id, width: info.width, height: info.height, pixels: pixels.buffer,
                  decodeMs, info }, [pixels.buffer]);
  } finally {
    if (buf) buf.release();
    for (const p of [arr, meta, res]) if (p) p.destroy();
  }
}

function errorFields(err) {
  // PythonError.type is the Python exception class name (e.g. "NicError"); its message ends with it.
  const name = err && err.type ? err.type : (err && err.name) || "Error";
  let message = String((err && err.message) || err);
  if (err && err.type) {
    const lines = message.trim().split("\n");
    message = lines[lines.length - 1];
  }
  // Anything but a Python exception means the interpreter itself may be broken: let nic.js respawn us.
  const fatal = !(err && err.constructor && err.constructor.name === "PythonError");
  return { name, message, fatal };
}

onmessage = (e) => {
  const msg = e.data;
  if (msg.type === "init") {
    if (!readyPromise) {
      readyPromise = init(msg);
      readyPromise.then(
        (timings) => postMessage({ type: "ready", timings }),
        (err) => postMessage({ type: "init-error", message: String((err && err.stack) || err) }),
      );
    }
    return;
  }
  if (msg.type === "decode") {
    queue = queue.then(async () => {
      try {
        await readyPromise;
        decodeOne(msg.id, msg.bytes);
      } catch (err) {
        postMessage({ type: "failed", id: msg.id, ...errorFields(err) });
      }
    });
  }
};
