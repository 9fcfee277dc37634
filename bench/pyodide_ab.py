"""In-process A/B of the browser decoder under Node: two variants of one switch, interleaved in one Pyodide.

Run through the Pyodide runner with the helper thread (the browser worker's two-thread schedule)::

    node scripts/pyodide_run.mjs --helper build/web/runtime bench/pyodide_ab.py --kernel to_i16t FILE.nic...
    node scripts/pyodide_run.mjs --helper build/web/runtime bench/pyodide_ab.py --share hyper=1.0,0.75 FILE.nic...
    node scripts/pyodide_run.mjs --helper build/web/runtime bench/pyodide_ab.py --learn FILE.nic...
    node scripts/pyodide_run.mjs --helper build/web/runtime bench/pyodide_ab.py --templates FILE.nic...
    git show HEAD~1:webdecoder/native/nicmm.wasm.so > build/before.so
    node scripts/pyodide_run.mjs build/web/runtime bench/pyodide_ab.py --so build/before.so \
        webdecoder/native/nicmm.wasm.so FILE.nic...

``--kernel NAME``: a checked wasm kernel (``conv._checked[NAME]``) on against off; ``--share NAME=A,B``: the two
threads' split ``parallel.SHARES[NAME]`` held at A against B; ``--learn``: every share held at its start against
learnt from the end times; ``--templates``: the helper's jobs (bands, hyper-decoder) made from recorded
templates (``parallel.Template``) against recorded for every decode; ``--so A B``: two builds of the wasm
module, both opened (``_native.open_module``) and swapped in as this thread's kernels (the helper thread keeps
the runner's build: compare builds without ``--helper``). Both variants alternate (ABBA) over ``--rounds`` rounds
of every file; prints the median decode time and stages of each. Decodes to RGBA, the layout the browser's worker
asks for (since session 33; before, RGB, whose last pass is not the browser's). The same V8 as Chromium's, without a
browser run's spread between runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import time

import webdecoder
from webdecoder import _native, conv, hyper, parallel, synthesis

STAGES = ("parse", "z", "hyper", "y", "synthesis")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    way = ap.add_mutually_exclusive_group(required=True)
    way.add_argument("--kernel", help="a checked kernel's name, e.g. to_i16t: on against off")
    way.add_argument("--share", help="NAME=A,B: the share NAME held at A against B")
    way.add_argument("--learn", action="store_true", help="every share held at its start against learnt")
    way.add_argument("--templates", action="store_true", help="helper jobs from templates against recorded anew")
    way.add_argument("--so", nargs=2, type=Path, metavar=("A.so", "B.so"), help="two builds of nicmm.wasm.so")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    files = [f.read_bytes() for f in args.files]
    for d in files:
        webdecoder.decode(d, rgba=True)  # warm-up: kernels checked, plans built, JIT tiers
    # Every kernel is checked against NumPy on its first use, in the build that lib() opened; the other build is
    # held to the same files' pixels below.
    # Relative paths name files of the checkout (Pyodide's working directory is not the shell's).
    root = Path(__file__).resolve().parents[1]
    builds = {arm: _native.open_module(path if path.is_absolute() else root / path)
              for arm, path in zip("AB", args.so, strict=True)} if args.so else {}
    start = {k: s.value for k, s in parallel.SHARES.items()}
    learnt = dict(start)
    kept = synthesis.BAND_JOBS.size, hyper.HYPER_JOBS.size

    def variant(arm: str) -> None:
        if builds:
            _native._lib = builds[arm]
        elif args.kernel:
            conv._checked[args.kernel] = arm == "A"
        elif args.templates:
            synthesis.BAND_JOBS.size, hyper.HYPER_JOBS.size = kept if arm == "A" else (0, 0)
        elif args.share:
            name, values = args.share.split("=")
            share = parallel.SHARES[name]
            share.value, share.RATE = float(values.split(",")[arm == "B"]), 0.0
        else:
            for k, s in parallel.SHARES.items():
                s.value, s.RATE = (start[k], 0.0) if arm == "A" else (learnt[k], parallel.Share.RATE)

    if builds:  # the same pixels from both builds, or the comparison means nothing
        pixels = []
        for arm in "AB":
            variant(arm)
            pixels.append([webdecoder.decode(d, rgba=True).tobytes() for d in files])
        if pixels[0] != pixels[1]:
            raise SystemExit("the two builds decode different pixels")
    times: dict[str, list[float]] = {"A": [], "B": []}
    stages: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    for r in range(args.rounds):
        for arm in ("A", "B") if r % 2 else ("B", "A"):
            variant(arm)
            for d in files:
                t: dict[str, float] = {}
                t0 = time.perf_counter()
                webdecoder.decode(d, timings=t, rgba=True)  # the canvas layout the browser's worker asks for
                times[arm].append(time.perf_counter() - t0)
                for k, v in t.items():
                    stages[arm].setdefault(k, []).append(v)
            if args.learn and arm == "B":
                learnt = {k: s.value for k, s in parallel.SHARES.items()}
    names = ({"A": "on", "B": "off"} if args.kernel or args.templates else {"A": "A", "B": "B"} if args.share else
             {"A": f"A ({args.so[0]})", "B": f"B ({args.so[1]})"} if args.so else
             {"A": "held at the start", "B": "learnt"})
    for arm in ("A", "B"):
        st = {k: round(1000 * statistics.median(stages[arm][k]), 2) for k in STAGES if k in stages[arm]}
        print(f"{names[arm]}: median {1000 * statistics.median(times[arm]):.2f} ms over {len(times[arm])} decodes, "
              f"stages {st}")
    if args.learn:
        print("learnt shares:", {k: round(v, 3) for k, v in learnt.items()})


if __name__ == "__main__":
    main()
