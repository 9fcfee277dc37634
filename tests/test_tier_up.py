"""``webdecoder._native.tier_up``: how often it repeats a self-check's kernel calls (Pyodide runs them so that V8
optimises each kernel before a decode's first large call; tests/e2e/test_pyodide_kernel.py checks which kernels it
reaches there). Counts only: no timing is asserted beyond the loop's own clock."""

from __future__ import annotations

import time

from webdecoder import _native


def calls_made(monkeypatch, seconds: float, work_s: float = 0.0) -> int:
    monkeypatch.setattr(_native, "TIER_UP_S", seconds)
    n = 0

    def call() -> None:
        nonlocal n
        n += 1
        if work_s:
            time.sleep(work_s)

    _native.tier_up(call)
    return n


def test_at_least_the_minimum_however_slow_the_calls(monkeypatch):
    assert calls_made(monkeypatch, 0.0) == _native.TIER_UP_MIN_CALLS
    assert calls_made(monkeypatch, 0.001, work_s=0.002) == _native.TIER_UP_MIN_CALLS


def test_at_most_the_cap(monkeypatch):
    assert calls_made(monkeypatch, 60.0) == _native.TIER_UP_CALLS


def test_stops_once_its_time_is_spent(monkeypatch):
    # 5 ms calls for 40 ms: the minimum, then until the clock passes 40 ms (a slow machine ends sooner, not later)
    n = calls_made(monkeypatch, 0.04, work_s=0.005)
    assert _native.TIER_UP_MIN_CALLS <= n <= 9
