/* nic decode worker (classic worker: importScripts works with Pyodide's UMD build).
 *
 * Loads Pyodide, NumPy, the webdecoder wheel and the model weights ONCE (nic-core.js), then decodes .nic
 * bytes with the very same `webdecoder.decode` that CPython runs, and transfers the RGBA pixels back.
 *
 * Messages in:  {type: "init", indexURL, numpyURL, wheelURL, modelURLs, kernels, cores, trace}   (absolute URLs,
 *                from nic.js; kernels: false = NumPy only; cores: 1 = no helper thread; trace: true = each result's
 *                info.trace_ms is its decode's timeline; see nic-core.js)
 *               {type: "decode", id, bytes: ArrayBuffer}
 *               {type: "preview", id, bytes: ArrayBuffer}   (header + z prefix: webdecoder.decode_preview)
 *               {type: "recycle", buffer: ArrayBuffer}   (a result's pixels, no longer needed: NicCore.recycle)
 * Messages out: {type: "ready", timings} | {type: "init-error", message}
 *               {type: "result", id, width, height, pixels: ArrayBuffer, decodeMs, info, wasmBytes, recycled}
 *               {type: "failed", id, name, message, fatal}
 * Jobs run one at a time (Python is single-threaded here), in arrival order; where the page is cross-origin
 * isolated, part of each decode runs on a helper thread this worker starts (nic-helper.js).
 */
"use strict";

importScripts(new URL("nic-core.js", self.location.href).href, new URL("nic-helper.js", self.location.href).href);

let readyPromise = null;
let queue = Promise.resolve();

onmessage = (e) => {
  const msg = e.data;
  if (msg.type === "init") {
    if (!readyPromise) {
      readyPromise = (async () => {
        const t0 = performance.now();
        importScripts(msg.indexURL + "pyodide.js");
        const pyodideJsMs = performance.now() - t0;
        const helperURL = msg.cores === 1 ? null : new URL("nic-helper.js", self.location.href).href;
        return { pyodideJsMs, ...(await self.NicCore.init(self.loadPyodide, { ...msg, helperURL })) };
      })();
      readyPromise.then(
        (timings) => postMessage({ type: "ready", timings }),
        (err) => postMessage({ type: "init-error", message: String((err && err.stack) || err) }),
      );
    }
    return;
  }
  if (msg.type === "recycle") {
    self.NicCore.recycle(msg.buffer); // not queued: the next job in the queue may use it
    return;
  }
  if (msg.type === "decode" || msg.type === "preview") {
    queue = queue.then(async () => {
      try {
        if (!readyPromise) throw new Error("decode before init");
        await readyPromise;
        const fn = msg.type === "preview" ? self.NicCore.preview : self.NicCore.decode;
        const r = fn(new Uint8Array(msg.bytes));
        postMessage({ type: "result", id: msg.id, width: r.width, height: r.height, pixels: r.pixels.buffer,
                      decodeMs: r.decodeMs, info: r.info, wasmBytes: r.wasmBytes, recycled: r.recycled },
                    [r.pixels.buffer]);
      } catch (err) {
        postMessage({ type: "failed", id: msg.id, ...self.NicCore.errorFields(err) });
      }
    });
  }
};
