"""The decode's two Winograd kernels alone, on one file's real operands: builds of the wasm module side by side.

    nic encode ../shared/data/kodak/kodim01.png -o build/k01q4.nic --quality 4 --depth 2 --effort none
    python -m bench.kernel_speed build/k01q4.nic                     # the working tree's module against itself
    git show HEAD~1:webdecoder/native/nicmm.wasm.so > build/before.so
    python -m bench.kernel_speed build/k01q4.nic --so before=build/before.so --so now=webdecoder/native/nicmm.wasm.so

A browser decode spends about two thirds of its kernel time in these two layers (the k13/s8 transposed conv of
depth 2 and the hyper-decoder's 3x3 layer), and a whole decode's time moves by more than a kernel change does on
this shared machine. Here CPython decodes the file up to each layer's input, computes the layer with NumPy as the
reference, and writes the operands; ``bench/kernel_speed.mjs`` then instantiates each build bare under Node (no
Pyodide: the kernels import only a memory and a stack pointer), calls every kernel of every build in turn for
``--rounds`` rounds, and fails unless each build's outputs equal the reference bit for bit. Prints the median ms
per kernel and build with the ratio to the first build; writes JSON. The operands are laid out as the working tree's
plans lay them out: builds from before a layout change (the k13/s8 weights' interleaved row pairs, session 31) fail
the check rather than time garbage, and builds from before session 40 have no ``nic_wino_convt32`` (the decode's
k13/s8 kernel since then: int32 stores).

Where the time goes inside a kernel, instruction by instruction (Linux perf; V8 writes jitdumps that name the
WebAssembly functions by index, as ``bench.chromium_profile.function_names`` maps them to names; ``wasm-function[17]``
below stands for the kernel's index in the build at hand):

    python -m bench.kernel_speed build/k01q4.nic --operands build/ops.bin
    cd build && perf record -k mono -o perf.data node --perf-prof --no-wasm-lazy-compilation \
        ../bench/kernel_speed.mjs ops.bin tree=../webdecoder/native/nicmm.wasm.so --rounds 60
    perf inject --jit -i perf.data -o perf.jit.data
    perf annotate -i perf.jit.data --stdio -s "JS:wasm-function[17]-17-turbofan"
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
from pathlib import Path
import subprocess
import tempfile
import time

import numpy as np

from bench import report, save_json
from bench.host import CpuWatch, describe
from webdecoder import _native, conv, decoder, hyper, synthesis, wino3, winograd
from webdecoder.tables import scale_index

ROOT = Path(__file__).resolve().parents[1]
KERNELS = {
    "k13_data": "k13/s8 inputs (`nic_wino_data`)",
    "k13_convt": "k13/s8 products (`nic_wino_convt32`)",
    "h2_data": "hyper 3x3 inputs (`nic_wino3_data`)",
    "h2_means": "hyper 3x3 means (`nic_wino3_conv`)",
    "h2_scales": "hyper 3x3 scale indices (`nic_wino3_conv`)",
}


def operands(nic: bytes) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Arrays and scalars of both layers for one depth-2 file, with each layer's NumPy output as ``ref_*``."""
    h, model = decoder._header_and_model(nic)
    if h.depth != 2:
        raise SystemExit("bench.kernel_speed needs a depth-2 file (nic encode --depth 2)")
    z_rans, z_esc, y_rans, y_esc = h.sections(bytes(nic))
    z = decoder.decode_z(model, h, z_rans, z_esc)
    arrays: dict[str, np.ndarray] = {}
    # The hyper-decoder's last layer: its input from the first two layers, its plans, its reference output.
    t = hyper.last_layer_input(model, z)
    w, _ = model.convt("h2.w")
    c, shift, bias = w.shape[1] // 2, model.int("h2.shift"), model.f64("h2.b")
    ref = conv._requantize_numpy(conv._numpy_convt(t, w, conv.weight_matrix(w), 1, 1), shift, hyper.ACT_LIMIT, None,
                                 bias, False)
    arrays.update(h2_x=t, h2_lut=hyper.SCALE_LUT, ref_means=ref[:c].astype(np.int32),
                  ref_scales=scale_index(ref[c:].astype(np.int64)).astype(np.int32))
    cin, hh, ww = t.shape
    tiles = -(-hh // 2) * -(-ww // 2)
    scalars = dict(h2_cin=cin, h2_h=hh, h2_w=ww, h2_kp=8 * -(-cin // 8), h2_rows=c, h2_tiles=tiles, h2_tw=-(-ww // 2),
                   h2_groups=-(-tiles // (4 * 4)) * 4, h2_shift=shift + 2, h2_limit=wino3.MAX_INPUT,
                   h2_limit_out=int(hyper.ACT_LIMIT), h2_llo=hyper.LOG_SCALE_MIN_FX)
    for half, rows in (("means", slice(0, c)), ("scales", slice(c, 2 * c))):
        p = wino3._make_plan(w, rows)
        assert p is not None, "the hyper-decoder's last layer has no F(2x2, 3x3) plan"
        arrays.update({f"h2_{half}_upk": p.upk, f"h2_{half}_combo": p.combo, f"h2_{half}_scale": p.scale,
                       f"h2_{half}_skip": p.skip, f"h2_{half}_wmax": p.wmax.astype(np.int32),
                       f"h2_{half}_bias4": 4.0 * bias[rows]})
        scalars[f"h2_{half}_terms"] = p.upk.shape[0]
    # The synthesis's k13/s8 layer: the latent input, the plan, the reference (whole tiles: .nic latents are even).
    means, scale_idx = hyper.hyper_decode(model, z)
    q, means = decoder.decode_symbols(model, h, means, scale_idx, y_rans, y_esc)
    x = synthesis.latent_input(model, q, means, h.quality)
    wk = synthesis._fused_up(model)[0]
    plan = winograd.plan_for(wk, 8, 3)
    assert plan is not None, "the k13/s8 layer has no Winograd plan"
    cin, hy, wy = x.shape
    th, tw, s = hy // 2, wy // 2, 8
    arrays.update(k13_x=x, k13_desc=plan.desc, k13_w16=plan.w16, k13_tstart=plan.tstart, k13_py=plan.py,
                  k13_px=plan.px, k13_combo=plan.combo, k13_mask=plan.mask, k13_wmax=plan.wmax,
                  k13_pix=winograd._tile_origins(th, tw, s),
                  ref_k13=_int32(conv._numpy_convt(x, wk, conv.weight_matrix(wk), s, 3)))
    kp = plan.w16.shape[1]
    scalars.update(k13_cin=cin, k13_h=hy, k13_w=wy, k13_th=th, k13_kp=kp, k13_nd=len(plan.desc),
                   k13_border=plan.border, k13_limit=winograd.MAX_INPUT, k13_units=len(plan.py),
                   k13_cout=wk.shape[1], k13_tiles=th * tw, k13_tiles4=_native.wino_tiles(th * tw),
                   k13_s=s, k13_plane=2 * s * th * 2 * s * tw,
                   k13_row=2 * s * tw, k13_band=winograd.BAND_TILES,
                   k13_scratch=(2 * th + 2 * plan.border) * (wy + 2 * plan.border) * kp)
    return arrays, {k: int(v) for k, v in scalars.items()}


def _int32(sums: np.ndarray) -> np.ndarray:
    """The k13/s8 sums as ``nic_wino_convt32`` stores them (the decode's bands): int32, each below 2^30."""
    assert np.abs(sums).max() < 1 << 30, "sums beyond nic_wino_convt32's bound: the decode takes another path"
    return sums.astype(np.int32)


def write_operands(path: Path, arrays: dict[str, np.ndarray], scalars: dict[str, int]) -> None:
    """A u32 header length, a JSON index and the arrays (64-byte aligned): what kernel_speed.mjs reads."""
    names = {np.dtype(np.float64): "f64", np.dtype(np.int32): "i32", np.dtype(np.int16): "i16",
             np.dtype(np.uint8): "u8"}
    blobs, index, offset = [], {}, 0
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        index[name] = [names[a.dtype], offset, a.size]
        blobs.append(a.tobytes() + bytes(-a.nbytes % 64))
        offset += a.nbytes + (-a.nbytes % 64)
    header = json.dumps({"arrays": index, "scalars": scalars}).encode()
    start = 4 + len(header) + (-(4 + len(header)) % 64)
    for entry in index.values():
        entry[1] += start
    header = json.dumps({"arrays": index, "scalars": scalars}).encode()
    header += b" " * (start - 4 - len(header))  # same length: the offsets above stay right
    path.write_bytes(len(header).to_bytes(4, "little") + header + b"".join(blobs))


def run(nic_path: Path, builds: list[tuple[str, Path]], rounds: int, max_pages: int, out: str | None,
        keep: Path | None = None) -> dict:
    arrays, scalars = operands(nic_path.read_bytes())
    watch = CpuWatch()
    with tempfile.TemporaryDirectory() as tmp:
        ops = Path(tmp) / "operands.bin"
        write_operands(ops, arrays, scalars)
        if keep is not None:
            keep.write_bytes(ops.read_bytes())
        cmd = ["node", str(ROOT / "bench" / "kernel_speed.mjs"), str(ops), *[f"{n}={p}" for n, p in builds],
               "--rounds", str(rounds), "--max-pages", str(max_pages)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"kernel_speed.mjs failed:\n{done.stderr}")
    times = json.loads(done.stdout.strip().splitlines()[-1])
    products = {  # multiply-adds each kernel actually does (the transforms' products), for a rate
        "k13_convt": scalars["k13_tiles"] * len(arrays["k13_combo"]) * scalars["k13_cout"] * scalars["k13_cin"],
        "h2_means": scalars["h2_tiles"] * scalars["h2_means_terms"] * scalars["h2_rows"] * scalars["h2_cin"],
        "h2_scales": scalars["h2_tiles"] * scalars["h2_scales_terms"] * scalars["h2_rows"] * scalars["h2_cin"],
    }
    result = {"file": str(nic_path), "rounds": rounds, "max_pages": max_pages,
              "builds": {n: str(p) for n, p in builds}, "median_ms": times, "products": products,
              "host_cpu": watch.report(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    save_json(result, out)
    return result


def markdown(result: dict) -> str:
    names = list(result["builds"])
    first = names[0]
    ms = result["median_ms"]
    head = " | ".join(names) + (" | " + " | ".join(f"{n} / {first}" for n in names[1:]) if len(names) > 1 else "")
    lines = [f"Kernel time, median ms over {result['rounds']} rounds, `{result['file']}` (bit-exact against NumPy; "
             f"memory maximum {result['max_pages']} pages)", "", f"| kernel | {head} |",
             "|---|" + "---:|" * (2 * len(names) - 1)]
    for kernel, what in KERNELS.items():
        cells = [f"{ms[n][kernel]:.2f}" for n in names]
        cells += [f"{ms[n][kernel] / ms[first][kernel]:.3f}" for n in names[1:]]
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    rates = [f"{n}: " + ", ".join(f"{k} {result['products'][k] / ms[n][k] / 1e6:.1f}" for k in result["products"])
             for n in names]
    lines += ["", "G products/s: " + "; ".join(rates), "", describe(result.get("host_cpu"))]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.kernel_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("file", type=Path, help="a depth-2 .nic file")
    p.add_argument("--so", action="append", default=[], metavar="NAME=PATH",
                   help="a build of nicmm.wasm.so (repeatable; default: the working tree's)")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--max-pages", type=int, default=32768,
                   help="the memory's maximum in 64 KiB pages (Pyodide's: 65536; Node 20 runs wasm slower past 32768)")
    p.add_argument("--out", default="runs/bench/kernel_speed.json")
    p.add_argument("--operands", type=Path, help="also keep the operands file here (to profile the kernels on it)")
    args = p.parse_args(argv)
    builds = [(n, Path(v)) for n, v in (s.split("=", 1) for s in args.so)] or [
        ("tree", ROOT / "webdecoder" / "native" / "nicmm.wasm.so")]
    report(markdown(run(args.file, builds, args.rounds, args.max_pages, args.out, args.operands)), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
