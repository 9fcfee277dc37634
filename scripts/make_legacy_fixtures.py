"""Write tests/data/legacy-<model id>-d{1,2}.nic for the model now in models/, and their pixel hashes.

Run once right after `nic export` ships a model (scripts/refresh_after_export.sh does): the files
pin what this model decodes to, so tests/test_legacy_models.py keeps checking them after the next
model replaces it. The hashes go into tests/data/legacy-pixels.json beside them (this model's two
entries added or replaced; the older models' entries are left as they were).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import sys

import numpy as np
from PIL import Image

from encoder.codec import encode
import webdecoder

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
HASHES = DATA / "legacy-pixels.json"


def main(kodak: Path) -> None:
    crop = np.asarray(Image.open(kodak / "kodim01.png").convert("RGB"))[200:296, 300:460]
    hashes = json.loads(HASHES.read_text()) if HASHES.is_file() else {}
    for depth in (1, 2):
        data = encode(crop, quality=3, depth=depth, effort="none")
        model_id = webdecoder.info(data)["model_id"]
        out = DATA / f"legacy-{model_id}-d{depth}.nic"
        out.write_bytes(data)
        rgb = webdecoder.decode(data)
        hashes[out.name] = hashlib.sha256(rgb.tobytes()).hexdigest()
        print(f"{out.name}: {hashes[out.name]}")
    tmp = HASHES.with_suffix(".tmp")
    tmp.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    tmp.replace(HASHES)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "kodak")
