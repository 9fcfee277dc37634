"""Research aid: a scratch export of the shipped model with extra, untrained qualities below quality 0.

The latent's per-channel log-gains are nearly linear in the quality index, so level -k gets
``log_gain[0] + k * (log_gain[0] - log_gain[1])`` and lambda ``lambda[0] * (lambda[0] / lambda[1]) ** k``.
The other levels keep their gains, so their files are the shipped model's bit for bit (under a new model
id). Measured in BENCHMARKS.md ("Rates down to 0.1 bpp"); not how the shipped models are made.

    python scripts/extrapolate_qualities.py 2 -o runs/ext2
    nic eval ../shared/data/kodak --model-dir runs/ext2/export --qualities 0 1 --codecs nic --effort none
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from encoder.export import ENCODER_FILE, export
from encoder.model import float32_weights


def extend(state: dict, levels: int) -> dict:
    """A checkpoint-like dict (float32 weights, config) with ``levels`` extrapolated qualities prepended."""
    model = float32_weights(state["model"])
    lg = model["log_gain"]
    step = lg[0] - lg[1]
    rows = [lg[0] + step * k for k in range(levels, 0, -1)]  # lowest rate first, as quality 0 is
    model["log_gain"] = torch.cat([torch.stack(rows), lg])
    lams = list(state["config"]["lambdas"])
    ratio = lams[0] / lams[1]
    config = dict(state["config"], lambdas=[lams[0] * ratio**k for k in range(levels, 0, -1)] + lams)
    return {"model": model, "config": config}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("levels", type=int, help="qualities to add below quality 0")
    ap.add_argument("-o", "--out", default="runs/ext", help="work folder (checkpoint and export/)")
    ap.add_argument("--model-dir", default="models", help="the exported model to extend")
    args = ap.parse_args()
    if args.levels < 1:
        ap.error("levels must be at least 1")
    state = torch.load(Path(args.model_dir) / ENCODER_FILE, map_location="cpu", weights_only=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(extend(state, args.levels), out / "extended.pt")
    print("model id", export(out / "extended.pt", out / "export"), "in", out / "export")


if __name__ == "__main__":
    main()
