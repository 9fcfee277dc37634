"""Decoder fuzzer: every input must end in ``webdecoder.NicError`` or a valid image, in bounded time and memory.

    nice -n 15 .venv/bin/python -m bench.fuzz --budget-s 300 -o build/fuzz/fuzz.json
    PYTHONPATH=build/fuzz-deps nice -n 15 .venv/bin/python -m bench.fuzz --atheris -runs=20000   # coverage-guided

Seeds are real ``.nic`` files made by the real encoder (effort "none", cached in build/fuzz/seeds/ per model
file). Strategies, run in this order until ``--budget-s`` is spent:

  truncate   every prefix of every seed (decode + decode_preview, which accepts prefixes)
  bitflip    every bit of the 48-byte header, then random payload bits (CRC left as is)
  random     random byte strings, with and without the magic
  header     valid headers with hostile fields: boundary values of every field, huge dimensions, zero/max
             lanes, stream lengths past the end or shuffled between sections, wrong model id, CRC fixed up
  crcfixed   random byte edits / splices / section swaps / lane-state and escape edits with the CRC fixed up,
             so garbage reaches rANS, the escape reader, the hyper-decoder and the synthesis
  atheris    (--atheris, needs `atheris` importable) libFuzzer-guided mutation of the seeds; a custom mutator
             fixes the CRC of half the mutants

Per input: wall time (SIGALRM aborts anything over --timeout-s, counted as a hang) and the tracemalloc peak
(NumPy reports its buffers to tracemalloc); the process peak RSS comes from getrusage. A crash is any other
exception, or an "image" of the wrong shape or dtype; crashing inputs are written to tests/corpus/ (the
regression test tests/test_fuzz_corpus.py decodes each and expects NicError).

Bounds from the header limits (docs/FORMAT.md) are printed with the results: see ``bounds``. The header fixes
the work before any allocation: at most 2^24 pixels, y symbols = 192 * H64/16 * W64/16, z symbols = 64 *
H64/64 * W64/64, ``ceil(symbols / lanes)`` rANS steps of a few whole-array NumPy operations each. ``--worst``
times a *valid* file that maximises the rANS steps (all-zero latents, 1 lane: what the encoder writes for a
flat image) and extrapolates it linearly to the 2^24-pixel limit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
import random
import resource
import signal
import struct
import sys
import time
import tracemalloc
from typing import Any
import zlib

import numpy as np

import webdecoder
from webdecoder import NicError, format

ROOT = Path(__file__).resolve().parent.parent
SEED_DIR = ROOT / "build" / "fuzz" / "seeds"
CORPUS = ROOT / "tests" / "corpus"
FIELDS = ["magic", "version", "depth", "quality", "precision", "width", "height", "z_lanes", "y_lanes",
          "model_id", "mac_per_px", "z_rans_len", "z_esc_len", "y_rans_len", "y_esc_len", "crc32"]
HEADER = format.HEADER_SIZE


class Hang(Exception):
    pass


def with_crc(data: bytes) -> bytes:
    """Fix the CRC so that corruption gets past the integrity check (same as tests/test_corrupt.py)."""
    if len(data) < HEADER:
        return data
    b = bytearray(data)
    b[44:48] = struct.pack("<I", zlib.crc32(bytes(b[HEADER:]), zlib.crc32(bytes(b[:44]))))
    return bytes(b)


def fields_of(data: bytes) -> dict[str, Any]:
    return dict(zip(FIELDS, format.HEADER.unpack_from(data), strict=True))


def repack(fields: dict[str, Any], payload: bytes) -> bytes:
    return with_crc(format.HEADER.pack(*fields.values()) + payload)


# -- seeds ----------------------------------------------------------------------------------------------------


def make_seeds() -> dict[str, bytes]:
    """Small real files covering both depths, odd sizes, 1x1, min/max quality and an escape-heavy noise image."""
    model_tag = hashlib.sha256(b"".join(p.read_bytes() for p in sorted((ROOT / "models").glob("*.npz"))))
    folder = SEED_DIR / model_tag.hexdigest()[:12]
    if folder.is_dir() and any(folder.glob("*.nic")):
        seeds = {p.stem: p.read_bytes() for p in sorted(folder.glob("*.nic"))}
        return {**seeds, **{f"{k}-escapes": escape_seed(v) for k, v in seeds.items() if "d2" in k}}
    from PIL import Image

    from encoder.codec import default_encoder

    enc = default_encoder()
    kodak = sorted((ROOT / "samples").glob("*.png"))
    photo = np.asarray(Image.open(kodak[-1]).convert("RGB"))
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    specs = {
        "crop96x160-q3-d1": (photo[100:196, 200:360], 3, 1),
        "crop96x160-q3-d2": (photo[100:196, 200:360], 3, 2),
        "odd70x130-q0-d2": (photo[:70, :130], 0, 2),
        "odd70x130-q7-d1": (photo[:70, :130], 7, 1),
        "px1x1-q4-d2": (photo[:1, :1], 4, 2),
        "noise64-q7-d2": (noise, 7, 2),  # many escapes
    }
    folder.mkdir(parents=True, exist_ok=True)
    seeds = {}
    for name, (img, q, d) in specs.items():
        seeds[name] = enc.encode(np.ascontiguousarray(img), q, d, effort="none")
        (folder / f"{name}.nic").write_bytes(seeds[name])
    return make_seeds()


def escape_seed(data: bytes, seed: int = 0) -> bytes:
    """A valid file full of escapes: a real file's latents with outliers up to +-MAX_ABS, re-entropy-coded.

    Encoder-made seeds rarely escape (values beyond 8 sigma), so without this the escape reader
    (varints, limits, exact consumption) would only ever see garbage that rANS already rejected.
    """
    from webdecoder import entropy
    from webdecoder.decoder import _header_and_model, decode_z
    from webdecoder.hyper import hyper_decode

    h, model = _header_and_model(data)
    zr, ze, yr, ye = h.sections(data)
    z = decode_z(model, h, zr, ze)
    means, idx = hyper_decode(model, z)
    q = entropy.decode_values(yr, ye, idx.ravel(), model["y.freqs"], model["y.offsets"], h.y_lanes)
    rng = np.random.default_rng(seed)
    for arr in (z.reshape(-1), q):
        pos = rng.choice(arr.size, max(2, arr.size // 50), replace=False)
        arr[pos] = rng.integers(-entropy.MAX_ABS, entropy.MAX_ABS + 1, pos.size)
        arr[pos[:2]] = entropy.MAX_ABS, -entropy.MAX_ABS  # the extremes a file may carry
    z_tables = np.repeat(np.arange(z.shape[0]), z[0].size)
    zr, ze = entropy.encode_values(z, z_tables, model["z.freqs"], model["z.offsets"], h.z_lanes)
    means, idx = hyper_decode(model, z)  # new z, new tables for y
    yr, ye = entropy.encode_values(q, idx.ravel(), model["y.freqs"], model["y.offsets"], h.y_lanes)
    import dataclasses

    h2 = dataclasses.replace(h, z_rans_len=len(zr), z_esc_len=len(ze), y_rans_len=len(yr), y_esc_len=len(ye))
    return format.pack(h2, zr, ze, yr, ye)


# -- one input ------------------------------------------------------------------------------------------------


class Stats:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.tried = self.crashes = self.hangs = self.decoded = 0
        self.max_ms = 0.0
        self.max_ms_input = ""
        self.max_mem = 0
        self.per_strategy: dict[str, dict[str, float]] = {}
        self.messages: dict[str, int] = {}  # coverage proxy: which rejection reasons were reached
        self.crash_files: list[str] = []

    def run(self, strategy: str, data: bytes, fn: Any = webdecoder.decode) -> None:
        s = self.per_strategy.setdefault(strategy, {"tried": 0, "rejected": 0, "decoded": 0, "max_ms": 0.0})
        tracemalloc.reset_peak()
        signal.setitimer(signal.ITIMER_REAL, self.timeout_s)
        t0 = time.perf_counter()
        problem = None
        try:
            out = fn(data)
        except NicError as e:
            key = _message_key(str(e))
            self.messages[key] = self.messages.get(key, 0) + 1
            s["rejected"] += 1
            if not str(e):
                problem = "NicError without a message"
        except Hang:
            self.hangs += 1
            problem = "hang"
        except Exception as e:  # the bug class this fuzzer exists for
            problem = f"{type(e).__name__}: {e}"
        else:
            h = format.parse(data, check_crc=False, partial=fn is webdecoder.decode_preview)
            if not (isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (h.height, h.width, 3)):
                problem = f"bad output {type(out).__name__} {getattr(out, 'shape', None)}"
            self.decoded += 1
            s["decoded"] += 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        ms = 1000 * (time.perf_counter() - t0)
        _, peak = tracemalloc.get_traced_memory()
        self.tried += 1
        s["tried"] += 1
        s["max_ms"] = max(s["max_ms"], ms)
        if ms > self.max_ms:
            self.max_ms, self.max_ms_input = ms, f"{strategy}: {len(data)} bytes, {_describe(data)}"
        self.max_mem = max(self.max_mem, peak)
        if problem:
            if problem != "hang":
                self.crashes += 1
            self._save(strategy, data, problem)

    def _save(self, strategy: str, data: bytes, problem: str) -> None:
        CORPUS.mkdir(parents=True, exist_ok=True)
        name = f"{strategy}-{hashlib.sha256(data).hexdigest()[:16]}.nic"
        (CORPUS / name).write_bytes(data)
        self.crash_files.append(name)
        print(f"  CRASH {name}: {problem}", flush=True)


def _message_key(msg: str) -> str:
    # Strip numbers so that "stream lengths say 123 bytes" and "... 456 bytes" count as one reason.
    return " ".join("#" if any(c.isdigit() for c in w) else w for w in msg.split())[:80]


def _describe(data: bytes) -> str:
    if len(data) < HEADER or data[:4] != format.MAGIC:
        return "no header"
    f = fields_of(data)
    return (f"{f['width']}x{f['height']} d{f['depth']} q{f['quality']} lanes {f['z_lanes']}/{f['y_lanes']} "
            f"streams {f['z_rans_len']}/{f['z_esc_len']}/{f['y_rans_len']}/{f['y_esc_len']}")


def _alarm(_signum: int, _frame: Any) -> None:
    raise Hang


# -- strategies -----------------------------------------------------------------------------------------------


def truncations(seeds: dict[str, bytes]):
    for data in seeds.values():
        for n in range(len(data)):
            yield "truncate", data[:n], webdecoder.decode
        # decode_preview accepts prefixes: every prefix past the z section is legitimately previewable
        for n in range(0, len(data), max(1, len(data) // 40)):
            yield "truncate-preview", data[:n], webdecoder.decode_preview


def bitflips(seeds: dict[str, bytes], rng: random.Random):
    for data in seeds.values():
        for bit in range(HEADER * 8):
            b = bytearray(data)
            b[bit // 8] ^= 1 << (bit % 8)
            yield "bitflip", bytes(b), webdecoder.decode
    names = list(seeds)
    while True:
        b = bytearray(seeds[rng.choice(names)])
        for _ in range(rng.choice((1, 1, 2, 8))):
            pos = rng.randrange(len(b))
            b[pos] ^= 1 << rng.randrange(8)
        yield "bitflip", bytes(b), webdecoder.decode


def randoms(rng: random.Random):
    while True:
        n = rng.choice((0, 1, 4, 47, 48, 49, 100, 1000, rng.randrange(4096)))
        blob = rng.randbytes(n)
        yield "random", blob, webdecoder.decode
        yield "random", format.MAGIC + blob, webdecoder.decode
        yield "random", with_crc(format.MAGIC + bytes([1, rng.choice((1, 2)), rng.randrange(8), 16]) + blob), \
            webdecoder.decode


_BOUNDARY = {
    "version": [0, 2, 255], "depth": [0, 3, 255], "quality": [7, 8, 255], "precision": [0, 15, 17, 255],
    "width": [0, 1, 63, 64, 65, 4096, 8191, 8192, 65535], "height": [0, 1, 63, 64, 65, 2048, 8192, 65535],
    "z_lanes": [0, 1, 2, 63, 4096, 4097, 65535], "y_lanes": [0, 1, 3, 4095, 4096, 4097, 65535],
    "model_id": [b"\0" * 8, b"\xff" * 8], "mac_per_px": [0, 1, 2**32 - 1],
    "z_rans_len": [0, 1, 3, 4, 2**31, 2**32 - 1], "z_esc_len": [0, 1, 2**32 - 1],
    "y_rans_len": [0, 2, 4, 2**32 - 1], "y_esc_len": [0, 1, 2**32 - 1],
}


def hostile_headers(seeds: dict[str, bytes], rng: random.Random, exhaustive: bool = True):
    for data in seeds.values() if exhaustive else ():
        f0, payload = fields_of(data), data[HEADER:]
        for name, values in _BOUNDARY.items():
            for v in values:
                f = dict(f0, **{name: v})
                yield "header", repack(f, payload), webdecoder.decode
                yield "header", repack(f, payload)[:HEADER + f0["z_rans_len"] + f0["z_esc_len"]], \
                    webdecoder.decode_preview
        # huge images on a tiny stream: must fail (or decode) within the per-pixel bounds
        for w, h in ((8192, 2048), (4096, 4096), (8192, 1), (1, 8192), (2048, 2048)):
            for lanes in (1, 4096):
                f = dict(f0, width=w, height=h, z_lanes=min(lanes, 64), y_lanes=lanes)
                yield "header-huge", repack(f, payload), webdecoder.decode
    names = list(seeds)
    while True:  # stream lengths moved between sections (total kept, so the length check passes)
        data = seeds[rng.choice(names)]
        f = fields_of(data)
        lens = [f["z_rans_len"], f["z_esc_len"], f["y_rans_len"], f["y_esc_len"]]
        i, j = rng.sample(range(4), 2)
        d = rng.randint(-lens[j], lens[i])
        lens[i] -= d
        lens[j] += d
        f.update(zip(("z_rans_len", "z_esc_len", "y_rans_len", "y_esc_len"), lens, strict=True))
        key = rng.choice(("z_lanes", "y_lanes", "quality", "depth"))
        f[key] = rng.choice((1, 2, 3, 7, 64, 4096) if key.endswith("lanes") else (0, 1, 2, 3, 7))
        yield "header-lens", repack(f, data[HEADER:]), webdecoder.decode


def crc_fixed(seeds: dict[str, bytes], rng: random.Random):
    names = list(seeds)
    while True:
        data = seeds[rng.choice(names)]
        f = fields_of(data)
        b = bytearray(data)
        sect = np.cumsum([HEADER, f["z_rans_len"], f["z_esc_len"], f["y_rans_len"], f["y_esc_len"]]).tolist()
        kind = rng.randrange(8)
        if kind == 0:  # a few random bytes anywhere in the payload
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(HEADER, len(b))] = rng.randrange(256)
        elif kind == 1:  # lane states: below 2^16, exactly 2^16, max
            start = sect[rng.choice((0, 2))]
            lane = rng.randrange(max(1, f["z_lanes"] if start == sect[0] else f["y_lanes"]))
            pos = start + 4 * lane
            if pos + 4 <= len(b):
                b[pos:pos + 4] = struct.pack("<I", rng.choice((0, 1, 0xFFFF, 0x10000, 0xFFFFFFFF)))
        elif kind == 2:  # escape streams: long varints, huge values, garbage
            for s in (1, 3):
                for p in range(sect[s], sect[s + 1]):
                    if rng.random() < 0.3:
                        b[p] = rng.choice((0x80, 0xFF, 0x7F, 0x00, rng.randrange(256)))
        elif kind == 3:  # a run of one byte value (all-zero words make rANS states collapse)
            p = rng.randrange(HEADER, len(b))
            n = rng.randint(1, 64)
            b[p:p + n] = bytes([rng.choice((0, 0xFF))]) * len(b[p:p + n])
        elif kind == 4:  # splice: payload of another seed of the same geometry, or shuffled words
            other = seeds[rng.choice(names)]
            if len(other) == len(data):
                b[HEADER:] = other[HEADER:]
            else:
                p = rng.randrange(HEADER, len(b) - 1)
                q = rng.randrange(HEADER, len(b) - 1)
                b[p], b[q] = b[q], b[p]
        elif kind == 5:  # swap the y stream's words end for end
            lo, hi = sect[2] + 4 * f["y_lanes"], sect[3]
            b[lo:hi] = bytes(b[lo:hi])[::-1]
        elif kind == 6:  # an escape stream cut short or padded (lengths fixed up): rANS stays valid
            s_i = rng.choice((1, 3))
            lo, hi = sect[s_i], sect[s_i + 1]
            if rng.random() < 0.5 and hi > lo:
                cut = rng.randint(1, hi - lo)
                b[hi - cut:hi] = b""
                f["z_esc_len" if s_i == 1 else "y_esc_len"] -= cut
            else:
                extra = bytes(rng.choice((0, 0x7F, 0x80, 0xFF)) for _ in range(rng.randint(1, 5)))
                b[hi:hi] = extra
                f["z_esc_len" if s_i == 1 else "y_esc_len"] += len(extra)
            b[:HEADER] = format.HEADER.pack(*f.values())
        else:  # flip bits in a burst
            p = rng.randrange(HEADER, len(b))
            for q in range(p, min(len(b), p + rng.randint(1, 16))):
                b[q] ^= rng.randrange(1, 256)
        fn = webdecoder.decode_preview if rng.random() < 0.1 else webdecoder.decode
        yield "crcfixed", with_crc(bytes(b)), fn


def handpicked(seeds: dict[str, bytes]) -> dict[str, bytes]:
    """Hostile files for each deep rejection path (kept in tests/corpus/ by --write-corpus)."""
    esc = seeds["noise64-q7-d2-escapes"]
    f = fields_of(esc)
    p = esc[HEADER:]
    ysec = HEADER + f["z_rans_len"] + f["z_esc_len"] + f["y_rans_len"]  # start of the y escape stream
    c = seeds["crop96x160-q3-d2"]
    fc = fields_of(c)
    made = {"escape-ends-early": repack(dict(f, y_esc_len=f["y_esc_len"] - 1), p[:-1]),
            "escape-unused-bytes": repack(dict(f, y_esc_len=f["y_esc_len"] + 1), p + b"\0"),
            "escapes-without-stream": repack(dict(f, y_esc_len=0), p[: -f["y_esc_len"]]),
            # the costliest header for its size: 8192x2048 over a 160x96 file's streams
            "huge-image-tiny-stream": repack(dict(fc, width=8192, height=2048), c[HEADER:]),
            "rans-trailing-word": repack(dict(fc, y_rans_len=fc["y_rans_len"] + 2), c[HEADER:] + b"\0\0")}
    for name, at, new in (("escape-varint-too-long", ysec, b"\x80\x80\x80\x00"),  # 0 in 4 bytes: non-canonical
                          ("escape-value-too-large", ysec, b"\x80\x80\x08"),  # zig-zag 2^17: beyond +-2^15
                          ("lane-state-below-2^16", HEADER + fc["z_rans_len"], struct.pack("<I", 0xFFFF))):
        b = bytearray(esc if name.startswith("escape") else c)
        b[at:at + len(new)] = new
        made[name] = with_crc(bytes(b))
    return made


# -- worst case probe -----------------------------------------------------------------------------------------


def worst_case(width: int, height: int) -> dict[str, Any]:
    """A valid file of all-zero latents with 1 lane (what a flat image gives): the most rANS steps per byte."""
    from webdecoder import entropy
    from webdecoder.hyper import hyper_decode
    from webdecoder.model import get_model

    model = get_model(next(iter(make_seeds().values()))[16:24])
    yr, yc, hz, wz = format.latent_shape(width, height)
    cz = model["z.offsets"].size - 1
    z = np.zeros((cz, hz, wz), np.int64)
    _, scale_idx = hyper_decode(model, z)
    z_r, z_e = entropy.encode_values(z, np.repeat(np.arange(cz), hz * wz), model["z.freqs"], model["z.offsets"], 1)
    y_r, y_e = entropy.encode_values(np.zeros(scale_idx.size, np.int64), scale_idx.ravel(), model["y.freqs"],
                                     model["y.offsets"], 1)
    h = format.Header(2, 4, width, height, 1, 1, model.model_id, model.mac_per_px(2), len(z_r), len(z_e),
                      len(y_r), len(y_e))
    data = format.pack(h, z_r, z_e, y_r, y_e)
    tracemalloc.reset_peak()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    webdecoder.decoder.decode(data, timings)
    s = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    scale = format.MAX_PIXELS / (width * height)
    return {"width": width, "height": height, "file_bytes": len(data), "rans_steps": int(scale_idx.size + z.size),
            "seconds": round(s, 3), "stage_seconds": {k: round(v, 3) for k, v in timings.items()},
            "peak_mib": round(peak / 2**20, 1), "bytes_per_px": round(peak / (width * height), 1),
            "extrapolated_max_pixels_s": round(s * scale, 1),
            "extrapolated_max_pixels_gib": round(peak * scale / 2**30, 2)}


def bounds() -> dict[str, Any]:
    """What docs/FORMAT.md's limits allow, per file, before any work is done."""
    yr, yc, hz, wz = format.latent_shape(format.MAX_DIM, format.MAX_PIXELS // format.MAX_DIM)
    return {
        "max_pixels": format.MAX_PIXELS, "max_dim": format.MAX_DIM, "max_lanes": format.MAX_LANES,
        "max_y_symbols": 192 * yr * yc, "max_z_symbols": 64 * hz * wz,
        "max_rans_steps": 192 * yr * yc + 64 * hz * wz,  # 1 lane each
        "max_escape_bytes_read": "= file length (3 bytes per varint at most, stream consumed exactly)",
        "decoder_memory": "FORMAT.md: about 100 bytes per pixel (1.6 GiB at 2^24 px); --worst measures the real "
                          "peak (worst_case.bytes_per_px)",
    }


# -- main -----------------------------------------------------------------------------------------------------


def run_structured(args: argparse.Namespace) -> dict[str, Any]:
    seeds = make_seeds()
    for name, data in seeds.items():  # a fuzzer whose seeds do not decode tests nothing
        out = webdecoder.decode(data)
        assert out.dtype == np.uint8, name
    rng = random.Random(args.seed)
    stats = Stats(args.timeout_s)
    signal.signal(signal.SIGALRM, _alarm)
    tracemalloc.start()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_start = time.perf_counter()
    # Exhaustive strategies first, then the open-ended ones round-robin so each gets a share of the budget.
    finite = [(("handpicked", v, webdecoder.decode) for v in handpicked(seeds).values()), truncations(seeds),
              hostile_headers(seeds, rng)]
    endless = [bitflips(seeds, rng), randoms(rng), crc_fixed(seeds, rng), hostile_headers(seeds, rng, False)]
    deadline = t_start + args.budget_s
    for gen in finite:
        for strategy, data, fn in gen:
            if strategy == "header-lens" or time.perf_counter() > deadline or stats.tried >= args.max_inputs:
                break
            stats.run(strategy, data, fn)
    i = 0
    while time.perf_counter() < deadline and stats.tried < args.max_inputs:
        strategy, data, fn = next(endless[i % len(endless)])
        stats.run(strategy, data, fn)
        i += 1
        if stats.tried % 5000 == 0:
            print(f"  {stats.tried} inputs, {stats.crashes} crashes, {stats.hangs} hangs, "
                  f"max {stats.max_ms:.0f} ms", flush=True)
    elapsed = time.perf_counter() - t_start
    result = {
        "inputs_tried": stats.tried, "crashes": stats.crashes, "hangs": stats.hangs,
        "decoded_ok": stats.decoded, "seconds": round(elapsed, 1), "timeout_s": args.timeout_s,
        "max_ms": round(stats.max_ms, 1), "max_ms_input": stats.max_ms_input,
        "max_tracemalloc_mib": round(stats.max_mem / 2**20, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "baseline_rss_mib": round(rss0 / 1024, 1),
        "seeds": {k: len(v) for k, v in seeds.items()},
        "per_strategy": {k: {**v, "max_ms": round(v["max_ms"], 1)} for k, v in stats.per_strategy.items()},
        "rejection_reasons": dict(sorted(stats.messages.items(), key=lambda kv: -kv[1])),
        "crash_files": stats.crash_files, "bounds": bounds(),
    }
    tracemalloc.stop()
    if args.worst:
        tracemalloc.start()
        w, h = (int(v) for v in args.worst.split("x"))
        result["worst_case"] = worst_case(w, h)
        tracemalloc.stop()
    return result


def print_summary(r: dict[str, Any]) -> None:
    print(f"\nfuzz: {r['inputs_tried']} inputs in {r['seconds']} s: crashes {r['crashes']}, hangs {r['hangs']} "
          f"(>{r['timeout_s']} s), decoded ok {r['decoded_ok']}")
    print(f"max time {r['max_ms']} ms ({r['max_ms_input']}); max traced memory {r['max_tracemalloc_mib']} MiB; "
          f"process peak RSS {r['peak_rss_mib']} MiB (baseline {r['baseline_rss_mib']} MiB)")
    print(f"{'strategy':<18}{'tried':>8}{'rejected':>10}{'decoded':>9}{'max ms':>9}")
    for k, v in r["per_strategy"].items():
        print(f"{k:<18}{v['tried']:>8}{v['rejected']:>10}{v['decoded']:>9}{v['max_ms']:>9.1f}")
    print(f"{len(r['rejection_reasons'])} distinct rejection reasons reached:")
    for k, v in r["rejection_reasons"].items():
        print(f"  {v:>7}  {k}")
    if "worst_case" in r:
        print(f"worst case: {r['worst_case']}")


def run_atheris(argv: list[str]) -> None:
    import inspect

    import atheris

    seeds = make_seeds()
    # webdecoder is imported already (module top), so instrument its code objects in place for coverage
    # feedback; NumPy stays uninstrumented (its C loops give no Python edges anyway).
    for mod in [m for n, m in list(sys.modules.items()) if n == "webdecoder" or n.startswith("webdecoder.")]:
        for obj in list(vars(mod).values()):
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            funcs = [obj] if inspect.isfunction(obj) else \
                [v for v in vars(obj).values() if inspect.isfunction(v)] if inspect.isclass(obj) else []
            for fn in funcs:
                atheris.instrument_func(fn)
    worst = {"ms": 0.0}
    corpus_dir = ROOT / "build" / "fuzz" / "atheris-corpus"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for k, v in seeds.items():
        (corpus_dir / f"{k}.nic").write_bytes(v)
    counts = {"tried": 0, "rejected": 0, "decoded": 0}

    def one(data: bytes) -> None:
        counts["tried"] += 1
        t0 = time.perf_counter()
        try:
            out = webdecoder.decode(data)
        except NicError:
            counts["rejected"] += 1
            return
        finally:
            worst["ms"] = max(worst["ms"], 1000 * (time.perf_counter() - t0))
        counts["decoded"] += 1
        h = format.parse(data)
        assert out.dtype == np.uint8 and out.shape == (h.height, h.width, 3)

    def mutate(data: bytes, max_size: int, seed: int) -> bytes:
        out = atheris.Mutate(data, max_size)
        return with_crc(out) if seed % 2 else out  # half the mutants get past the CRC

    import atexit

    atexit.register(lambda: print(f"atheris: {counts}, max {worst['ms']:.0f} ms per input, peak RSS "
                                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB", flush=True))
    atheris.Setup([sys.argv[0], *argv, str(corpus_dir)], one, custom_mutator=mutate)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget-s", type=float, default=300, help="wall-clock budget (default 300 s)")
    p.add_argument("--max-inputs", type=int, default=10**9)
    p.add_argument("--timeout-s", type=float, default=10.0, help="per-input limit; longer counts as a hang")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worst", default=None, metavar="WxH", help="also time the worst-case valid file at WxH")
    p.add_argument("-o", "--output", default=str(ROOT / "build" / "fuzz" / "fuzz.json"))
    p.add_argument("--write-corpus", action="store_true", help="(re)write the hand-picked files in tests/corpus/")
    p.add_argument("--atheris", action="store_true", help="coverage-guided mode; rest of argv goes to libFuzzer")
    args, rest = p.parse_known_args(argv)
    if args.atheris:
        run_atheris(rest)
        return 0
    if rest:
        p.error(f"unknown arguments {rest}")
    if args.write_corpus:
        CORPUS.mkdir(parents=True, exist_ok=True)
        for name, data in handpicked(make_seeds()).items():
            (CORPUS / f"{name}.nic").write_bytes(data)
            print(f"{CORPUS / name}.nic")
        return 0
    result = run_structured(args)
    print_summary(result)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 1 if result["crashes"] or result["hangs"] else 0


if __name__ == "__main__":
    sys.exit(main())
