"""Folder encoding for content servers: manifest, resumable skips, fallbacks, atomic writes.

``manifest.json`` in the output folder records, per output, the source's SHA-256, the
settings and model id it was encoded with, its size and decode cost. An output is
skipped when its entry matches the current source and settings, so an interrupted
or repeated run only does the missing work. Every file (``.nic``, fallback, manifest)
is written to a temporary name and renamed: a killed encode never leaves a partial file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import hashlib
import io
import json
import os
from pathlib import Path
import tempfile

MANIFEST = "manifest.json"
FALLBACK_FORMATS = {"webp": ("WEBP", {"quality": 80, "method": 4}), "jpeg": ("JPEG", {"quality": 85})}


@dataclass(frozen=True)
class Settings:
    quality: int = 4
    depth: int | str = 2
    effort: str = "fast"
    sga_steps: int | None = None
    max_kmac: float | None = None
    complexity_weight: float = 0.02
    fallback: str | None = None  # "webp" or "jpeg": a classic image beside each .nic
    lanes: str = "auto"  # the y stream's rANS lanes: "auto" or "compact" (encoder.codec.LANE_POLICIES)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target.

    A reader (or a web server) never sees half a file, and a killed writer leaves only a
    ``.NAME.*.part`` file. Stdlib only: the site's bundle builder uses it before the venv is complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # data on disk before the rename: no empty file after a power cut
        # mkstemp creates 0600; outputs are meant to be served, so give them the usual umask mode
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


STALE_PART_S = 600  # a .part older than this is debris of a killed run: writes take milliseconds, not minutes


def clean_stale_parts(folder: Path, max_age_s: float = STALE_PART_S) -> list[Path]:
    """Delete ``.NAME.*.part`` temporaries (write_atomic's) left by a killed run; returns what was removed.

    Only old ones: a concurrent run writing into the same folder may own a fresh one.
    """
    import time

    removed = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for p in folder.rglob(".*.part"):
        try:
            if p.is_file() and not p.is_symlink() and now - p.stat().st_mtime > max_age_s:
                p.unlink()
                removed.append(p)
        except OSError:  # vanished or not ours to delete: leave it
            pass
    return removed


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def save_manifest(out_dir: Path, manifest: dict) -> None:
    write_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())


def is_current(entry: dict | None, src_hash: str, settings: Settings, model_id: str, out_dir: Path) -> bool:
    return (
        entry is not None
        and entry.get("source_sha256") == src_hash
        # a manifest written before a setting existed recorded its default implicitly
        and {**asdict(Settings()), **(entry.get("settings") or {})} == asdict(settings)
        and entry.get("model_id") == model_id
        and (out_dir / entry["output"]).is_file()
    )


def encode_file(encoder, src: Path, rel: str, out_dir: Path, settings: Settings, progress: bool = False) -> dict:
    """Encode one image into ``out_dir/rel`` (plus fallback); returns its manifest entry."""
    from PIL import Image

    from encoder.image import open_image
    import webdecoder

    rgb = open_image(str(src))
    data = encoder.encode(rgb, settings.quality, settings.depth, settings.effort, settings.sga_steps,
                          progress=progress, max_kmac=settings.max_kmac,
                          complexity_weight=settings.complexity_weight, lanes=settings.lanes)
    write_atomic(out_dir / rel, data)
    info = webdecoder.info(data)
    entry = {
        "source": str(src), "source_sha256": sha256_file(src), "output": rel, "bytes": len(data),
        "width": info["width"], "height": info["height"], "bpp": round(info["bpp"], 5),
        "quality": info["quality"], "depth": info["depth"], "kmac_per_px": info["kmac_per_px"],
        "total_mac": info["total_mac"], "model_id": info["model_id"], "settings": asdict(settings), "fallback": None,
    }
    if settings.fallback:
        fmt, opts = FALLBACK_FORMATS[settings.fallback]
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt, **opts)
        fb = str(Path(rel).with_suffix("." + settings.fallback))
        write_atomic(out_dir / fb, buf.getvalue())
        entry["fallback"] = fb
        entry["fallback_bytes"] = buf.tell()
    return entry
