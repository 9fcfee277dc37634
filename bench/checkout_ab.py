"""Two checkouts' decoders in one browser, decodes interleaved: a change's effect where the hour's noise cancels.

    git worktree add -f ../before HEAD~3   # then in ../before: link build/e2e-cache and .venv, scripts/setup_web.sh
    .venv/bin/python -m bench.checkout_ab --checkout before=../before --checkout now=.
    .venv/bin/python -m bench.checkout_ab --checkout before=../before --checkout now=. --rounds 12 --files 9

On this shared 2-core machine a whole ``bench.browser_latency`` run moves by 10-30 % from one hour (or minute) to the
next, more than most decoder changes: two runs, one per checkout, compare the hours as much as the code. Here each
checkout's site runs (its own site code and runtime bundle: ``bench.site_server.running_site``'s ``root``), one page
of each is open in one Chromium, and after ``--settle-s`` of decodes in each (the steady state) every round decodes
each file ``--reps`` times in each page, alternating which goes first, then the same page's native AVIF decode of
that file. Per file: the median over rounds of each checkout's per-round median, the ratio of the two, and each
checkout's nic / AVIF with the AVIF timed in the same rounds. The pages decode one at a time, so neither competes
with the other. Prints a table and writes it with the JSON (default build/bench/checkout_ab.{json,md}).
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path
import statistics
import time

from bench import report, save_json
from bench.browser_latency import CHROMIUM, DECODE_JS, LAUNCH_ARGS, SETTLE_JS, Offline, ab_options, latency_page
from bench.host import CpuWatch, describe
from bench.site_server import catalog, require_compiled_decoder, running_site


def _entries(url: str, files: int) -> list[dict]:
    """The first ``files`` catalog entries, quality 1, 4 and 7 of each image in turn (the catalog's order)."""
    return [e for e in catalog(url) if e.get("quality") in (1, 4, 7)][:files]


def run(args: argparse.Namespace) -> dict:
    from playwright.sync_api import sync_playwright

    names = [c.split("=", 1)[0] for c in args.checkout]
    roots = [Path(c.split("=", 1)[1]).resolve() for c in args.checkout]
    watch = CpuWatch()
    with ExitStack() as stack, sync_playwright() as p:
        urls = [stack.enter_context(running_site(Path(args.cache_dir), 900, root=r,
                                                 extra_env={"NIC_WEB_DIR": str(r / "build" / "web")}))
                for r in roots]
        for url in urls:
            require_compiled_decoder(url)
        entries = [_entries(url, args.files) for url in urls]
        keys = [e["key"] for e in entries[0]]
        if any([e["key"] for e in es] != keys for es in entries):
            raise SystemExit("the checkouts' catalogs differ (another model?): nothing to compare file by file")
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        pages = []
        for url, es in zip(urls, entries, strict=True):
            ctx = browser.new_context()
            ctx.on("request", Offline())
            page = latency_page(ctx, url)
            page.evaluate(SETTLE_JS, {"url": es[0]["nic"]["url"], "secs": args.settle_s})
            pages.append(page)
        per = {k: {"nic": [[] for _ in names], "avif": []} for k in keys}
        for i in range(args.rounds):
            for j, key in enumerate(keys):
                order = range(len(names)) if (i + j) % 2 == 0 else reversed(range(len(names)))
                for c in order:
                    r = pages[c].evaluate(DECODE_JS, {"url": entries[c][j]["nic"]["url"], "reps": args.reps,
                                                      "warm": 1, "native": {}})
                    per[key]["nic"][c].append(statistics.median(r["decodeMs"]))
                avif = entries[0][j].get("comparisons", {}).get("avif")
                if avif:
                    per[key]["avif"].append(statistics.median(
                        pages[0].evaluate(NATIVE_JS, {"url": avif["url"], "reps": args.reps})))
            print(f"round {i + 1}/{args.rounds}", flush=True)
        browser.close()
    rows = []
    for key, t in per.items():
        ms = [statistics.median(v) for v in t["nic"]]
        avif = statistics.median(t["avif"]) if t["avif"] else None
        rows.append({"key": key, "ms": [round(m, 2) for m in ms], "avifMs": None if avif is None else round(avif, 2),
                     "vsAvif": [None if avif is None else round(m / avif, 2) for m in ms],
                     "ratio": [round(m / ms[0], 3) for m in ms]})
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "checkouts": names, "rounds": args.rounds,
            "reps": args.reps, "settleS": args.settle_s, "rows": rows, "host_cpu": watch.report()}


# The browser's own decode of one file, ``reps`` times (after one warm-up): ms each.
NATIVE_JS = """
async ({ url, reps }) => {
  const blob = new Blob([await (await fetch(url)).arrayBuffer()], { type: "image/avif" });
  const ms = [];
  for (let i = 0; i <= reps; i++) {
    const t0 = performance.now();
    const bmp = await createImageBitmap(blob);
    const dt = performance.now() - t0;
    bmp.close();
    if (i > 0) ms.push(dt);
  }
  return ms;
}
"""


def markdown(res: dict) -> str:
    names = res["checkouts"]
    head = " | ".join(f"{n}, ms" for n in names) + " | " + " | ".join(f"{n} / {names[0]}" for n in names[1:])
    lines = [f"| file | {head} | AVIF, ms | " + " | ".join(f"{n} / AVIF" for n in names) + " |",
             "|---|" + "---:|" * (2 * len(names) + len(names) - 1 + 1)]
    for r in res["rows"]:
        lines.append(f"| {r['key']} | " + " | ".join(str(m) for m in r["ms"]) + " | "
                     + " | ".join(str(x) for x in r["ratio"][1:]) + f" | {r['avifMs']} | "
                     + " | ".join(str(x) for x in r["vsAvif"]) + " |")
    med = [statistics.median(r["ms"][c] for r in res["rows"]) for c in range(len(names))]
    ratios = [statistics.median(r["ratio"][c] for r in res["rows"]) for c in range(1, len(names))]
    vs = [statistics.median(r["vsAvif"][c] for r in res["rows"] if r["vsAvif"][c] is not None)
          for c in range(len(names))]
    lines.append("\nMedians over files: " + ", ".join(f"{n} {m:.2f} ms ({v:.2f}x AVIF)" for n, m, v in
                                                        zip(names, med, vs, strict=True))
                 + "; " + ", ".join(f"{n} / {names[0]} {x:.3f}" for n, x in zip(names[1:], ratios, strict=True))
                 + f". {describe(res['host_cpu'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkout", action="append", required=True, metavar="NAME=DIR",
                    help="a checkout whose site to serve (DIR/site, DIR/build/web); two or more, the first the base")
    ab_options(ap, "checkout_ab", 6, "catalog entries at qualities 1, 4 and 7, in its order",
               "timed decodes per file, checkout and round")
    args = ap.parse_args(argv)
    if len(args.checkout) < 2:
        ap.error("two --checkout NAME=DIR at least")
    report(markdown(save_json(run(args), args.out)), args.out)


if __name__ == "__main__":
    main()
