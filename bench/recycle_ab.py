"""Pixel buffers handed back to the decoder (``nic.recycle``) against new ones, in one page of the real site.

    .venv/bin/python -m bench.recycle_ab                 # kodim01 q4 and three more files, 8 rounds
    .venv/bin/python -m bench.recycle_ab --rounds 12 --files 6

The worker copies each result's RGBA pixels out of Pyodide's heap into an ArrayBuffer that it transfers to the page.
A new buffer's pages are faulted in by that copy; a buffer the page hands back once it has drawn the pixels
(``<nic-img>`` does) is already mapped. After ``--settle-s`` of decodes (the steady state, as
``bench.browser_latency``), each round decodes every file ``--reps`` times with the buffers handed back and
``--reps`` times without, alternating which goes first, and the worker's decode times (``decodeMs``: the decode and
that copy) are compared per file: median over rounds of the per-round medians, and their ratio. Same pixels either
way (``tests/e2e/test_decode_exact.py``). Writes build/bench/recycle_ab.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench import report, save_json
from bench.browser_latency import CHROMIUM, DECODE_JS, LAUNCH_ARGS, SETTLE_JS, Offline, ab_options, latency_page
from bench.host import CpuWatch, describe
from bench.site_server import catalog, require_compiled_decoder, running_site


def run(args: argparse.Namespace) -> dict:
    from playwright.sync_api import sync_playwright

    watch = CpuWatch()
    with running_site(args.cache_dir, 900) as url, sync_playwright() as p:
        require_compiled_decoder(url)
        entries = catalog(url)
        entries = [e for e in entries if e.get("quality") == 4][: args.files] or entries[: args.files]
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        ctx = browser.new_context()
        ctx.on("request", Offline())
        page = latency_page(ctx, url)
        page.evaluate(SETTLE_JS, {"url": entries[0]["nic"]["url"], "secs": args.settle_s})
        per: dict[str, dict[str, list[float]]] = {e["key"]: {"new": [], "recycled": [], "new_copy": [],
                                                              "recycled_copy": []} for e in entries}
        reused = {"new": 0, "recycled": 0}
        for i in range(args.rounds):
            for e in entries:
                order = (False, True) if (i % 2) else (True, False)
                for recycle in order:
                    r = page.evaluate(DECODE_JS, {"url": e["nic"]["url"], "reps": args.reps, "warm": 1,
                                                  "native": {}, "recycle": recycle})
                    label = "recycled" if recycle else "new"
                    per[e["key"]][label].append(statistics.median(r["decodeMs"]))
                    per[e["key"]][label + "_copy"].append(statistics.median(r["copyMs"]))
                    reused[label] += r["recycled"]
            print(f"round {i + 1}/{args.rounds}", flush=True)
        browser.close()
    rows = []
    for key, t in per.items():
        new, rec = statistics.median(t["new"]), statistics.median(t["recycled"])
        rows.append({"key": key, "newMs": round(new, 2), "recycledMs": round(rec, 2), "ratio": round(rec / new, 3),
                     "newCopyMs": round(statistics.median(t["new_copy"]), 3),
                     "recycledCopyMs": round(statistics.median(t["recycled_copy"]), 3)})
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rounds": args.rounds, "reps": args.reps,
            "settleS": args.settle_s, "rows": rows, "resultsReusingABuffer": reused, "host_cpu": watch.report()}


def markdown(res: dict) -> str:
    lines = ["| file | decode, new buffers, ms | decode, handed back, ms | ratio | copy, new, ms | copy, handed back, "
             "ms |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['key']} | {r['newMs']} | {r['recycledMs']} | {r['ratio']} | {r['newCopyMs']} | "
              f"{r['recycledCopyMs']} |" for r in res["rows"]]
    ratios = sorted(r["ratio"] for r in res["rows"])
    lines.append(f"\nMedian ratio {statistics.median(ratios):.3f} over {len(ratios)} files; results written into a "
                 f"handed-back buffer: {res['resultsReusingABuffer']}. {describe(res['host_cpu'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ab_options(ap, "recycle_ab", 4, "Kodak files at quality 4 from the site's catalog",
               "timed decodes per file, variant and round")
    args = ap.parse_args(argv)
    report(markdown(save_json(run(args), args.out)), args.out)


if __name__ == "__main__":
    main()
