"""Regression corpus of bench/fuzz.py: every file in tests/corpus/ must be rejected with NicError, quickly.

bench/fuzz.py writes any input that crashed or hung the decoder here (named after its strategy and hash);
once the decoder is fixed, the file stays as a test. Hand-picked files for each deep rejection path (escape
stream cut, 4-byte varint, lane state < 2^16, huge image over a tiny stream, ...) are written by
`python -m bench.fuzz --write-corpus`; they name the shipped model, so rewrite them when it changes.
"""

from __future__ import annotations

from pathlib import Path
import time

import pytest

import webdecoder

CORPUS = Path(__file__).resolve().parent / "corpus"
FILES = sorted(CORPUS.glob("*.nic"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_corpus_file_is_rejected(path: Path) -> None:
    t0 = time.perf_counter()
    with pytest.raises(webdecoder.NicError) as err:
        webdecoder.decode(path.read_bytes())
    assert str(err.value)
    assert time.perf_counter() - t0 < 10
