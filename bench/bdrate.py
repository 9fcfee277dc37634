"""Bjontegaard delta rate / delta PSNR (VCEG-M33), as used by CompressAI and the shallow-ntc paper.

A cubic polynomial is fitted to log(rate) as a function of quality (PSNR in dB, or
MS-SSIM in dB) for each curve; the two fits are integrated over the *overlapping*
quality range only, and the mean log-rate difference is turned into a percentage.
Negative BD-rate = the test curve needs fewer bits than the reference at equal quality.

This is the classic ``bd_rate`` formula (not the piecewise-cubic "Akima" variant),
which is what CompressAI's notebooks and the paper's summary plots use.
"""

from __future__ import annotations

from collections.abc import Sequence
import math

import numpy as np

__all__ = ["bd_rate", "bd_psnr", "msssim_db"]


def _clean(rate: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape or r.ndim != 1:
        raise ValueError("rate and quality must be 1-D sequences of equal length")
    ok = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[ok], q[ok]
    # sort by rate so that duplicate/unsorted sweeps (e.g. from parallel runs) do not matter
    order = np.argsort(r)
    return r[order], q[order]


def bd_rate(
    rate_ref: Sequence[float],
    quality_ref: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
) -> float:
    """BD-rate of ``test`` against ``ref`` in percent (NaN when it is undefined).

    Undefined means: fewer than 4 usable points on a curve (a cubic needs 4) or no
    overlap between the two quality ranges.
    """
    r1, q1 = _clean(rate_ref, quality_ref)
    r2, q2 = _clean(rate_test, quality_test)
    if r1.size < 4 or r2.size < 4:
        return math.nan
    lo = max(q1.min(), q2.min())
    hi = min(q1.max(), q2.max())
    if not hi > lo:
        return math.nan
    p1 = np.polyint(np.polyfit(q1, np.log(r1), 3))
    p2 = np.polyint(np.polyfit(q2, np.log(r2), 3))
    int1 = np.polyval(p1, hi) - np.polyval(p1, lo)
    int2 = np.polyval(p2, hi) - np.polyval(p2, lo)
    avg_log_diff = (int2 - int1) / (hi - lo)
    return float((math.exp(avg_log_diff) - 1.0) * 100.0)


def bd_psnr(
    rate_ref: Sequence[float],
    quality_ref: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
) -> float:
    """BD-PSNR (mean quality gain in dB of ``test`` over ``ref`` at equal log-rate), NaN if undefined."""
    r1, q1 = _clean(rate_ref, quality_ref)
    r2, q2 = _clean(rate_test, quality_test)
    if r1.size < 4 or r2.size < 4:
        return math.nan
    l1, l2 = np.log(r1), np.log(r2)
    lo = max(l1.min(), l2.min())
    hi = min(l1.max(), l2.max())
    if not hi > lo:
        return math.nan
    p1 = np.polyint(np.polyfit(l1, q1, 3))
    p2 = np.polyint(np.polyfit(l2, q2, 3))
    int1 = np.polyval(p1, hi) - np.polyval(p1, lo)
    int2 = np.polyval(p2, hi) - np.polyval(p2, lo)
    return float((int2 - int1) / (hi - lo))


def msssim_db(values: Sequence[float]) -> list[float]:
    """MS-SSIM in dB, -10 log10(1 - ms-ssim): the usual scale for fitting and plotting MS-SSIM curves."""
    out = []
    for v in values:
        v = float(v)
        out.append(-10.0 * math.log10(1.0 - v) if v < 1.0 else math.inf)
    return out
