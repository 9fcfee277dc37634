"""Rate-distortion-optimised rounding of y: the encoder's last step before the entropy coder.

The decoder accepts any integer latent, so rounding ``y - mean`` to the nearest integer is only the
encoder's first guess. Like a JPEG encoder's trellis quantisation, this step moves single latents one
step up or down wherever that lowers the file's real cost, ``bits + lambda * SSE`` (``lambda`` of the
quality, SSE on the 0-255 scale over 3 channels, so the cost per pixel is the training loss
``bpp + lambda * MSE``):

* bits are exact: the integer probability tables the coder uses (``webdecoder`` tables, escapes
  included), looked up per latent, so no model estimate stands in for the rate;
* distortion comes from the float synthesis: a gradient proposes each latent's best move (with the
  per-channel curvature of a unit step, measured on small patches), a forward pass accepts a batch
  of moves only if the total cost falls.

Moves are proposed on a sub-lattice of latent positions ``SPACING`` apart (a latent's footprint in
the picture is about two latent blocks wide, so moves there do not overlap and the gradient's
prediction holds: measured within 1-2 % of the real change), at most ``PER_POSITION`` channels per
position, all ``SPACING**2`` phases in turn, ``SWEEPS`` times. The result is a local optimum of
single moves: one gradient pass per phase, ~4 s for a Kodak image on one busy core.

Measured on the shipped model (RD cost of the real files; session 19, a throwaway script): after the
default preset's 300 SGA steps it takes a further 0.5-0.8 % off (kodim01 q1 / q5 depth 2, kodim23 q0 / q6
depth 2, kodim01 q2 depth 1); without SGA 9.5 % at quality 1 and 2 % at quality 5 (kodim01). Kodak's
BD-rates are in BENCHMARKS.md. z keeps nearest rounding: moving z changes the tables of every y below it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from webdecoder import entropy

SPACING = 3  # latent positions between moves proposed together (footprints must not overlap)
PER_POSITION = 4  # channels moved at one position per phase at most
SWEEPS = 3  # passes over all phases; most of the gain comes in the first (a fourth added ~0.01 % on kodim01)


def code_lengths(values: np.ndarray, tables: np.ndarray, freqs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Bits each value costs in the y (or z) stream: its symbol under its table, plus its escape bytes.

    The writer's own symbol mapping (``webdecoder.entropy.to_symbols``: values -R..R, then an escape whose
    value goes to the escape stream as a varint), with the rANS coder's ideal code length ``-log2(f / 2^16)``.
    """
    symbols, esc = entropy.to_symbols(values, tables, offsets)
    out = 16.0 - np.log2(freqs[offsets[tables] + symbols].astype(np.float64))
    if esc.any():
        out += np.where(esc, 8.0 * entropy.varint_lengths(values), 0.0)
    return out


def _curvature(cost: Callable[[torch.Tensor], torch.Tensor], y_hat: torch.Tensor, positions: int = 2,
               half: int = 2) -> np.ndarray:
    """Per channel: the distortion's second difference for a unit step of one latent, D(+1) + D(-1) - 2 D(0).

    Measured at ``positions`` random places of the image's own latents, each a (2 half + 1)^2 patch whose
    centre is moved up and down in every channel as one batch (``cost`` maps a batch of latent patches to
    the distortion of each patch's picture, without a target: the target's terms cancel in a second
    difference).
    """
    c, h, w = y_hat.shape[1:]
    half = max(0, min(half, (h - 1) // 2, (w - 1) // 2))
    rng = np.random.default_rng(0)  # fixed: the same file for the same image
    total = np.zeros(c)
    ch = torch.arange(c)
    with torch.no_grad():
        for _ in range(positions):
            i = int(rng.integers(half, h - half))
            j = int(rng.integers(half, w - half))
            patch = y_hat[:, :, i - half : i + half + 1, j - half : j + half + 1]
            batch = patch.repeat(2 * c + 1, 1, 1, 1)
            batch[1 + ch, ch, half, half] += 1
            batch[1 + c + ch, ch, half, half] -= 1
            total += cost(batch).double().view(2, c).sum(0).numpy()
    return total / positions


def optimise_rounding(
    synthesise: Callable[[torch.Tensor], torch.Tensor],
    target: torch.Tensor,
    lam: float,
    q: np.ndarray,
    mean: np.ndarray,
    tables: np.ndarray,
    freqs: np.ndarray,
    offsets: np.ndarray,
    sweeps: int = SWEEPS,
) -> np.ndarray:
    """Integer latents ``q`` (C, H, W) moved by +-1 where that lowers ``bits + lam * SSE``; returns a new array.

    ``synthesise`` maps latents (N, C, H, W, float, ``q + mean``) to pictures in [0, 1] at least as large as
    ``target`` (1, 3, h, w), the image in [0, 1]; the cost counts the picture's top-left h x w pixels only
    (the decoder crops the padding away). ``tables``/``freqs``/``offsets``: each latent's probability table,
    as the writer codes them (``code_lengths``).
    """
    h, w = target.shape[2:]
    scale = lam * 255.0**2 / 3.0
    mean_t = torch.from_numpy(mean[None]).float()

    def distortion(latents: np.ndarray) -> tuple[float, np.ndarray]:
        """lam * SSE / 3 of the latents' picture, and its gradient with respect to every latent."""
        y_hat = (torch.from_numpy(latents[None]).float() + mean_t).requires_grad_(True)
        sse = ((synthesise(y_hat)[..., :h, :w] - target) ** 2).sum(dtype=torch.float64)
        (g,) = torch.autograd.grad(sse, y_hat)
        return scale * sse.item(), scale * g[0].double().numpy()

    def patch_cost(batch: torch.Tensor) -> torch.Tensor:  # second differences only: no target needed
        out = synthesise(batch)
        return scale * ((out[1:] - out[:1]) ** 2).flatten(1).sum(1)

    q = q.copy()
    curv = _curvature(patch_cost, torch.from_numpy(q[None]).float() + mean_t)[:, None, None]
    bits = code_lengths(q, tables, freqs, offsets)
    dist, grad = distortion(q)
    cost = bits.sum() + dist
    for _ in range(sweeps):
        before = cost
        for phase in range(SPACING * SPACING):
            # this phase's positions as strided views: a ninth of the latents, none overlapping another's footprint
            on = (slice(None), slice(phase // SPACING, None, SPACING), slice(phase % SPACING, None, SPACING))
            q_on, t_on, bits_on, grad_on = q[on], tables[on], bits[on], grad[on]
            if q_on.size == 0:
                continue
            # predicted change of each latent's best move: exact bits, quadratic distortion
            gain = np.zeros(q_on.shape)
            step = np.zeros(q_on.shape, np.int64)
            for s in (1, -1):
                moved = np.clip(q_on + s, -entropy.MAX_ABS, entropy.MAX_ABS)
                change = code_lengths(moved, t_on, freqs, offsets) - bits_on + s * grad_on + 0.5 * curv
                better = (change < gain) & (moved != q_on)
                gain = np.where(better, change, gain)
                step = np.where(better, s, step)
            chosen = np.zeros(q_on.shape, bool)
            np.put_along_axis(chosen, np.argsort(gain, axis=0)[:PER_POSITION], True, axis=0)
            chosen &= gain < 0
            if not chosen.any():
                continue
            trial, trial_bits = q.copy(), bits.copy()
            trial[on] = q_on + np.where(chosen, step, 0)
            trial_bits[on] = code_lengths(trial[on], t_on, freqs, offsets)
            trial_dist, trial_grad = distortion(trial)
            if trial_bits.sum() + trial_dist < cost:
                q, bits, grad, cost = trial, trial_bits, trial_grad, trial_bits.sum() + trial_dist
        if before - cost < 1e-4 * before:
            break
    return q
