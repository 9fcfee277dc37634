"""The training loss of checkpoints or exports on fixed crops: a steadier measure than the logged loss.

The loss `nic train` logs is one random batch at a time (its spread across batches is ~10 %), so it cannot
tell two checkpoints 0.5 % apart. This evaluates every given model on the same crops, qualities and
quantisation noise, in float32:

    OMP_NUM_THREADS=2 python -m bench.fixed_crop_loss models/nic-encoder.pt runs/main/last.pt

Each argument is a checkpoint (`runs/*/last.pt`) or an exported `nic-encoder.pt` (float16 weights,
widened to float32 here). By default the crops come from the training set, so this measures fit;
`--data ../shared/data/eval` (or `kodak`) takes them from photos the model never trained on, which tells
whether a gain in fit carries over (overfitting would show as a training-crop gain that the held-out
crops do not share). Kodak's RD curve (`nic eval`) stays the measure that counts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from encoder.model import ModelConfig, NicModel, load_float32
from encoder.train import CropDataset, rd_loss


def load(path: Path) -> tuple[NicModel, int | None]:
    """The model of a checkpoint or export, in training mode (the additive-noise proxy of rounding, as the
    logged loss), and the steps it was trained for."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = load_float32(NicModel(ModelConfig(**state["config"])), state["model"])
    return model.train(), state.get("step", state.get("trained_steps"))


def fixed_crop_loss(model: NicModel, batches: list[torch.Tensor], seed: int = 0) -> dict:
    torch.manual_seed(seed)  # the same uniform noise for every model (same shapes, same draw order)
    totals: dict[str, float] = {}
    with torch.no_grad():
        for i, x in enumerate(batches):
            q = (torch.arange(x.shape[0]) + i) % model.cfg.qualities  # every quality, in a fixed order
            _, stats = rd_loss(model, x, q)
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + v / len(batches)
    return {k: round(v, 4) for k, v in totals.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/train"))
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=256)
    args = ap.parse_args()
    data = CropDataset(args.data, args.crop, seed=12345)
    batches = [data.batch(args.batch) for _ in range(args.batches)]
    for path in args.models:
        model, steps = load(path)
        stats = fixed_crop_loss(model, batches)
        print(json.dumps({"model": str(path), "step": steps, **stats}))


if __name__ == "__main__":
    main()
