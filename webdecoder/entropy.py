"""Integer latents <-> rANS symbols, with an escape path so any value round-trips.

A table for half-range ``R`` has ``2R + 2`` symbols: values ``-R..R`` then an
escape. An escaped value is coded as a zig-zag LEB128 varint in a separate
escape stream, in symbol order. Values are bounded by ``MAX_ABS`` so that a
hostile file cannot push huge numbers into the arithmetic that follows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from webdecoder import _native, conv, known_answers, trace
from webdecoder.errors import NicError
from webdecoder.rans import RansDecoder, RansEncoder
from webdecoder.rans import _kernel_ok as _rans_kernel_ok

MAX_ABS = 1 << 15  # largest |latent| a file may carry


def half_ranges(offsets: np.ndarray) -> np.ndarray:
    return (np.diff(offsets) - 2) // 2


def to_symbols(values: np.ndarray, tables: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's symbol in its table, and which values escape (their symbol is ``2R + 1``)."""
    r = half_ranges(offsets)[tables]
    esc = np.abs(values) > r
    return np.where(esc, 2 * r + 1, values + r), esc


def varint_lengths(values: np.ndarray) -> np.ndarray:
    """Bytes of each value's escape varint (zig-zag, 7 bits a byte: 1-3 for |value| <= MAX_ABS)."""
    zigzag = np.where(values >= 0, 2 * values, -2 * values - 1)
    return 1 + (zigzag >= 1 << 7).astype(np.int64) + (zigzag >= 1 << 14)


def _varints(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in values.tolist():
        u = (v << 1) ^ (v >> 63)  # zig-zag: small magnitudes -> small codes
        while u >= 0x80:
            out.append((u & 0x7F) | 0x80)
            u >>= 7
        out.append(u)
    return bytes(out)


def _read_varints(data: bytes, count: int) -> np.ndarray:
    out, i = [], 0
    for _ in range(count):
        u, shift = 0, 0
        while True:
            if i >= len(data):
                raise NicError("escape stream ends early")
            b = data[i]
            i += 1
            u |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            # A continuation bit on the 3rd byte means a 4th: FORMAT.md allows at most 3 bytes (21 bits, enough
            # for +-MAX_ABS). (Was `> 21`, which let a non-canonical 4-byte varint such as 80 80 80 00 through.)
            if shift >= 21:
                raise NicError("escape value too long")
        out.append((u >> 1) ^ -(u & 1))
    if i != len(data):
        raise NicError(f"escape stream has {len(data) - i} unused bytes")
    vals = np.array(out, np.int64)
    if vals.size and np.abs(vals).max() > MAX_ABS:
        raise NicError(f"escaped latent beyond +-{MAX_ABS}")
    return vals


def encode_values(
    values: np.ndarray, tables: np.ndarray, freqs: np.ndarray, offsets: np.ndarray, lanes: int
) -> tuple[bytes, bytes]:
    values = np.asarray(values, np.int64).ravel()
    if values.size and np.abs(values).max() > MAX_ABS:
        raise ValueError(f"latent beyond +-{MAX_ABS}")
    symbols, esc = to_symbols(values, tables, offsets)
    return RansEncoder(lanes).encode(symbols, freqs, offsets, tables), _varints(values[esc])


def decode_values(
    rans: bytes, esc: bytes, tables: np.ndarray, freqs: np.ndarray, offsets: np.ndarray, lanes: int,
    pause: tuple[int, Callable[[], None]] | None = None,
) -> np.ndarray:
    """The latent values of a stream: symbol i from table ``tables[i]``, escapes from ``esc``. ``pause`` (at, fn):
    the tables from ``at`` on are there only once fn() has returned (the helper thread's scale indices): the C loop
    decodes the symbols before ``at`` first (``_native.rans_decode``), the NumPy loop calls it before it starts."""
    dec = RansDecoder(rans, lanes)
    if _values_kernel_ok():  # Pyodide: symbols to values inside the C step loop, no second pass
        values, escapes = dec.decode_values(freqs, offsets, tables, _value_tables(offsets), pause)
    else:
        if pause is not None:
            pause[1]()
        glob, tables = dec.decode_global(freqs, offsets, tables)
        values, escapes = _symbol_values(glob, tables, offsets)
    dec.finish()
    if escapes.size > len(esc):  # every escape needs at least one byte: reject before looping
        raise NicError("escape stream shorter than the number of escapes")
    values[escapes] = _read_varints(esc, escapes.size)
    return values


def _symbol_values(glob: np.ndarray, tables: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global symbol indices -> (int64 values, positions of the escapes, whose values are left 0)."""
    symbols = glob.astype(np.int64) - offsets[tables]
    r = half_ranges(offsets)[tables]
    is_esc = symbols == 2 * r + 1
    values = symbols - r
    values[is_esc] = 0
    return values, np.flatnonzero(is_esc)


_value_cache: dict[int, tuple] = {}  # id(offsets) -> (offsets, value tables)


def _value_tables(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per table, int32: the global index of value 0 and that of the escape (``rans.RansDecoder.decode_values``).
    Kept per offsets array (the model's, ``conv._derived``): a decode would otherwise rebuild them (~0.1 ms)."""
    return conv._derived(_value_cache, offsets, _make_value_tables)  # type: ignore[return-value]


def _make_value_tables(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.asarray(offsets, np.int64)
    r = half_ranges(offsets)
    return (offsets[:-1] + r).astype(np.int32), (offsets[:-1] + 2 * r + 1).astype(np.int32)


_values_state: bool | None = None  # None: not checked yet


def _values_check_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The known-answer case of ``_values_kernel_ok``: (freqs, offsets, tables, symbols, lanes), random symbols of
    tables with escapes (half-ranges 0, 1, 3, 40: 2R + 2 symbols each, the last the escape); 1500 symbols on 37 lanes,
    41 steps, the last partial. ``known_answers.VALUES`` is ``RansEncoder(lanes).encode`` of it (tests/test_rans.py)."""
    ints = _native.CheckInts(3)
    halves = [0, 1, 3, 40]
    offsets = np.cumsum([0, *(2 * r + 2 for r in halves)]).astype(np.int64)
    freqs = np.concatenate([_check_freqs(2 * r + 2) for r in halves])
    n, lanes = 1500, 37
    tables = ints.integers(0, len(halves), n)
    symbols = ints.integers(0, 1 << 30, n) % np.diff(offsets)[tables]
    return freqs, offsets, tables, symbols, lanes


def _values_kernel_ok() -> bool:
    """Use the C step loop's value mode (Pyodide) only where it reproduces ``decode_global`` + ``_symbol_values``
    on a known stream (``known_answers.VALUES``, stored rather than encoded here): every word consumed, every lane
    back at its start; checked once."""
    global _values_state
    if _values_state is None:
        _values_state = False
        if _native.lib() is not None and _rans_kernel_ok():
            with trace.span("check:values"):
                _values_state = _check_values_kernel()
    return _values_state


def _check_values_kernel() -> bool:
    """``_values_kernel_ok``'s check, run once."""
    freqs, offsets, tables, symbols, lanes = _values_check_case()
    want = _symbol_values(offsets[tables] + symbols, tables, offsets)
    try:
        dec = RansDecoder(known_answers.VALUES, lanes=lanes)
        got = dec.decode_values(freqs, offsets, tables.astype(np.int32), _value_tables(offsets))
        dec.finish()
    except NicError:
        return False
    if not (want[1].size > 0 and np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])):
        return False
    # y's decode runs this mode of the step loop
    _native.tier_up(lambda: RansDecoder(known_answers.VALUES, lanes=lanes).decode_values(
        freqs, offsets, tables.astype(np.int32), _value_tables(offsets)))
    return True


def _check_freqs(size: int) -> np.ndarray:
    """A table of ``size`` symbols summing to 2^16, every symbol possible, its last (the escape) among the rarest."""
    f = 1 + (np.arange(size, dtype=np.int64) * 37) % 200
    f[-1] = 1 + size % 3
    f[0] += (1 << 16) - f.sum()
    return f
