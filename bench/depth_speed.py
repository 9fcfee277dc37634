"""Depth 1's decode speed in Pyodide: its two-thread bands against the whole layer on one thread, and depth 1
against depth 2, timed interleaved in one process (the machine's drift cancels out of the ratio).

    node scripts/pyodide_run.mjs --helper build/web/runtime bench/depth_speed.py bands D1.nic ...
    node scripts/pyodide_run.mjs --helper build/web/runtime bench/depth_speed.py depths D1.nic ... --vs D2.nic ...

``bands``: every file decoded with ``synthesis._one_by_bands`` (the lower latent rows on the helper thread) and
without it (the k18/s16 layer on this thread). ``depths``: the files before ``--vs`` against those after it (the
same images at depth 1 and depth 2). Each round decodes every file once per side, the sides' order alternating;
the decodes ask for RGBA, as the browser's worker does. Prints one line per side and the ratio of the medians.
Files: ``nic encode IMG... -q 4 --effort none --lanes compact --depth 1 -o DIR`` (and ``--depth 2``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import statistics
import time

from webdecoder import decode, synthesis


def _time_sides(sides: dict[str, tuple[list[bytes], Callable[[], None]]], rounds: int) -> dict[str, list[float]]:
    """ms per decode for each side; ``sides`` maps a name to its files and a setup run before its decodes."""
    for files, setup in sides.values():  # warm-up: plans, kernels' self-checks, the helper's constants
        setup()
        for d in files:
            decode(d, rgba=True)
    names = list(sides)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            files, setup = sides[name]
            setup()
            for d in files:
                t = time.perf_counter()
                decode(d, rgba=True)
                times[name].append(1000 * (time.perf_counter() - t))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("bands", "depths"))
    ap.add_argument("files", nargs="+")
    ap.add_argument("--vs", nargs="*", default=[], help="depths: the depth-2 files")
    ap.add_argument("--rounds", type=int, default=12)
    args = ap.parse_args()
    read = lambda paths: [open(p, "rb").read() for p in paths]  # noqa: E731
    bands = synthesis._one_by_bands

    def use_bands(on: bool) -> Callable[[], None]:
        def setup() -> None:
            synthesis._one_by_bands = bands if on else (lambda *a: None)
        return setup

    if args.mode == "bands":
        files = read(args.files)
        sides = {"two threads": (files, use_bands(True)), "one thread": (files, use_bands(False))}
    else:
        if len(args.vs) != len(args.files):
            ap.error("depths: give as many --vs files (depth 2) as depth-1 files")
        sides = {"depth 1": (read(args.files), use_bands(True)), "depth 2": (read(args.vs), use_bands(True))}
    times = _time_sides(sides, args.rounds)
    synthesis._one_by_bands = bands
    med = {n: statistics.median(v) for n, v in times.items()}
    for n, m in med.items():
        print(f"{n}: median {m:.2f} ms over {len(times[n])} decodes")
    a, b = med
    print(f"{a} / {b}: {med[a] / med[b]:.3f}")


if __name__ == "__main__":
    main()
