"""Where decode time goes: ``webdecoder.decode(timings=...)`` stages per file, in CPython or inside Pyodide.

Same script both ways, so before/after numbers of a decoder change compare like with like::

    .venv/bin/python bench/stage_profile.py FILE.nic...                                   # CPython (BLAS)
    node scripts/pyodide_run.mjs build/web/runtime bench/stage_profile.py FILE.nic...       # Pyodide (wasm)
    ... bench/stage_profile.py --webdecoder ../old-checkout --no-kernel --reps 5 FILE.nic...     # another checkout

``--webdecoder DIR`` imports the package from DIR (e.g. ``git archive <rev> webdecoder | tar -x -C DIR``);
``--no-kernel`` disables the optional wasm matmul kernel (NumPy fallback). Prints one JSON line per file
(median ms per stage over ``--reps`` decodes after one warm-up) and a final summary line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import platform
import statistics
import sys
import time

STAGES = ("parse", "z", "hyper", "y", "synthesis")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--webdecoder", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--model", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "nic.npz")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-kernel", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(args.webdecoder))
    import webdecoder

    webdecoder.register_model(args.model.read_bytes())
    conv, rans = sys.modules.get("webdecoder.conv"), sys.modules.get("webdecoder.rans")
    if args.no_kernel:  # the NumPy fallbacks (kernels are tried lazily only while these are unset)
        if hasattr(conv, "_kernel"):
            conv._kernel = None
        if hasattr(rans, "_kernel_state"):
            rans._kernel_state = False
    where = "pyodide" if sys.platform == "emscripten" else f"cpython {platform.python_version()}"
    totals = []
    for f in args.files:
        data = f.read_bytes()
        webdecoder.decode(data)  # warm-up (JIT tiers in wasm, weight caches)
        runs = []
        for _ in range(args.reps):
            t: dict[str, float] = {}
            t0 = time.perf_counter()
            webdecoder.decode(data, timings=t)
            t["total"] = time.perf_counter() - t0
            runs.append(t)
        med = {k: round(statistics.median(r[k] for r in runs) * 1000, 1) for k in (*STAGES, "total")}
        totals.append(med["total"])
        print(json.dumps({"file": f"{f.parent.name}/{f.name}", "where": where, **med}), flush=True)
    conv = sys.modules.get("webdecoder.conv")
    # The fused convs may leave the plain product kernel untried (conv._kernel False): ask kernels_on() too.
    on = callable(getattr(conv, "_kernel", None)) or bool(getattr(conv, "kernels_on", lambda: False)())
    kernel_state = "on" if on else "off"
    print(json.dumps({"summary": where, "webdecoder": str(args.webdecoder), "kernel": kernel_state,
                      "median_total_ms": statistics.median(totals), "files": len(totals)}), flush=True)


if __name__ == "__main__":
    main()
