// nic.js: decode .nic images in the browser with the same Python decoder as CPython (Pyodide).
//
//   import { decode } from "/static/nic.js";
//   const imageData = await decode("/a/…/kodim01-q4.nic");      // or bytes: ArrayBuffer | Uint8Array | Blob
//   await decodeProgressive(url, {onPreview: (p) => paint(p.imageData)});   // coarse preview first, then full
//
// By default decoding runs in one Web Worker, started on first use; it loads the runtime once (~17 MB
// uncompressed, ~9 MB gzip, cached immutably). configure({mode: "page"}) decodes on the main thread
// instead (no Worker needed; the e2e throttling test uses it because Chromium's CPU throttling only
// applies to pages, not workers). The runtime's URLs come from nic-runtime.json at the site root (or the page's
// inline copy of it: inlineManifest).
// Every failure rejects the returned promise (never hangs): a decode error leaves the worker running, a
// crashed or stuck worker is terminated and respawned on the next call.

const state = {
  mode: "worker",
  manifestURL: new URL("../nic-runtime.json", import.meta.url).href,
  workerURL: new URL("./nic-worker.js", import.meta.url).href,
  coreURL: new URL("./nic-core.js", import.meta.url).href,
  runtime: null, // resolved {indexURL, numpyURL, wheelURL, modelURLs}
  timeoutMs: 180000, // per job once ready; generous for slow phones and throttled tests
  worker: null,
  ready: null, // Promise<timings>
  initTimings: null,
  brokenError: null, // init failed: reject quickly instead of reloading for every image
  pending: new Map(),
  nextId: 1,
  pageQueue: Promise.resolve(),
  macPerMs: null, // this session's decode speed (total MAC / decodeMs of the last full decode)
  kernels: true, // false: NumPy only (NIC_NO_KERNEL in Pyodide), for latency tests of the reference path
  cores: 2, // 1: no helper thread in the worker (latency tests of one core)
  trace: false, // true: each result's info.trace_ms is the decode's timeline (profiling: bench/chromium_timeline.py)
};

// Before the first decode of a session, progressive "auto" assumes this speed (MAC per ms; ~1 GMAC/s is a
// 2020s laptop in Pyodide).
const DEFAULT_MAC_PER_MS = 1e6;
// A preview runs the hyper-decoder and the synthesis, i.e. most of a full decode (all but the y entropy
// decode): measured 85-95% of a full decode's time.
const PREVIEW_COST = 0.9;

/** Options {mode: "worker"|"page", kernels: true|false, cores: 1|2, trace: false|true, manifestURL, workerURL, runtime} before the
 *  first decode (and before the task after the first <nic-img> connects, which starts the runtime: a page's
 *  module scripts run in time); timeoutMs any time. kernels: false decodes with NumPy alone (the reference arithmetic, no
 *  WebAssembly kernels: same pixels, several times slower), to measure what the kernels buy. cores: the
 *  worker's threads; its second one (same pixels) needs a cross-origin isolated page (COOP + COEP headers,
 *  as the nic site sends) and is never used in page mode. trace: each result's info.trace_ms lists the decode's
 *  kernel calls and helper jobs with their times (a profile; a few microseconds a call). */
export function configure(opts = {}) {
  if (opts.timeoutMs) state.timeoutMs = opts.timeoutMs; // may change at any time
  const rest = Object.keys(opts).filter((k) => k !== "timeoutMs");
  if (state.ready && rest.length) throw new Error(`nic.configure(${rest}) must come before the first decode`);
  if (opts.mode) state.mode = opts.mode === "page" ? "page" : "worker";
  if (opts.kernels !== undefined) state.kernels = opts.kernels !== false;
  if (opts.cores !== undefined) state.cores = opts.cores === 1 ? 1 : 2;
  if (opts.trace !== undefined) state.trace = opts.trace === true;
  if (opts.manifestURL) state.manifestURL = new URL(opts.manifestURL, document.baseURI).href;
  if (opts.workerURL) state.workerURL = new URL(opts.workerURL, document.baseURI).href;
  if (opts.runtime) state.runtime = opts.runtime;
}

/** True when this browser can run the decoder at all (callers then use a fallback image). */
export function supported() {
  return typeof WebAssembly === "object" && typeof WebAssembly.instantiate === "function" &&
    (state.mode === "page" || typeof Worker === "function");
}

// The nic site's pages carry the manifest inline, <script type="application/json" id="nic-runtime"
// data-manifest="/nic-runtime.json">: its copy of the manifest at that URL, used when that is the manifest nic.js
// would fetch (not after configure({manifestURL}) names another), which saves a round trip before the worker starts.
function inlineManifest() {
  const el = typeof document === "undefined" ? null : document.getElementById("nic-runtime");
  if (!el || el.getAttribute("type") !== "application/json" || !el.dataset.manifest) return null;
  if (new URL(el.dataset.manifest, document.baseURI).href !== state.manifestURL) return null;
  try {
    return JSON.parse(el.textContent);
  } catch {
    return null; // not JSON: fetch the manifest itself
  }
}

async function loadRuntime() {
  if (state.runtime) return state.runtime;
  let m = inlineManifest();
  if (!m) {
    const r = await fetch(state.manifestURL, { cache: "no-cache" });
    if (!r.ok) throw new Error(`nic runtime manifest: HTTP ${r.status}`);
    m = await r.json();
  }
  if (!m.indexURL || !m.numpyURL || !m.wheelURL) throw new Error(`nic runtime unavailable: ${(m.problems || []).join("; ")}`);
  // The worker needs absolute URLs: inside it, relative URLs would resolve against the worker script.
  const abs = (u) => new URL(u, state.manifestURL).href;
  state.runtime = { indexURL: abs(m.indexURL), numpyURL: abs(m.numpyURL), wheelURL: abs(m.wheelURL),
                    modelURLs: m.modelURLs.map(abs) };
  return state.runtime;
}

function failAll(err) {
  for (const job of state.pending.values()) {
    clearTimeout(job.timer);
    job.reject(err);
  }
  state.pending.clear();
}

function killWorker(err) {
  if (state.worker) state.worker.terminate();
  state.worker = null;
  state.ready = null;
  failAll(err);
}

function onResult(msg) {
  const job = state.pending.get(msg.id);
  if (!job) return;
  state.pending.delete(msg.id);
  clearTimeout(job.timer);
  if (msg.type === "result") {
    job.resolve(msg);
  } else {
    const err = new Error(msg.message);
    err.name = msg.name || "NicError";
    job.reject(err);
    if (msg.fatal) killWorker(new Error(`nic worker restarted after: ${msg.message}`));
  }
}

async function startWorker(runtime) {
  // Started before the runtime manifest arrives: the worker script and nic-core.js load meanwhile.
  const worker = new Worker(state.workerURL); // classic worker: it uses importScripts
  state.worker = worker;
  const timings = await new Promise((resolve, reject) => {
    worker.onmessage = (e) => {
      const msg = e.data;
      if (msg.type === "ready") resolve(msg.timings);
      else if (msg.type === "init-error") reject(new Error(msg.message));
      else onResult(msg);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`nic worker error: ${e.message || "failed to load"}`));
    };
    runtime.then((rt) => worker.postMessage({ type: "init", ...rt, kernels: state.kernels, cores: state.cores,
                                              trace: state.trace, pageTimeOrigin: performance.timeOrigin }),
                 reject);
  });
  worker.onerror = (e) => {
    e.preventDefault();
    killWorker(new Error(`nic worker crashed: ${e.message || "unknown error"}`));
  };
  return timings;
}

async function startPage(rt) {
  await import(state.coreURL); // classic script; defines globalThis.NicCore
  const t0 = performance.now();
  const { loadPyodide } = await import(rt.indexURL + "pyodide.mjs");
  const pyodideJsMs = performance.now() - t0;
  return { pyodideJsMs, ...(await globalThis.NicCore.init(loadPyodide, { ...rt, kernels: state.kernels,
                                                                          trace: state.trace })) };
}

/** Start the decoder (idempotent); resolves with its load timings, including coldStartMs. */
export function ready() {
  if (state.brokenError) return Promise.reject(state.brokenError);
  if (state.ready) return state.ready;
  const t0 = performance.now();
  const promise = (async () => {
    const timings = state.mode === "page" ? await startPage(await loadRuntime()) : await startWorker(loadRuntime());
    state.initTimings = { mode: state.mode, ...timings, coldStartMs: performance.now() - t0 };
    return state.initTimings;
  })();
  state.ready = promise;
  promise.catch((err) => {
    if (state.ready !== promise) return;
    state.brokenError = err;
    if (state.worker) state.worker.terminate();
    state.worker = null;
    failAll(err);
  });
  return promise;
}

/** Load timings of the current decoder, or null before it is ready. */
export function stats() {
  return state.initTimings;
}

async function toBytes(src, signal) {
  if (src instanceof ArrayBuffer) return src.slice(0);
  if (ArrayBuffer.isView(src)) return src.buffer.slice(src.byteOffset, src.byteOffset + src.byteLength);
  if (typeof Blob !== "undefined" && src instanceof Blob) return src.arrayBuffer();
  const r = await fetch(new URL(String(src), document.baseURI), { signal });
  if (!r.ok) throw new Error(`HTTP ${r.status} for ${src}`);
  return r.arrayBuffer();
}

function runInWorker(bytes, type = "decode") {
  return new Promise((resolve, reject) => {
    const id = state.nextId++;
    const timer = setTimeout(() => {
      killWorker(new Error(`nic decode timed out after ${state.timeoutMs} ms; worker restarted`));
    }, state.timeoutMs);
    state.pending.set(id, { resolve, reject, timer });
    state.worker.postMessage({ type, id, bytes }, [bytes]);
  });
}

function runInPage(bytes, type = "decode") {
  // Serialise like the worker does; a yield between jobs lets the page paint.
  const job = state.pageQueue.then(() => new Promise((r) => setTimeout(r, 0))).then(() => {
    try {
      return globalThis.NicCore[type](new Uint8Array(bytes));
    } catch (err) {
      const f = globalThis.NicCore.errorFields(err);
      const e = new Error(f.message);
      e.name = f.name;
      throw e;
    }
  });
  state.pageQueue = job.catch(() => {});
  return job;
}

/**
 * Decode and report: {imageData, width, height, bytes, decodeMs, roundTripMs, info}.
 * decodeMs is the decode itself (Python decode + RGBA); roundTripMs adds messaging and queueing.
 */
export async function decodeDetailed(src, { signal } = {}) {
  if (!supported()) throw new Error("WebAssembly or Web Workers are not available");
  const [bytes] = await Promise.all([toBytes(src, signal), ready()]);
  return run(bytes, "decode");
}

async function run(bytes, type) {
  const size = bytes.byteLength;
  const t0 = performance.now();
  const msg = state.mode === "page" ? await runInPage(bytes, type) : await runInWorker(bytes, type);
  const pixels = msg.pixels instanceof Uint8ClampedArray ? msg.pixels : new Uint8ClampedArray(msg.pixels);
  const imageData = new ImageData(pixels, msg.width, msg.height);
  if (type === "decode" && msg.info && msg.info.total_mac && msg.decodeMs > 0) {
    state.macPerMs = msg.info.total_mac / msg.decodeMs;
  }
  return { imageData, width: msg.width, height: msg.height, bytes: size, decodeMs: msg.decodeMs,
           roundTripMs: performance.now() - t0, info: msg.info, wasmBytes: msg.wasmBytes ?? null,
           recycled: !!msg.recycled };
}

/**
 * Hand a decoded ImageData's pixels back to the decoder once they are drawn (putImageData copies them): a later
 * image of the same size is written into that memory instead of new memory, which the decode would otherwise fault
 * in page by page (about 1 ms of a Kodak image's decode). The ImageData is left empty (its buffer is transferred).
 * Returns true if the buffer was taken; false, and the ImageData untouched, where there is no decoder to take it.
 * <nic-img> does this itself.
 */
export function recycle(imageData) {
  const buffer = imageData && imageData.data && imageData.data.buffer;
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0) return false;
  if (state.mode === "page") {
    if (!globalThis.NicCore || typeof structuredClone !== "function") return false;
    // Same thread: moved (not copied) out of the ImageData, which is left empty as in worker mode.
    return globalThis.NicCore.recycle(structuredClone(buffer, { transfer: [buffer] }));
  }
  if (!state.worker) return false;
  state.worker.postMessage({ type: "recycle", buffer }, [buffer]);
  return true;
}

/**
 * Bytes a preview needs: the 48-byte header plus the z section (docs/FORMAT.md: z_rans_len at offset 28,
 * z_esc_len at 32, little-endian u32), i.e. webdecoder.preview_bytes in JS, so the page can decide without
 * a round trip to a worker that may be busy. 0 while the header is incomplete, -1 if it is not a .nic.
 */
export function previewBytes(u8) {
  if (u8.byteLength < 48) return 0;
  const v = new DataView(u8.buffer, u8.byteOffset, 48);
  if (v.getUint32(0, false) !== 0x894e4943) return -1; // "\x89NIC"
  return 48 + v.getUint32(28, true) + v.getUint32(32, true);
}

/** Preview of a file prefix (at least previewBytes(prefix) bytes): same result shape as decodeDetailed. */
export async function previewDetailed(prefix) {
  if (!supported()) throw new Error("WebAssembly or Web Workers are not available");
  const [bytes] = await Promise.all([toBytes(prefix), ready()]);
  return run(bytes, "preview");
}

/** The first n bytes of a list of chunks, as one array. */
function concat(chunks, n) {
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    if (at >= n) break;
    const part = c.byteLength <= n - at ? c : c.subarray(0, n - at);
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** Decode cost a header states: mac_per_px (u32 at 24) x width (u16 at 8) x height (u16 at 10). */
function headerMac(u8) {
  const v = new DataView(u8.buffer, u8.byteOffset, 48);
  return v.getUint32(24, true) * v.getUint16(8, true) * v.getUint16(10, true);
}

/**
 * Fetch with a streaming reader and decode, painting a preview first when it helps.
 * progressive: "auto" (default) previews when the header + z section (a few % of the file) have arrived
 * and the rest of the download is predicted to take longer than the preview itself (a preview costs
 * ~90% of a full decode: it is only worth it on slow networks; the prediction uses the download rate so
 * far and the file's stated cost at this session's measured MAC/s); "always" previews whenever the
 * prefix is in, even when the whole file is already in; "off" never. onPreview(result) is called with the preview
 * (decodeDetailed's shape plus atMs, since the call) before the full result resolves; a failed preview is
 * ignored (the full decode reports errors). Resolves with decodeDetailed's result plus fetchMs, atMs,
 * previewAtMs (null without a preview) and totalBytes.
 */
export async function decodeProgressive(src, { signal, progressive = "auto", onPreview } = {}) {
  if (!supported()) throw new Error("WebAssembly or Web Workers are not available");
  const t0 = performance.now();
  const readyP = ready();
  let previewP = null;
  let previewAtMs = null;
  let downloaded = false;
  const maybePreview = (prefix, complete) => {
    if (previewP || progressive === "off" || (complete && progressive !== "always")) return;
    const copy = prefix.buffer.slice(prefix.byteOffset, prefix.byteOffset + prefix.byteLength);
    previewP = readyP.then(() => {
      // On a cold start the runtime may come after the whole file: then a preview would only delay it.
      if (downloaded && progressive !== "always") return;
      return run(copy, "preview").then((r) => {
        previewAtMs = performance.now() - t0;
        if (onPreview) onPreview({ ...r, atMs: previewAtMs });
      });
    }).catch(() => {}); // a truncated/corrupt prefix: the full decode will say why
  };
  let bytes;
  if (typeof src === "string" || src instanceof URL) {
    const r = await fetch(new URL(String(src), document.baseURI), { signal });
    if (!r.ok) throw new Error(`HTTP ${r.status} for ${src}`);
    if (r.body && r.body.getReader) {
      const tResponse = performance.now();
      const reader = r.body.getReader();
      const chunks = [];
      let n = 0;
      let need = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        n += value.byteLength;
        if (!previewP && progressive !== "off") {
          if (need === 0) need = previewBytes(concat(chunks, Math.min(n, 48)));
          if (need > 0 && n >= need) {
            const all = concat(chunks, n);
            chunks.length = 0;
            chunks.push(all);
            const total = fileBytes(all);
            let worth = true;
            if (progressive === "auto" && n < total) {
              const rate = n / Math.max(1, performance.now() - tResponse); // bytes per ms so far
              const remainingMs = (total - n) / rate;
              const previewMs = PREVIEW_COST * headerMac(all) / (state.macPerMs || DEFAULT_MAC_PER_MS);
              worth = remainingMs > previewMs;
            }
            if (worth) maybePreview(all.subarray(0, need), n >= total);
          }
        }
      }
      bytes = concat(chunks, n).buffer;
    } else {
      bytes = await r.arrayBuffer();
    }
  } else {
    bytes = await toBytes(src, signal);
  }
  const fetchMs = performance.now() - t0;
  downloaded = true;
  if (!previewP) {
    const u8 = new Uint8Array(bytes);
    const need = previewBytes(u8);
    if (need > 0 && u8.byteLength >= need) maybePreview(u8.subarray(0, need), true);
  }
  await readyP;
  const full = run(bytes, "decode"); // queued after the preview (one worker, FIFO): preview paints first
  if (previewP) await previewP;
  const r = await full;
  return { ...r, fetchMs, atMs: performance.now() - t0, previewAtMs, totalBytes: r.bytes };
}

/** Total file length from a complete header (docs/FORMAT.md: 48 + the four stream lengths), else Infinity. */
function fileBytes(u8) {
  if (u8.byteLength < 48) return Infinity;
  const v = new DataView(u8.buffer, u8.byteOffset, 48);
  return 48 + v.getUint32(28, true) + v.getUint32(32, true) + v.getUint32(36, true) + v.getUint32(40, true);
}

/** Decode a .nic URL or bytes to ImageData (RGBA, opaque). Rejects with an Error on any failure. */
export async function decode(urlOrBytes) {
  return (await decodeDetailed(urlOrBytes)).imageData;
}
