"""A decode's timeline on this thread, for profiling: when each WebAssembly kernel call and each of the helper
thread's jobs (start, waits) began and ended.

The per-thread profile (``bench/chromium_profile.py``) says how long each kernel runs on each thread; this says in
what order, so that the time this thread is alone (the helper idle) and the time it waits for the helper show as
gaps: ``bench/chromium_timeline.py`` reads it from the browser's decode worker (the latency page's ``?trace=1``).
Off unless ``enable()`` is called: then every kernel call goes through a timing wrapper (two clock reads and an
append, a few microseconds in Pyodide, ~20 calls a depth-2 decode). Only timing: nothing here changes a value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
import functools
import time
from typing import Any

from webdecoder import _native, parallel

JOB_METHODS = ("start", "wait", "wait_part")

_events: list[tuple[str, float, float]] = []
_saved: tuple[Any, dict[str, Callable[..., Any]]] | None = None  # the library and Job methods enable() replaced


class _TimedLibrary:
    """The side module with each export timed; each wrapper keeps its function's ctypes types (``parallel.Job``
    reads ``argtypes`` when it records a call for the helper)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        f = getattr(self._handle, name)

        def call(*args: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return f(*args)
            finally:
                _events.append((name, t0, time.perf_counter()))

        call.argtypes = getattr(f, "argtypes", None)  # type: ignore[attr-defined]
        call.restype = getattr(f, "restype", None)  # type: ignore[attr-defined]
        setattr(self, name, call)  # looked up once
        return call


def _timed_method(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def timed(self: parallel.Job, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            _events.append(("job." + name, t0, time.perf_counter()))

    return timed


def enable() -> bool:
    """Time every kernel call and helper job from now on; False (and nothing changed) without the kernels."""
    global _saved
    if _saved is not None:
        return True
    handle = _native.lib()
    if handle is None:
        return False
    _saved = (_native._lib, {name: getattr(parallel.Job, name) for name in JOB_METHODS})
    _native._lib = _TimedLibrary(handle)
    for name, method in _saved[1].items():
        setattr(parallel.Job, name, _timed_method(name, method))
    return True


def enabled() -> bool:
    """Whether kernel calls and helper jobs are being timed (``enable`` succeeded)."""
    return _saved is not None


def disable() -> None:
    """Back to the untimed library and Job methods."""
    global _saved
    if _saved is None:
        return
    _native._lib, methods = _saved
    for name, method in methods.items():
        setattr(parallel.Job, name, method)
    _saved = None
    _events.clear()


@contextlib.contextmanager
def span(name: str) -> Iterator[None]:
    """Time the block as one event ``name`` where timing is on (a kernel's load-time check: ``check:<kernel>``, so
    that a first decode's timeline shows what its one-off checks cost; ``bench/first_decode.py``); else nothing."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if _saved is not None:
            _events.append((name, t0, time.perf_counter()))


def begin() -> float:
    """Start a timeline (forgetting the last one); returns its origin for ``events``."""
    _events.clear()
    return time.perf_counter()


def events(origin: float) -> list[list[Any]]:
    """The timeline since ``begin``: [name, start ms, end ms] in the order the calls ended (kernel calls by their
    export's name, the helper's as job.start, job.wait_part, job.wait, the kernels' checks as check:<kernel>)."""
    return [[name, (t0 - origin) * 1e3, (t1 - origin) * 1e3] for name, t0, t1 in _events]
