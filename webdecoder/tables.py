"""Integer probability tables shared by encoder and decoder.

Everything that decides a probability is integer arithmetic here or in
``hyper.py``. The tables themselves are built once, by the exporter
(``encoder/export.py`` calls :func:`quantize_pmf`), and stored as integers in the
model file; coder and decoder read the very same integers, so no platform's
``exp`` or ``erf`` can ever change a frequency.

Scale index: the hyper-decoder outputs ``log_sigma`` in fixed point with
``FRAC_BITS`` fractional bits. The 64 scales are log-spaced between
``exp(LOG_SCALE_MIN)`` = 0.11 and ``exp(LOG_SCALE_MAX)`` = 256, as in CompressAI
and the paper, and :func:`scale_index` maps fixed-point log-scales onto them
with integer arithmetic only.
"""

from __future__ import annotations

import math

import numpy as np

PRECISION = 16  # probabilities are integers summing to 1 << PRECISION
FRAC_BITS = 8  # fixed-point fraction bits of hyper-decoder activations
NUM_SCALES = 64
LOG_SCALE_MIN_FX = -565  # round(ln(0.11) * 256)
LOG_SCALE_MAX_FX = 1420  # round(ln(256) * 256)
LOG_SCALE_MIN = LOG_SCALE_MIN_FX / (1 << FRAC_BITS)
LOG_SCALE_MAX = LOG_SCALE_MAX_FX / (1 << FRAC_BITS)
TAIL_SIGMAS = 8.0  # Gaussian tables cover +-TAIL_SIGMAS * scale; the rest is escaped


def scale_index(log_sigma_fx: np.ndarray) -> np.ndarray:
    """Nearest table index for fixed-point log-scales (int64 in, int64 out, exact)."""
    span = LOG_SCALE_MAX_FX - LOG_SCALE_MIN_FX
    t = (log_sigma_fx.astype(np.int64) - LOG_SCALE_MIN_FX) * (NUM_SCALES - 1) + span // 2
    return np.clip(t // span, 0, NUM_SCALES - 1)


def scale_table() -> np.ndarray:
    """The 64 scales, float64; used only by the exporter to build the integer tables."""
    i = np.arange(NUM_SCALES)
    span = LOG_SCALE_MAX_FX - LOG_SCALE_MIN_FX
    return np.exp((LOG_SCALE_MIN_FX + i * span / (NUM_SCALES - 1)) / (1 << FRAC_BITS))


def quantize_pmf(pmf: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Integer frequencies for ``pmf`` plus an escape symbol (last entry).

    Every symbol, escape included, gets at least 1 so that any value can be
    coded; the mass left outside ``pmf`` (tails) goes to the escape.
    Returns int64 frequencies summing exactly to ``1 << precision``.
    """
    total = 1 << precision
    pmf = np.asarray(pmf, dtype=np.float64)
    tail = max(0.0, 1.0 - float(pmf.sum()))
    p = np.append(pmf, tail)
    n = p.size
    if n > total // 2:
        raise ValueError("too many symbols for the precision")
    freq = np.maximum(1, np.floor(p * (total - n)).astype(np.int64))
    # hand the rounding remainder to the most probable symbol, keeping every freq >= 1
    freq[int(np.argmax(p))] += total - int(freq.sum())
    if freq.min() < 1:
        raise ValueError("could not quantise pmf")
    return freq


def gaussian_pmf(scale: float, half_range: int) -> np.ndarray:
    """P(k) for integer k in [-half_range, half_range] under N(0, scale) with unit bins."""
    k = np.arange(-half_range, half_range + 1, dtype=np.float64)
    cdf = np.array([0.5 * math.erfc(-(v) / (scale * math.sqrt(2.0))) for v in np.append(k - 0.5, k[-1] + 0.5)])
    return np.diff(cdf)


def gaussian_tables(precision: int = PRECISION) -> tuple[np.ndarray, np.ndarray]:
    """Integer tables for the 64 Gaussian scales.

    Returns ``(freqs, offsets)``: ``freqs`` concatenates each scale's frequencies
    (symbols ``-R..R`` then escape), ``offsets[i]`` is where table ``i`` starts,
    ``offsets[-1]`` the total length. ``R = ceil(TAIL_SIGMAS * scale)``.
    """
    parts = []
    for s in scale_table():
        r = int(math.ceil(TAIL_SIGMAS * s))
        parts.append(quantize_pmf(gaussian_pmf(float(s), r), precision))
    offsets = np.cumsum([0] + [p.size for p in parts]).astype(np.int64)
    return np.concatenate(parts), offsets
