"""PSNR floors of tests/test_roundtrip.py, measured on the shipped model.

    python -m bench.psnr_floors            # print the measured PSNR and the floors
    python -m bench.psnr_floors --write    # also rewrite PSNR_FLOOR in tests/test_roundtrip.py

The floor is the PSNR of the 256x384 centre of kodim23 (effort "none") minus 0.5 dB, rounded
down to 0.1 dB, so the test catches a real regression but not last-bit platform noise.
Run it after `nic export`, and commit the test change with the model.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
import re

import numpy as np
from PIL import Image

from bench.rd import psnr_rgb
from encoder.codec import default_encoder
import webdecoder

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT / "tests" / "test_roundtrip.py"
MARGIN_DB = 0.5


def measure(image: Path) -> dict[int, list[float]]:
    """Floor per depth and quality; prints bytes and PSNR as it goes."""
    enc = default_encoder()
    img = np.asarray(Image.open(image).convert("RGB"))[128:384, 192:576]
    floors: dict[int, list[float]] = {}
    for depth in (1, 2):
        row = []
        for q in range(enc.qualities):
            data = enc.encode(img, q, depth, effort="none")
            out = webdecoder.decode(data)
            p = psnr_rgb(out, img)
            row.append(math.floor((p - MARGIN_DB) * 10) / 10)
            print(f"depth {depth} q{q}: {len(data)} B, {p:.2f} dB -> floor {row[-1]:.1f}")
        floors[depth] = row
    return floors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=ROOT.parent / "shared" / "data" / "kodak" / "kodim23.png")
    ap.add_argument("--write", action="store_true", help="rewrite PSNR_FLOOR in tests/test_roundtrip.py")
    a = ap.parse_args(argv)
    floors = measure(a.image)
    line = f"PSNR_FLOOR = {{1: {floors[1]}, 2: {floors[2]}}}"
    print(line)
    if a.write:
        text = TEST.read_text()
        new, n = re.subn(r"^PSNR_FLOOR = .*$", line, text, count=1, flags=re.M)
        if n != 1:
            raise SystemExit(f"no PSNR_FLOOR line in {TEST}")
        TEST.write_text(new)
        print(f"wrote {TEST}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
