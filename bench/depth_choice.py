"""RD and decode cost of depth 1, depth 2 and the per-image automatic choice (`--depth auto`).

    python -m bench.depth_choice ../shared/data/kodak --limit 6 --qualities 1 3 5 7
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from encoder.codec import default_encoder
import webdecoder


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dataset", type=Path)
    p.add_argument("--limit", type=int, default=6)
    p.add_argument("--qualities", type=int, nargs="+", default=[1, 3, 5, 7])
    p.add_argument("--max-kmac", type=float, default=None)
    a = p.parse_args()
    enc = default_encoder()
    images = [np.asarray(Image.open(f).convert("RGB")) for f in sorted(a.dataset.glob("*.png"))[: a.limit]]
    print(f"{len(images)} images, effort none; mean over images\n")
    print("| quality | mode | bpp | PSNR-RGB | kMAC/px | depth 2 chosen |")
    print("|---|---|---:|---:|---:|---:|")
    for q in a.qualities:
        for mode in (1, 2, "auto"):
            rows = []
            for img in images:
                data = enc.encode(img, q, mode, effort="none", max_kmac=a.max_kmac)
                out = webdecoder.decode(data)
                info = webdecoder.info(data)
                mse = np.mean((out.astype(np.float64) - img) ** 2)
                rows.append((info["bpp"], 10 * np.log10(255**2 / mse), info["kmac_per_px"], info["depth"] == 2))
            r = np.array(rows, dtype=float)
            print(f"| {q} | {mode} | {r[:, 0].mean():.3f} | {r[:, 1].mean():.2f} | {r[:, 2].mean():.3f} | "
                  f"{int(r[:, 3].sum())}/{len(images)} |")


if __name__ == "__main__":
    main()
