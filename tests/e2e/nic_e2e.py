"""Helpers shared by the e2e tests (a plain module: test files import it, conftest.py too)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
import sys
from typing import Any
import urllib.request

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
if importlib.util.find_spec("nic_site") is None:  # plain checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "site"))


def fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def fetch_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read()


# Page-side helper: sha256 (hex) of an ImageData's RGB bytes, so pixels are compared with CPython's
# without shipping megabytes back to Python. crypto.subtle works because 127.0.0.1 is a secure context.
RGB_SHA256_JS = """() => {
window.rgbSha256 = async (imageData) => {
  const px = imageData.data, rgb = new Uint8Array(imageData.width * imageData.height * 3);
  for (let i = 0, j = 0; i < px.length; i += 4, j += 3) {
    rgb[j] = px[i]; rgb[j + 1] = px[i + 1]; rgb[j + 2] = px[i + 2];
  }
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", rgb));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
};
}"""


def files_with_cpython_hashes(
    small_files: dict[int, bytes], folder: Path
) -> tuple[list[str], dict[str, str], list[str]]:
    """Write the small test files for a Pyodide run; return (paths, sha256 of CPython's pixels per path, models).

    Registers every shipped model in this process too, so both sides decode with the same weights.
    """
    import hashlib

    import webdecoder

    models = sorted((ROOT / "models").glob("*.npz"))
    for m in models:
        webdecoder.register_model(m.read_bytes())
    files, want = [], {}
    for depth, data in small_files.items():
        p = folder / f"d{depth}.nic"
        p.write_bytes(data)
        files.append(str(p))
        want[str(p)] = hashlib.sha256(webdecoder.decode(data).tobytes()).hexdigest()
    return files, want, [str(m) for m in models]
