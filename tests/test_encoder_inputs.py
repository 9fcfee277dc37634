"""Hostile and unusual encoder inputs: a clear ImageError or the documented conversion, never a crash.

Also: a folder encode that meets a bad file reports it and goes on, and `kill -9` mid-encode leaves no
partial `.nic` (write_atomic) and a later run removes stale temporaries of a killed one.
"""

from __future__ import annotations

from collections.abc import Callable
import io
import os
from pathlib import Path
import signal
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib

import numpy as np
from PIL import Image
import pytest

from encoder.batch import STALE_PART_S, clean_stale_parts
from encoder.image import ImageError, open_image
import webdecoder

ROOT = Path(__file__).resolve().parent.parent


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_raw(w: int, h: int, bit_depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG written by hand: for headers Pillow would not write (huge, zero-size, 16-bit RGB)."""
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))


def _rgb16_png() -> bytes:
    # 2x1 pixels, 16 bits per channel: white (0xFFFF) and mid grey (0x8000)
    row = b"\0" + struct.pack(">HHH", 0xFFFF, 0xFFFF, 0xFFFF) + struct.pack(">HHH", 0x8000, 0x8000, 0x8000)
    return _png_raw(2, 1, 16, 2, row)


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    extra = {"lossless": True} if fmt == "WEBP" else {}
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **extra)


def _palette_transparent() -> bytes:
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((0, 0), 1)
    return _save(im, "PNG", transparency=0)  # index 0 (black) is transparent -> white


def _photo_png() -> bytes:
    return _save(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)), "PNG")


Check = Callable[[np.ndarray], bool]
# name -> (file name, bytes, expected: an ImageError message fragment, or a check of the converted pixels)
CASES: dict[str, tuple[str, Callable[[], bytes], str | Check]] = {
    "empty file": ("empty.png", lambda: b"", "cannot read"),
    "random bytes": ("noise.png", lambda: np.random.default_rng(1).bytes(4096), "cannot read"),
    "text named jpg": ("text.jpg", lambda: b"hello, I am not a JPEG\n" * 10, "cannot read"),
    "truncated png": ("trunc.png", lambda: _photo_png()[:2000], "cannot read"),
    "truncated jpeg": ("trunc.jpg", lambda: _save(Image.new("RGB", (64, 64), "red"), "JPEG")[:300], "cannot read"),
    "png header only": ("head.png", lambda: _photo_png()[:33], "cannot read"),
    "bomb 100000x100000 png": ("bomb.png", lambda: _png_raw(100_000, 100_000, 8, 2, b"\0" * 100), "exceeds"),
    "bomb 65535x65535 gif": ("bomb.gif", lambda: b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\0\0\0;",
                             "cannot read|exceeds"),
    "zero width png": ("zero.png", lambda: _png_raw(0, 10, 8, 2, b""), "cannot read|zero"),
    "too wide 9000x1": ("wide.png", lambda: _save(Image.new("L", (9000, 1)), "PNG"), "exceeds the format limits"),
    "cmyk jpeg": ("cmyk.jpg", lambda: _save(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG", quality=100),
                  lambda a: a.shape == (8, 8, 3) and a.min() >= 250),  # no ink = white
    "16-bit grey png": ("g16.png", lambda: _save(Image.fromarray(np.array([[0, 32768, 65535]], np.uint16)), "PNG"),
                        lambda a: a[0, :, 0].tolist() == [0, 128, 255] and np.all(a[..., 0] == a[..., 2])),
    "16-bit rgb png": ("rgb16.png", _rgb16_png, lambda a: a.shape == (1, 2, 3) and a[0, 0].tolist() == [255] * 3
                       and abs(int(a[0, 1, 0]) - 128) <= 1),
    "palette + transparency": ("pal.png", _palette_transparent,
                               lambda a: a[1, 1].tolist() == [255, 255, 255] and a[0, 0].tolist() == [255, 0, 0]),
    "1-bit": ("bits.png", lambda: _save(Image.new("1", (9, 3), 1), "PNG"), lambda a: np.all(a == 255)),
    "LA half alpha": ("la.png", lambda: _save(Image.new("LA", (4, 4), (0, 128)), "PNG"),
                      lambda a: np.all(np.abs(a.astype(int) - 127) <= 1)),
    "float tiff": ("f.tif", lambda: _save(Image.new("F", (4, 4), 3.5), "TIFF"), lambda a: a.shape == (4, 4, 3)),
    "animated gif": ("anim.gif", lambda: _animated("GIF"), lambda a: a[0, 0, 0] > 200 and a[0, 0, 2] < 50),
    "animated webp": ("anim.webp", lambda: _animated("WEBP"), lambda a: a[0, 0].tolist() == [255, 0, 0]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_input_file_gives_image_error_or_documented_conversion(tmp_path, name):
    fname, make, expect = CASES[name]
    path = tmp_path / fname
    path.write_bytes(make())
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        if isinstance(expect, str):
            with pytest.raises(ImageError, match=expect) as err:
                open_image(str(path))
            assert str(path) in str(err.value) or "exceeds" in str(err.value)  # says which file and why
        else:
            arr = open_image(str(path))
            assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3 and arr.flags.c_contiguous
            assert expect(arr), arr[:2, :2].tolist()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    # Bombs are refused from the header: no pixel buffer is ever allocated, nothing takes long.
    assert peak < 64 * 2**20 and time.perf_counter() - t0 < 5, (peak, time.perf_counter() - t0)


def test_converted_inputs_encode_and_decode(encoder, tmp_path):
    for name in ("cmyk jpeg", "16-bit rgb png", "animated webp", "palette + transparency"):
        fname, make, _ = CASES[name]
        (tmp_path / fname).write_bytes(make())
        rgb = open_image(str(tmp_path / fname))
        out = webdecoder.decode(encoder.encode(rgb, 4, 1, effort="none"))
        assert out.shape == rgb.shape


def test_folder_encode_reports_a_bad_file_and_goes_on(encoder, tmp_path, capsys):
    from encoder.cli import main

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    good = np.random.default_rng(2).integers(0, 256, (16, 24, 3), np.uint8)
    Image.fromarray(good).save(src / "a.png")
    Image.fromarray(good[:, ::-1]).save(src / "sub" / "c.png")
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (src / "bomb.png").write_bytes(_png_raw(100_000, 100_000, 8, 2, b"\0"))
    out = tmp_path / "out"
    code = main(["encode", str(src), "-o", str(out), "--effort", "none", "-q", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "b.png" in err and "bomb.png" in err  # each bad file is named
    for rel in ("a.nic", "sub/c.nic"):
        assert webdecoder.decode((out / rel).read_bytes()).shape == (16, 24, 3)
    assert not (out / "b.nic").exists() and not (out / "bomb.nic").exists()
    assert not list(out.rglob("*.part"))
    import json

    assert sorted(json.loads((out / "manifest.json").read_text())) == ["a.nic", "sub/c.nic"]


def test_stale_part_files_are_cleaned_fresh_ones_kept(tmp_path):
    old = tmp_path / ".x.nic.abc123.part"
    fresh = tmp_path / "sub" / ".y.nic.def456.part"
    fresh.parent.mkdir()
    for p in (old, fresh):
        p.write_bytes(b"half")
    os.utime(old, (time.time() - STALE_PART_S - 5,) * 2)
    keep = tmp_path / "real.part"  # not one of ours (no leading dot): never touched
    keep.write_bytes(b"x")
    os.utime(keep, (0, 0))
    assert clean_stale_parts(tmp_path) == [old]
    assert fresh.exists() and keep.exists()


def test_kill_9_mid_encode_leaves_no_partial_output(tmp_path):
    """A real `nic encode` process, SIGKILLed once SGA runs: no .nic, no stale .part afterwards."""
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (256, 256, 3), np.uint8)).save(tmp_path / "big.png")
    stale = tmp_path / ".out.nic.leftover.part"  # debris of an earlier killed run
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - STALE_PART_S - 5,) * 2)
    nic = Path(sys.executable).with_name("nic")
    cmd = [str(nic), "encode"] if nic.is_file() else [sys.executable, "-m", "encoder.cli", "encode"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "site")]), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([*cmd, str(tmp_path / "big.png"), "-o", str(tmp_path / "out.nic"), "--sga-steps", "2000"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = threading.Event()
    seen = bytearray()

    def watch() -> None:  # tqdm's "SGA" bar on stderr means the encode is under way
        assert proc.stderr is not None
        while chunk := proc.stderr.read1(256):
            seen.extend(chunk)
            if b"SGA" in seen:
                started.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert started.wait(180), f"encode never started: {seen.decode(errors='replace')[-500:]}"
        time.sleep(0.5)
        assert proc.poll() is None, "encode finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["big.png"], names  # no out.nic, no .part: the stale one was removed on start
