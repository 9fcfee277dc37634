"""SGA schedules (step counts, annealing rates) compared by the RD cost of the real files they produce.

The presets' temperature decay (`encoder.sga.DECAY`) was chosen with this. Every schedule encodes the
same crops at the same qualities, with the same random draws (seeded per image), so the differences are
the schedule's, not noise; the cost is `bpp + lambda * MSE` of each decoded `.nic` (real file bytes).
Tune on photos that are not the test set (Kodak):

    OMP_NUM_THREADS=1 python -m bench.sga_schedule ../shared/data/train --every 240 --images 6 \\
        --steps 300 --depth 2 --qualities 1 4 --decay 5e-4 2.5e-4
    OMP_NUM_THREADS=1 python -m bench.sga_schedule ../shared/data/train --every 240 --images 4 \\
        --steps 300 100 200 500 --depth 2 --qualities 0 2 4 6        # what more steps buy, per quality

Schedules are every (steps, decay) pair, the first one the baseline. Prints, per schedule, the mean cost
change against the baseline and in how many (image, quality) pairs it was lower, then the mean change
against no SGA per quality; writes JSON (`-o`, default runs/bench/sga_schedule.json).
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
    ap.add_argument("--steps", type=int, nargs="+", default=[sga.EFFORT_STEPS["default"]],
                    help="SGA step counts (default: the default preset's)")
    ap.add_argument("--depth", type=int, default=2, choices=(1, 2))
    ap.add_argument("--qualities", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--decay", type=float, nargs="+", default=[5e-4, sga.DECAY],
                    help="temperature decay rates per paper step; the first is the baseline (5e-4: the paper's)")
    ap.add_argument("--models", type=Path, default=None, help="model folder (default: the shipped one)")
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/bench/sga_schedule.json"))
    args = ap.parse_args(argv)
    enc = Encoder(args.models) if args.models else Encoder()
    images = crops(args.folder, args.every, args.images, *args.crop)
    no_sga = np.array(rd_costs(enc, images, args.qualities, args.depth, 0, sga.DECAY))
    results = {}
    for steps in args.steps:
        for decay in args.decay:
            t0 = time.perf_counter()
            costs = rd_costs(enc, images, args.qualities, args.depth, steps, decay)
            results[f"{steps} steps, decay {decay:g}"] = {"steps": steps, "decay": decay, "costs": costs,
                                                          "seconds": time.perf_counter() - t0}
    base = np.array(next(iter(results.values()))["costs"])
    print(f"\nSGA at depth {args.depth}, qualities {args.qualities}, {len(images)} crops "
          f"{args.crop[0]}x{args.crop[1]}\n")
    print("| steps | decay | end temperature | RD cost vs first | lower in | s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results.values():
        c = np.array(r["costs"])
        end = sga.temperature(r["steps"], r["steps"], r=r["decay"])
        print(f"| {r['steps']} | {r['decay']:g} | {end:.3f} | {100 * np.mean(c / base - 1):+.2f} % | "
              f"{int(np.sum(c < base))} of {len(c)} | {r['seconds']:.0f} |")

    def per_quality(costs: list[float]) -> np.ndarray:  # costs run quality-major: one row of images per quality
        return 100 * np.mean((np.array(costs) / no_sga - 1).reshape(len(args.qualities), -1), axis=1)

    print("\nRD cost against no SGA, per quality\n")
    print("| steps | decay | " + " | ".join(f"q{q}" for q in args.qualities) + " |")
    print("|---:|---:|" + "---:|" * len(args.qualities))
    for r in results.values():
        print(f"| {r['steps']} | {r['decay']:g} | " + " | ".join(f"{v:+.2f} %" for v in per_quality(r["costs"]))
              + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "no_sga": no_sga.tolist(),
                                    "results": results}, indent=1))


if __name__ == "__main__":
    main()
