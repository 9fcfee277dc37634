"""Stochastic Gumbel annealing (Yang, Bamler & Mandt 2020): per-image latent refinement.

The decoder is frozen; y (relative to the hyper mean) and z are optimised for
``rate + lambda * MSE`` of the chosen synthesis while rounding is annealed from
a soft, stochastic choice between floor and ceil towards hard rounding.

The paper runs 3000 steps: Adam lr 5e-3, temperature min(0.5, 0.5 exp(-5e-4 (t - 200))).
Our presets run 100-1000 steps, where that schedule never leaves 0.5 (it only starts
falling at step 200), so the schedule is compressed to the step budget (same start, same
end temperature 0.12) and the learning rate grows as 5e-3 * sqrt(3000 / steps). Measured on
kodim01-03 at qualities 2 and 5, 100 steps (RD cost bpp + lambda*MSE of the real files,
against no SGA): paper schedule -4.8 %, compressed -6.5 %, compressed with lr 2e-2 -8.8 %.
The last 10 % of steps run at a tenth of the rate, as in the paper.

The presets anneal half as fast as the paper (``DECAY``), ending at temperature 0.25 instead of 0.12.
Measured with `bench.sga_schedule` on six training photos, not Kodak (256x384 crops, qualities 1
and 4, the RD cost of the real files, seeded, against the paper's rate): 300 steps depth 1 -0.53 %,
depth 2 -0.58 %; 100 steps depth 1 -0.74 %; 1000 steps depth 1 (quality 1) -0.67 %; lower in 12 of 12
pairs at depth 2. Ending at 0.33 gave the same as 0.25, at 0.05 +0.75 % (worse), and no annealing at
all +0.07 %; the learning rate scaled by 0.67 or 1.5 changed nothing (+-0.1 %).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm import tqdm

from encoder.model import NicModel, bits, gaussian_likelihood, sigma_from_log

# Encoder presets: SGA steps, and whether y's rounding is then rate-distortion optimised (encoder/rounding.py,
# a few seconds per Kodak image). "light" is that rounding alone, without SGA.
EFFORT_STEPS = {"none": 0, "light": 0, "fast": 100, "default": 300, "best": 1000}
EFFORT_ROUNDING = {"none": False, "light": True, "fast": True, "default": True, "best": True}


PAPER_STEPS = 3000
DECAY = 2.5e-4  # the presets' temperature decay rate per (paper) step: half the paper's 5e-4, see above


def temperature(t: int, steps: int = PAPER_STEPS, r: float = 5e-4, t0: int = 200) -> float:
    """The paper's schedule, stretched or compressed so that ``steps`` ends where its 3000 steps end."""
    f = steps / PAPER_STEPS
    return min(0.5, max(1e-8, 0.5 * math.exp(-(r / f) * (t - t0 * f))))


def learning_rate(steps: int) -> float:
    """Adam rate for a run of ``steps``: the paper's 5e-3 at 3000 steps, higher for shorter runs."""
    return 5e-3 * math.sqrt(PAPER_STEPS / max(steps, 1)) if steps < PAPER_STEPS else 5e-3


def sga_round(x: torch.Tensor, tau: float) -> torch.Tensor:
    """Relaxed stochastic choice between floor(x) and ceil(x), favouring the nearer one.

    The paper's two-way Gumbel softmax, with logits -atanh(d) / tau (floor) and -atanh(1 - d) / tau (ceil),
    at temperature tau. With two categories it is a sigmoid of the logit difference plus the difference
    of two independent Gumbel(0, 1) samples, which is one Logistic(0, 1) sample: the same distribution
    without the stacked pair, the softmax over a trailing axis of 2 and the second random draw (about a
    third of an SGA step's time went there).
    """
    lo = torch.floor(x)
    eps = 1e-5
    d = (x - lo).clamp(eps, 1 - eps)
    u = torch.rand_like(d).clamp_(eps, 1 - eps)
    logistic = torch.log(u) - torch.log1p(-u)
    w_ceil = torch.sigmoid(((torch.atanh(d) - torch.atanh(1 - d)) / tau + logistic) / tau)
    return lo + w_ceil


def refine(model: NicModel, x: torch.Tensor, q: int, depth: str, steps: int,
           progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return refined continuous (y_g, z); the caller rounds them exactly as without SGA."""
    qt = torch.tensor([q])
    with torch.no_grad():
        y0, z0 = model.analyse(x, qt)
    if steps <= 0:
        return y0, z0
    for p in model.parameters():
        p.requires_grad_(False)
    y = y0.clone().requires_grad_(True)
    z = z0.clone().requires_grad_(True)
    lr = learning_rate(steps)
    opt = torch.optim.Adam([y, z], lr=lr)
    lam = model.cfg.lambdas[q]
    num_px = x.shape[2] * x.shape[3]
    eb = model.entropy_bottleneck
    for t in tqdm(range(steps), desc="SGA", disable=not progress, leave=False):
        if t == int(0.9 * steps):
            for g in opt.param_groups:
                g["lr"] = lr / 10
        tau = temperature(t, steps, r=DECAY)
        z_t = sga_round(z, tau)
        cz = z_t.shape[1]
        z_lik, _, _ = eb._likelihood(z_t.permute(1, 0, 2, 3).reshape(cz, 1, -1))
        z_lik = z_lik.clamp_min(1e-9)
        mu, log_sigma = model.h_s(z_t)
        r = sga_round(y - mu, tau)
        y_lik = gaussian_likelihood(r, sigma_from_log(log_sigma))
        x_hat = model.synthesise(r + mu, qt, depth)
        mse = F.mse_loss(x_hat, x) * 255.0**2
        bpp = (bits(y_lik).sum() - torch.log2(z_lik).sum()) / num_px
        loss = bpp + lam * mse
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return y.detach(), z.detach()
