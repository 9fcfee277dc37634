"""Where a steady-state decode's time goes in Chromium, thread by thread: Linux ``perf`` over the whole machine.

    .venv/bin/python -m bench.chromium_profile                      # kodim01 q4, 8 s of decodes after 5 s settling
    .venv/bin/python -m bench.chromium_profile --file kodim23-q1 --seconds 12

The real site in headless Chromium (V8 writing ``--perf-prof`` jitdumps, so that its WebAssembly functions have
names), one file decoded over and over in the worker as ``bench.browser_latency``'s steady state does (each result's
pixels handed back, as ``<nic-img>`` does); meanwhile ``perf record -a`` samples both cores. ``perf inject --jit``
names the JIT code, and the samples are split by thread (the decode worker, its helper thread, the rest) and by
what ran: each of the decoder's WebAssembly kernels (named from ``nicmm.wasm.so``'s exports), the rest of Pyodide
and NumPy (CPython's interpreter, NumPy's C code: WebAssembly without names), V8's own code (builtins, the runtime,
JavaScript), libc (memcpy, memset), the Linux kernel (page faults, scheduling), and idle. Reported as ms per
decode (a thread's share of the samples times both cores' time, over the decodes made meanwhile), so the two threads'
columns add up to where each spends a decode: what runs on one thread only, and how long the other is idle.
Sampling adds ~10-20 % to each decode; the split is what to read. Needs ``perf`` (linux-perf) and the right to
profile every process (root, or kernel.perf_event_paranoid <= 0). Writes build/bench/chromium_profile.json.

A kernel is named by its function index, which the other WebAssembly modules' functions share: the decode worker's
small indices are the kernels' here (Pyodide's and NumPy's own functions come after hundreds of imports).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable
import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import tempfile
import time

from bench.browser_latency import CHROMIUM, LAUNCH_ARGS, SETTLE_JS, Offline, latency_page
from bench.site_server import catalog_entry, require_compiled_decoder, running_site

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "webdecoder" / "native" / "nicmm.wasm.so"
REPORT_LINE = re.compile(r"\s*([\d.]+)%\s+(\d+):(\S+)\s+(\S+)\s+\[(.)\]\s+(.*)")
WASM_FUNCTION = re.compile(r"JS:wasm-function\[(\d+)\]")


def _leb(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def function_names(module: bytes) -> dict[int, str]:
    """Function index -> name for every function a WebAssembly binary defines: its export name, or "internal #N"
    for one it does not export (a static C function the compiler kept out of line). Imported functions come first in
    the index space, as V8's ``wasm-function[N]`` counts."""
    if module[:4] != b"\0asm":
        raise ValueError("not a WebAssembly module")
    names: dict[int, str] = {}
    imported = defined = 0
    i = 8
    while i < len(module):
        section, i = module[i], i + 1
        size, i = _leb(module, i)
        end = i + size
        if section == 2:  # imports: (module, name, kind, description); only function imports take an index
            count, i = _leb(module, i)
            for _ in range(count):
                for _ in range(2):
                    n, i = _leb(module, i)
                    i += n
                kind, i = module[i], i + 1
                if kind == 0:  # type index
                    _, i = _leb(module, i)
                    imported += 1
                elif kind == 1:  # table: element type, limits
                    i += 1
                    flags, i = _leb(module, i)
                    for _ in range(1 + (flags & 1)):
                        _, i = _leb(module, i)
                elif kind == 2:  # memory: limits
                    flags, i = _leb(module, i)
                    for _ in range(1 + (flags & 1)):
                        _, i = _leb(module, i)
                else:  # global: value type, mutability
                    i += 2
        elif section == 3:
            defined, _ = _leb(module, i)
        elif section == 7:
            count, i = _leb(module, i)
            for _ in range(count):
                n, i = _leb(module, i)
                name = module[i : i + n].decode()
                kind = module[i + n]
                index, i = _leb(module, i + n + 1)
                if kind == 0:
                    names[index] = name
        i = end
    return {k: names.get(k, f"internal #{k}") for k in range(imported, imported + defined)}


def classify(report: str, kernels: dict[int, str]) -> dict[str, dict[str, float]]:
    """``perf report --sort pid,dso,sym`` lines -> {thread "tid:comm": {what: percent of all samples}}."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for line in report.splitlines():
        m = REPORT_LINE.match(line)
        if not m:
            continue
        pct, tid, comm, dso, kind, sym = float(m[1]), m[2], m[3], m[4], m[5], m[6].strip()
        wasm = WASM_FUNCTION.match(sym)
        if tid == "0":
            what = "idle"
        elif wasm:
            what = kernels.get(int(wasm[1]), "Pyodide + NumPy (WebAssembly)")
        elif kind == "k":
            what = "Linux kernel"
        elif sym.startswith(("JS:", "Builtin:", "Bytecode", "Function:")) or dso.startswith("jitted-"):
            what = "V8: JavaScript, builtins"
        elif dso.startswith("libc"):
            what = "libc (memcpy, memset)"
        elif dso == "chromium":
            what = "V8 + Chromium runtime"
        else:
            what = "other"
        out[f"{tid}:{comm}"][what] += pct
    return {k: dict(v) for k, v in out.items()}


def threads(shares: dict[str, dict[str, float]], kernels: dict[int, str]) -> tuple[str, str | None]:
    """The decode worker (the thread with the most Pyodide + NumPy samples) and its helper (the other thread with the
    most kernel samples, or None)."""
    names = set(kernels.values())
    worker = max(shares, key=lambda t: shares[t].get("Pyodide + NumPy (WebAssembly)", 0.0))
    rest = [t for t in shares if t != worker and not t.startswith("0:")]
    helper = max(rest, key=lambda t: sum(v for k, v in shares[t].items() if k in names), default=None)
    if helper is not None and not any(k in names for k in shares[helper]):
        helper = None
    return worker, helper


def per_decode(shares: dict[str, dict[str, float]], seconds: float, cpus: int, decodes: int,
               kernels: dict[int, str]) -> dict:
    """ms per decode for the worker, the helper, the rest of the machine and idle, by what ran."""
    scale = seconds * cpus * 1000 / max(decodes, 1) / 100
    worker, helper = threads(shares, kernels)
    cols: dict[str, dict[str, float]] = {"worker": {}, "helper": {}, "other threads": {}, "idle": {}}
    for t, whats in shares.items():
        col = ("worker" if t == worker else "helper" if t == helper else "idle" if t.startswith("0:")
               else "other threads")
        for what, pct in whats.items():
            cols[col][what] = cols[col].get(what, 0.0) + pct * scale
    return {"workerThread": worker, "helperThread": helper, "msPerDecode": cols}


def run(args: argparse.Namespace) -> dict:
    from playwright.sync_api import sync_playwright

    if shutil.which("perf") is None:
        raise SystemExit("bench.chromium_profile needs Linux perf (apt-get install linux-perf)")
    kernels = function_names(MODULE.read_bytes())
    work = Path(tempfile.mkdtemp(prefix="nic-perf-"))
    here = Path.cwd()
    os.chdir(work)  # V8 writes its jitdumps into the browser's working directory
    try:
        with running_site(args.cache_dir, 900) as url, sync_playwright() as p:
            require_compiled_decoder(url)
            entry = catalog_entry(url, args.file)
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=[*LAUNCH_ARGS, "--no-zygote", "--js-flags=--perf-prof"])
            ctx = browser.new_context()
            ctx.on("request", Offline())
            page = latency_page(ctx, url)
            page.evaluate(SETTLE_JS, {"url": entry["nic"]["url"], "secs": args.settle_s})
            rec = subprocess.Popen(["perf", "record", "-q", "-a", "-k", "mono", "-o", "perf.data", "--", "sleep",
                                    str(args.seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            decodes = page.evaluate(SETTLE_JS, {"url": entry["nic"]["url"], "secs": args.seconds})
            _, err = rec.communicate()
            browser.close()
        if rec.returncode:
            raise SystemExit(f"perf record failed ({rec.returncode}): {err.decode(errors='replace')[-500:]}")
        subprocess.run(["perf", "inject", "--jit", "-i", "perf.data", "-o", "perf.jit.data"], check=True,
                       capture_output=True)
        report = subprocess.run(["perf", "report", "-i", "perf.jit.data", "--stdio", "--no-children", "-g", "none",
                                 "--percent-limit", "0", "--sort", "pid,dso,sym"], check=True, capture_output=True,
                                text=True).stdout
    finally:
        os.chdir(here)
        shutil.rmtree(work, ignore_errors=True)
    shares = classify(report, kernels)
    res = per_decode(shares, args.seconds, os.cpu_count() or 1, decodes, kernels)
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "file": args.file, "seconds": args.seconds,
            "decodes": decodes, "cpus": os.cpu_count(), **res}


def markdown(res: dict) -> str:
    cols = res["msPerDecode"]
    whats = sorted({w for c in cols.values() for w in c}, key=lambda w: -sum(c.get(w, 0.0) for c in cols.values()))
    lines = [f"`{res['file']}`: {res['decodes']} decodes in {res['seconds']} s under `perf record -a` "
             f"({1000 * res['seconds'] / max(res['decodes'], 1):.1f} ms each, sampling included); ms per decode.",
             "", "| what ran | worker | helper | other threads | idle |", "|---|---:|---:|---:|---:|"]
    for w in whats:
        lines.append(f"| {w} | " + " | ".join(f"{cols[c].get(w, 0.0):.2f}" for c in cols) + " |")
    lines.append("| **all** | " + " | ".join(f"**{sum(cols[c].values()):.2f}**" for c in cols) + " |")
    return "\n".join(lines)


def file_loop_main(argv: list[str] | None, doc: str | None, name: str, run: Callable[[argparse.Namespace], dict],
                   markdown: Callable[[dict], str], add: Callable[[argparse.ArgumentParser], None]) -> None:
    """The command line of a benchmark over one catalog file's decode loop (this one, ``bench.chromium_timeline``):
    --file, its own options (``add``), --settle-s, --cache-dir, --out (build/bench/NAME.json); prints the table."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", default="kodim01-q4", help="a catalog key of the site (default kodim01-q4)")
    add(ap)
    ap.add_argument("--settle-s", type=float, default=5.0)
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "build" / "e2e-cache")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / f"{name}.json")
    args = ap.parse_args(argv)
    res = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print(markdown(res))
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> None:
    file_loop_main(argv, __doc__, "chromium_profile", run, markdown, lambda ap: ap.add_argument(
        "--seconds", type=float, default=8.0, help="how long perf samples the decodes"))


if __name__ == "__main__":
    main()
