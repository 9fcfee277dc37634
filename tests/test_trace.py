"""webdecoder.trace in CPython, with a stand-in kernel library: what the browser's ?trace=1 reports
(tests/e2e/test_decode_exact.py runs it in Chromium's worker with the real kernels)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from webdecoder import _native, parallel, trace


def _inc(ptr: int, n: int) -> int:  # += 1 on n int32
    buf = (ctypes.c_int32 * n).from_address(ptr)
    for i in range(n):
        buf[i] += 1
    return 0


_inc.argtypes = [ctypes.c_void_p, ctypes.c_int]


class FakeLib:
    nic_inc = staticmethod(_inc)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(_native, "_lib", FakeLib())
    monkeypatch.setattr(parallel, "_log", [])
    yield
    trace.disable()


def test_without_kernels_nothing_changes(monkeypatch):
    monkeypatch.setattr(_native, "_lib", None)
    start = parallel.Job.start
    assert trace.enable() is False
    assert _native.lib() is None and parallel.Job.start is start


def test_kernel_calls_and_helper_jobs_in_order(fake):
    start, lib = parallel.Job.start, _native.lib()
    assert not trace.enabled()
    assert trace.enable() and trace.enable() and trace.enabled()  # twice: wrapped once
    a = np.arange(4, dtype=np.int32)
    origin = trace.begin()
    _native.lib().nic_inc(a.ctypes.data, 4)
    job = parallel.Job()  # the helper's part: recorded through the wrapped library (its argtypes kept)
    b = job.buf(np.arange(3, dtype=np.int32), "out")
    job("nic_inc", b.ctypes.data, 3)
    helper = parallel.LoopbackHelper()
    assert job.start(helper) and job.wait(helper) == [0]
    got = trace.events(origin)
    assert [name for name, _, _ in got] == ["nic_inc", "job.start", "nic_inc", "job.wait"]
    assert all(0 <= t0 <= t1 for _, t0, t1 in got) and [t1 for *_, t1 in got] == sorted(t1 for *_, t1 in got)
    np.testing.assert_array_equal(a, [1, 2, 3, 4])  # timing only: the calls did their work
    np.testing.assert_array_equal(b, [1, 1, 1])  # (the helper's output starts at zeros)
    assert trace.events(trace.begin()) == []  # a new timeline
    trace.disable()
    assert parallel.Job.start is start and _native.lib() is lib and not trace.enabled()
