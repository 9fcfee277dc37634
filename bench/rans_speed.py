"""rANS throughput: nic's NumPy interleaved coder next to CompressAI's C++ rANS.

Both coders get the same symbols, the same per-symbol table choice and the same
16-bit quantised frequency tables (CompressAI takes them as CDF lists), and run in
the same process one after the other. Times are medians over ``repeats``.

Symbol streams:

* synthetic (default): table indices uniform over the 41 smallest of the 64
  Gaussian scales (0.11 .. ~15, the range most latents of a mid-rate image use),
  symbols drawn exactly from each table's integer frequencies;
* ``--image PATH``: the real y stream of that image encoded by nic (same symbols,
  same scale indices, and nic's own lane count added to the lane list).

Escapes are replaced by the table's zero symbol in both cases, so that neither
coder spends time on its (different) escape path.

Usage::

    python -m bench.rans_speed --out runs/bench/rans_speed.json
    python -m bench.rans_speed --image ../shared/data/kodak/kodim23.png --quality 4
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
import platform
import statistics
import time
from typing import Any

import numpy as np

from bench import report, save_json
from webdecoder.rans import RansDecoder, RansEncoder
from webdecoder.tables import gaussian_tables

KODAK_Y_SYMBOLS = 192 * 32 * 48  # latent channels x (512/16) x (768/16): one Kodak image's y


def synthetic_stream(
    n: int, seed: int = 0, max_table: int = 40
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(symbols, tables, freqs, offsets) with symbols drawn from their own tables."""
    freqs, offsets = gaussian_tables()
    rng = np.random.default_rng(seed)
    tables = rng.integers(0, max_table + 1, n, dtype=np.int64)
    # exact inverse-CDF sampling on the integer frequencies: u in [0, 2^16) -> symbol
    cum = np.cumsum(freqs)
    starts_global = np.concatenate(([0], cum))[offsets[:-1]]
    u = rng.integers(0, 1 << 16, n, dtype=np.int64)
    table_of = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    keys = (table_of << 16) + (cum - freqs - starts_global[table_of])
    symbols = np.searchsorted(keys, (tables << 16) + u, side="right") - 1 - offsets[tables]
    return _no_escapes(symbols, tables, offsets), tables, freqs, offsets


def image_stream(image: str | Path, quality: int, depth: int = 2) -> tuple[np.ndarray, ...]:
    """The real y symbol stream of ``image`` under nic: (symbols, tables, freqs, offsets, lanes)."""
    from PIL import Image

    import encoder
    from webdecoder import format as nic_format
    from webdecoder.decoder import decode_z
    from webdecoder.hyper import hyper_decode
    from webdecoder.model import get_model

    with Image.open(image) as im:
        data = encoder.encode(im.convert("RGB"), quality=quality, depth=depth, effort="none")
    h = nic_format.parse(data)
    model = get_model(h.model_id)
    z_rans, z_esc, y_rans, _ = h.sections(data)
    _, scale_idx = hyper_decode(model, decode_z(model, h, z_rans, z_esc))
    tables = scale_idx.ravel().astype(np.int64)
    freqs, offsets = model["y.freqs"].astype(np.int64), model["y.offsets"].astype(np.int64)
    symbols = RansDecoder(y_rans, h.y_lanes).decode(freqs, offsets, tables)
    return _no_escapes(symbols, tables, offsets), tables, freqs, offsets, np.int64(h.y_lanes)


def _no_escapes(symbols: np.ndarray, tables: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    n_t = np.diff(offsets)[tables]
    center = (n_t - 2) // 2  # tables hold values -R..R then the escape: index R is value 0
    return np.where(symbols == n_t - 1, center, symbols).astype(np.int64)


def compressai_cdfs(freqs: np.ndarray, offsets: np.ndarray) -> tuple[list[list[int]], list[int], list[int]]:
    """nic's frequency tables as CompressAI's (cdfs, cdf_lengths, offsets).

    CompressAI's CDF for a table of n symbols has n + 1 entries (0 .. 2^16); its last
    symbol (index n - 1) is the escape, exactly like nic's layout, so symbol indices
    are passed unchanged with offset 0.
    """
    cdfs, lengths = [], []
    for t in range(offsets.size - 1):
        f = freqs[offsets[t] : offsets[t + 1]]
        cdfs.append([0, *np.cumsum(f).tolist()])
        lengths.append(len(f) + 1)
    return cdfs, lengths, [0] * len(cdfs)


def _median_time(fn, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run(
    n: int = KODAK_Y_SYMBOLS,
    lanes: Sequence[int] = (64, 256, 1024, 4096),
    repeats: int = 5,
    image: str | Path | None = None,
    quality: int = 4,
    seed: int = 0,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Benchmark both coders; returns (and optionally writes) a JSON-able dict."""
    lanes = list(lanes)
    if image is not None:
        symbols, tables, freqs, offsets, nic_lanes = image_stream(image, quality)
        if int(nic_lanes) not in lanes:
            lanes.append(int(nic_lanes))
        source = f"{Path(image).name} q{quality} (nic lanes {int(nic_lanes)})"
    else:
        symbols, tables, freqs, offsets = synthetic_stream(n, seed)
        source = f"synthetic, seed {seed}"
    n = int(symbols.size)
    rows: list[dict[str, Any]] = []

    # CompressAI: list conversions are done once outside the timed region (they are the caller's
    # data); what remains timed is what CompressAI's own GaussianConditional pays per call.
    from compressai.ans import RansDecoder as CDecoder
    from compressai.ans import RansEncoder as CEncoder

    cdfs, lengths, offs = compressai_cdfs(freqs, offsets)
    sym_l, tab_l = symbols.tolist(), tables.tolist()
    t_enc, cstream = _median_time(lambda: CEncoder().encode_with_indexes(sym_l, tab_l, cdfs, lengths, offs), repeats)
    t_dec, cdec = _median_time(lambda: CDecoder().decode_with_indexes(cstream, tab_l, cdfs, lengths, offs), repeats)
    if cdec != sym_l:
        raise RuntimeError("CompressAI rANS did not round-trip")
    ref = {
        "coder": "compressai C++ rANS",
        "lanes": 1,
        "bytes": len(cstream),
        "encode_s": t_enc,
        "decode_s": t_dec,
    }
    rows.append(ref)

    for k in lanes:
        t_enc, stream = _median_time(lambda k=k: RansEncoder(k).encode(symbols, freqs, offsets, tables), repeats)

        def dec(k=k, stream=stream):
            d = RansDecoder(stream, k)
            s = d.decode(freqs, offsets, tables)
            d.finish()
            return s

        t_dec, got = _median_time(dec, repeats)
        if not np.array_equal(got, symbols):
            raise RuntimeError(f"nic rANS did not round-trip with {k} lanes")
        rows.append(
            {
                "coder": "nic NumPy rANS",
                "lanes": k,
                "bytes": len(stream),
                "encode_s": t_enc,
                "decode_s": t_dec,
            }
        )

    for r in rows:
        r["encode_sym_per_s"] = n / r["encode_s"]
        r["decode_sym_per_s"] = n / r["decode_s"]
        # > 1 means nic is slower than CompressAI by that factor
        r["decode_time_ratio_vs_compressai"] = r["decode_s"] / ref["decode_s"]
        r["encode_time_ratio_vs_compressai"] = r["encode_s"] / ref["encode_s"]
    result = {
        "symbols": n,
        "tables": int(offsets.size - 1),
        "source": source,
        "repeats": repeats,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
    }
    return save_json(result, out)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"rANS, {result['symbols']} symbols ({result['source']}), median of {result['repeats']}",
        "",
        "| coder | lanes | bytes | encode Msym/s | decode Msym/s | decode time vs CompressAI |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['coder']} | {r['lanes']} | {r['bytes']} | {r['encode_sym_per_s'] / 1e6:.2f} | "
            f"{r['decode_sym_per_s'] / 1e6:.2f} | {r['decode_time_ratio_vs_compressai']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rans_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", type=int, default=KODAK_Y_SYMBOLS, help="synthetic stream length")
    p.add_argument("--lanes", type=int, nargs="+", default=[64, 256, 1024, 4096])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--image", default=None, help="use this image's real nic y stream")
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench/rans_speed.json")
    a = p.parse_args(argv)
    res = run(a.symbols, a.lanes, a.repeats, a.image, a.quality, a.seed, a.out)
    report(markdown(res), a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
