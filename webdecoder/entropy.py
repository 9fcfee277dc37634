"""Integer latents <-> rANS symbols, with an escape path so any value round-trips.

A table for half-range ``R`` has ``2R + 2`` symbols: values ``-R..R`` then an
escape. An escaped value is coded as a zig-zag LEB128 varint in a separate
escape stream, in symbol order. Values are bounded by ``MAX_ABS`` so that a
hostile file cannot push huge numbers into the arithmetic that follows.
"""

from __future__ import annotations

import numpy as np

from webdecoder.errors import NicError
from webdecoder.rans import RansDecoder, RansEncoder

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
    rans: bytes, esc: bytes, tables: np.ndarray, freqs: np.ndarray, offsets: np.ndarray, lanes: int
) -> np.ndarray:
    dec = RansDecoder(rans, lanes)
    symbols = dec.decode(freqs, offsets, tables)
    dec.finish()
    r = half_ranges(offsets)[tables]
    values = symbols - r
    is_esc = symbols == 2 * r + 1
    n_esc = int(is_esc.sum())
    if n_esc > len(esc):  # every escape needs at least one byte: reject before looping
        raise NicError("escape stream shorter than the number of escapes")
    values[is_esc] = _read_varints(esc, n_esc)
    return values
