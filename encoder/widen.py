"""Widen the latent of a trained checkpoint (net2net-style), so a wider model starts from a trained one.

    python -m encoder.widen runs/main/last.pt --latent-channels 224 -o runs/wide/last.pt

Why: the 192-channel latent caps what a block synthesis can paint (BENCHMARKS.md, "Trade-offs"), and
training a wider model from scratch costs the CPU hours the current one already took. Here every old
channel keeps computing exactly what it did: weights from new channels into old ones are zero (except
in the syntheses, whose new inputs are always zero at first: see below), the hyperprior's (mu,
log_sigma) halves keep their rows, and the new channels start small:

* new output rows of every layer: PyTorch's default initialisation times ``SMALL``; new biases 0;
* the syntheses' weights from the new latent channels: also ``SMALL`` times the default, not zero, so
  the distortion has a gradient towards using them (with zero weights they would sit at a saddle);
  their rounded values are 0 at first, so the decoded pictures are unchanged;
* the new channels' predicted mean 0 and log-scale at the coder's minimum, their gains at each
  quality's mean gain.

The optimiser starts afresh (Adam's moments have the old shapes): resume with a warm-up, i.e. a
config whose ``cycle_start`` is the checkpoint's step (configs/train-wide.toml).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from encoder.model import LOG_SCALE_MIN, ModelConfig, NicModel
from encoder.train import save_atomic

SMALL = 0.1
HS_LAST = "h_s.layers.2"  # output (mu, log_sigma) stacked: 2C rows


def _widen_conv(old: torch.Tensor, new: torch.Tensor, transposed: bool, consumer: bool) -> torch.Tensor:
    """Weights (out, in, k, k), or (in, out, k, k) when transposed: old block kept, new parts as documented."""
    t = new * SMALL
    if transposed:
        t, old = t.transpose(0, 1), old.transpose(0, 1)  # views: (out, in, k, k)
    o, i = old.shape[:2]
    t[:o, :i] = old
    if not consumer:
        t[:o, i:] = 0.0  # new channels never feed old ones
    return t.transpose(0, 1).contiguous() if transposed else t


def widen_state(old_sd: dict, old_cfg: ModelConfig, new_cfg: ModelConfig, seed: int = 0) -> dict:
    """State dict of ``NicModel(new_cfg)`` that extends ``old_sd`` (only latent_channels may differ)."""
    if {k: v for k, v in vars(old_cfg).items() if k != "latent_channels"} != \
            {k: v for k, v in vars(new_cfg).items() if k != "latent_channels"}:
        raise ValueError("only latent_channels may change")
    c_old, c_new = old_cfg.latent_channels, new_cfg.latent_channels
    if c_new < c_old:
        raise ValueError("the latent can only grow")
    torch.manual_seed(seed)
    model = NicModel(new_cfg)
    kinds = {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}
    out = {}
    for name, new in model.state_dict().items():
        old = old_sd[name]
        module, _, leaf = name.rpartition(".")
        if old.shape == new.shape:
            out[name] = old.clone()
        elif name == "log_gain":
            out[name] = torch.cat([old, old.mean(dim=1, keepdim=True).expand(-1, c_new - c_old)], dim=1)
        elif module == HS_LAST:  # rows: mu (C), then log_sigma (C)
            t = torch.zeros_like(new)
            if leaf == "weight":  # (in, 2C, k, k)
                t[:, :c_old], t[:, c_new : c_new + c_old] = old[:, :c_old], old[:, c_old:]
            else:
                t[:c_old], t[c_new : c_new + c_old] = old[:c_old], old[c_old:]
                t[c_new + c_old :] = LOG_SCALE_MIN
            out[name] = t
        elif leaf == "weight" and module in kinds:
            transposed = isinstance(kinds[module], nn.ConvTranspose2d)
            out[name] = _widen_conv(old, new, transposed, consumer=module.startswith("g_s."))
        elif leaf == "bias":
            t = torch.zeros_like(new)
            t[: old.shape[0]] = old
            out[name] = t
        else:
            raise ValueError(f"do not know how to widen {name} {tuple(old.shape)} -> {tuple(new.shape)}")
    return out


def widen_checkpoint(src: Path, dst: Path, latent_channels: int, seed: int = 0) -> ModelConfig:
    state = torch.load(src, map_location="cpu", weights_only=False)
    old_cfg = ModelConfig(**state["config"])
    new_cfg = ModelConfig(**{**state["config"], "latent_channels": latent_channels})
    model = NicModel(new_cfg)
    model.load_state_dict(widen_state(state["model"], old_cfg, new_cfg, seed))
    opt = torch.optim.Adam(model.parameters())
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_atomic({"model": model.state_dict(), "opt": opt.state_dict(), "step": state["step"],
                 "config": new_cfg.__dict__}, dst)
    return new_cfg


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--latent-channels", type=int, required=True)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args(argv)
    cfg = widen_checkpoint(args.checkpoint, args.output, args.latent_channels)
    print(f"wrote {args.output}: latent {cfg.latent_channels} channels")


if __name__ == "__main__":
    main()
