"""The gallery's assets: `.nic` files plus JPEG/WebP/AVIF versions of about the same size.

Sources come from ASSET_DIR (default: the Kodak samples). Each image is encoded with the real
`encoder.encode` at every configured quality; each `.nic` file is shown as it is. For every `.nic` whose
original is known, Pillow makes a JPEG, WebP and AVIF no larger than the `.nic` (largest quality setting
that fits), so the formats can be compared by eye at equal bytes. Everything is cached under CACHE_DIR,
keyed by the source bytes, quality, depth and model weights, and written atomically (a crash mid-way
leaves no half file that a later start would trust).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
import hashlib
import io
import json
import math
from pathlib import Path
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from .bundle import atomic_write

if TYPE_CHECKING:
    from flask import Flask

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp")
# Pillow format name, file suffix, MIME type, (lowest, highest) quality setting, extra save options.
COMPARE_FORMATS: dict[str, tuple[str, str, str, tuple[int, int], dict[str, Any]]] = {
    "jpeg": ("JPEG", ".jpg", "image/jpeg", (1, 95), {"optimize": True}),
    "webp": ("WEBP", ".webp", "image/webp", (0, 100), {"method": 6}),
    "avif": ("AVIF", ".avif", "image/avif", (0, 100), {}),
}
# Bump when the way the cached files are made changes, so old caches are not reused
# (2: every effort but "none" optimises the latents' rounding, encoder/rounding.py).
_CACHE_VERSION = 2

Progress = Callable[[str], None]


@dataclass
class Variant:
    fmt: str  # "nic", "jpeg", "webp", "avif"
    path: str
    name: str  # file name in URLs
    bytes: int
    bpp: float
    psnr: float | None
    setting: int | None = None  # codec quality setting (comparison formats)
    url: str = ""


@dataclass
class Entry:
    key: str  # unique, e.g. "kodim01-q4"
    title: str
    width: int
    height: int
    quality: int | None
    depth: int | None
    kmac_per_px: float | None
    model_id: str | None
    nic: Variant
    comparisons: dict[str, Variant] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for v in [d["nic"], *d["comparisons"].values()]:
            v.pop("path")
        return d


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _encode_pil(img: Any, fmt: str, setting: int) -> bytes:
    pil_fmt, _, _, _, extra = COMPARE_FORMATS[fmt]
    buf = io.BytesIO()
    img.save(buf, pil_fmt, quality=setting, **extra)
    return buf.getvalue()


def match_size(img: Any, fmt: str, target: int) -> tuple[int, bytes]:
    """Largest quality setting whose file is <= target bytes (binary search; size grows with quality).

    If even the lowest setting is larger, that smallest file is returned: the gallery marks it.
    """
    lo, hi = COMPARE_FORMATS[fmt][3]
    best = (lo, _encode_pil(img, fmt, lo))
    if len(best[1]) > target:
        return best
    while lo < hi:
        mid = (lo + hi + 1) // 2
        data = _encode_pil(img, fmt, mid)
        if len(data) <= target:
            lo, best = mid, (mid, data)
        else:
            hi = mid - 1
    return best


class Catalog:
    """Builds and holds the gallery entries; `prepare()` is idempotent and thread-safe."""

    def __init__(self, asset_dir: Path, cache_dir: Path, model_dir: Path, qualities: list[int],
                 depth: int, effort: str = "fast", lanes: str = "auto") -> None:
        self.asset_dir = asset_dir
        self.cache_dir = cache_dir
        self.model_dir = model_dir
        self.qualities = qualities
        self.depth = depth
        self.effort = effort
        self.lanes = lanes
        self.entries: list[Entry] = []
        self.errors: list[str] = []
        self.ready = False
        self._lock = threading.Lock()
        self._on_ready: list[Callable[[Catalog], None]] = []

    # -- public ---------------------------------------------------------------------------
    def prepare(self, progress: Progress | None = None) -> list[Entry]:
        with self._lock:
            if not self.ready:
                self._build(progress or (lambda _msg: None))
                self.ready = True
                for cb in self._on_ready:
                    cb(self)
        return self.entries

    def on_ready(self, cb: Callable[[Catalog], None]) -> None:
        self._on_ready.append(cb)

    def model_files(self) -> list[Path]:
        return sorted(self.model_dir.glob("*.npz")) if self.model_dir.is_dir() else []

    # -- building -------------------------------------------------------------------------
    def _build(self, progress: Progress) -> None:
        import webdecoder  # local: importing the site must stay cheap

        for p in self.model_files():
            webdecoder.register_model(p.read_bytes())
        models_tag = _sha(b"".join(_sha(p.read_bytes()).encode() for p in self.model_files()))[:10]
        if not self.asset_dir.is_dir():
            self.errors.append(f"asset folder {self.asset_dir} does not exist")
            return
        root = self.asset_dir.resolve()
        files = []
        for p in sorted(self.asset_dir.iterdir()):
            # A symlink may point anywhere; only files that really live inside ASSET_DIR are served.
            if p.is_file() and not p.resolve().is_relative_to(root):
                self.errors.append(f"skipped {p.name}: links outside the asset folder")
            elif p.is_file():
                files.append(p)
        nics = {p.stem: p for p in files if p.suffix == ".nic"}
        images = {p.stem: p for p in files if p.suffix.lower() in IMAGE_SUFFIXES}
        encoder = None
        for stem in sorted(set(nics) | set(images)):
            orig = images.get(stem)
            try:
                if stem in nics:
                    self.entries.append(self._entry_for_file(stem, nics[stem], orig, progress))
                    continue
                assert orig is not None
                for q in self.qualities:
                    if encoder is None:
                        import encoder  # noqa: F811  (lazy: torch is only needed to fill the cache)
                    self.entries.append(self._entry_for_image(stem, orig, q, models_tag, encoder, progress))
            except Exception as e:  # one broken source must not take the site down
                msg = f"skipped {stem}: {type(e).__name__}: {e}"
                self.errors.append(msg)
                progress(msg)

    def _entry_for_image(self, stem: str, orig: Path, q: int, models_tag: str, encoder: Any,
                         progress: Progress) -> Entry:
        src = orig.read_bytes()
        folder = self.cache_dir / f"{stem}-{_sha(src)[:12]}"
        lanes = "" if self.lanes == "auto" else f"-l{self.lanes}"
        base = f"q{q}-d{self.depth}-e{self.effort}{lanes}-m{models_tag}-v{_CACHE_VERSION}"
        meta_path = folder / f"{base}.json"
        if meta_path.is_file():
            try:
                return _entry_from_meta(json.loads(meta_path.read_text()), folder)
            except (KeyError, ValueError, TypeError, FileNotFoundError):
                pass  # stale or foreign cache entry: rebuild it
        progress(f"encoding {orig.name} at quality {q} (depth {self.depth}, effort {self.effort})")
        from PIL import Image

        img = Image.open(orig).convert("RGB")
        extra = {} if self.lanes == "auto" else {"lanes": self.lanes}
        data = encoder.encode(img, quality=q, depth=self.depth, effort=self.effort, **extra)
        atomic_write(folder / f"{base}.nic", data)
        entry = self._make_entry(f"{stem}-q{q}", stem, folder / f"{base}.nic", data, img, folder, base,
                                 progress)
        meta = entry.to_json()
        meta["files"] = {k: Path(v.path).name for k, v in [("nic", entry.nic), *entry.comparisons.items()]}
        atomic_write(meta_path, json.dumps(meta, indent=1).encode())  # written last: marks the set complete
        return entry

    def _entry_for_file(self, stem: str, path: Path, orig: Path | None, progress: Progress) -> Entry:
        data = path.read_bytes()
        img = None
        folder = self.cache_dir / f"{stem}-{_sha(data)[:12]}"
        if orig is not None:
            from PIL import Image

            img = Image.open(orig).convert("RGB")
        return self._make_entry(stem, stem, path, data, img, folder, "given", progress)

    def _make_entry(self, key: str, title: str, nic_path: Path, data: bytes, img: Any, folder: Path,
                    base: str, progress: Progress | None = None) -> Entry:
        import webdecoder

        meta = webdecoder.info(data)
        w, h = int(meta["width"]), int(meta["height"])
        decoded = webdecoder.decode(data)
        ref = np.asarray(img) if img is not None else None
        nic = Variant("nic", str(nic_path), f"{key}.nic", len(data), 8 * len(data) / (w * h),
                      psnr(ref, decoded) if ref is not None else None, int(meta.get("quality", -1)))
        entry = Entry(key, title, w, h, meta.get("quality"), meta.get("depth"), meta.get("kmac_per_px"),
                      meta.get("model_id"), nic)
        if img is None:
            return entry
        for fmt, (_, suffix, _, _, _) in COMPARE_FORMATS.items():
            out = folder / f"{base}{suffix}"
            if out.is_file():  # a given .nic re-uses its comparisons across restarts
                cmp = out.read_bytes()
                setting = None
            else:
                if progress:
                    progress(f"making {fmt} for {key}")
                setting, cmp = match_size(img, fmt, len(data))
                atomic_write(out, cmp)
            from PIL import Image

            back = np.asarray(Image.open(io.BytesIO(cmp)).convert("RGB"))
            entry.comparisons[fmt] = Variant(fmt, str(out), f"{key}{suffix}", len(cmp),
                                             8 * len(cmp) / (w * h), psnr(ref, back), setting)
        return entry


def _entry_from_meta(meta: dict[str, Any], folder: Path) -> Entry:
    files = meta["files"]

    def variant(d: dict[str, Any], fmt: str) -> Variant:
        path = folder / files[fmt]
        if not path.is_file():
            raise FileNotFoundError(path)
        return Variant(**{**d, "path": str(path), "url": ""})

    return Entry(
        key=meta["key"], title=meta["title"], width=meta["width"], height=meta["height"],
        quality=meta["quality"], depth=meta["depth"], kmac_per_px=meta["kmac_per_px"],
        model_id=meta["model_id"], nic=variant(meta["nic"], "nic"),
        comparisons={k: variant(v, k) for k, v in meta["comparisons"].items()},
    )


def init_app(app: Flask) -> None:
    cfg = app.config
    asset_dir = Path(cfg["ASSET_DIR"] or cfg["SAMPLES_DIR"])
    app.extensions["nic_catalog"] = Catalog(
        asset_dir, Path(cfg["CACHE_DIR"]), Path(cfg["MODEL_DIR"]), list(cfg["QUALITIES"]), int(cfg["DEPTH"]),
        str(cfg["ENCODE_EFFORT"]), str(cfg["ENCODE_LANES"]),
    )


def get(app: Flask) -> Catalog:
    return app.extensions["nic_catalog"]
