"""Stochastic Gumbel annealing (Yang, Bamler & Mandt 2020): per-image latent refinement.

The decoder is frozen; y (relative to the hyper mean) and z are optimised for
``rate + lambda * MSE`` of the chosen synthesis while rounding is annealed from
a soft, stochastic choice between floor and ceil towards hard rounding.
Settings follow the paper: Adam lr 5e-3, lr x0.1 for the last 10% of steps,
temperature min(0.5, 0.5 exp(-5e-4 (t - 200))).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm import tqdm

from encoder.model import NicModel, bits, gaussian_likelihood, sigma_from_log

EFFORT_STEPS = {"none": 0, "fast": 100, "default": 300, "best": 1000}


def temperature(t: int, r: float = 5e-4, t0: int = 200) -> float:
    return min(0.5, max(1e-8, 0.5 * math.exp(-r * (t - t0))))


def sga_round(x: torch.Tensor, tau: float) -> torch.Tensor:
    """Relaxed stochastic choice between floor(x) and ceil(x), favouring the nearer one."""
    lo = torch.floor(x)
    eps = 1e-5
    d = (x - lo).clamp(eps, 1 - eps)
    logits = torch.stack([-torch.atanh(d) / tau, -torch.atanh(1 - d) / tau], dim=-1)
    w = F.gumbel_softmax(logits, tau=tau, hard=False)
    return lo + w[..., 1]


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
    opt = torch.optim.Adam([y, z], lr=5e-3)
    lam = model.cfg.lambdas[q]
    num_px = x.shape[2] * x.shape[3]
    eb = model.entropy_bottleneck
    for t in tqdm(range(steps), desc="SGA", disable=not progress, leave=False):
        if t == int(0.9 * steps):
            for g in opt.param_groups:
                g["lr"] = 5e-4
        tau = temperature(t)
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
