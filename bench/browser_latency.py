"""Browser decode latency of nic next to the browser's own AVIF/WebP/JPEG decoders, on the real site.

Starts ``nic serve`` (the README's way) in a subprocess on a free 127.0.0.1 port, drives Debian's Chromium
with Playwright (offline: any request off 127.0.0.1 is aborted and reported), and measures:

* **cold start**: a fresh browser context (empty cache, like a first-time visitor): page load -> first
  decoded pixel painted (Pyodide, NumPy, the webdecoder wheel, the weights, one decode), with the load
  timings nic-core.js reports, and the **bytes on the wire** (sum of Playwright's responseBodySize +
  responseHeadersSize over every response, workers included: compressed as served);
* **warm start**: the same context reloaded; every runtime file must come from the HTTP cache, proven by
  resource-timing ``transferSize == 0`` inside the worker and the page (no service worker is involved);
* **per-image decode** in the Web Worker (the site's default): median of ``--reps`` decodes after one
  warm-up, next to ``createImageBitmap`` of the same image's AVIF, WebP and JPEG (the site makes them no
  larger than the .nic), same page, same repeats; plus the decoder's own stage profile
  (``webdecoder.decode(timings=...)``: parse, z, hyper, y, synthesis) from inside Pyodide. Twice: in the page's
  first seconds ("early": V8 is still compiling Pyodide's hot functions with its optimising tier, in background
  threads that take the core a two-thread decode needs), then after ``--settle-s`` of decodes (the steady state,
  the summary's ``worker1x``; session 31 found the early pass 1.4x slower on two threads, and no slower on one);
* **NumPy only**: the same worker decode of the ``--throttle-quality`` files with the WebAssembly kernels off
  (the latency page's ``?kernels=off``, i.e. ``NIC_NO_KERNEL`` in Pyodide): the reference path, in the
  same run, so the table shows what the kernels buy;
* **one core**: the same worker decode of the ``--throttle-quality`` files without the worker's helper thread
  (the latency page's ``?cores=1``): what the second core buys (the site is cross-origin isolated, so the
  default worker decodes on two threads, nic-helper.js);
* **CPU throttling** 1x/4x/6x via CDP ``Emulation.setCPUThrottlingRate``. Chromium refuses that on worker
  targets ("only supported for pages, not workers", see tests/e2e/test_throttle.py), so throttled runs
  decode IN THE PAGE (nic.js ``configure({mode: "page"})``, same nic-core.js and wheel); the native
  decoders are timed in that page under the same throttle (createImageBitmap may decode off the main
  thread, so its throttled numbers are a lower bound of what a slow phone does);
* **memory**: peak JS heap (CDP ``Runtime.getHeapUsage``, page mode, sampled after every decode), the
  WebAssembly memory of the interpreter (``pyodide._module.HEAPU8.length``; it only grows: its peak) and that
  of the worker's helper thread (its own, reported after each job).

Usage (the first start encodes the samples with effort "none" into build/e2e-cache/, reused after)::

    nice -n 15 .venv/bin/python -m bench.browser_latency                 # everything, ~6 min on 2 cores
    .venv/bin/python -m bench.browser_latency --quick                    # 1 quality, 2 reps, 1x/4x only

Writes build/bench/browser_latency.json, prints Markdown tables (also build/bench/browser_latency.md) and draws
them (build/bench/browser_latency.png, `bench.latency_chart`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import platform
import statistics
import time
from typing import Any
from urllib.parse import urlparse

from bench import latency_chart
from bench.host import CpuWatch, describe
from bench.site_server import catalog, require_compiled_decoder, running_site

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-sync", "--disable-quic"]
FORMATS = ("avif", "webp", "jpeg")
STAGES = ("parse", "z", "hyper", "y", "synthesis")


class Offline:
    """Request listener: records any request that is not to 127.0.0.1 (the run is then reported invalid).

    A listener, not a ``context.route`` guard like the e2e tests use: Playwright turns the HTTP cache off
    while routes are active, which would make the warm-start measurement a second cold start.
    """

    def __init__(self) -> None:
        self.foreign: list[str] = []

    def __call__(self, request: Any) -> None:
        u = request.url
        if urlparse(u).hostname != "127.0.0.1" and not u.startswith(("blob:", "data:")):
            self.foreign.append(u)


# Page side. All timing happens in the browser (performance.now); Python only orchestrates.
FIRST_PIXEL_JS = """
async ({ url }) => {
  const nic = await import("/static/nic.js");
  const r = await nic.decodeDetailed(url);
  const c = document.createElement("canvas");
  c.width = r.width; c.height = r.height;
  c.getContext("2d").putImageData(r.imageData, 0, 0);
  document.body.append(c);
  await new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(res)));
  const page = performance.getEntriesByType("resource").map((e) => ({
    name: e.name.split("/").pop(), transferSize: e.transferSize, encodedBodySize: e.encodedBodySize }));
  return { firstPixelMs: performance.now(), init: nic.stats(), decodeMs: r.decodeMs, pageResources: page,
           wasmBytes: r.wasmBytes };
}
"""

# --settle-s: decode one file over and over for a while before timing, so that the worker's WebAssembly has tiered up
# (V8 compiles the hot functions of Pyodide's 10 MB module with its optimising tier in background threads during the
# first seconds, on the core a two-thread decode needs) and the timed decodes are the steady state of a long visit.
SETTLE_JS = """
async ({ url, secs, recycle = true }) => {
  const nic = await import("/static/nic.js");
  const bytes = await (await fetch(url)).arrayBuffer();
  const end = performance.now() + secs * 1000;
  let n = 0;
  while (performance.now() < end) {
    const r = await nic.decodeDetailed(bytes.slice(0));
    if (recycle) nic.recycle(r.imageData);
    n++;
  }
  return n;
}
"""

DECODE_JS = """
async ({ url, reps, warm, native, recycle = true }) => {
  const nic = await import("/static/nic.js");
  const get = async (u) => { const r = await fetch(u); if (!r.ok) throw new Error(u); return r.arrayBuffer(); };
  const bytes = await get(url);
  const out = { decodeMs: [], roundTripMs: [], stages: [], jobs: [], wasmBytes: null, info: null, native: {},
                recycled: 0, copyMs: [] };
  for (let i = 0; i < warm + reps; i++) {
    const r = await nic.decodeDetailed(bytes.slice(0));   // slice: the buffer is transferred to the worker
    if (recycle) nic.recycle(r.imageData);  // the pixels handed back, as <nic-img> does once it has drawn them
    if (i < warm) continue;
    out.recycled += r.recycled ? 1 : 0;
    out.copyMs.push(r.info.copy_ms);
    out.decodeMs.push(r.decodeMs); out.roundTripMs.push(r.roundTripMs); out.stages.push(r.info.stages_ms);
    out.jobs.push(r.info.helper_jobs_ms || []);
    out.wasmBytes = r.wasmBytes; out.info = r.info;
    if (window.__heap) await window.__heap();
  }
  const types = { avif: "image/avif", webp: "image/webp", jpeg: "image/jpeg" };
  for (const [fmt, u] of Object.entries(native)) {
    const blob = new Blob([await get(u)], { type: types[fmt] });
    const ms = [];
    try {
      for (let i = 0; i < warm + reps; i++) {
        const t0 = performance.now();
        const bmp = await createImageBitmap(blob);
        const dt = performance.now() - t0;
        bmp.close();
        if (i >= warm) ms.push(dt);
      }
      out.native[fmt] = ms;
    } catch (e) { out.native[fmt] = null; }
  }
  return out;
}
"""


# <nic-img> with a preview: the canvas is copied at the `preview` and at the `load` event (toDataURL, in the
# handler, so the pixels are exactly what was painted then), with the times the element reports.
PROGRESSIVE_JS = """
async ({ url, progressive }) => {
  const el = document.createElement("nic-img");
  el.setAttribute("progressive", progressive);
  const canvas = () => el.shadowRoot.querySelector("canvas");
  const seen = [];
  const done = new Promise((resolve) => {
    el.addEventListener("preview", (e) => seen.push({ type: "preview", detail: e.detail,
                                                      png: canvas().toDataURL("image/png") }));
    el.addEventListener("load", (e) => { seen.push({ type: "load", detail: e.detail,
                                                     png: canvas().toDataURL("image/png") }); resolve(); });
    el.addEventListener("error", (e) => { seen.push({ type: "error", detail: e.detail }); resolve(); });
  });
  el.src = url;
  document.body.append(el);
  await done;
  return seen;
}
"""

# Slow mobile network for the progressive runs (2G-like): 400 ms RTT, 50 kbit/s down. A preview costs ~90%
# of a full decode, so it only pays off when the download outlasts it (nic.js "auto" predicts that).
SLOW_NETWORK = {"offline": False, "latency": 400, "downloadThroughput": 50_000 / 8, "uploadThroughput": 50_000 / 8}


def latency_page(ctx: Any, url: str, query: str = "") -> Any:
    """A new page of ``ctx`` on the site's latency page, which decodes nothing by itself (``autorun=0``), with
    ``query`` (``&kernels=off``, ``&cores=1``) appended; a generous timeout for throttled and NumPy-only decodes."""
    page = ctx.new_page()
    page.set_default_timeout(600_000)
    page.goto(url + "/latency?autorun=0" + query)
    return page


def ab_options(ap: argparse.ArgumentParser, name: str, files: int, files_help: str, reps_help: str) -> None:
    """The options of the benchmarks that alternate two variants in settled pages (``bench.recycle_ab``,
    ``bench.checkout_ab``): rounds, decodes per round, how many catalog files, the settling, the site cache and the
    output (build/bench/NAME.json, its table beside it)."""
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5, help=reps_help)
    ap.add_argument("--files", type=int, default=files, help=files_help)
    ap.add_argument("--settle-s", type=float, default=5.0)
    ap.add_argument("--cache-dir", default=str(ROOT / "build" / "e2e-cache"))
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / f"{name}.json"))


def progressive_runs(ctx: Any, url: str, e: dict, args: argparse.Namespace) -> dict:
    """Time to preview vs time to full image: in-page decoding at 4x CPU throttling, slow network and not."""
    import base64

    out: dict[str, Any] = {"key": e["key"], "bytes": e["nic"]["bytes"], "runs": {}}
    page = latency_page(ctx, url)
    # Runtime ready and the wasm JIT warm (one decode) before the clock starts: this times the image only.
    page.evaluate("async (u) => { const n = await import('/static/nic.js'); n.configure({ mode: 'page' });"
                  " await n.decodeDetailed(u); }", e["nic"]["url"])
    page.evaluate("document.querySelector('main').innerHTML = ''")
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    shots = args.screenshots
    shots.mkdir(parents=True, exist_ok=True)
    for i, (name, net, progressive) in enumerate((
            ("4x cpu, slow network, progressive=auto", SLOW_NETWORK, "auto"),
            ("4x cpu, slow network, progressive=off", SLOW_NETWORK, "off"),
            ("4x cpu, local network, progressive=always", None, "always"))):
        cdp.send("Network.emulateNetworkConditions", net or {"offline": False, "latency": 0,
                                                             "downloadThroughput": -1, "uploadThroughput": -1})
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
        try:
            # A distinct query per run: the file must come over the (emulated) network, not from the cache.
            seen = page.evaluate(PROGRESSIVE_JS, {"url": f"{e['nic']['url']}?run={i}", "progressive": progressive})
        finally:
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
        ev = {s["type"]: s for s in seen}
        run = {"previewAtMs": r2(ev["preview"]["detail"]["atMs"]) if "preview" in ev else None,
               "previewDecodeMs": r2(ev["preview"]["detail"]["decodeMs"]) if "preview" in ev else None,
               "previewBytes": ev["preview"]["detail"]["bytes"] if "preview" in ev else None,
               "loadAtMs": r2(ev["load"]["detail"]["atMs"]) if "load" in ev else None,
               "fetchMs": r2(ev["load"]["detail"]["fetchMs"]) if "load" in ev else None,
               "fullDecodeMs": r2(ev["load"]["detail"]["decodeMs"]) if "load" in ev else None,
               "events": [s["type"] for s in seen]}
        out["runs"][name] = run
        print(f"  progressive [{name}]: preview at {run['previewAtMs']} ms, full at {run['loadAtMs']} ms", flush=True)
        if progressive == "auto" and "preview" in ev and "load" in ev:
            for kind in ("preview", "load"):
                png = base64.b64decode(ev[kind]["png"].split(",", 1)[1])
                (shots / ("preview.png" if kind == "preview" else "full.png")).write_bytes(png)
            out["screenshots"] = [str(shots / "preview.png"), str(shots / "full.png")]
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": -1})
    page.close()
    return out


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def r2(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def bytes_on_wire(finished: list[Any]) -> dict:
    files, total, headers = {}, 0, 0
    for req in finished:
        try:
            sz = req.sizes()
        except Exception:  # noqa: BLE001 - a request whose sizes are gone (page closed) is just not counted
            continue
        name = urlparse(req.url).path.rsplit("/", 1)[-1] or "/"
        files[name] = files.get(name, 0) + sz["responseBodySize"]
        total += sz["responseBodySize"]
        headers += sz["responseHeadersSize"]
    return {"bodyBytes": total, "headerBytes": headers, "totalBytes": total + headers, "files": files}


def image_row(key: str, e: dict, res: dict) -> dict:
    nat = {f: r2(median(v)) if v else None for f, v in res["native"].items()}
    nic = median(res["decodeMs"])
    stages = {s: r2(median([t.get(s, 0.0) for t in res["stages"]])) for s in STAGES}
    return {"key": key, "width": e["width"], "height": e["height"], "bytes": e["nic"]["bytes"],
            "quality": e.get("quality"), "kmacPerPx": e.get("kmac_per_px"),
            "nicMs": r2(nic), "nicMsAll": [r2(x) for x in res["decodeMs"]],
            "roundTripMs": r2(median(res["roundTripMs"])), "stagesMs": stages,
            "nativeMs": nat, "nativeBytes": {f: e["comparisons"][f]["bytes"] for f in FORMATS
                                             if f in e["comparisons"]},
            "ratioVsAvif": r2(nic / nat["avif"]) if nic and nat.get("avif") else None,
            "kernels": (res["info"] or {}).get("kernels"), "threads": (res["info"] or {}).get("threads"),
            "helperWasmBytes": (res["info"] or {}).get("helper_wasm_bytes"),
            "helperJobsMs": helper_jobs(res.get("jobs") or []),
            "wasmBytes": res["wasmBytes"], "recycled": res.get("recycled")}


def helper_jobs(per_decode: list[list[list[float]]]) -> list[dict]:
    """Per job of a decode (the hyper-decoder's, the synthesis band's), medians over the decodes that ran it: the
    helper's start delay + its time on the job against this thread's own work meanwhile, and this thread's wait."""
    out = []
    for i in range(max((len(d) for d in per_decode), default=0)):
        rows = [d[i] for d in per_decode if len(d) > i and len(d[i]) >= 5]
        if rows:
            late = [r[5] for r in rows if len(r) > 5]
            out.append({"helperMs": r2(median([r[0] + r[1] for r in rows])),
                        "thisThreadMs": r2(median([r[4] for r in rows])), "waitMs": r2(median([r[2] for r in rows])),
                        "helperLateMs": r2(median(late)) if late else None})
    return out


def jobs_over_images(per_image: list[list[dict]]) -> list[dict]:
    """``helper_jobs`` rows of several images -> per job index, the median of each figure over the images that have
    it."""
    n = max((len(jobs) for jobs in per_image), default=0)
    return [{k: r2(median([jobs[i][k] for jobs in per_image if len(jobs) > i and jobs[i].get(k) is not None]))
             for k in ("helperMs", "thisThreadMs", "waitMs", "helperLateMs")} for i in range(n)]


def run(args: argparse.Namespace) -> dict:
    from playwright.sync_api import sync_playwright

    watch = CpuWatch()
    out: dict[str, Any] = {"version": 1, "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                                    "python": platform.python_version()}}
    with running_site(args.cache_dir, 1800) as url, sync_playwright() as p:
        require_compiled_decoder(url)
        entries = catalog(url)
        if args.qualities:
            entries = [e for e in entries if e.get("quality") in args.qualities]
        entries = entries[: args.limit] if args.limit else entries
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        out["browser"] = browser.version
        out["settleS"] = args.settle_s
        out["recycle"] = args.recycle  # the page hands each result's pixels back (nic.recycle), as <nic-img> does
        guard = Offline()
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        ctx.on("request", guard)
        page = ctx.new_page()
        page.set_default_timeout(600_000)
        finished: list[Any] = []
        page.on("requestfinished", lambda r: finished.append(r))

        # Cold start: first-time visitor, worker mode (the site default).
        page.goto(url + "/latency?autorun=0")
        cold = page.evaluate(FIRST_PIXEL_JS, {"url": entries[0]["nic"]["url"]})
        page.wait_for_timeout(500)  # let late requestfinished events arrive
        wire = bytes_on_wire(finished)
        out["coldStart"] = {"firstPixelMs": r2(cold["firstPixelMs"]), "decodeMs": r2(cold["decodeMs"]),
                            "init": {k: r2(v) for k, v in cold["init"].items() if isinstance(v, (int, float))},
                            "wasmBytes": cold["wasmBytes"]}
        out["firstVisit"] = wire
        print(f"cold start: first pixel {cold['firstPixelMs']:.0f} ms, {wire['totalBytes'] / 1e6:.2f} MB on the wire",
              flush=True)

        # Warm start: same context, reloaded: the immutable runtime must come from the HTTP cache.
        finished.clear()
        page.reload()
        warm = page.evaluate(FIRST_PIXEL_JS, {"url": entries[0]["nic"]["url"]})
        res = warm["init"].get("resources", []) + warm["pageResources"]
        runtime = [r for r in res if r["name"].endswith((".wasm", ".whl", ".zip", ".npz", "pyodide.asm.js"))]
        out["warmStart"] = {"firstPixelMs": r2(warm["firstPixelMs"]), "decodeMs": r2(warm["decodeMs"]),
                            "init": {k: r2(v) for k, v in warm["init"].items() if isinstance(v, (int, float))},
                            "runtimeFiles": runtime,
                            "runtimeTransferBytes": sum(r["transferSize"] for r in runtime),
                            "allFromCache": bool(runtime) and all(r["transferSize"] == 0 for r in runtime),
                            "wireBytes": bytes_on_wire(finished)["totalBytes"]}
        print(f"warm start: first pixel {warm['firstPixelMs']:.0f} ms, runtime from cache: "
              f"{out['warmStart']['allFromCache']}", flush=True)

        # Per-image decode in the worker, 1x: first in the seconds after the page's start (the JIT still tiering up,
        # what a page that decodes its images at once sees), then after --settle-s of decodes (the steady state).
        def worker_pass(label: str) -> list[dict]:
            rows = []
            for e in entries:
                native = {f: e["comparisons"][f]["url"] for f in FORMATS if f in e["comparisons"]}
                r = page.evaluate(DECODE_JS, {"url": e["nic"]["url"], "reps": args.reps, "warm": 1, "native": native,
                                              "recycle": args.recycle})
                rows.append(image_row(e["key"], e, r))
                print(f"  worker 1x{label} {e['key']}: nic {rows[-1]['nicMs']} ms, native {rows[-1]['nativeMs']}",
                      flush=True)
            return rows

        if args.settle_s > 0:
            out["workerEarly"] = worker_pass(" (early)")
            page.evaluate(SETTLE_JS, {"url": entries[0]["nic"]["url"], "secs": args.settle_s,
                                      "recycle": args.recycle})
        out["worker"] = worker_pass("")
        page.close()

        # The same worker decode with NumPy alone (kernels off), on the throttle-quality files.
        tentries = [e for e in entries if e.get("quality") == args.throttle_quality] or entries[:3]
        npage = latency_page(ctx, url, "&kernels=off")
        nrows = []
        for e in tentries:
            r = npage.evaluate(DECODE_JS, {"url": e["nic"]["url"], "reps": args.numpy_reps, "warm": 1, "native": {},
                                           "recycle": args.recycle})
            nrows.append(image_row(e["key"], e, r))
            print(f"  worker 1x, NumPy only, {e['key']}: nic {nrows[-1]['nicMs']} ms", flush=True)
        out["workerNumpyOnly"] = nrows
        npage.close()

        # The same worker decode on one thread (no helper), on the throttle-quality files, AVIF timed again.
        opage = latency_page(ctx, url, "&cores=1")
        if args.settle_s > 0:
            opage.evaluate(SETTLE_JS, {"url": tentries[0]["nic"]["url"], "secs": args.settle_s,
                                       "recycle": args.recycle})
        orows = []
        for e in tentries:
            native = {"avif": e["comparisons"]["avif"]["url"]} if "avif" in e["comparisons"] else {}
            r = opage.evaluate(DECODE_JS, {"url": e["nic"]["url"], "reps": args.reps, "warm": 1, "native": native,
                                           "recycle": args.recycle})
            orows.append(image_row(e["key"], e, r))
            print(f"  worker 1x, one thread, {e['key']}: nic {orows[-1]['nicMs']} ms", flush=True)
        out["workerOneThread"] = orows
        opage.close()

        # Throttled runs: in-page decoding (worker targets refuse CPU throttling), same context (warm cache).
        tpage = latency_page(ctx, url)
        tpage.evaluate("async () => { const n = await import('/static/nic.js'); n.configure({ mode: 'page' });"
                       " await n.ready(); }")
        cdp = ctx.new_cdp_session(tpage)
        heap_peak = {"used": 0, "total": 0}

        def sample_heap() -> None:
            h = cdp.send("Runtime.getHeapUsage")
            heap_peak["used"] = max(heap_peak["used"], h["usedSize"])
            heap_peak["total"] = max(heap_peak["total"], h["totalSize"])

        throttled: dict[str, list[dict]] = {}
        for rate in args.rates:
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": rate})
            try:
                trows = []
                for e in tentries:
                    native = {f: e["comparisons"][f]["url"] for f in FORMATS if f in e["comparisons"]}
                    r = tpage.evaluate(DECODE_JS, {"url": e["nic"]["url"], "reps": args.throttle_reps,
                                                   "warm": 1 if rate == args.rates[0] else 0, "native": native,
                                                   "recycle": args.recycle})
                    sample_heap()
                    trows.append(image_row(e["key"], e, r))
                    print(f"  page {rate}x {e['key']}: nic {trows[-1]['nicMs']} ms, "
                          f"native {trows[-1]['nativeMs']}", flush=True)
                throttled[str(rate)] = trows
            finally:
                cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
        out["pageThrottled"] = throttled
        out["memory"] = {"jsHeapPeakUsedBytes": heap_peak["used"], "jsHeapPeakTotalBytes": heap_peak["total"],
                         "wasmBytes": max([r["wasmBytes"] or 0 for rs in throttled.values() for r in rs] +
                                          [r["wasmBytes"] or 0 for r in out["worker"]]),
                         "helperWasmBytes": max([r.get("helperWasmBytes") or 0 for r in out["worker"]], default=0)}
        tpage.close()
        if args.progressive:
            out["progressive"] = progressive_runs(ctx, url, min(entries, key=lambda e: e["nic"]["bytes"]), args)
        out["foreignRequests"] = guard.foreign
        ctx.close()
        browser.close()
    out["summary"] = summarize(out)
    out["host"]["cpu"] = watch.report()
    return out


def summarize(out: dict) -> dict:
    def agg(rows: list[dict]) -> dict:
        nic = median([r["nicMs"] for r in rows if r["nicMs"]])
        nat = {f: median([r["nativeMs"][f] for r in rows if r["nativeMs"].get(f)]) for f in FORMATS}
        return {"nicMedianMs": r2(nic), "nativeMedianMs": {f: r2(v) for f, v in nat.items()},
                "ratioVsAvif": r2(nic / nat["avif"]) if nic and nat["avif"] else None,
                "stagesMedianMs": {s: r2(median([r["stagesMs"][s] for r in rows])) for s in STAGES},
                "helperJobsMedianMs": jobs_over_images([r.get("helperJobsMs") or [] for r in rows])}

    summary = {"worker1x": agg(out["worker"]), **{f"page{k}x": agg(v) for k, v in out["pageThrottled"].items()}}
    if out.get("workerNumpyOnly"):
        keys = {r["key"] for r in out["workerNumpyOnly"]}
        summary["worker1xSameFiles"] = agg([r for r in out["worker"] if r["key"] in keys])
        summary["worker1xNumpyOnly"] = agg(out["workerNumpyOnly"])
    if out.get("workerOneThread"):
        summary["worker1xOneThread"] = agg(out["workerOneThread"])
    if out.get("workerEarly"):
        summary["worker1xEarly"] = agg(out["workerEarly"])
    return summary


def markdown(out: dict) -> str:
    settle = out.get("settleS") or 0
    lines = ["## Browser decode time per image (median ms; worker, 1x)", "",
             (f"After {settle:g} s of decodes in the page (`--settle-s`: the JIT's tier-up done; the summary's "
              "worker1xEarly row: the same files in the page's first seconds)." if settle else
              "From the first seconds of the page (the JIT still tiering up: `--settle-s` for the steady state)."),
             "",
             "| image | bytes | kMAC/px | nic | AVIF | WebP | JPEG | nic/AVIF | parse | z | hyper | y | synthesis |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["worker"]:
        n = r["nativeMs"]
        lines.append(f"| {r['key']} | {r['bytes']} | {r['kmacPerPx']} | {r['nicMs']} | {n.get('avif')} | "
                     f"{n.get('webp')} | {n.get('jpeg')} | {r['ratioVsAvif']} | "
                     + " | ".join(str(r["stagesMs"][s]) for s in STAGES) + " |")
    if out.get("workerNumpyOnly"):
        kern = {r["key"]: r for r in out["worker"]}
        lines += ["", "## NumPy only: the same worker decode with the WebAssembly kernels off (?kernels=off)", "",
                  "| image | kernels ms | NumPy only ms | NumPy / kernels | parse | z | hyper | y | synthesis |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in out["workerNumpyOnly"]:
            k = kern.get(r["key"], {}).get("nicMs")
            lines.append(f"| {r['key']} | {k} | {r['nicMs']} | {r2(r['nicMs'] / k) if k and r['nicMs'] else None} | "
                         + " | ".join(str(r["stagesMs"][s]) for s in STAGES) + " |")
    if out.get("workerOneThread"):
        two = {r["key"]: r for r in out["worker"]}
        lines += ["", "## One thread: the same worker decode without its helper thread (?cores=1)", "",
                  "| image | threads | nic ms | one thread ms | one / two | AVIF ms | one thread / AVIF | hyper | "
                  "synthesis |", "|---|---|---|---|---|---|---|---|---|"]
        for r in out["workerOneThread"]:
            t = two.get(r["key"], {})
            k = t.get("nicMs")
            lines.append(f"| {r['key']} | {t.get('threads')} / {r['threads']} | {k} | {r['nicMs']} | "
                         f"{r2(r['nicMs'] / k) if k and r['nicMs'] else None} | {r['nativeMs'].get('avif')} | "
                         f"{r['ratioVsAvif']} | {r['stagesMs']['hyper']} | {r['stagesMs']['synthesis']} |")
    lines += ["", "## CPU throttling (in-page decode: Chromium refuses to throttle workers)", "",
              "| rate | image | nic ms | AVIF ms | WebP ms | JPEG ms | nic/AVIF |", "|---|---|---|---|---|---|---|"]
    for rate, rows in out["pageThrottled"].items():
        for r in rows:
            n = r["nativeMs"]
            lines.append(f"| {rate}x | {r['key']} | {r['nicMs']} | {n.get('avif')} | {n.get('webp')} | "
                         f"{n.get('jpeg')} | {r['ratioVsAvif']} |")
    cs, ws, fv, mem = out["coldStart"], out["warmStart"], out["firstVisit"], out["memory"]
    lines += ["", "## Start-up, bytes, memory", "",
              "| what | value |", "|---|---|",
              f"| cold start: page load -> first decoded pixel | {cs['firstPixelMs']} ms "
              f"(Pyodide {cs['init'].get('loadPyodideMs')}, packages {cs['init'].get('loadPackagesMs')}, "
              f"weights {cs['init'].get('weightsMs')}, first decode {cs['decodeMs']}) |",
              f"| warm start (reload, runtime from HTTP cache: {ws['allFromCache']}, "
              f"{ws['runtimeTransferBytes']} B transferred) | {ws['firstPixelMs']} ms "
              f"(Pyodide {ws['init'].get('loadPyodideMs')}, first decode {ws['decodeMs']}) |",
              f"| first-visit bytes on the wire (compressed as served) | {fv['totalBytes']} |",
              f"| peak JS heap (page mode, used / total) | {mem['jsHeapPeakUsedBytes']} / "
              f"{mem['jsHeapPeakTotalBytes']} B |",
              f"| WebAssembly memory (peak) | {mem['wasmBytes']} B |",
              f"| the worker's helper thread: its own WebAssembly memory | {mem.get('helperWasmBytes')} B |", ""]
    if out.get("progressive"):
        pr = out["progressive"]
        lines += [f"## Progressive preview ({pr['key']}, {pr['bytes']} B; in-page decode at 4x CPU)", "",
                  "| run | preview at ms | preview decode ms | preview bytes | full image at ms | fetch ms |",
                  "|---|---|---|---|---|---|"]
        for name, r in pr["runs"].items():
            lines.append(f"| {name} | {r['previewAtMs']} | {r['previewDecodeMs']} | {r['previewBytes']} | "
                         f"{r['loadAtMs']} | {r['fetchMs']} |")
        lines.append("")
    s = out["summary"]
    lines += ["## Summary (medians over images)", "", "| run | nic ms | AVIF | WebP | JPEG | nic/AVIF |",
              "|---|---|---|---|---|---|"]
    for k, v in s.items():
        n = v["nativeMedianMs"]
        lines.append(f"| {k} | {v['nicMedianMs']} | {n['avif']} | {n['webp']} | {n['jpeg']} | {v['ratioVsAvif']} |")
    jobs = s.get("worker1x", {}).get("helperJobsMedianMs") or []
    if jobs:  # how evenly the worker's two threads shared each parallel part of a decode
        names = ["the hyper-decoder's last layer and y", "the synthesis bands"] + [f"job {i}" for i in range(2, 9)]
        lines += ["", "Two threads (worker, 1x, medians over images): " + "; ".join(
            f"{names[i]}: helper {j['helperMs']} ms, this thread {j['thisThreadMs']} ms, then waited {j['waitMs']} ms "
            f"(the helper ended {j['helperLateMs']} ms after this thread's call to wait)"
            for i, j in enumerate(jobs)) + "."]
    lines += ["", describe(out.get("host", {}).get("cpu"))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="timed decodes per image in the worker (after 1 warm-up)")
    ap.add_argument("--settle-s", type=float, default=5.0,
                    help="seconds of decodes of one file before the worker's timed decodes (two threads and one): the "
                         "steady state after the JIT's background tier-up; the early pass before it is reported as "
                         "worker1xEarly (0: only the early pass, as before session 31)")
    ap.add_argument("--throttle-reps", type=int, default=2)
    ap.add_argument("--numpy-reps", type=int, default=2, help="timed decodes per file with the kernels off")
    ap.add_argument("--rates", type=float, nargs="+", default=[1, 4, 6])
    ap.add_argument("--qualities", type=int, nargs="*", default=None, help="catalog qualities to time (default all)")
    ap.add_argument("--throttle-quality", type=int, default=4)
    ap.add_argument("--limit", type=int, default=0, help="at most this many catalog entries")
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "build" / "e2e-cache",
                    help="site cache (shared with the e2e tests so nothing is re-encoded)")
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "build" / "bench" / "browser_latency.json")
    ap.add_argument("--quick", action="store_true", help="quality 4 only, 2 reps, 1x and 4x")
    ap.add_argument("--no-recycle", dest="recycle", action="store_false",
                    help="the page drops each result instead of handing its pixels back (nic.recycle), as the "
                         "runs before session 33 did")
    ap.add_argument("--no-progressive", dest="progressive", action="store_false",
                    help="skip the preview-vs-full runs (4x CPU, slow network)")
    ap.add_argument("--screenshots", type=Path, default=ROOT / "build" / "screenshots",
                    help="where preview.png and full.png go")
    args = ap.parse_args(argv)
    if args.quick:
        args.qualities, args.reps, args.throttle_reps, args.rates = [args.throttle_quality], 2, 1, [1, 4]
        args.numpy_reps = 1
    args.rates = [int(r) if float(r).is_integer() else r for r in args.rates]
    out = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    md = markdown(out)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    chart = latency_chart.plot(out, args.out.with_suffix(".png"))
    print(f"wrote {args.out}, {args.out.with_suffix('.md')} and {chart}")
    if out["foreignRequests"]:
        raise SystemExit(f"requests left 127.0.0.1 (blocked): {out['foreignRequests']}")


if __name__ == "__main__":
    main()
