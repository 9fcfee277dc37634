/* nic-core.js: load Pyodide + NumPy + webdecoder + weights once, then decode .nic bytes to RGBA.
 *
 * A classic script (no import/export) so both the worker (importScripts) and the page (dynamic import,
 * used by nic.js in "page" mode) can load it; it defines one global, self.NicCore.
 *   await NicCore.init(loadPyodide, {indexURL, numpyURL, wheelURL, modelURLs, kernels, helperURL, trace})  -> load timings
 *     kernels: false sets NIC_NO_KERNEL in Pyodide's environment: NumPy alone, no WebAssembly kernels
 *     helperURL (the decode worker's, absent in page mode): nic-helper.js, started as a second decode thread
 *       where the context is cross-origin isolated (SharedArrayBuffer) and the CPU has two cores or more;
 *       timings.helper says whether it runs
 *   NicCore.decode(uint8Array) -> {width, height, pixels: Uint8ClampedArray (RGBA), decodeMs, info, wasmBytes}
 *     info: webdecoder.info fields (kmac_per_px, total_mac, ...) + stages_ms {parse, z, hyper, y, synthesis}
 *           + kernels: whether the WebAssembly kernels were loaded (false: the NumPy reference decoded)
 *           + threads: 2 when the helper thread took part, else 1; helper_wasm_bytes: its WebAssembly memory
 *           + helper_jobs_ms: per job the helper ran for this decode, ms [its start delay, its time on the job,
 *             this thread's wait, the copy back, this thread's own work meanwhile, how much later than this thread
 *             the helper ended (negative: earlier)] (parallel.recent)
 *           + trace_ms, with init's trace: true (and the kernels on): the decode's timeline, [name, start ms, end ms]
 *             per kernel call and helper job on this thread (webdecoder.trace; bench/chromium_timeline.py)
 *     recycled: whether pixels' buffer is one handed back through recycle (else a new one); info.copy_ms: the
 *     pixels' copy out of the heap into it
 *   NicCore.recycle(arrayBuffer) -> true if kept: a result's pixel buffer the caller no longer needs, reused by a later
 *     result of the same size (its contents overwritten); the last two are kept, 64 MB at most
 *   NicCore.previewBytes(uint8Array) -> bytes needed for a preview (0 until the header is in)
 *   NicCore.preview(uint8Array) -> like decode, from just those bytes (webdecoder.decode_preview)
 * decode throws the PythonError of webdecoder (type "NicError" for bad input) on failure.
 */
"use strict";

(function () {
  // Python side: kept tiny; all decoding logic lives in the webdecoder package itself.
  const BOOT = `
import time

import webdecoder
from webdecoder import _native, parallel, trace

def _nic_register(buf, digest):
    return webdecoder.register_model(buf.to_bytes(), None if digest is None else digest.to_bytes())

def _meta(meta, stages):
    out = {k: meta[k] for k in ("width", "height", "quality", "depth", "bytes", "bpp", "kmac_per_px",
                                "total_mac", "model_id")}
    out["stages_ms"] = {k: v * 1000 for k, v in stages.items()}  # where the time went (profile)
    out["kernels"] = _native.lib() is not None
    out["helper_wasm_bytes"] = parallel.memory_bytes()  # the helper thread's own memory (0: none)
    return out

def _nic_decode(buf):
    data = buf.to_bytes()
    meta = {}  # webdecoder.info's fields, from the decode's own parse
    stages = {}
    jobs = parallel.jobs_done()
    origin = trace.begin() if trace.enabled() else None
    rgba = webdecoder.decode(data, timings=stages, rgba=True, header=meta)  # canvas layout, opaque alpha: no copy
    out = _meta(meta, stages)
    out["helper_jobs_ms"] = parallel.recent(parallel.jobs_done() - jobs)  # how the two threads shared the work
    out["threads"] = 2 if out["helper_jobs_ms"] else 1  # whether the helper took part (not merely whether it runs)
    if origin is not None:
        out["trace_ms"] = trace.events(origin)
    return [rgba, out]

def _nic_preview_bytes(buf):
    return webdecoder.preview_bytes(buf.to_bytes())

def _nic_preview(buf):
    # Header + z only: the CRC covers the whole file, so info() cannot run yet; the header fields suffice.
    data = buf.to_bytes()
    t0 = time.perf_counter()
    rgba = webdecoder.decode_preview(data, rgba=True)
    return [rgba, {"width": rgba.shape[1], "height": rgba.shape[0], "bytes": len(data),
                   "stages_ms": {"preview": (time.perf_counter() - t0) * 1000}}]
`;
  let py = null;
  let pyDecode = null;
  let pyPreview = null;
  let pyPreviewBytes = null;

  async function fetchBytes(url, what) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${what} ${url}: HTTP ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  }

  /** A model file and its SHA-256 (the model id), hashed natively off this thread while Pyodide boots:
   *  hashlib in WebAssembly would spend ~20 ms of the cold start on it. null where crypto.subtle is
   *  missing (pages served over plain HTTP from another host): webdecoder then hashes it itself. */
  async function fetchWeights(url) {
    const bytes = await fetchBytes(url, "model weights");
    const subtle = self.crypto && self.crypto.subtle;
    return [bytes, subtle ? new Uint8Array(await subtle.digest("SHA-256", bytes)) : null];
  }

  async function init(loadPyodide, cfg) {
    const t0 = performance.now();
    const timings = {};
    // The two wheels (3.7 MB) and the weights (2 MB) download while Pyodide boots: off the critical path.
    const wheelsPromise = Promise.all([fetchBytes(cfg.numpyURL, "NumPy wheel"),
                                       fetchBytes(cfg.wheelURL, "webdecoder wheel")]);
    const weightsPromise = Promise.all(cfg.modelURLs.map(fetchWeights));
    // Reported when awaited below, not as unhandled rejections.
    wheelsPromise.catch(() => {});
    weightsPromise.catch(() => {});
    py = await loadPyodide({
      indexURL: cfg.indexURL,
      // webdecoder reads NIC_NO_KERNEL from os.environ, which Pyodide fills from this option only
      ...(cfg.kernels === false ? { env: { NIC_NO_KERNEL: "1" } } : {}),
      stdout: () => {},
      stderr: (s) => console.warn("[nic]", s),
    });
    timings.loadPyodideMs = performance.now() - t0;
    let t = performance.now();
    // unpackArchive rather than loadPackage: loadPackage compiles every shared library in a wheel up front,
    // NumPy's random, fft and test modules included (2.5 of its 7.5 MB of wasm), which the decoder never
    // imports. Unpacked, each extension module is compiled by dlopen when first imported.
    const sitePackages = py.runPython("import sys; next(p for p in sys.path if p.endswith('site-packages'))");
    for (const wheel of await wheelsPromise) py.unpackArchive(wheel, "wheel", { extractDir: sitePackages });
    timings.loadPackagesMs = performance.now() - t;
    const helperPromise = startHelper(cfg, sitePackages); // its thread starts while this one boots Python
    t = performance.now();
    const weights = await weightsPromise;
    timings.weightsWaitMs = performance.now() - t; // > 0 only if the download outlasted the boot
    let t2 = performance.now();
    py.runPython(BOOT);
    if (cfg.trace) py.runPython("trace.enable()");
    timings.bootScriptMs = performance.now() - t2;
    t2 = performance.now();
    const register = py.globals.get("_nic_register");
    try {
      timings.modelIds = weights.map(([bytes, digest]) => register(bytes, digest));
    } finally {
      register.destroy();
    }
    timings.registerMs = performance.now() - t2;
    pyDecode = py.globals.get("_nic_decode");
    pyPreview = py.globals.get("_nic_preview");
    pyPreviewBytes = py.globals.get("_nic_preview_bytes");
    timings.weightsMs = performance.now() - t;
    t = performance.now();
    timings.helper = await helperPromise;
    timings.helperWaitMs = performance.now() - t;
    timings.initMs = performance.now() - t0;
    // What this global (worker or page) fetched, and what came over the wire: transferSize 0 = from cache.
    // startMs / endMs: on the page's clock (timeOrigin differs between a worker and its page), for waterfalls.
    const shift = performance.timeOrigin - (cfg.pageTimeOrigin ?? performance.timeOrigin);
    timings.resources = performance.getEntriesByType("resource").map((e) => ({
      name: e.name.split("/").pop(), transferSize: e.transferSize, encodedBodySize: e.encodedBodySize,
      startMs: e.startTime + shift, endMs: e.responseEnd + shift }));
    timings.startMs = t0 + shift;
    return timings;
  }

  /** The second decode thread (nic-helper.js), as globalThis.nicHelper where webdecoder.parallel finds it.
   *  Resolves true when it runs, false where it cannot (then every decode runs on this thread). */
  async function startHelper(cfg, sitePackages) {
    // Only in the decode worker (helperURL), with the kernels on (the helper runs only kernels), cross-origin
    // isolated (SharedArrayBuffer) and on two cores or more.
    if (!cfg.helperURL || cfg.kernels === false || !self.crossOriginIsolated || typeof SharedArrayBuffer !== "function"
        || (navigator.hardwareConcurrency || 1) < 2 || !self.NicHelper) return false;
    try {
      const wasm = py.FS.readFile(sitePackages + "/webdecoder/native/nicmm.wasm.so");
      self.nicHelper = await self.NicHelper.create({
        wasm, heap: () => py._module.HEAPU8, spawn: () => new Worker(cfg.helperURL, { name: "nic-helper" }),
      });
      return true;
    } catch (err) {
      console.warn("[nic] decoding on one thread: the helper thread failed to start:", err);
      return false;
    }
  }

  /** WebAssembly memory of the interpreter, in bytes (it only grows, so this is also its peak). */
  function wasmBytes() {
    try {
      return py ? py._module.HEAPU8.length : null;
    } catch (err) {
      return null; // private API: absent in other Pyodide versions
    }
  }

  /** Bytes of the file a preview needs (header + z section); 0 while the 48-byte header is incomplete. */
  function previewBytes(bytes) {
    if (!pyPreviewBytes) throw new Error("NicCore.previewBytes called before init");
    return pyPreviewBytes(bytes);
  }

  /** Coarse preview (hyper-decoder means through the synthesis) from the first previewBytes() bytes. */
  function preview(bytes) {
    if (!pyPreview) throw new Error("NicCore.preview called before init");
    return run(pyPreview, bytes);
  }

  function decode(bytes) {
    if (!pyDecode) throw new Error("NicCore.decode called before init");
    return run(pyDecode, bytes);
  }

  // Pixel buffers handed back by the page (recycle): the next result of that size is copied into one of them
  // instead of a new ArrayBuffer, whose fresh pages the copy would fault in (0.8-1.3 ms of a Kodak image's decode
  // in Chromium's worker, against under 0.1 into a reused one). The most recent two, and no more than 64 MB: a 4K
  // image's buffer is 33 MB, which the worker should not hold twice.
  const SPARE_MAX = 2;
  const SPARE_BYTES = 64 << 20;
  const spares = [];

  /** Keep an ArrayBuffer of pixels (its contents are overwritten) for a later result of the same size. */
  function recycle(buffer) {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0 || buffer.byteLength > SPARE_BYTES) return false;
    spares.push(buffer);
    const bytes = () => spares.reduce((n, b) => n + b.byteLength, 0);
    while (spares.length > SPARE_MAX || bytes() > SPARE_BYTES) spares.shift();
    return true;
  }

  function takeSpare(n) {
    const i = spares.findIndex((b) => b.byteLength === n);
    return i < 0 ? null : spares.splice(i, 1)[0];
  }

  function run(fn, bytes) {
    const t0 = performance.now();
    let res = null, arr = null, meta = null, buf = null;
    try {
      res = fn(bytes);
      arr = res.get(0);
      meta = res.get(1);
      const info = meta.toJs({ dict_converter: Object.fromEntries });
      buf = arr.getBuffer("u8");
      // One copy out of the wasm heap (which cannot be transferred or kept: it may grow and move), between arrays
      // of one type: Uint8ClampedArray from a Uint8Array converted element by element (1.1-1.3 ms for a Kodak
      // image in Chromium's worker, against 0.8 this way).
      const d = buf.data;
      const t1 = performance.now();
      const reused = takeSpare(d.length);
      const pixels = new Uint8ClampedArray(reused || new ArrayBuffer(d.length));
      pixels.set(new Uint8ClampedArray(d.buffer, d.byteOffset, d.length));
      const t2 = performance.now();
      info.copy_ms = t2 - t1;
      return { width: info.width, height: info.height, pixels, decodeMs: t2 - t0, info, wasmBytes: wasmBytes(),
               recycled: !!reused };
    } finally {
      if (buf) buf.release();
      for (const p of [arr, meta, res]) if (p) p.destroy();
    }
  }

  function errorFields(err) {
    // PythonError.type is the Python exception class name (e.g. "NicError"); keep the last line only.
    const isPython = !!(err && err.constructor && err.constructor.name === "PythonError");
    const name = isPython ? err.type : (err && err.name) || "Error";
    let message = String((err && err.message) || err);
    if (isPython) {
      const lines = message.trim().split("\n");
      message = lines[lines.length - 1];
    }
    // Anything but a Python exception means the interpreter itself may be broken: start afresh.
    return { name, message, fatal: !isPython };
  }

  self.NicCore = { init, decode, preview, previewBytes, wasmBytes, errorFields, recycle };
})();
