"""Max pixel difference between the float PyTorch decoder and the integer NumPy decoder.

    python -m bench.torch_vs_numpy ../shared/data/kodak --quality 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
import torch

from encoder.codec import DEPTH_NAMES, default_encoder
from webdecoder.decoder import _header_and_model, decode_y, decode_z
from webdecoder.hyper import hyper_decode
from webdecoder.synthesis import dequantize_latent, synthesize


def max_diff(enc, img: np.ndarray, quality: int, depth: int) -> tuple[int, float]:
    data = enc.encode(img, quality, depth, effort="none")
    h, m = _header_and_model(data)
    zr, ze, yr, ye = h.sections(data)
    means, idx = hyper_decode(m, decode_z(m, h, zr, ze))
    y_fx = decode_y(m, h, means, idx, yr, ye)
    ours = synthesize(m, dequantize_latent(m, y_fx, quality), depth)[:, : h.height, : h.width].astype(int)
    with torch.no_grad():
        x = enc.model.synthesise(torch.from_numpy(y_fx / 256.0).float()[None], torch.tensor([quality]),
                                 DEPTH_NAMES[depth])[0]
    ref = torch.round(x.clamp(0, 1)[:, : h.height, : h.width] * 255).numpy().astype(int)
    d = np.abs(ref - ours)
    return int(d.max()), float((d > 0).mean())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dataset", type=Path)
    p.add_argument("--quality", type=int, default=5)
    p.add_argument("--limit", type=int, default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    enc = default_encoder()
    paths = sorted(a.dataset.glob("*.png"))[: a.limit]
    for depth in (1, 2):
        worst, frac = 0, []
        for path in paths:
            md, f = max_diff(enc, np.asarray(Image.open(path).convert("RGB")), a.quality, depth)
            worst, frac = max(worst, md), frac + [f]
        print(f"depth {depth}: {len(paths)} images, max |torch - numpy| = {worst} grey level(s), "
              f"pixels differing {100 * np.mean(frac):.2f}%")


if __name__ == "__main__":
    main()
