"""In-process A/B of the browser decoder under Node: two variants of one switch, interleaved in one Pyodide.

Run through the Pyodide runner with the helper thread (the browser worker's two-thread schedule)::

    node scripts/pyodide_run.mjs --helper build/web/runtime bench/pyodide_ab.py --kernel to_i16t FILE.nic...
    node scripts/pyodide_run.mjs --helper build/web/runtime bench/pyodide_ab.py --share hyper=1.0,0.75 FILE.nic...
    node scripts/pyodide_run.mjs --helper build/web/runtime bench/pyodide_ab.py --learn FILE.nic...

``--kernel NAME``: a checked wasm kernel (``conv._checked[NAME]``) on against off; ``--share NAME=A,B``: the two
threads' split ``parallel.SHARES[NAME]`` held at A against B; ``--learn``: every share held at its start against
learnt from the end times. Both variants alternate (ABBA) over ``--rounds`` rounds of every file; prints the median
decode time and stages of each. The same V8 as Chromium's, without a browser run's spread between runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import time

import webdecoder
from webdecoder import conv, parallel

STAGES = ("parse", "z", "hyper", "y", "synthesis")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    way = ap.add_mutually_exclusive_group(required=True)
    way.add_argument("--kernel", help="a checked kernel's name, e.g. to_i16t: on against off")
    way.add_argument("--share", help="NAME=A,B: the share NAME held at A against B")
    way.add_argument("--learn", action="store_true", help="every share held at its start against learnt")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    files = [f.read_bytes() for f in args.files]
    for d in files:
        webdecoder.decode(d)  # warm-up: kernels checked, plans built, JIT tiers
    start = {k: s.value for k, s in parallel.SHARES.items()}
    learnt = dict(start)

    def variant(arm: str) -> None:
        if args.kernel:
            conv._checked[args.kernel] = arm == "A"
        elif args.share:
            name, values = args.share.split("=")
            share = parallel.SHARES[name]
            share.value, share.RATE = float(values.split(",")[arm == "B"]), 0.0
        else:
            for k, s in parallel.SHARES.items():
                s.value, s.RATE = (start[k], 0.0) if arm == "A" else (learnt[k], parallel.Share.RATE)

    times: dict[str, list[float]] = {"A": [], "B": []}
    stages: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    for r in range(args.rounds):
        for arm in ("A", "B") if r % 2 else ("B", "A"):
            variant(arm)
            for d in files:
                t: dict[str, float] = {}
                t0 = time.perf_counter()
                webdecoder.decode(d, timings=t)
                times[arm].append(time.perf_counter() - t0)
                for k, v in t.items():
                    stages[arm].setdefault(k, []).append(v)
            if args.learn and arm == "B":
                learnt = {k: s.value for k, s in parallel.SHARES.items()}
    names = {"A": "on", "B": "off"} if args.kernel else {"A": "A", "B": "B"} if args.share else {
        "A": "held at the start", "B": "learnt"}
    for arm in ("A", "B"):
        st = {k: round(1000 * statistics.median(stages[arm][k]), 2) for k in STAGES if k in stages[arm]}
        print(f"{names[arm]}: median {1000 * statistics.median(times[arm]):.2f} ms over {len(times[arm])} decodes, "
              f"stages {st}")
    if args.learn:
        print("learnt shares:", {k: round(v, 3) for k, v in learnt.items()})


if __name__ == "__main__":
    main()
