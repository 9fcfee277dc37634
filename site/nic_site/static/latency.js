// Latency page: nic decode time in the worker vs the browser's native image decoders.
// Results go to window.nicBench (JSON-serialisable) and can be downloaded; window.nicBenchDone flips to true
// and a "nicbench" event fires on window when a run finishes (the e2e tests wait for it).

import { configure, decodeDetailed, ready, recycle } from "./nic.js";

const FORMATS = ["jpeg", "webp", "avif"];
const COLORS = { nic: "#d0572c", jpeg: "#4a7bd0", webp: "#3aa66a", avif: "#9a5bc9" };
const $ = (id) => document.getElementById(id);
const q = new URLSearchParams(location.search);
// ?kernels=off: decode with NumPy alone (the reference path), to see what the WebAssembly kernels buy.
const KERNELS = q.get("kernels") !== "off";
// ?cores=1: no helper thread in the decode worker, to see what the second core buys.
const CORES = q.get("cores") === "1" ? 1 : 2;
// ?trace=1: each result's info.trace_ms is its decode's timeline (bench/chromium_timeline.py).
const TRACE = q.get("trace") === "1";
// Only when asked: configure throws once a decode has started.
if (!KERNELS || CORES === 1 || TRACE) configure({ kernels: KERNELS, cores: CORES, trace: TRACE });

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length ? (s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2) : null;
};
const round = (x) => (x == null ? null : Math.round(x * 100) / 100);

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`HTTP ${r.status} for ${url}`);
  return r.arrayBuffer();
}

async function nativeDecodeMs(blob) {
  const t0 = performance.now();
  const bmp = await createImageBitmap(blob);
  const ms = performance.now() - t0;
  bmp.close();
  return ms;
}

async function run(reps) {
  const status = $("status");
  const bench = { version: 1, userAgent: navigator.userAgent, hardwareConcurrency: navigator.hardwareConcurrency,
                  reps, startedAt: new Date().toISOString(), kernelsRequested: KERNELS, kernels: null,
                  coresRequested: CORES, threads: null,
                  coldStartMs: null, coldStart: null, firstDecodeMs: null, calibration: null, images: [] };
  status.textContent = "starting the decoder…";
  const t0 = performance.now();
  const timings = await ready(); // cold start: runtime download + Pyodide + NumPy + wheel + weights
  bench.coldStartMs = round(timings.coldStartMs ?? performance.now() - t0);
  bench.coldStart = Object.fromEntries(Object.entries(timings).filter(([, v]) => typeof v === "number")
    .map(([k, v]) => [k, round(v)]));
  const { entries } = await (await fetch("/catalog.json")).json();
  if (entries.length && bench.firstDecodeMs == null) {
    // The session's first decode pays one-off costs (the kernels' self-checks, plans built from the weights, code
    // run for the first time, fresh memory): reported on its own, kept out of the medians and the calibration.
    status.textContent = "first decode (warm-up)…";
    const r = await decodeDetailed((await fetchBytes(entries[0].nic.url)).slice(0));
    recycle(r.imageData); // as a page that draws its images does (<nic-img>): the next result reuses the memory
    bench.firstDecodeMs = round(r.decodeMs);
  }
  for (const [i, e] of entries.entries()) {
    status.textContent = `image ${i + 1}/${entries.length}: ${e.key}`;
    const bytes = await fetchBytes(e.nic.url);
    const rec = { key: e.key, width: e.width, height: e.height, bytes: e.nic.bytes, bpp: round(e.nic.bpp),
                  psnr: round(e.nic.psnr), kmacPerPx: e.kmac_per_px, decodeMs: [], roundTripMs: [],
                  nativeMs: {}, nativeBytes: {} };
    for (let k = 0; k < reps; k++) {
      const r = await decodeDetailed(bytes.slice(0)); // slice: the buffer is transferred to the worker
      recycle(r.imageData);
      rec.decodeMs.push(round(r.decodeMs));
      rec.roundTripMs.push(round(r.roundTripMs));
      rec.totalMac = r.info.total_mac;
      bench.kernels = r.info.kernels; // what decoded: the WebAssembly kernels, or NumPy alone
      bench.threads = r.info.threads; // 2: the worker's helper thread took part
      rec.stagesMs = r.info.stages_ms;
      // Per-session calibration: the file header states its cost (total_mac), the first timed decode (after
      // the warm-up above) gives this machine's MAC/s; every later image's time is predicted from its cost
      // before decoding it.
      if (!bench.calibration) {
        bench.calibration = { macPerSec: r.info.total_mac / (r.decodeMs / 1000), fromKey: e.key,
                              decodeMs: round(r.decodeMs), totalMac: r.info.total_mac };
      }
      if (rec.predictedMs == null) {
        rec.predictedMs = round(r.info.total_mac / bench.calibration.macPerSec * 1000);
        // Running calibration: the median speed of the images already done (warm JIT) predicts this one.
        const speeds = bench.images.map((x) => x.totalMac / x.decodeMsMedian);
        rec.predictedRunningMs = speeds.length ? round(r.info.total_mac / median(speeds)) : null;
      }
    }
    for (const fmt of FORMATS) {
      const v = e.comparisons[fmt];
      if (!v) continue;
      const blob = new Blob([await fetchBytes(v.url)], { type: { jpeg: "image/jpeg", webp: "image/webp",
                                                                avif: "image/avif" }[fmt] });
      rec.nativeMs[fmt] = [];
      rec.nativeBytes[fmt] = v.bytes;
      try {
        for (let k = 0; k < reps; k++) rec.nativeMs[fmt].push(round(await nativeDecodeMs(blob)));
      } catch (err) {
        rec.nativeMs[fmt] = null; // e.g. a browser without AVIF support
      }
    }
    rec.decodeMsMedian = round(median(rec.decodeMs));
    rec.predictionError = round((rec.predictedMs - rec.decodeMsMedian) / rec.decodeMsMedian);
    rec.runningPredictionError = rec.predictedRunningMs == null ? null
      : round((rec.predictedRunningMs - rec.decodeMsMedian) / rec.decodeMsMedian);
    rec.nativeMsMedian = Object.fromEntries(FORMATS.filter((f) => rec.nativeMs[f])
      .map((f) => [f, round(median(rec.nativeMs[f]))]));
    bench.images.push(rec);
    render(bench);
  }
  bench.finishedAt = new Date().toISOString();
  bench.summary = {
    nicMedianMs: round(median(bench.images.map((r) => r.decodeMsMedian))),
    macPerSec: bench.calibration ? Math.round(bench.calibration.macPerSec) : null,
    // Median |predicted - measured| / measured over images other than the calibration one.
    predictionAbsErrorMedian: round(median(bench.images.slice(1).map((r) => Math.abs(r.predictionError)))),
    runningPredictionAbsErrorMedian: round(median(bench.images.slice(1)
      .map((r) => Math.abs(r.runningPredictionError)))),
    nativeMedianMs: Object.fromEntries(FORMATS.map((f) => [f, round(median(bench.images
      .map((r) => r.nativeMsMedian[f]).filter((x) => x != null)))])),
  };
  status.textContent = `done: cold start ${Math.round(bench.coldStartMs)} ms, first decode ` +
    `${Math.round(bench.firstDecodeMs ?? 0)} ms (one-off costs), nic median ` +
    `${Math.round(bench.summary.nicMedianMs)} ms per image (${bench.kernels ? "WebAssembly kernels" : "NumPy only"}, ` +
    `${bench.threads === 2 ? "two threads" : "one thread"})`;
  return bench;
}

function render(bench) {
  // Horizontal grouped bars on a log axis: nic is ~100x slower than native decoders, a linear axis hides them.
  const rows = bench.images;
  const series = ["nic", ...FORMATS];
  const vals = rows.flatMap((r) => [r.decodeMsMedian, ...FORMATS.map((f) => r.nativeMsMedian[f])])
    .filter((x) => x > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...vals, 1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...vals, 10))));
  const left = 120, width = 560, barH = 7, gap = 8, top = 24;
  const groupH = series.length * barH + gap;
  const height = top + rows.length * groupH + 30;
  const x = (v) => left + (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) * width;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${left + width + 50} ${height}"
    width="${left + width + 50}" height="${height}" role="img" aria-label="Decode time per image, log scale">`];
  for (let d = lo; d <= hi; d *= 10) {
    parts.push(`<line x1="${x(d)}" x2="${x(d)}" y1="${top - 4}" y2="${height - 24}" stroke="#8886"/>`,
      `<text x="${x(d)}" y="${height - 10}" text-anchor="middle" fill="currentColor">${d} ms</text>`);
  }
  series.forEach((s, i) => parts.push(`<rect x="${left + i * 80}" y="4" width="10" height="10" fill="${COLORS[s]}"/>`,
    `<text x="${left + i * 80 + 14}" y="13" fill="currentColor">${s}</text>`));
  rows.forEach((r, j) => {
    const y0 = top + j * groupH;
    parts.push(`<text x="${left - 6}" y="${y0 + groupH / 2}" text-anchor="end" fill="currentColor">${r.key}</text>`);
    series.forEach((s, i) => {
      const v = s === "nic" ? r.decodeMsMedian : r.nativeMsMedian[s];
      if (v == null) return;
      parts.push(`<rect x="${left}" y="${y0 + i * barH}" width="${Math.max(1, x(v) - left)}" height="${barH - 1}"
        fill="${COLORS[s]}"><title>${r.key} ${s}: ${v} ms</title></rect>`);
    });
  });
  parts.push("</svg>");
  $("chart").innerHTML = parts.join("");
  const head = `<tr><th>image</th><th>bytes</th><th>bpp</th><th>kMAC/px</th><th>predicted ms</th><th>error</th>` +
    `<th>predicted (running) ms</th><th>error</th><th>nic ms</th>` +
    FORMATS.map((f) => `<th>${f} ms</th>`).join("") + "</tr>";
  const pct = (x) => (x == null ? "" : `${x > 0 ? "+" : ""}${Math.round(x * 100)}%`);
  const cal = bench.calibration;
  $("calibration").textContent = cal ? `Calibration: ${(cal.macPerSec / 1e9).toFixed(2)} GMAC/s from the first ` +
    `timed decode (${cal.fromKey}, ${(cal.totalMac / 1e6).toFixed(0)} MMAC in ${Math.round(cal.decodeMs)} ms); ` +
    "predicted = the file's stated cost (total MAC, from its header) / that rate; \"running\" predicts each " +
    "image from the median speed of the images before it. The session's very first decode (a warm-up, " +
    `${Math.round(bench.firstDecodeMs ?? 0)} ms: self-checks, plans, code run for the first time) is not in the ` +
    "table." : "";
  $("results").innerHTML = head + rows.map((r) => `<tr><td>${r.key}</td><td>${r.bytes}</td><td>${r.bpp}</td>` +
    `<td>${r.kmacPerPx ?? ""}</td><td>${r.predictedMs ?? ""}</td><td>${pct(r.predictionError)}</td>` +
    `<td>${r.predictedRunningMs ?? ""}</td><td>${pct(r.runningPredictionError)}</td><td>${r.decodeMsMedian}</td>` +
    FORMATS.map((f) => `<td>${r.nativeMsMedian[f] ?? "n/a"}</td>`).join("") + "</tr>").join("");
}

async function start() {
  $("run").disabled = true;
  $("download").disabled = true;
  window.nicBenchDone = false;
  try {
    const reps = Math.max(1, Math.min(50, parseInt($("reps").value, 10) || 5));
    window.nicBench = await run(reps);
    $("download").disabled = false;
  } catch (err) {
    window.nicBench = { error: String((err && err.message) || err) };
    $("status").textContent = `failed: ${window.nicBench.error}`;
  } finally {
    $("run").disabled = false;
    window.nicBenchDone = true;
    window.dispatchEvent(new CustomEvent("nicbench", { detail: window.nicBench }));
  }
}

$("download").addEventListener("click", () => {
  const blob = new Blob([JSON.stringify(window.nicBench, null, 1)], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "nic-bench.json";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
$("run").addEventListener("click", start);
if (q.has("reps")) $("reps").value = q.get("reps");
if (q.get("autorun") !== "0") start();
