"""Optional WebAssembly kernels for Pyodide (webdecoder/native/matmul.c, a side module loaded by ctypes).

Pyodide's NumPy has no BLAS, and every NumPy call costs microseconds in wasm; the two hot loops of the
decoder (the transposed-conv product and the rANS step loop) run 2-10x faster in C. They are optional:
the NumPy code next to each call site is the reference and the fallback, CPython never loads them, and
``NIC_NO_KERNEL=1`` turns them off. Each kernel is used only after it reproduced the NumPy result bit
for bit on a self-check at load time (all integer arithmetic, so any correct build agrees exactly).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
import sys

import numpy as np

LIB_PATH = Path(__file__).with_name("native") / "nicmm.wasm.so"
_lib: ctypes.CDLL | None | bool = False  # False: not tried yet


def lib() -> ctypes.CDLL | None:
    """The loaded side module, or None outside Pyodide / when missing / when disabled."""
    global _lib
    if _lib is False:
        _lib = None
        if sys.platform == "emscripten" and not os.environ.get("NIC_NO_KERNEL"):
            try:
                handle = ctypes.CDLL(str(LIB_PATH))
                handle.nic_matmul_f64.restype = None
                handle.nic_matmul_f64.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 3
                handle.nic_rans_decode.restype = ctypes.c_int
                handle.nic_rans_decode.argtypes = ([ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                                    ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
                                                   + [ctypes.c_void_p] * 4)
                _lib = handle
            except (OSError, AttributeError):
                _lib = None
    return _lib  # type: ignore[return-value]


def matmul(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(P, K) @ (K, N) in float64 through the kernel (caller checked ``lib()``)."""
    w = np.ascontiguousarray(w, np.float64)
    a = np.ascontiguousarray(a, np.float64)
    out = np.empty((w.shape[0], a.shape[1]), np.float64)
    lib().nic_matmul_f64(w.ctypes.data, a.ctypes.data, out.ctypes.data, w.shape[0], w.shape[1], a.shape[1])
    return out


def rans_decode(base: np.ndarray, lanes: int, x: np.ndarray, words: np.ndarray, ptr: int, lut: np.ndarray,
                freqs: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, int]:
    """The rANS step loop: returns (global symbol indices, new word pointer); pointer -1 = out of words.

    ``x`` (int64 lane states) is updated in place, like the NumPy loop does.
    """
    n = base.size
    args = [np.ascontiguousarray(base, np.int32), np.ascontiguousarray(words, np.int64),
            np.ascontiguousarray(lut, np.int32), np.ascontiguousarray(freqs, np.int64),
            np.ascontiguousarray(start, np.int64)]
    assert x.dtype == np.int64 and x.flags.c_contiguous
    out = np.empty(n, np.int32)
    b, wd, lu, fr, st = args
    new_ptr = lib().nic_rans_decode(b.ctypes.data, n, lanes, x.ctypes.data, wd.ctypes.data, wd.size, ptr,
                                    lu.ctypes.data, fr.ctypes.data, st.ctypes.data, out.ctypes.data)
    return out, new_ptr
