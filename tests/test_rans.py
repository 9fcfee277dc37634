"""rANS and the escape path: random symbols and random tables always round-trip."""

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from webdecoder import NicError
from webdecoder.entropy import decode_values, encode_values
from webdecoder.rans import RansDecoder, RansEncoder
from webdecoder.tables import gaussian_tables, quantize_pmf, scale_index


@st.composite
def tables_and_symbols(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_tables = draw(st.integers(1, 6))
    parts = []
    for _ in range(n_tables):
        size = draw(st.integers(1, 40))
        pmf = rng.dirichlet(np.full(size, draw(st.sampled_from([0.05, 0.5, 5.0]))))
        parts.append(quantize_pmf(pmf * 0.999))
    freqs = np.concatenate(parts)
    offsets = np.cumsum([0] + [p.size for p in parts])
    n = draw(st.integers(0, 3000))
    tables = rng.integers(0, n_tables, n)
    sizes = np.diff(offsets)
    symbols = (rng.random(n) * sizes[tables]).astype(np.int64)
    return freqs, offsets, tables, symbols, draw(st.sampled_from([1, 2, 7, 64, 1000]))


@settings(max_examples=60, deadline=None)
@given(tables_and_symbols())
def test_random_tables_round_trip(case):
    freqs, offsets, tables, symbols, lanes = case
    data = RansEncoder(lanes).encode(symbols, freqs, offsets, tables)
    dec = RansDecoder(data, lanes)
    assert dec.decode(freqs, offsets, tables).tolist() == symbols.tolist()
    dec.finish()


def test_a_pause_comes_before_the_tables_it_completes():
    """decode_values' pause (the helper's scale indices, hyper.hyper_decode_deferred): the tables from its symbol on
    are read only after it ran. Here the NumPy loop (it pauses first); tests/e2e/pyodide_kernel_check.py pauses the C
    loop mid-stream at lane and step edges."""
    freqs, offsets = gaussian_tables()
    rng = np.random.default_rng(5)
    want_tables = rng.integers(0, 64, 300).astype(np.int32)
    values = rng.integers(-40, 41, 300)
    rans, esc = encode_values(values, want_tables, freqs, offsets, 7)
    tables = want_tables.copy()
    tables[100:] = 1 << 20  # no such table: read before the pause, it would raise
    calls = []

    def fill() -> None:
        calls.append(True)
        tables[100:] = want_tables[100:]

    assert decode_values(rans, esc, tables, freqs, offsets, 7, (100, fill)).tolist() == values.tolist()
    assert calls == [True]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-(2**15), 2**15), max_size=500), st.integers(1, 64), st.integers(0, 63))
def test_any_integer_latent_round_trips_through_escapes(values, lanes, scale):
    freqs, offsets = gaussian_tables()
    tables = np.full(len(values), scale, np.int64)
    rans, esc = encode_values(np.array(values, np.int64), tables, freqs, offsets, lanes)
    assert decode_values(rans, esc, tables, freqs, offsets, lanes).tolist() == values


def test_gaussian_tables_are_exact_and_complete():
    freqs, offsets = gaussian_tables()
    assert offsets.size == 65 and freqs.min() >= 1
    assert np.all(np.add.reduceat(freqs, offsets[:-1]) == 1 << 16)


def test_scale_index_is_monotone_and_clipped():
    idx = scale_index(np.arange(-2000, 3000))
    assert idx.min() == 0 and idx.max() == 63 and np.all(np.diff(idx) >= 0)


def test_corrupt_stream_is_detected():
    freqs, offsets = gaussian_tables()
    rng = np.random.default_rng(1)
    tables = rng.integers(0, 64, 5000)
    values = np.round(rng.normal(0, 3, 5000)).astype(np.int64)
    rans, esc = encode_values(values, tables, freqs, offsets, 16)
    bad = bytearray(rans)
    bad[len(bad) // 2] ^= 0x55
    with pytest.raises(NicError):
        decode_values(bytes(bad), esc, tables, freqs, offsets, 16)
    with pytest.raises(NicError):
        decode_values(rans[:-2], esc, tables, freqs, offsets, 16)


def test_bucket_index_brackets_every_slot_like_the_slot_table():
    """The C loop's bucket index (rans._decode_tables, buckets=True) must find the symbol that the NumPy
    loop's slot table finds, for every slot of every table of the shipped coder's y tables. CPython never
    loads the C loop, so its search is replayed here in NumPy: a binary search between two neighbouring
    bucket entries."""
    from webdecoder import rans

    freqs, offsets = gaussian_tables()
    freqs, offsets = np.asarray(freqs, np.int64), np.asarray(offsets, np.int64)
    lut, start = rans._decode_tables(freqs, offsets, buckets=False)
    buckets, start_b = rans._decode_tables(freqs, offsets, buckets=True)
    assert np.array_equal(start, start_b)
    n_tables = offsets.size - 1
    assert buckets.shape == (n_tables, 257) and buckets.dtype == np.int32
    slot = np.tile(np.arange(1 << 16), n_tables)
    table = np.repeat(np.arange(n_tables), 1 << 16)
    lo = buckets[table, slot >> 8].astype(np.int64)
    hi = buckets[table, (slot >> 8) + 1].astype(np.int64)
    assert np.all(lo <= hi) and np.all(hi - lo <= 256)  # at most 9 halvings in C
    while np.any(lo < hi):
        mid = (lo + hi + 1) >> 1
        ok = start[mid] <= slot
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid - 1)
    assert np.array_equal(lo, lut[(table << 16) | slot])


@pytest.mark.parametrize("name", ["RANS", "VALUES"])
def test_the_known_answer_streams_are_the_encoders_output_and_decode_to_their_symbols(name):
    """The wasm loop's load-time checks decode stored streams (``webdecoder.known_answers``) instead of encoding their
    inputs in the browser: each must be exactly what the encoder makes of those inputs, and the NumPy decoder must give
    the symbols back from it (so a check that passes means the C loop decodes like the reference)."""
    from webdecoder import entropy, known_answers, rans

    freqs, offsets, tables, symbols, lanes = (rans._check_case if name == "RANS" else entropy._values_check_case)()
    stream = getattr(known_answers, name)
    assert RansEncoder(lanes).encode(symbols, freqs, offsets, tables) == stream
    dec = RansDecoder(stream, lanes)
    assert dec.decode(freqs, offsets, tables).tolist() == symbols.tolist()
    dec.finish()  # every word consumed, every lane back at its start
