"""How much PSNR can C latent channels on a stride-16 grid carry at all?

    python -m bench.linear_ceiling --train ../shared/data/train --test ../shared/data/kodak

nic's syntheses paint every 16x16 RGB block (768 values) from one C-channel latent vector
(C = 192 in the shipped model), so even with unquantised latents the picture lives in a
C-dimensional space per block. This fits the best such linear basis (the KLT of 16x16 blocks of
the training photos) and reports the PSNR of projecting the test images onto its first C
components: an upper bound for a linear block synthesis at infinite rate, and an estimate of
where a wider latent would lift the top of nic's RD curve. Overlapping kernels (18x18 at depth 1)
and the inverse GDN at depth 2 move it a little; no quantisation or rate is involved.

``--usage N`` also reports how the shipped model spreads y's bits over its channels on the first
N test images (the training model's likelihoods, per quality): idle channels would be capacity to
reallocate, busy ones mean the ceiling is real.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import random

import numpy as np
from PIL import Image
from tqdm import tqdm

from bench import save_json
from bench.rd import psnr_rgb

BLOCK = 16


def blocks(path: Path) -> np.ndarray:
    """Non-overlapping 16x16 RGB blocks of one image as rows of 768 values."""
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    h, w = img.shape[0] // BLOCK * BLOCK, img.shape[1] // BLOCK * BLOCK
    x = img[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, 3).transpose(0, 2, 1, 3, 4)
    return x.reshape(-1, BLOCK * BLOCK * 3)


def channel_usage(images: list[Path], qualities: tuple[int, ...] = (0, 4, 7)) -> list[dict]:
    """Share of y's estimated bits per latent channel, shipped model, per quality."""
    import torch

    from encoder.codec import default_encoder

    model = default_encoder().model
    rows = []
    for q in qualities:
        per_channel = 0.0
        for p in images:
            x = torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
            with torch.no_grad():
                lik = model(x, torch.tensor([q]))["likelihoods"]["y"][0]
            per_channel = per_channel + (-torch.log2(lik)).sum(dim=(1, 2)).numpy() / (x.shape[2] * x.shape[3])
        share = per_channel / per_channel.sum()
        rows.append({"quality": q, "y_bpp": round(float(per_channel.sum()) / len(images), 3),
                     "channels": len(share), "channels_over_0.1pct": int((share > 0.001).sum()),
                     "least_used_third_share": round(float(np.sort(share)[: len(share) // 3].sum()), 3)})
        r = rows[-1]
        print(f"quality {q}: y {r['y_bpp']:.3f} bpp; {r['channels_over_0.1pct']} of {len(share)} channels carry"
              f" > 0.1 % of the bits; the least-used third carries {r['least_used_third_share']:.1%}")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, default=Path("../shared/data/train"))
    ap.add_argument("--test", type=Path, default=Path("../shared/data/kodak"))
    ap.add_argument("--train-images", type=int, default=600, help="random training photos to fit the basis on")
    ap.add_argument("--channels", type=int, nargs="+", default=[64, 128, 192, 256, 320, 384])
    ap.add_argument("--usage", type=int, default=0, metavar="N",
                    help="also the shipped model's channel usage on N images")
    ap.add_argument("-o", "--out", type=Path, default=Path("build/bench/linear_ceiling.json"))
    a = ap.parse_args(argv)

    files = sorted(p for p in a.train.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    random.Random(0).shuffle(files)
    x = np.concatenate([blocks(p) for p in tqdm(files[: a.train_images], desc="fit", unit="img")])
    mean = x.mean(0)
    _, vecs = np.linalg.eigh(np.cov((x - mean).T))
    vecs = vecs[:, ::-1]  # largest variance first

    test_files = sorted(a.test.glob("*.png"))
    tests = [blocks(p) - mean for p in test_files]
    rows = []
    for c in a.channels:
        basis = vecs[:, :c]
        psnrs = []
        for b in tests:
            psnrs.append(psnr_rgb(np.clip(np.round(b @ basis @ basis.T + mean), 0, 255), b + mean))
        rows.append({"channels": c, "psnr_rgb": round(float(np.mean(psnrs)), 2)})
        print(f"{c:4d} channels: {rows[-1]['psnr_rgb']:.2f} dB (mean over {len(tests)} test images)")
    usage = channel_usage(test_files[: a.usage]) if a.usage else []
    save_json({"train_blocks": len(x), "block": BLOCK, "rows": rows, "usage": usage}, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
