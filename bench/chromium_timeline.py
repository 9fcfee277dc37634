"""A steady-state decode's timeline in Chromium's worker: each kernel call and helper job, in order, with the gaps.

    .venv/bin/python -m bench.chromium_timeline                     # kodim01 q4, 120 traced decodes after 5 s
    .venv/bin/python -m bench.chromium_timeline --file kodim23-q1 --decodes 200

The real site in headless Chromium, its latency page with ``?trace=1`` (``webdecoder.trace``: every WebAssembly kernel
call and every start of and wait for a helper job is timed on the worker's clock). One file decoded over and over,
as ``bench.browser_latency``'s steady state does; per event, the median start, duration and gap before it over the
decodes that made the same calls. ``bench.chromium_profile`` says how long each kernel runs on each thread; this
says when: how long the worker runs alone before the helper has its first job (the helper idle), how long it waits
for the helper, what runs between the jobs, and when the helper works on each job (from its reported start delay
and time on the job: ``parallel.recent``). Timing wraps each call (a few microseconds in Pyodide, ~20 calls):
the traced decode is that much slower than an untraced one. Writes build/bench/chromium_timeline.json.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from statistics import median
import time
from typing import Any

from bench.browser_latency import CHROMIUM, LAUNCH_ARGS, SETTLE_JS, Offline, latency_page
from bench.chromium_profile import file_loop_main
from bench.site_server import catalog_entry, require_compiled_decoder, running_site

ROOT = Path(__file__).resolve().parents[1]

TRACE_JS = """
async ({ url, n }) => {
  const nic = await import("/static/nic.js");
  const bytes = await (await fetch(url)).arrayBuffer();
  const out = [];
  for (let i = 0; i < n; i++) {
    const r = await nic.decodeDetailed(bytes.slice(0));
    nic.recycle(r.imageData);
    const decode = Object.values(r.info.stages_ms).reduce((a, b) => a + b, 0);
    out.push({ decodeMs: r.decodeMs, traceMs: r.info.trace_ms, endMs: decode, jobsMs: r.info.helper_jobs_ms });
  }
  return out;
}
"""


END = "end of the decode"


def timeline(decodes: list[dict]) -> tuple[list[dict], int]:
    """Median rows of the decodes whose calls came in the most common order, and how many those were. Each decode's
    events end with the decode's end (``run`` appends it)."""
    order = Counter(tuple(e[0] for e in d["traceMs"]) for d in decodes).most_common(1)[0][0]
    same = [d for d in decodes if tuple(e[0] for e in d["traceMs"]) == order]
    rows = []
    for i, name in enumerate(order):
        # Each column's median over the decodes: the gap is each decode's own (from the event before it to this one)
        rows.append({"what": name, "startMs": round(median(d["traceMs"][i][1] for d in same), 3),
                     "ms": round(median(d["traceMs"][i][2] - d["traceMs"][i][1] for d in same), 3),
                     "gapMs": round(median(d["traceMs"][i][1] - (d["traceMs"][i - 1][2] if i else 0.0)
                                           for d in same), 3)})
    return rows, len(same)


def helper_spans(events: list[list], jobs: list[list[float]]) -> list[tuple[float, float]]:
    """When the helper worked on each job, on the worker's clock: from the end of the worker's ``job.start`` (the
    post is its last step) plus the helper's start delay, for its time on the job (``parallel.recent``'s first two
    figures); none where the jobs do not pair with the starts (a job not waited for)."""
    starts = [e for e in events if e[0] == "job.start"]
    if len(starts) != len(jobs):
        return []
    return [(e[2] + j[0], e[2] + j[0] + j[1]) for e, j in zip(starts, jobs, strict=True)]


def summary(events: list[list], helper: list[tuple[float, float]] = ()) -> dict[str, float]:
    """One decode's events (ending with the decode's end) and the helper's spans (``helper_spans``): where the worker
    ran without the helper, where it waited for it, and how long the helper worked and idled, ms."""
    end = events[-1][1]
    starts = [e for e in events if e[0] == "job.start"]
    waits = [e for e in events if e[0] in ("job.wait", "job.wait_part")]
    ends = [e for e in events if e[0] == "job.wait"]
    out = {"decodeMs": end, "kernelsMs": sum(e[2] - e[1] for e in events if e[0].startswith("nic_"))}
    if starts:
        out["aloneBeforeFirstJobMs"] = starts[0][2]  # the helper has its first job from here (plus its start delay)
        out["waitsMs"] = sum(e[2] - e[1] for e in waits)
    if len(starts) > 1 and ends:
        out["betweenJobsMs"] = starts[1][2] - ends[0][2]  # from the first job's end to the second's start
    if ends:
        out["afterLastJobMs"] = end - ends[-1][2]
    if helper:
        out["helperBusyMs"] = sum(b - a for a, b in helper)
        out["helperIdleMs"] = end - out["helperBusyMs"]
    return out


def run(args: argparse.Namespace) -> dict:
    from playwright.sync_api import sync_playwright

    with running_site(args.cache_dir, 900) as url, sync_playwright() as p:
        require_compiled_decoder(url)
        entry = catalog_entry(url, args.file)
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        ctx = browser.new_context()
        ctx.on("request", Offline())
        page = latency_page(ctx, url, "&trace=1")
        page.evaluate(SETTLE_JS, {"url": entry["nic"]["url"], "secs": args.settle_s})
        decodes: list[dict[str, Any]] = page.evaluate(TRACE_JS, {"url": entry["nic"]["url"], "n": args.decodes})
        browser.close()
    if not all(d["traceMs"] for d in decodes):
        raise SystemExit("the worker reported no timeline: kernels off, or a site without webdecoder.trace")
    for d in decodes:
        d["traceMs"] = [*d["traceMs"], [END, d["endMs"], d["endMs"]]]
    rows, same = timeline(decodes)
    spans = [helper_spans(d["traceMs"], d.get("jobsMs") or []) for d in decodes]
    sums = [summary(d["traceMs"], h) for d, h in zip(decodes, spans, strict=True)]  # every decode, whatever its order
    keys = dict.fromkeys(k for x in sums for k in x)
    paired = [h for h in spans if h]
    helper = [{"job": k + 1, "startMs": round(median(h[k][0] for h in paired), 3),
               "ms": round(median(h[k][1] - h[k][0] for h in paired), 3)}
              for k in range(min((len(h) for h in paired), default=0))]
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "file": args.file, "decodes": len(decodes),
            "sameOrder": same, "workerDecodeMs": round(median(d["decodeMs"] for d in decodes), 3),
            "summary": {k: round(median(x[k] for x in sums if k in x), 3) for k in keys}, "timeline": rows,
            "helper": helper}


def markdown(res: dict) -> str:
    s = res["summary"]
    lines = [f"`{res['file']}`: {res['decodes']} traced decodes ({res['sameOrder']} in the usual order), "
             f"{res['workerDecodeMs']:.2f} ms each in the worker; medians, ms on the worker's clock.", "",
             "| on the worker | gap before | starts at | takes |", "|---|---:|---:|---:|"]
    lines += [f"| {r['what']} | {r['gapMs']:.2f} | {r['startMs']:.2f} | {r['ms']:.2f} |" for r in res["timeline"]]
    if res.get("helper"):
        lines += ["", "| on the helper | starts at | takes |", "|---|---:|---:|"]
        lines += [f"| job {h['job']} | {h['startMs']:.2f} | {h['ms']:.2f} |" for h in res["helper"]]
    lines += ["", "| | ms |", "|---|---:|"] + [f"| {k} | {v:.2f} |" for k, v in s.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    file_loop_main(argv, __doc__, "chromium_timeline", run, markdown,
                   lambda ap: ap.add_argument("--decodes", type=int, default=120))


if __name__ == "__main__":
    main()
