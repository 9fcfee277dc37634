"""SGA annealing schedules compared by the RD cost of the real files they produce.

The presets' temperature decay (`encoder.sga.DECAY`) was chosen with this. Every schedule encodes the
same crops at the same qualities, with the same random draws (seeded per image), so the differences are
the schedule's, not noise; the cost is `bpp + lambda * MSE` of each decoded `.nic` (real file bytes).
Tune on photos that are not the test set (Kodak):

    OMP_NUM_THREADS=1 python -m bench.sga_schedule ../shared/data/train --every 240 --images 6 \\
        --steps 300 --depth 2 --qualities 1 4 --decay 5e-4 2.5e-4

Prints, per schedule, the mean cost change against the first one and in how many (image, quality)
pairs it was lower; writes JSON (`-o`, default runs/bench/sga_schedule.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import time

import numpy as np
from PIL import Image
import torch
from tqdm import tqdm

from encoder import sga
from encoder.codec import Encoder


def crops(folder: Path, every: int, images: int, height: int, width: int) -> list[np.ndarray]:
    """Top-left crops (landscape or portrait, as the photo) of every ``every``-th photo of a sorted folder."""
    names = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[::every][:images]
    out = []
    for p in names:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        out.append(rgb[:height, :width] if rgb.shape[1] >= rgb.shape[0] else rgb[:width, :height])
    return out


def rd_costs(enc: Encoder, images: list[np.ndarray], qualities: list[int], depth: int, steps: int,
             decay: float) -> list[float]:
    """RD cost of each (quality, image) file encoded with SGA at temperature decay ``decay``."""
    saved = sga.DECAY
    sga.DECAY = decay  # read by encoder.sga.refine at every step
    try:
        costs = []
        for q in qualities:
            for i, rgb in enumerate(tqdm(images, desc=f"decay {decay:g} q{q}", leave=False)):
                torch.manual_seed(i)
                y, z = enc.latents(rgb, q, depth, steps)
                data = enc.write(y, z, rgb.shape[1], rgb.shape[0], q, depth)
                costs.append(enc.rd_cost(data, rgb, q))
        return costs
    finally:
        sga.DECAY = saved


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--every", type=int, default=240, help="take every N-th photo of the sorted folder")
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--crop", type=int, nargs=2, default=[256, 384], metavar=("H", "W"))
    ap.add_argument("--steps", type=int, default=sga.EFFORT_STEPS["default"])
    ap.add_argument("--depth", type=int, default=2, choices=(1, 2))
    ap.add_argument("--qualities", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--decay", type=float, nargs="+", default=[5e-4, sga.DECAY],
                    help="temperature decay rates per paper step; the first is the baseline (5e-4: the paper's)")
    ap.add_argument("--models", type=Path, default=None, help="model folder (default: the shipped one)")
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/bench/sga_schedule.json"))
    args = ap.parse_args(argv)
    enc = Encoder(args.models) if args.models else Encoder()
    images = crops(args.folder, args.every, args.images, *args.crop)
    results = {}
    for decay in args.decay:
        t0 = time.perf_counter()
        results[decay] = {"costs": rd_costs(enc, images, args.qualities, args.depth, args.steps, decay),
                          "seconds": time.perf_counter() - t0}
    base = np.array(results[args.decay[0]]["costs"])
    print(f"\nSGA {args.steps} steps, depth {args.depth}, qualities {args.qualities}, {len(images)} crops "
          f"{args.crop[0]}x{args.crop[1]}\n")
    print("| decay | end temperature | RD cost vs first | lower in | s |")
    print("|---:|---:|---:|---:|---:|")
    for decay, r in results.items():
        c = np.array(r["costs"])
        end = sga.temperature(args.steps, args.steps, r=decay)
        print(f"| {decay:g} | {end:.3f} | {100 * np.mean(c / base - 1):+.2f} % | "
              f"{int(np.sum(c < base))} of {len(c)} | {r['seconds']:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                    "results": {str(k): v for k, v in results.items()}}, indent=1))


if __name__ == "__main__":
    main()
