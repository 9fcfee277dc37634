"""Cold start of the real site in Chromium, page load -> first decoded pixel, for one or more runtime bundles.

One ``nic serve`` per bundle (``NIC_WEB_DIR``), all running at once; each round opens a fresh browser
context (empty HTTP cache: a first-time visitor) on every site in turn, rotating the order, so every
bundle sees the same machine load. Reports the median first-pixel time and nic-core.js's load timings
(Pyodide boot, wheels unpacked, ``import numpy`` + weights, first decode) per bundle, and the ratio to
the first bundle. A single cold start varies by about +-200 ms on 2 cores: compare medians of many rounds.
"First pixel" is the harness's: the latency page loads, then Playwright asks nic.js for one file (the decoder
starts ~0.2-0.35 s after navigation: "decoder started at"); each round also loads the gallery in another fresh
context and times its first ``<nic-img>`` load event, what a visitor sees (the element starts the decoder while
the page parses). Beside the times, the CPU time the whole machine spent during each latency-page cold start (from
/proc/stat: Chromium's processes, the server's and Playwright's), and how many cores that kept busy: on 2 cores a cold
start keeps ~1.9 of them busy (40 % of it V8 compiling Pyodide's interpreter in background threads, BENCHMARKS.md
session 39), so work removed shortens it, where work moved to the other core or earlier does not.

    .venv/bin/python -m bench.cold_start                                   # the served bundle, 6 rounds
    .venv/bin/python -m bench.cold_start --web before=../web-old --web after=build/web --rounds 8
    git worktree add ../wt HEAD~1 && ln -s ../main/build ../wt/build   # another checkout's site (main = this one)
    .venv/bin/python -m bench.cold_start --checkout before=../wt --checkout after=. --rounds 8

Writes build/bench/cold_start.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
import statistics
import time
from typing import Any

from bench.browser_latency import CHROMIUM, FIRST_PIXEL_JS, LAUNCH_ARGS, Offline
from bench.host import CpuWatch, busy_seconds, describe
from bench.site_server import catalog, require_compiled_decoder, running_site

ROOT = Path(__file__).resolve().parents[1]
INIT_KEYS = ("loadPyodideMs", "loadPackagesMs", "weightsMs", "weightsWaitMs", "bootScriptMs", "registerMs")


# The gallery's own first <nic-img>: its load event (fired once the pixels are on its canvas) on the page's clock.
FIRST_ELEMENT_JS = """
window.__nicFirstLoad = null;
document.addEventListener("load", (ev) => {
  if (ev.target.localName === "nic-img" && window.__nicFirstLoad === null) window.__nicFirstLoad = performance.now();
}, true);
"""


def cold_start(browser: Any, url: str, nic_url: str) -> dict:
    """Two fresh contexts (empty caches): the latency page's harness (page load, then ``nic.decodeDetailed`` of one
    file from Playwright, with nic-core.js's stage timings), and the gallery as a visitor sees it (its first
    ``<nic-img>``, which starts the decoder while the page parses)."""
    guard = Offline()
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.on("request", guard)
    try:
        page = ctx.new_page()
        page.set_default_timeout(120_000)
        busy0, t0 = busy_seconds(), time.perf_counter()
        page.goto(url + "/latency?autorun=0")
        r = page.evaluate(FIRST_PIXEL_JS, {"url": nic_url})
        busy1, t1 = busy_seconds(), time.perf_counter()
    finally:
        ctx.close()
    cpu_ms = None if busy0 is None or busy1 is None else 1000 * (busy1 - busy0)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.on("request", guard)
    try:
        page = ctx.new_page()
        page.set_default_timeout(120_000)
        page.add_init_script(FIRST_ELEMENT_JS)
        page.goto(url + "/")
        page.wait_for_function("() => window.__nicFirstLoad !== null")  # a function: the page's CSP forbids eval
        gallery = page.evaluate("() => window.__nicFirstLoad")
    finally:
        ctx.close()
    if guard.foreign:
        raise RuntimeError(f"requests off 127.0.0.1: {guard.foreign[:3]}")
    return {"firstPixelMs": r["firstPixelMs"], "galleryFirstPixelMs": gallery, "decodeMs": r["decodeMs"],
            "initStartMs": r["init"].get("startMs"), **{k: r["init"].get(k) for k in INIT_KEYS},
            "machineCpuMs": cpu_ms, "machineCores": None if cpu_ms is None else cpu_ms / (1000 * (t1 - t0))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--web", action="append", default=[], metavar="NAME=DIR",
                    help="a runtime bundle (scripts/setup_web.sh output) to serve; default: served=build/web")
    ap.add_argument("--checkout", action="append", default=[], metavar="NAME=DIR",
                    help="serve another checkout's site code (DIR/site, DIR/build/web)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "build" / "e2e-cache")
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "build" / "bench" / "cold_start.json")
    args = ap.parse_args()
    bundles = {n: (ROOT, Path(d)) for n, d in (w.split("=", 1) for w in args.web)}
    bundles.update({n: (Path(d), Path(d) / "build" / "web") for n, d in (c.split("=", 1) for c in args.checkout)})
    bundles = bundles or {"served": (ROOT, ROOT / "build" / "web")}
    from playwright.sync_api import sync_playwright

    runs: dict[str, list[dict]] = {name: [] for name in bundles}
    watch = CpuWatch()
    with contextlib.ExitStack() as stack, sync_playwright() as p:
        urls = {name: stack.enter_context(running_site(args.cache_dir, 1800, {"NIC_WEB_DIR": str(web.resolve())},
                                                       root.resolve()))
                for name, (root, web) in bundles.items()}
        for url in urls.values():
            require_compiled_decoder(url)
        # Each site's own first gallery file: checkouts with different models encode different bytes.
        images = {name: catalog(url)[0]["nic"]["url"] for name, url in urls.items()}
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        names = list(bundles)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                res = cold_start(browser, urls[name], images[name])
                runs[name].append(res)
                print(f"round {r + 1}/{args.rounds} {name}: first pixel {res['firstPixelMs']:.0f} ms, gallery's first "
                      f"<nic-img> {res['galleryFirstPixelMs']:.0f} ms", flush=True)
        out = {"browser": browser.version, "images": images, "rounds": args.rounds,
               "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "bundles": {n: {"root": str(r), "web": str(w)} for n, (r, w) in bundles.items()}, "runs": runs,
               "hostCpu": watch.report()}
        browser.close()
    keys = ("firstPixelMs", "galleryFirstPixelMs", "initStartMs", *INIT_KEYS, "decodeMs", "machineCpuMs",
            "machineCores")
    def median(values: list) -> float | None:  # None where a site's nic-core.js does not report that key
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    med = {n: {k: median([x[k] for x in rs]) for k in keys} for n, rs in runs.items()}
    out["medians"] = med
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    base = med[names[0]]["firstPixelMs"]
    print(f"\nCold start in Chromium {out['browser']}, median of {args.rounds} fresh contexts (ms)\n")
    print("| bundle | first pixel | decoder started at | Pyodide | wheels | import numpy + weights | first decode | "
          "vs " + names[0] + " | gallery's first `<nic-img>` |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in names:
        m = med[n]
        started = "" if m["initStartMs"] is None else f"{m['initStartMs']:.0f}"
        print(f"| {n} | {m['firstPixelMs']:.0f} | {started} | {m['loadPyodideMs']:.0f} | {m['loadPackagesMs']:.0f} | "
              f"{m['weightsMs']:.0f} | {m['decodeMs']:.0f} | {m['firstPixelMs'] / base:.2f}x | "
              f"{m['galleryFirstPixelMs']:.0f} |")
    split = [n for n in names if med[n]["registerMs"] is not None]
    if split:
        print("\n`import numpy` + weights, split (ms): waiting for the download / BOOT script / registering")
        for n in split:
            m = med[n]
            print(f"- {n}: {m['weightsWaitMs']:.0f} / {m['bootScriptMs']:.0f} / {m['registerMs']:.0f}")
    cores = [n for n in names if med[n]["machineCpuMs"] is not None]
    if cores:
        per = "; ".join(f"{n} {med[n]['machineCpuMs']:.0f} ms, {med[n]['machineCores']:.2f} cores busy" for n in cores)
        print(f"\nThe machine's CPU time during the latency page's cold start (every process: Chromium's, the "
              f"server's, Playwright's; {os.cpu_count()} cores), medians: {per}")
    print("\n" + describe(out["hostCpu"]))


if __name__ == "__main__":
    main()
