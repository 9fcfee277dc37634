"""What does the depth-2 synthesis lose with fewer hidden channels, and what does the decoder gain?

    python -m bench.hidden_width --steps 6000 --hidden 6 4 3        # RD side (~0.17 s/step on 2 threads)
    node scripts/pyodide_run.mjs --helper build/web/runtime bench/hidden_width.py --speed 4 FILE.nic ...

The depth-2 synthesis's two k13/s8 layers (latent -> hidden, the iGDN path and its linear twin) are ~60 % of its
multiply-adds and most of the browser's decode time, and their cost is proportional to the hidden width (6 in the
shipped model). The RD side fine-tunes one narrower synthesis per width on the frozen shipped model's hard-rounded
latents (its analysis, hyperprior and gains untouched, so the rate is the same for every width), beside a control
of the shipped width trained the same way on the same batches: if the control keeps the shipped PSNR, the
procedure is fair and the narrow heads' loss is the width's. A narrow head starts from the shipped one's most
useful hidden channels (those whose replacement by their mean hurts the output most). Kodak PSNR is measured on
the float model without SGA, at qualities 0, 2, 4, 6, beside the shipped depth 1 and depth 2.

``--speed H`` (inside Pyodide, through scripts/pyodide_run.mjs) times whole decodes of the given files with the
shipped model against the same model with its hidden width cut to H (the first H channels: timing only, the
pixels are not meant to be right), interleaved in one process.
"""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path
import sys
import time

import numpy as np

MODEL_DIR = Path(__file__).resolve().parent.parent / "models"


def _rd(a: argparse.Namespace) -> int:
    from PIL import Image
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from bench import save_json
    from bench.rd import psnr_rgb
    from encoder.model import ModelConfig, NicModel, TwoLayerSynthesis, load_float32
    from encoder.train import CropDataset

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    state = torch.load(MODEL_DIR / "nic-encoder.pt", map_location="cpu", weights_only=False)
    cfg = ModelConfig(**state["config"])
    base = load_float32(NicModel(cfg), state["model"]).eval().requires_grad_(False)
    shipped = base.g_s["two"]
    width = cfg.two_hidden
    lam = torch.tensor(cfg.lambdas)

    def latents(x: torch.Tensor, q: torch.Tensor, bf16: bool = a.bf16) -> torch.Tensor:
        """The synthesis input the decoder sees: hard-rounded residuals around the hyperprior's means, ungained
        (evaluated in float32, as the encoder runs)."""
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y_g, z = base.analyse(x, q)
            mu, _ = (t.float() for t in base.h_s(torch.round(z)))
        return (torch.round(y_g - mu) + mu) / base.gain(q)

    def narrowed(h: int, x: torch.Tensor, q: torch.Tensor) -> TwoLayerSynthesis:
        if h == width:
            return copy.deepcopy(shipped).requires_grad_(True)
        with torch.no_grad():  # each hidden channel's harm: output MSE when it is replaced by its mean
            both = F.conv_transpose2d(latents(x, q), torch.cat([shipped.up.weight, shipped.res.weight], 1),
                                      torch.cat([shipped.up.bias, shipped.res.bias]), shipped.up.stride,
                                      shipped.up.padding, shipped.up.output_padding)
            up, res = both.split(width, 1)
            hidden = shipped.igdn(up) + res
            ref = shipped.out(hidden)
            harm = []
            for i in range(width):
                cut = hidden.clone()
                cut[:, i] = hidden[:, i].mean()
                harm.append(((shipped.out(cut) - ref) ** 2).mean().item())
        keep = torch.tensor(sorted(np.argsort(harm)[::-1][:h].tolist()))
        print(f"hidden {h}: keeps channels {keep.tolist()} (harm {[round(v, 5) for v in harm]})")
        new = TwoLayerSynthesis(cfg.latent_channels, h)
        with torch.no_grad():
            for name in ("up", "res"):
                getattr(new, name).weight.copy_(getattr(shipped, name).weight[:, keep])
                getattr(new, name).bias.copy_(getattr(shipped, name).bias[keep])
            new.igdn.beta_sqrt.copy_(shipped.igdn.beta_sqrt[keep])
            new.igdn.gamma_sqrt.copy_(shipped.igdn.gamma_sqrt[keep][:, keep])
            new.out.weight.copy_(shipped.out.weight[keep])
            new.out.bias.copy_(shipped.out.bias)
        return new

    data = CropDataset(a.train, a.crop, seed=1)
    x0, q0 = data.batch(16), torch.randint(0, len(cfg.lambdas), (16,))
    heads = {h: narrowed(h, x0, q0) for h in a.hidden}
    opts = {h: torch.optim.Adam(m.parameters(), lr=a.lr) for h, m in heads.items()}
    warm, losses = 100, {h: [] for h in heads}
    bar = tqdm(range(a.steps), desc="fine-tune", unit="step")
    for step in bar:  # linear warm-up, cosine to lr / 10; the same batches for every head
        t = max(0.0, (step - warm) / max(1, a.steps - warm))
        lr = a.lr * (step + 1) / warm if step < warm else a.lr / 10 + 0.45 * a.lr * (1 + math.cos(math.pi * t))
        x, q = data.batch(a.batch), torch.randint(0, len(cfg.lambdas), (a.batch,))
        y = latents(x, q)
        for h, m in heads.items():
            for g in opts[h].param_groups:
                g["lr"] = lr
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                x_hat = m(y).float() + 0.5
            loss = (lam[q] * ((x_hat - x) ** 2).mean(dim=(1, 2, 3)) * 255.0**2).mean()
            opts[h].zero_grad()
            loss.backward()
            opts[h].step()
            losses[h].append(loss.item())
        if step % 100 == 99:
            bar.set_postfix({f"loss{h}": round(float(np.mean(v[-100:])), 3) for h, v in losses.items()})

    syntheses = {"depth 1 (shipped)": base.g_s["jpeg"], f"depth 2, {width} hidden (shipped)": shipped}
    syntheses |= {f"depth 2, {h} hidden (fine-tuned)": m.eval() for h, m in heads.items()}
    psnr = {name: {q: [] for q in a.qualities} for name in syntheses}
    for path in tqdm(sorted(a.test.glob("*.png")), desc="Kodak", unit="img"):
        img = np.asarray(Image.open(path).convert("RGB"))
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        for q in a.qualities:
            y = latents(x, torch.tensor([q]), bf16=False)
            with torch.no_grad():
                for name, m in syntheses.items():
                    out = ((m(y) + 0.5).clamp(0, 1) * 255).round()[0].permute(1, 2, 0).numpy()
                    psnr[name][q].append(psnr_rgb(out, img))
    rows = [{"synthesis": name, **{f"q{q}": round(float(np.mean(v)), 3) for q, v in d.items()},
             "mean": round(float(np.mean([np.mean(v) for v in d.values()])), 3)} for name, d in psnr.items()]
    print("| synthesis | " + " | ".join(f"quality {q}" for q in a.qualities) + " | mean |")
    print("|---|" + "---:|" * (len(a.qualities) + 1))
    for r in rows:
        print(f"| {r['synthesis']} | " + " | ".join(f"{r[f'q{q}']:.2f}" for q in a.qualities) + f" | {r['mean']:.2f} |")
    save_json({"steps": a.steps, "batch": a.batch, "crop": a.crop, "lr": a.lr, "rows": rows,
               "final_loss": {h: round(float(np.mean(v[-500:])), 4) for h, v in losses.items()}}, a.out)
    print(f"wrote {a.out}")
    return 0


def _speed(width: int, files: list[str], rounds: int = 12) -> int:
    import dataclasses
    import statistics

    from webdecoder import decoder, register_model
    from webdecoder import model as nic_model

    raw = (MODEL_DIR / "nic.npz").read_bytes()
    register_model(raw)
    shipped = nic_model.load_model(raw)
    arrays = dict(shipped.arrays)
    for key in ("two.up.w", "two.res.w"):
        arrays[key] = np.ascontiguousarray(arrays[key][:, :width])
    for key in ("two.up.b", "two.res.b", "two.gdn.beta"):
        arrays[key] = arrays[key][:width].copy()
    arrays["two.gdn.gamma"] = np.ascontiguousarray(arrays["two.gdn.gamma"][:width, :width])
    arrays["two.out.w"] = np.ascontiguousarray(arrays["two.out.w"][:width])
    models = {"shipped": shipped, f"hidden {width}": dataclasses.replace(shipped, arrays=arrays, _f64={})}
    data = [Path(f).read_bytes() for f in files]
    times: dict[str, dict[str, list[float]]] = {name: {} for name in models}
    for m in models.values():  # warm-up: plans and checks
        for d in data:
            decoder.decode_with_model(d, m, rgba=True)
    for i in range(rounds):  # interleaved, alternating which goes first
        for name in (list(models) if i % 2 else list(models)[::-1]):
            for d in data:
                t: dict[str, float] = {}
                t0 = time.perf_counter()
                decoder.decode_with_model(d, models[name], t, rgba=True)
                t["total"] = time.perf_counter() - t0
                for k, v in t.items():
                    times[name].setdefault(k, []).append(v)
    med = {name: {k: 1000 * statistics.median(v) for k, v in d.items()} for name, d in times.items()}
    for name, d in med.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in d.items()) + " ms (medians)")
    print(f"hidden {width} / shipped: {med[f'hidden {width}']['total'] / med['shipped']['total']:.2f}x")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speed", type=int, metavar="H", help="time decodes of FILES with the hidden width cut to H")
    ap.add_argument("files", nargs="*", help="--speed: .nic files to decode")
    ap.add_argument("--hidden", type=int, nargs="+", default=[6, 4, 3])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", help="float32 on CPUs without bf16 units")
    ap.add_argument("--qualities", type=int, nargs="+", default=[0, 2, 4, 6])
    ap.add_argument("--train", type=Path, default=Path("../shared/data/train"))
    ap.add_argument("--test", type=Path, default=Path("../shared/data/kodak"))
    ap.add_argument("-o", "--out", type=Path, default=Path("build/bench/hidden_width.json"))
    a = ap.parse_args(argv)
    if a.speed is not None:
        if not a.files:
            ap.error("--speed needs .nic files")
        return _speed(a.speed, a.files)
    return _rd(a)


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a script inside Pyodide (scripts/pyodide_run.mjs)
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
