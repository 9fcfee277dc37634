"""Training: rate + lambda * MSE (0-255 scale), all qualities and both synthesis depths at once.

Each sample in a batch draws a quality level; its loss is ``bpp + lambda_q * MSE``
with the MSE averaged over the two synthesis depths, so one analysis transform
and one hyperprior serve both decoders. Checkpoints are written atomically every
few minutes and a run resumes from its last checkpoint by default.

    nic train configs/train.toml
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
import random
import time
import tomllib

import numpy as np
from PIL import Image
import torch
from tqdm import tqdm

from encoder.model import ModelConfig, NicModel, bits, load_float32

log = logging.getLogger("nic.train")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


class CropDataset:
    """All training photos in memory as uint8; random crops with flips."""

    def __init__(self, folder: Path, crop: int, seed: int = 0):
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise SystemExit(f"no images in {folder}")
        self.images = []
        for p in tqdm(paths, desc="loading photos", leave=False):
            with Image.open(p) as im:
                im = im.convert("RGB")
                if min(im.size) >= crop:
                    self.images.append(np.asarray(im))
        self.crop = crop
        self.rng = random.Random(seed)

    def batch(self, n: int) -> torch.Tensor:
        out = np.empty((n, self.crop, self.crop, 3), np.uint8)
        for i in range(n):
            img = self.images[self.rng.randrange(len(self.images))]
            h, w, _ = img.shape
            y, x = self.rng.randrange(h - self.crop + 1), self.rng.randrange(w - self.crop + 1)
            c = img[y : y + self.crop, x : x + self.crop]
            if self.rng.random() < 0.5:
                c = c[:, ::-1]
            out[i] = c
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


def rd_loss(model: NicModel, x: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, dict]:
    out = model(x, q)
    num_px = x.shape[2] * x.shape[3]
    bpp = (bits(out["likelihoods"]["y"]) + bits(out["likelihoods"]["z"])) / num_px
    lam = torch.tensor(model.cfg.lambdas, device=x.device)[q]
    mse = {k: ((v - x) ** 2).mean(dim=(1, 2, 3)) * 255.0**2 for k, v in out["x_hat"].items()}
    mse_avg = sum(mse.values()) / len(mse)
    loss = (bpp + lam * mse_avg).mean()
    stats = {"loss": loss.item(), "bpp": bpp.mean().item()}
    for k, v in mse.items():
        stats[f"psnr_{k}"] = (10 * torch.log10(255.0**2 / v.clamp_min(1e-6))).mean().item()
    return loss, stats


def lr_at(step: int, cfg: dict) -> float:
    """Linear warm-up, then cosine decay to lr_min at total_steps.

    `cycle_start` begins a new warm-up + cosine cycle at that step (a warm restart), so a
    finished run can be extended by raising total_steps without jumping straight from
    lr_min back to the peak rate.
    """
    start = int(cfg.get("cycle_start", 0))
    base, warm = cfg["lr"], cfg.get("warmup_steps", 200)
    step, total = step - start, cfg["total_steps"] - start
    if step < warm:
        return base * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    lo = cfg.get("lr_min", base * 0.05)
    return lo + 0.5 * (base - lo) * (1 + math.cos(math.pi * t))


MAX_SKIPPED_STEPS = 20  # consecutive non-finite steps: then the run itself is broken, not one batch


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(config_path: str | Path, max_minutes: float | None = None) -> Path:
    """Train (or resume) the run a TOML config describes; returns the path of its last checkpoint."""
    with open(config_path, "rb") as f:
        cfg = tomllib.load(f)
    run_dir = Path(cfg["train"]["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    # This run's log file, for this run only (logging.basicConfig would keep the first run's file for
    # every later run in the same process, and does nothing when something configured logging first).
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        return _train(cfg, run_dir, max_minutes)
    finally:
        log.removeHandler(handler)
        handler.close()


def resolve_precision(precision: str) -> str:
    """The precision a run trains in: "fp32", "bf16", or "auto" (bf16 where the CPU multiplies
    bfloat16 natively, fp32 elsewhere).

    bfloat16 pays only with native bf16 dot products (AVX-512 BF16 or AMX): 0.40 against 0.74 s/step
    on the AMD EPYC of session 10, which has AVX-512 BF16, but 2.06 against 0.52 s/step (4x slower) on
    the Intel Xeon of session 11, which has AVX-512 without BF16 (BENCHMARKS.md).
    """
    if precision == "auto":
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return "bf16" if native else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"train.precision must be fp32, bf16 or auto, not {precision!r}")
    return precision


def _init_from(model: NicModel, path: Path, mcfg: ModelConfig) -> int:
    """Start a new run from trained weights: a checkpoint or an exported `nic-encoder.pt`.

    Used when a run's checkpoint is gone but its export is committed (models/ ships with the repo,
    runs/ does not): the weights carry over, Adam starts afresh (the cycle's warm-up covers that), and
    the step count continues from the weights' own, so `cycle_start` and `total_steps` keep their meaning.
    An export holds float16 weights; they are widened back to float32 master weights here.
    """
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("config") != mcfg.__dict__:
        raise ValueError(f"train.init_from: {path} holds a model of config {state.get('config')}, "
                         f"not this run's {mcfg.__dict__}")
    load_float32(model, state["model"])
    step = int(state.get("step", state.get("trained_steps", 0)))
    log.info("initialised from %s at step %d (fresh optimiser)", path, step)
    return step


def _train(cfg: dict, run_dir: Path, max_minutes: float | None) -> Path:
    tcfg = cfg["train"]
    mcfg = ModelConfig(**cfg.get("model", {}))
    torch.set_num_threads(int(tcfg.get("threads", 2)))
    torch.manual_seed(int(tcfg.get("seed", 0)))

    model = NicModel(mcfg)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg["lr"])
    step, ckpt_path = 0, run_dir / "last.pt"
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        log.info("resumed at step %d", step)
    elif tcfg.get("init_from"):
        step = _init_from(model, Path(tcfg["init_from"]), mcfg)
        # The run exists from here on: a restart resumes from this checkpoint, not from init_from again.
        save_atomic({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                     "config": mcfg.__dict__}, ckpt_path)
    if tcfg.get("compile", False):
        # Inductor's generated CPU kernels: 0.78 s/step against 0.88 eager on the 2-core machine (batch 8,
        # 192 crops), after a one-off compile of about a minute. The weights and checkpoints are unchanged.
        model.forward = torch.compile(model.forward)
    # "bf16": convolutions in bfloat16 under autocast (speed: resolve_precision). The model keeps float32
    # weights and casts rates, rounding and distortion back to float32 (model.py); against float32 on four
    # real batches the loss differed by 0.05-0.13 % and the gradient's cosine similarity was 0.98-0.99.
    precision = resolve_precision(str(tcfg.get("precision", "fp32")))
    log.info("precision %s, compile %s, %d threads", precision, bool(tcfg.get("compile")), torch.get_num_threads())
    (run_dir / "config.json").write_text(json.dumps({"model": mcfg.__dict__, "train": tcfg}, indent=1))

    data = CropDataset(Path(tcfg["data"]), int(tcfg["crop"]), seed=int(tcfg.get("seed", 0)) + step)
    batch, total = int(tcfg["batch"]), int(tcfg["total_steps"])
    every_s = float(tcfg.get("checkpoint_minutes", 3)) * 60
    deadline = time.time() + max_minutes * 60 if max_minutes else None
    last_save, avg, skipped = time.time(), {}, 0
    bar = tqdm(total=total, initial=step, desc="train", dynamic_ncols=True)
    model.train()
    while step < total:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tcfg)
        x = data.batch(batch)
        q = torch.randint(0, mcfg.qualities, (batch,))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss, stats = rd_loss(model, x, q)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float(tcfg.get("clip", 1.0)))
        if not (torch.isfinite(loss) and torch.isfinite(norm)):
            # One bad batch must not poison the weights, Adam's moments or the next checkpoint (session 11's
            # ninth cycle went NaN at step ~50,580 after 3,600 clean steps): skip its update, keep going.
            skipped += 1
            log.warning("step %d: non-finite loss %s / gradient norm %s, update skipped (%d in a row)",
                        step, loss.item(), norm.item(), skipped)
            if skipped >= MAX_SKIPPED_STEPS:
                raise RuntimeError(f"{skipped} training steps in a row had a non-finite loss or gradient; "
                                   f"stopped without saving, the last checkpoint ({ckpt_path}) is intact")
            continue
        skipped = 0
        opt.step()
        step += 1
        avg = {k: 0.98 * avg.get(k, v) + 0.02 * v for k, v in stats.items()}
        bar.update(1)
        bar.set_postfix({k: f"{v:.3g}" for k, v in avg.items()})
        if step % 50 == 0:
            stats_json = json.dumps({k: round(v, 4) for k, v in avg.items()})
            log.info("step %d lr %.2e %s", step, lr_at(step, tcfg), stats_json)
        out_of_time = deadline is not None and time.time() > deadline
        if time.time() - last_save > every_s or step == total or out_of_time:
            save_atomic({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                         "config": mcfg.__dict__}, ckpt_path)
            last_save = time.time()
            log.info("checkpoint at step %d", step)
        if out_of_time:
            break
    bar.close()
    return ckpt_path
