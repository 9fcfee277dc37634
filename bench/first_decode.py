"""The first decode of a visit in Chromium, taken apart: what it does once that later decodes do not.

Fresh browser contexts (empty caches, a new decode worker each) on the real site's latency page with ``?trace=1``,
three decodes of one file in each: per round, the first decode's time against the third's, the time its kernels'
load-time checks took (each check is one ``check:<kernel>`` span on the decode's timeline, ``webdecoder.trace.span``;
a check that runs another, like Winograd's plan check inside Winograd's, counts inside it, and the total counts each
millisecond once), and, per kernel, how much longer its largest call took than in the third decode: V8 runs a
WebAssembly function in its baseline code until its optimising compile is done, and a call keeps the code it started
with, so a layer's first large call is slow while that compile waits in V8's queue behind Pyodide's and NumPy's hot
functions. Medians over the rounds.

    .venv/bin/python -m bench.first_decode                          # kodim01 q4, 6 rounds
    .venv/bin/python -m bench.first_decode --rounds 10 --file kodim23-q1

Writes build/bench/first_decode.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import statistics
import time
from typing import Any

from bench.browser_latency import CHROMIUM, LAUNCH_ARGS, Offline, latency_page
from bench.host import CpuWatch, describe
from bench.site_server import catalog_entry, require_compiled_decoder, running_site

ROOT = Path(__file__).resolve().parents[1]

# Three decodes of the same bytes in a fresh page: the first pays the one-off work, the third is (nearly) warm.
DECODES_JS = """
async ({ url }) => {
  const nic = await import("/static/nic.js");
  const bytes = await (await fetch(url)).arrayBuffer();
  const out = [];
  for (let i = 0; i < 3; i++) {
    const r = await nic.decodeDetailed(bytes.slice(0));
    out.push({ decodeMs: r.decodeMs, trace: r.info.trace_ms || [] });
  }
  return out;
}
"""


def _union_ms(spans: list[tuple[float, float]]) -> float:
    """The time covered by intervals that may nest or overlap, each millisecond once."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def summarize(decodes: list[dict]) -> dict:
    """One round's three decodes ({decodeMs, trace: [[name, start ms, end ms], ...]}) -> the first decode's time, the
    third's, its checks (ms per ``check:<kernel>`` span, and all of them, each millisecond once), and per kernel call
    or helper-job step its largest call's time in the first decode minus that in the third (only those the third
    decode makes)."""
    first, warm = decodes[0], decodes[-1]
    checks = {e[0][len("check:"):]: e[2] - e[1] for e in first["trace"] if e[0].startswith("check:")}

    def largest(trace: list) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, a, b in trace:
            if not name.startswith("check:"):
                out[name] = max(out.get(name, 0.0), b - a)
        return out

    big, warm_big = largest(first["trace"]), largest(warm["trace"])
    return {"firstMs": first["decodeMs"], "warmMs": warm["decodeMs"], "checks": checks,
            "checksMs": _union_ms([(e[1], e[2]) for e in first["trace"] if e[0].startswith("check:")]),
            "slowerFirstCall": {k: big[k] - v for k, v in warm_big.items() if k in big}}


def medians(rounds: list[dict]) -> dict:
    """Medians over rounds of ``summarize``'s figures (a check or kernel missing from a round does not count there)."""
    med = statistics.median

    def per_key(field: str) -> dict[str, float]:
        keys = sorted({k for r in rounds for k in r[field]})
        return {k: med([r[field][k] for r in rounds if k in r[field]]) for k in keys}

    return {**{f: med([r[f] for r in rounds]) for f in ("firstMs", "warmMs", "checksMs")},
            "checks": per_key("checks"), "slowerFirstCall": per_key("slowerFirstCall")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--file", default="kodim01-q4", help="the site's catalog key of the file to decode")
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "build" / "e2e-cache")
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "build" / "bench" / "first_decode.json")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    watch = CpuWatch()
    rounds: list[dict[str, Any]] = []
    with running_site(args.cache_dir, 1800) as url, sync_playwright() as p:
        require_compiled_decoder(url)
        entry = catalog_entry(url, args.file)
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        for r in range(args.rounds):
            ctx = browser.new_context()
            ctx.on("request", Offline())
            try:
                decodes = latency_page(ctx, url, "&trace=1").evaluate(DECODES_JS, {"url": entry["nic"]["url"]})
            finally:
                ctx.close()
            if not any(e[0].startswith("check:") for e in decodes[0]["trace"]):
                raise SystemExit("the first decode's timeline has no check spans: a site from before "
                                 "webdecoder.trace.span, or the kernels are off")
            rounds.append(summarize(decodes))
            print(f"round {r + 1}/{args.rounds}: first decode {rounds[-1]['firstMs']:.0f} ms (third "
                  f"{rounds[-1]['warmMs']:.0f}), its checks {rounds[-1]['checksMs']:.0f} ms", flush=True)
        version = browser.version
        browser.close()
    med = medians(rounds)
    out = {"browser": version, "file": args.file, "rounds": rounds, "medians": med,
           "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "hostCpu": watch.report()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nThe first decode of a visit in Chromium {version} (`{args.file}`, medians of {args.rounds} fresh "
          f"contexts): **{med['firstMs']:.0f} ms** against {med['warmMs']:.0f} for the third; its kernels' checks "
          f"**{med['checksMs']:.0f} ms** of it\n")
    print("| check | ms |\n|---|---:|")
    for k, v in sorted(med["checks"].items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.1f} |")
    print("\n| kernel call or helper job | first decode's largest, minus the third's (ms) |\n|---|---:|")
    for k, v in sorted(med["slowerFirstCall"].items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:+.1f} |")
    print("\n" + describe(out["hostCpu"]))


if __name__ == "__main__":
    main()
