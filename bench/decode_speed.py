"""Decode time per image: nic's CPython decoder next to CompressAI mbt2018-mean and Pillow.

For every image: nic encodes it (effort "none", untimed), then ``webdecoder.decode``
is timed ``repeats`` times (median), split into its stages through the decoder's
``timings`` hook (parse, z, hyper, y, synthesis). Next to it, on the same image:

* CompressAI ``mbt2018_mean(quality, pretrained=False)`` after ``.update()``:
  ``.decompress()`` of its own ``.compress()`` output (random weights: the work per
  pixel is the same as a trained model's; the bitstream size is not meaningful);
* Pillow decoding a WebP, an AVIF and a JPEG whose quality was searched so that the
  file is as close as possible in size to the nic file.

All decoders run single-threaded by default (``--threads``) so the comparison is per
core, which is also what a browser worker gets.

Usage::

    python -m bench.decode_speed ../shared/data/kodak --limit 4 --out runs/bench/decode_speed.json

Writes the JSON, its Markdown table (``.md``) and a chart (``.png``, ``bench.latency_chart``) side by side.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
import io
from pathlib import Path
import platform
import statistics
import time
from typing import Any

import numpy as np
from PIL import Image

from bench import latency_chart, report, save_json
from bench.host import CpuWatch, describe
from bench.rd import encode_classical, list_images, load_rgb

PILLOW_CODECS = ("webp", "avif", "jpeg")
NIC_STAGES = ("parse", "z", "hyper", "y", "synthesis")


def _median(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _pil_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def match_size(codec: str, x: np.ndarray, target_bytes: int) -> tuple[int, bytes]:
    """Quality (0..100) whose file is closest in size to ``target_bytes`` (bisection; size grows with q)."""
    lo, hi = 0, 100
    cache: dict[int, bytes] = {}

    def enc(q: int) -> bytes:
        if q not in cache:
            cache[q] = encode_classical(codec, x, q)
        return cache[q]

    while hi - lo > 1:
        mid = (lo + hi) // 2
        if len(enc(mid)) < target_bytes:
            lo = mid
        else:
            hi = mid
    q = min((lo, hi), key=lambda k: abs(len(enc(k)) - target_bytes))
    return q, enc(q)


class _CompressAI:
    """mbt2018-mean with random weights, entropy tables built once."""

    def __init__(self, quality: int):
        from compressai.zoo import mbt2018_mean
        import torch

        torch.manual_seed(0)
        self.torch = torch
        self.net = mbt2018_mean(quality=quality, pretrained=False).eval()
        self.net.update(force=True)

    def prepare(self, x: np.ndarray) -> tuple[dict[str, Any], int]:
        torch = self.torch
        h, w = x.shape[:2]
        hp, wp = -(-h // 64) * 64, -(-w // 64) * 64  # the hyperprior downsamples by 64
        t = torch.from_numpy(np.array(x, np.float32) / 255.0).permute(2, 0, 1)[None]
        t = torch.nn.functional.pad(t, (0, wp - w, 0, hp - h), mode="replicate")
        with torch.no_grad():
            enc = self.net.compress(t)
        return enc, sum(len(s[0]) for s in enc["strings"])

    def decode(self, enc: dict[str, Any]) -> None:
        with self.torch.no_grad():
            self.net.decompress(enc["strings"], enc["shape"])


def run(
    dataset_dir: str | Path,
    limit: int | None = 4,
    quality: int = 4,
    depths: Sequence[int] = (1, 2),
    repeats: int = 5,
    compressai_quality: int = 4,
    pillow_codecs: Sequence[str] = PILLOW_CODECS,
    compressai: bool = True,
    threads: int = 1,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Time every decoder on the first ``limit`` images; returns (and optionally writes) JSON-able results."""
    watch = CpuWatch()
    import torch

    import encoder
    import webdecoder

    torch.set_num_threads(threads)
    # libavif decodes with one thread per core by default; hold it to the same budget as the others
    from PIL import AvifImagePlugin

    AvifImagePlugin.DEFAULT_MAX_THREADS = threads
    images = list_images(dataset_dir, limit)
    cai = _CompressAI(compressai_quality) if compressai else None
    # warm-up outside the clock: model loading and first-call allocations
    warm = encoder.encode(np.full((64, 64, 3), 128, np.uint8), quality=quality, depth=depths[0], effort="none")
    webdecoder.decode(warm)

    per_image: list[dict[str, Any]] = []
    for path in images:
        x = load_rgb(path)
        px = x.shape[0] * x.shape[1]
        row: dict[str, Any] = {"image": path.name, "pixels": px}
        for d in depths:
            data = encoder.encode(x, quality=quality, depth=d, effort="none")
            stage_runs: list[dict[str, float]] = []

            def dec(data: bytes = data, stage_runs: list = stage_runs) -> None:
                t: dict[str, float] = {}
                webdecoder.decode(data, timings=t)
                stage_runs.append(t)

            row[f"nic-d{d}"] = {
                "bytes": len(data),
                "bpp": 8 * len(data) / px,
                "decode_s": _median(dec, repeats),
                "stages_s": {s: statistics.median(r.get(s, 0.0) for r in stage_runs) for s in NIC_STAGES},
            }
        target = row[f"nic-d{depths[-1]}"]["bytes"]
        for c in pillow_codecs:
            q, blob = match_size(c, x, target)
            row[c] = {
                "quality": q,
                "bytes": len(blob),
                "bpp": 8 * len(blob) / px,
                "decode_s": _median(lambda blob=blob: _pil_decode(blob), repeats),
            }
        if cai is not None:
            enc, nbytes = cai.prepare(x)
            cai.decode(enc)  # warm-up: first call allocates
            row["compressai-mbt2018-mean"] = {
                "quality": compressai_quality,
                "bytes": nbytes,
                "decode_s": _median(lambda enc=enc: cai.decode(enc), repeats),
            }
        per_image.append(row)

    decoders = [k for k in per_image[0] if isinstance(per_image[0][k], dict)]
    summary: dict[str, Any] = {}
    for k in decoders:
        s = {
            "median_decode_s": statistics.median(r[k]["decode_s"] for r in per_image),
            "mean_bpp": statistics.fmean(r[k].get("bpp", 8 * r[k]["bytes"] / r["pixels"]) for r in per_image),
        }
        if k.startswith("nic"):
            s["stages_s"] = {st: statistics.median(r[k]["stages_s"][st] for r in per_image) for st in NIC_STAGES}
        summary[k] = s
    ref = f"nic-d{depths[-1]}"
    for s in summary.values():
        s["time_vs_" + ref] = s["median_decode_s"] / summary[ref]["median_decode_s"]
    result = {
        "dataset": str(dataset_dir),
        "images": len(per_image),
        "nic_quality": quality,
        "repeats": repeats,
        "threads": threads,
        "host_cpu": watch.report(),
        "reference": ref,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "summary": summary,
        "per_image": per_image,
    }
    return save_json(result, out)


def markdown(result: dict[str, Any]) -> str:
    ref = result["reference"]
    lines = [
        f"Decode time per image, median over {result['images']} image(s) of `{result['dataset']}` "
        f"(median of {result['repeats']} runs each, {result['threads']} thread(s); "
        f"nic quality {result['nic_quality']})",
        "",
        f"| decoder | bpp | ms / image | time vs {ref} |",
        "|---|---:|---:|---:|",
    ]
    for k, s in result["summary"].items():
        lines.append(f"| {k} | {s['mean_bpp']:.3f} | {1e3 * s['median_decode_s']:.1f} | {s['time_vs_' + ref]:.2f}x |")
    nic = [k for k in result["summary"] if k.startswith("nic")]
    if nic:
        lines += ["", "| nic stage (ms) | " + " | ".join(nic) + " |", "|---|" + "---:|" * len(nic)]
        for st in NIC_STAGES:
            lines.append(
                f"| {st} | " + " | ".join(f"{1e3 * result['summary'][k]['stages_s'][st]:.1f}" for k in nic) + " |"
            )
    lines += [
        "",
        "CompressAI's bpp is from random weights (not meaningful); Pillow files are size-matched to nic.",
        "",
        describe(result.get("host_cpu")),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.decode_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset_dir", nargs="?", default="../shared/data/kodak")
    p.add_argument("--limit", type=int, default=4, help="first N images (0 = all)")
    p.add_argument("--quality", type=int, default=4, help="nic quality")
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--compressai-quality", type=int, default=4)
    p.add_argument("--no-compressai", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/bench/decode_speed.json")
    a = p.parse_args(argv)
    res = run(
        a.dataset_dir,
        a.limit or None,
        a.quality,
        a.depths,
        a.repeats,
        a.compressai_quality,
        PILLOW_CODECS,
        not a.no_compressai,
        a.threads,
        a.out,
    )
    report(markdown(res), a.out)
    if a.out:
        print(f"wrote {latency_chart.plot_cpython(res, Path(a.out).with_suffix('.png'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
