"""Charts of the decode-speed benchmarks (matplotlib PNG), for the reader who would rather look than read.

    python -m bench.latency_chart build/bench/browser_latency.json        # -> build/bench/browser_latency.png
    python -m bench.latency_chart runs/bench/decode_speed.json            # -> runs/bench/decode_speed.png
    python -m bench.latency_chart RUN.json -o chart.png --title "depth 1"

``bench.browser_latency`` and ``bench.decode_speed`` draw theirs beside their JSON at the end of every run.

A browser run (``plot``): left, each image's decode in the worker (the steady state, two threads) beside the same
page's ``createImageBitmap`` of its AVIF, WebP and JPEG of equal size, with the target, 5x that AVIF, marked per
image; right, the in-page decode at each CPU throttling rate (one thread, CDP ``Emulation.setCPUThrottlingRate``)
against AVIF's, medians over the images, and the 1 s target.

A CPython run (``plot_cpython``): left, every decoder's median time per image on a log scale, with the target, 0.15x
CompressAI's ``mbt2018_mean``; right, nic's stages at each depth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import statistics
from typing import Any

TARGET_RATIO = 5.0  # the browser target: at most 5x the same browser's AVIF decode
THROTTLED_LIMIT_MS = 1000.0  # ... and under 1 s at 4x throttling
COLORS = {"nic": "#1f5fa8", "avif": "#d9822b", "webp": "#6aa84f", "jpeg": "#999999"}


def plot(out: dict[str, Any], path: Path, title: str | None = None) -> Path:
    """Draw the chart of one ``bench.browser_latency`` result (its JSON as a dict) into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # headless; never opens a window
    import matplotlib.pyplot as plt

    rows = out["worker"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3.2, 1]})
    width = 0.2
    xs = range(len(rows))
    series = [("nic", [r["nicMs"] for r in rows])] + [
        (f, [r["nativeMs"].get(f) for r in rows]) for f in ("avif", "webp", "jpeg")]
    for i, (name, ms) in enumerate(series):
        left.bar([x + (i - 1.5) * width for x in xs], [m or 0 for m in ms], width, color=COLORS[name],
                 label="nic (worker, two threads)" if name == "nic" else f"{name.upper()} (createImageBitmap)")
    avif = [r["nativeMs"].get("avif") for r in rows]
    left.scatter([x for x, a in zip(xs, avif, strict=True) if a], [TARGET_RATIO * a for a in avif if a], marker="_",
                 s=220, color="black", zorder=3, label=f"target: {TARGET_RATIO:g}x AVIF")
    left.set_xticks(list(xs), [r["key"] for r in rows], rotation=60, ha="right", fontsize=8)
    left.set_ylabel("decode time, ms")
    worker = out.get("summary", {}).get("worker1x", {})
    settle = out.get("settleS") or 0
    when = f"after {settle:g} s of decodes" if settle else "first seconds"
    left.set_title(f"per image, {when}: "
                   f"median {worker.get('nicMedianMs')} ms, {worker.get('ratioVsAvif')}x AVIF", fontsize=10)
    top = max([m or 0 for _, ms in series for m in ms] + [TARGET_RATIO * a for a in avif if a])
    left.set_ylim(0, 1.3 * top)  # headroom for the legend
    left.legend(fontsize=8, loc="upper left", ncol=3)
    left.grid(axis="y", alpha=0.3)

    rates = sorted(out.get("pageThrottled", {}), key=float)
    nic = [_median(r["nicMs"] for r in out["pageThrottled"][k]) for k in rates]
    nat = [_median(r["nativeMs"].get("avif") for r in out["pageThrottled"][k]) for k in rates]
    pos = range(len(rates))
    right.bar([p - 0.18 for p in pos], nic, 0.36, color=COLORS["nic"], label="nic (page, one thread)")
    right.bar([p + 0.18 for p in pos], nat, 0.36, color=COLORS["avif"], label="AVIF")
    for p, v in zip(pos, nic, strict=True):
        right.annotate(f"{v:.0f}", (p - 0.18, v), ha="center", va="bottom", fontsize=8)
    right.axhline(THROTTLED_LIMIT_MS, color="black", linestyle="--", linewidth=1, label="target at 4x: 1 s")
    right.set_xticks(list(pos), [f"{k}x CPU" for k in rates])
    right.set_ylim(0, max([THROTTLED_LIMIT_MS * 1.1] + [v * 1.15 for v in nic]))
    right.set_title("throttled (medians over images)", fontsize=10)
    right.legend(fontsize=8, loc="upper left")
    right.grid(axis="y", alpha=0.3)

    kmac = sorted({r.get("kmacPerPx") for r in rows if r.get("kmacPerPx")})
    return _save(fig, path, title or (f"Browser decode, Chromium {out.get('browser', '?')}, "
                                      f"{'/'.join(str(k) for k in kmac)} kMAC/px, {out.get('startedAt', '')}"),
                 (out.get("host", {}).get("cpu") or {}).get("stealPercent"))


CPYTHON_TARGET = 0.15  # the CPython target: at most 0.15x CompressAI's mbt2018-mean decompress
STAGE_COLORS = {"parse": "#cccccc", "z": "#9ecae1", "hyper": "#4292c6", "y": "#fdae6b", "synthesis": "#1f5fa8"}


def plot_cpython(result: dict[str, Any], path: Path, title: str | None = None) -> Path:
    """Draw the chart of one ``bench.decode_speed`` result (its JSON as a dict) into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result["summary"]
    names = sorted(summary, key=lambda n: summary[n]["median_decode_s"])
    ms = [1000 * summary[n]["median_decode_s"] for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
    colors = [COLORS["nic"] if n.startswith("nic") else "#7f3b08" if n.startswith("compressai") else
              COLORS.get(n, "#999999") for n in names]
    left.barh(names, ms, color=colors)
    for i, v in enumerate(ms):
        left.annotate(f" {v:.1f} ms", (v, i), va="center", fontsize=8)
    ref = next((n for n in names if n.startswith("compressai")), None)
    if ref:
        limit = CPYTHON_TARGET * 1000 * summary[ref]["median_decode_s"]
        left.axvline(limit, color="black", linestyle="--", linewidth=1,
                     label=f"target: {CPYTHON_TARGET:g}x {ref.removeprefix('compressai-')}")
        left.legend(fontsize=8, loc="lower right")
    left.set_xscale("log")
    left.set_xlim(min(ms) / 1.5, max(ms) * 4)
    left.set_xlabel("median decode time per image, ms (log scale)")
    left.grid(axis="x", alpha=0.3)
    nics = [n for n in names if "stages_s" in summary[n]]
    bottom = [0.0] * len(nics)
    for stage, color in STAGE_COLORS.items():
        v = [1000 * summary[n]["stages_s"].get(stage, 0.0) for n in nics]
        right.bar(nics, v, bottom=bottom, color=color, label=stage)
        bottom = [b + x for b, x in zip(bottom, v, strict=True)]
    right.set_ylabel("ms per image")
    right.set_title("nic's stages", fontsize=10)
    right.legend(fontsize=8)
    right.grid(axis="y", alpha=0.3)
    return _save(fig, path, title or (f"CPython decode, {result.get('images')} image(s) of "
                                      f"{Path(result.get('dataset', '')).name}, {result.get('threads')} thread(s), "
                                      f"{result.get('date', '')}"), (result.get("host_cpu") or {}).get("stealPercent"))


def _save(fig: Any, path: Path, title: str, steal: float | None) -> Path:
    """Title (with the share of CPU time the hypervisor stole during the run), lay out, write the PNG, close."""
    import matplotlib.pyplot as plt

    fig.suptitle(title + (f", {steal} % stolen" if steal is not None else ""), fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _median(values: Any) -> float:
    vals = [v for v in values if v]
    return statistics.median(vals) if vals else 0.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a bench.browser_latency or bench.decode_speed JSON")
    ap.add_argument("-o", "--out", type=Path, default=None, help="the PNG (default: beside the JSON)")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)
    run = json.loads(args.run.read_text())
    draw = plot_cpython if "per_image" in run else plot
    out = draw(run, args.out or args.run.with_suffix(".png"), args.title)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
