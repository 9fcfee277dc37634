"""Interleaved rANS, vectorised across lanes with NumPy: the one coder of nic.

Round trip (frequencies of each table sum to ``1 << 16``)::

    >>> import numpy as np
    >>> from webdecoder.rans import RansDecoder, RansEncoder
    >>> freqs = np.array([60000, 5000, 536]); offsets = np.array([0, 3])
    >>> symbols = np.array([0, 1, 0, 2, 0]); tables = np.zeros(5, np.int64)
    >>> data = RansEncoder(lanes=2).encode(symbols, freqs, offsets, tables)
    >>> RansDecoder(data, lanes=2).decode(freqs, offsets, tables).tolist()
    [0, 1, 0, 2, 0]

Semantics that catch people out:

* rANS is a stack: the encoder walks the symbols backwards, the decoder forwards.
* Symbol ``i`` belongs to lane ``i % lanes``; all lanes advance together, so
  the decoder does a handful of whole-array NumPy operations per *step*
  (``ceil(n / lanes)`` steps), never a Python operation per symbol.
* Each lane has a 32-bit state in ``[2**16, 2**32)`` and renormalises by
  16-bit words. All lanes share one word stream; within a step, lanes that need
  a word take them in lane order.
* Stream layout: ``lanes`` final states (uint32 LE), then the words (uint16 LE)
  in the order the decoder reads them. The encoder starts every lane at
  ``2**16``; the decoder checks that every lane ends there and that every word
  was read, which catches most corruption for free.

``symbols`` are indices into their table (``0 .. n_t - 1``); table ``t``'s
frequencies are ``freqs[offsets[t]:offsets[t + 1]]``. Mapping values to
indices, and escapes, is the caller's job (``webdecoder/entropy.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from webdecoder import _native, known_answers, trace
from webdecoder.errors import NicError

PRECISION = 16
RANS_L = 1 << 16  # lower bound of the state; also every lane's initial state
_MASK = (1 << PRECISION) - 1


def _table_of(offsets: np.ndarray) -> np.ndarray:
    """The table of every symbol of the concatenated tables."""
    return np.repeat(np.arange(offsets.size - 1), np.diff(offsets).astype(np.intp))  # intp: 32-bit in wasm


def _starts(freqs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Cumulative start of every symbol inside its own table."""
    cum = np.cumsum(freqs, dtype=np.int64)
    return cum - freqs - np.concatenate(([0], cum))[offsets[:-1]][_table_of(offsets)]


# Decoding tables, built once per frequency array (the model's y and z tables) and kept while it lives.
_DECODE_TABLES: dict[tuple[int, bool], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
BUCKET_BITS = 8  # the C loop's index: one entry per 2^8 slots of each table


def _decode_tables(freqs: np.ndarray, offsets: np.ndarray, buckets: bool) -> tuple[np.ndarray, np.ndarray]:
    """(index, start): ``start[i]`` is symbol i's start in its table; ``index`` finds the symbol of a slot.

    For the NumPy loop (``buckets=False``) the index is a slot table, ``index[(t << 16) | slot]`` = the
    global index of the symbol covering that slot: one gather per step, but 4 bytes per slot (64 tables:
    16 MiB, and ~80 ms to build in Pyodide). The C loop (``buckets=True``) needs only 257 entries per
    table: ``index[t, b]`` covers slot ``b << 8`` and ``index[t, 256]`` is the table's last symbol, so the
    answer lies between two neighbouring entries (``native/matmul.c``, ``nic_rans_decode``).
    """
    hit = _DECODE_TABLES.get((id(freqs), buckets))
    if hit is not None and hit[0] is freqs:
        return hit[1], hit[2]
    if freqs.min() < 1 or np.any(np.add.reduceat(freqs, offsets[:-1].astype(np.intp)) != 1 << PRECISION):
        raise NicError("rANS: frequency tables must sum to 2^16")
    start = _starts(freqs, offsets)
    if buckets:
        n_tables = offsets.size - 1
        first = np.arange(n_tables, dtype=np.int64)[:, None] << PRECISION  # strictly increasing keys:
        keys = first + (np.arange(1 << BUCKET_BITS, dtype=np.int64) << (PRECISION - BUCKET_BITS))
        index = np.empty((n_tables, (1 << BUCKET_BITS) + 1), np.int32)
        symbol_keys = (_table_of(offsets).astype(np.int64) << PRECISION) + start
        index[:, :-1] = np.searchsorted(symbol_keys, keys.ravel(), "right").reshape(n_tables, -1) - 1
        index[:, -1] = offsets[1:] - 1
    else:
        index = np.repeat(np.arange(freqs.size, dtype=np.intp), freqs.astype(np.intp))
    if len(_DECODE_TABLES) >= 8:  # a few models at most; never grow without bound
        _DECODE_TABLES.clear()
    _DECODE_TABLES[(id(freqs), buckets)] = (freqs, index, start)
    return index, start


def _decode_steps(base: np.ndarray, lanes: int, x: np.ndarray, words: np.ndarray, ptr: int, lut: np.ndarray,
                  freqs: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, int]:
    """The step loop in NumPy (reference): global symbol indices and the new word pointer; x updated in place.

    Each step costs a dozen NumPy calls whatever the lane count, and in Pyodide a call costs
    microseconds (files use 128-512 y lanes: over a thousand steps), so the loop is written for few,
    cheap calls: the symbol comes from a lookup table indexed by table << 16 | slot (a binary search
    per lane was 30 us a step in wasm), every gather uses intp indices (int32 in wasm; int64 indices
    are converted first, 6x slower), lane states are updated in place, symbols collected in a list.
    """
    n = base.size
    q = np.empty(lanes, np.intp)
    parts = []
    for t in range((n + lanes - 1) // lanes):
        lo, hi = t * lanes, min(n, (t + 1) * lanes)
        xs = x if hi - lo == lanes else x[: hi - lo]  # a view: updates land in x
        qs = q if hi - lo == lanes else q[: hi - lo]
        slot = xs & _MASK
        np.add(slot, base[lo:hi], out=qs, casting="unsafe")  # < 2^22: fits intp
        p = lut[qs]
        parts.append(p)
        xs >>= PRECISION
        xs *= freqs[p]
        xs += slot
        xs -= start[p]
        need = (xs < RANS_L).nonzero()[0]  # not np.flatnonzero: its Python wrapper costs more than the step
        if need.size:
            if ptr + need.size > words.size:
                raise NicError("rANS: stream ends early")
            xs[need] = (xs[need] << 16) | words[ptr : ptr + need.size]
            ptr += need.size
    return (np.concatenate(parts) if parts else np.zeros(0, np.intp)), ptr


def _decode_steps_kernel(tables: np.ndarray, lanes: int, x: np.ndarray, words: np.ndarray, ptr: int,
                         buckets: np.ndarray, freqs: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, int]:
    """``_decode_steps`` in C (Pyodide only; webdecoder/native): one call instead of ~12 per step.

    It takes the table of each symbol (not ``table << 16``) and the bucket index of ``_decode_tables``.
    """
    out, _, new_ptr = _native.rans_decode(tables, lanes, x, words, ptr, buckets, freqs, start)
    return out, _kernel_ptr(new_ptr)


def _kernel_ptr(new_ptr: int) -> int:
    """The C loop's new word pointer, or its failure as NicError."""
    if new_ptr == -2:
        raise NicError(TABLE_RANGE)
    if new_ptr < 0:
        raise NicError("rANS: stream ends early")
    return new_ptr


def _run_steps(kernel: bool, tables: np.ndarray, lanes: int, x: np.ndarray, words: np.ndarray, ptr: int,
               freqs: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, int]:
    """Decode ``tables.size`` symbols with the C loop or the NumPy loop, each with its own index."""
    index, start = _decode_tables(freqs, offsets, buckets=kernel)
    if kernel:
        return _decode_steps_kernel(tables, lanes, x, words, ptr, index, freqs, start)
    return _decode_steps((tables << PRECISION).astype(np.intp), lanes, x, words, ptr, index, freqs, start)


_kernel_state: bool | None = None  # None: not checked yet


def _check_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The known-answer case of ``_kernel_ok``: (freqs, offsets, tables, symbols, lanes). Three tables that each sum to
    2^16; the last has 600 symbols, so the C loop's bucket search runs its full depth (several symbols start inside
    one 256-slot bucket). 1500 symbols on 37 lanes: 41 steps, the last one partial, every branch at little cost.
    ``known_answers.RANS`` is ``RansEncoder(lanes).encode`` of it (tests/test_rans.py encodes it again)."""
    ints = _native.CheckInts()
    big = 1 + (np.arange(600, dtype=np.int64) * 37) % 200
    big[0] = (1 << PRECISION) - big[1:].sum()
    freqs = np.concatenate([[30000, 20000, 15000, 535, 1], [65000, 535, 1], big]).astype(np.int64)
    offsets = np.array([0, 5, 8, 608], np.int64)
    n, lanes = 1500, 37
    tables = ints.integers(0, 3, n)
    symbols = ints.integers(0, 1 << 30, n) % np.diff(offsets)[tables]
    return freqs, offsets, tables, symbols, lanes


def _kernel_ok() -> bool:
    """Use the C loop only where it loads and decodes a pseudo-random stream exactly.

    A known-answer check: every symbol back, every word consumed, every lane back at its initial state
    (what an exact rANS decode must end with). The stream is stored (``known_answers``), not encoded here, and the
    NumPy loop is not run: tests/test_rans.py proves the stream is the encoder's, tests/e2e/pyodide_kernel_check.py
    that the C loop and the NumPy one agree, and either here would add to this one-off start-up cost in the browser.
    """
    global _kernel_state
    if _kernel_state is None:
        _kernel_state = False
        if _native.lib() is not None:
            with trace.span("check:rans"):
                _kernel_state = _check_kernel()
    return _kernel_state


def _check_kernel() -> bool:
    """``_kernel_ok``'s check, run once."""
    freqs, offsets, tables, symbols, lanes = _check_case()
    try:
        dec = RansDecoder(known_answers.RANS, lanes=lanes)
        out, ptr = _run_steps(True, tables, lanes, dec.x, dec.words, 0, freqs, offsets)
    except (NicError, OSError, ValueError):
        return False
    return (out.astype(np.int64).tolist() == (offsets[tables] + symbols).tolist()
            and ptr == dec.words.size and dec.x.tolist() == [RANS_L] * lanes)


TABLE_RANGE = "rANS: table index out of range"


def _checked(freqs: np.ndarray, offsets: np.ndarray, tables: np.ndarray,
             loop_checks: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decoders' operands as int64 (tables int32 where they come so: what the C loop reads, no copy), every
    table index checked against the tables there are: here, or, with ``loop_checks`` and int32 tables, by the C loop
    as it reads them (two NumPy passes fewer over the latent's indices; wider ones could wrap when made int32)."""
    freqs = np.asarray(freqs, np.int64)
    offsets = np.asarray(offsets, np.int64)
    tables = np.asarray(tables)
    if tables.dtype != np.int32:
        tables = tables.astype(np.int64)
    elif loop_checks:
        return freqs, offsets, tables
    if tables.size and (tables.min() < 0 or tables.max() >= offsets.size - 1):
        raise NicError(TABLE_RANGE)
    return freqs, offsets, tables


class RansEncoder:
    def __init__(self, lanes: int):
        if not 1 <= lanes <= 65535:
            raise ValueError("lanes must be in 1..65535")
        self.lanes = lanes

    def encode(self, symbols: np.ndarray, freqs: np.ndarray, offsets: np.ndarray, tables: np.ndarray) -> bytes:
        freqs = np.asarray(freqs, np.int64)
        offsets = np.asarray(offsets, np.int64)
        symbols = np.asarray(symbols, np.int64)
        tables = np.asarray(tables, np.int64)
        pos = offsets[tables] + symbols
        if symbols.size and (symbols.min() < 0 or np.any(pos >= offsets[tables + 1])):
            raise ValueError("symbol outside its table")
        f_all = freqs[pos]
        if symbols.size and f_all.min() <= 0:
            raise ValueError("symbol with zero frequency")
        s_all = _starts(freqs, offsets)[pos]
        n, lanes = symbols.size, self.lanes
        x = np.full(lanes, RANS_L, np.int64)
        chunks = []
        for t in range((n + lanes - 1) // lanes - 1, -1, -1):
            lo, hi = t * lanes, min(n, (t + 1) * lanes)
            f, s = f_all[lo:hi], s_all[lo:hi]
            xs = x[: hi - lo]
            need = xs >= (f << 16)
            chunks.append((xs[need] & 0xFFFF).astype("<u2"))
            xs = np.where(need, xs >> 16, xs)
            x[: hi - lo] = (xs // f << PRECISION) + xs % f + s
        chunks.reverse()
        words = np.concatenate(chunks) if chunks else np.zeros(0, "<u2")
        return x.astype("<u4").tobytes() + words.tobytes()


class RansDecoder:
    def __init__(self, data: bytes, lanes: int):
        if lanes < 1:
            raise NicError("rANS: lane count must be at least 1")
        head = 4 * lanes
        if len(data) < head or (len(data) - head) % 2:
            raise NicError(f"rANS stream of {len(data)} bytes cannot hold {lanes} lane states and 16-bit words")
        self.lanes = lanes
        self.x = np.frombuffer(data, "<u4", lanes).astype(np.int64)
        if np.any(self.x < RANS_L):
            raise NicError("rANS: corrupt lane state")
        self.words = np.frombuffer(data, "<u2", offset=head).astype(np.int64)
        self.ptr = 0

    def decode(self, freqs: np.ndarray, offsets: np.ndarray, tables: np.ndarray) -> np.ndarray:
        """Decode ``tables.size`` symbols; symbol ``i`` uses table ``tables[i]``."""
        offsets = np.asarray(offsets, np.int64)
        out, tables = self.decode_global(freqs, offsets, tables)
        return out.astype(np.int64) - offsets[tables]

    def decode_global(self, freqs: np.ndarray, offsets: np.ndarray,
                      tables: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``decode`` without the last step: each symbol's global index (table offset + symbol), and the
        checked table indices (int32 or int64)."""
        freqs, offsets, tables = _checked(freqs, offsets, tables)
        out, self.ptr = _run_steps(_kernel_ok(), tables, self.lanes, self.x, self.words, self.ptr, freqs, offsets)
        return out, tables

    def decode_values(self, freqs: np.ndarray, offsets: np.ndarray, tables: np.ndarray,
                      value_tables: tuple[np.ndarray, np.ndarray],
                      pause: tuple[int, Callable[[], None]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``decode_global`` and entropy.py's mapping of symbols to latent values in one pass of the C loop
        (Pyodide, where ``_kernel_ok()``): (int32 values, int32 positions of the escapes, left 0).
        ``value_tables``: entropy.py's ``_value_tables(offsets)``. ``pause`` (at, fn): fn() is called once the
        symbols before ``at`` are decoded, before any table from ``at`` on is read (``_native.rans_decode``)."""
        if pause is not None and tables.dtype != np.int32:
            pause[1]()  # _checked copies such tables: they must be complete first
            pause = None
        freqs, offsets, tables = _checked(freqs, offsets, tables, loop_checks=True)
        index, start = _decode_tables(freqs, offsets, buckets=True)
        values, escapes, ptr = _native.rans_decode(tables, self.lanes, self.x, self.words, self.ptr, index, freqs,
                                                   start, value_tables, pause)
        self.ptr = _kernel_ptr(ptr)
        return values, escapes

    def finish(self) -> None:
        """Check that the stream was consumed exactly (integrity check)."""
        if self.ptr != self.words.size or np.any(self.x != RANS_L):
            raise NicError("rANS: stream does not end where it should (corrupt data)")
