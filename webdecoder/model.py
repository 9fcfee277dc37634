"""Model files: integer weights and tables that a .nic names by its model id.

A model file is an uncompressed-header zip of .npy arrays (what ``numpy.load``
reads, in CPython and in Pyodide alike). Its id is the first 8 bytes of its
SHA-256, so a .nic can only be decoded by the exact weights it was made for.
CPython finds ``models/*.npz`` of the checkout (or ``$NIC_MODEL_DIR``) by
itself; a browser worker passes the bytes it fetched to :func:`register_model`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
import io
import json
import os
from pathlib import Path
import zipfile

import numpy as np

from webdecoder.conv import weight_matrix
from webdecoder.errors import NicError
from webdecoder.rans import PRECISION

MODEL_SUFFIX = ".npz"
# models/legacy/ keeps retired decoder files xz-compressed (1.24 instead of 2.08 MB each, so many more fit in
# the checkout's 40 MB); a model's id stays the SHA-256 of the inflated .npz bytes.
RETIRED_SUFFIX = ".npz.xz"
MAX_MODEL_BYTES = 64 << 20  # an inflated model file larger than this is refused, not allocated


@dataclass
class Model:
    model_id: bytes
    meta: dict
    arrays: dict[str, np.ndarray]
    _f64: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def f64(self, key: str) -> np.ndarray:
        """An integer array as float64 (converted once): the carrier of exact integer products."""
        if key not in self._f64:
            self._f64[key] = self.arrays[key].astype(np.float64)
        return self._f64[key]

    def convt(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Transposed-conv weights as float64 (Cin, Cout, k, k) and as ``conv.weight_matrix`` (cached once)."""
        mkey = key + "#matrix"
        if mkey not in self._f64:
            self._f64[mkey] = weight_matrix(self.f64(key))
        return self.f64(key), self._f64[mkey]

    def int(self, key: str) -> int:
        """A scalar entry (a layer's shift)."""
        return int(self.arrays[key].reshape(-1)[0])

    @property
    def qualities(self) -> int:
        return int(self.meta["qualities"])

    def mac_per_px(self, depth: int) -> int:
        return int(self.meta["mac_per_px"][str(depth)])

    @property
    def z_channels(self) -> int:
        return int(self.arrays["z.offsets"].size - 1)

    @property
    def y_channels(self) -> int:
        return int(self.arrays["invgain"].shape[1])


def model_id_of(data: bytes, sha256: bytes | None = None) -> bytes:
    """A model file's id: the first 8 bytes of its SHA-256 (``sha256``: that digest, if the caller has it)."""
    if sha256 is None:
        return hashlib.sha256(data).digest()[:8]
    if len(sha256) != hashlib.sha256().digest_size:
        raise NicError(f"model file: a SHA-256 digest has 32 bytes, not {len(sha256)}")
    return bytes(sha256[:8])


def _check_tables(freqs: np.ndarray, offsets: np.ndarray, name: str) -> None:
    sizes = np.diff(offsets)
    if offsets[0] != 0 or offsets[-1] != freqs.size or np.any(sizes < 2) or np.any(sizes % 2):
        raise NicError(f"model file: bad {name} table offsets")
    if freqs.min() < 1 or np.any(np.add.reduceat(freqs, offsets[:-1].astype(np.intp)) != 1 << PRECISION):
        raise NicError(f"model file: {name} frequencies do not sum to 2^{PRECISION}")


def load_model(data: bytes, sha256: bytes | None = None) -> Model:
    """Parse a model file; ``sha256``, if given, is the file's SHA-256 digest, computed by the caller."""
    model_id = model_id_of(data, sha256)  # a malformed digest fails before the file is parsed
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            arrays = {}
            for name in zf.namelist():
                with zf.open(name) as f:
                    arrays[name.removesuffix(".npy")] = np.lib.format.read_array(f, allow_pickle=False)
        meta = json.loads(bytes(arrays.pop("meta")).decode())
        for t in ("y", "z"):
            _check_tables(arrays[f"{t}.freqs"], arrays[f"{t}.offsets"], t)
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as e:
        raise NicError(f"not a nic model file ({type(e).__name__}: {e})") from None
    return Model(model_id, meta, arrays)


_registry: dict[bytes, Model] = {}
_scanned: set[str] = set()


def register_model(data: bytes, sha256: bytes | None = None) -> str:
    """Make a model file's weights available to ``decode``; returns its id (hex).

    ``sha256``: the file's SHA-256 digest where the caller already has it. The browser worker hashes the
    download natively (``crypto.subtle``, off its thread, while Pyodide boots) instead of spending ~20 ms
    of the cold start on hashlib in WebAssembly. It is trusted: a wrong digest files the weights under a
    wrong id, so a .nic made for them is then reported as naming an unknown model.
    """
    model = load_model(bytes(data), sha256)
    _registry[model.model_id] = model
    return model.model_id.hex()


SHIPPED_DIR = Path(__file__).resolve().parent.parent / "models"  # the default model (nic.npz) and legacy/


def model_dirs() -> list[Path]:
    """Where ``get_model`` looks: NIC_MODEL_DIR entries, the shipped models/, then models/legacy/.

    models/legacy/ keeps the decoder files of earlier default models (xz-compressed), so files encoded
    before a retrained model was shipped still decode (the site serves only models/*.npz to browsers).
    """
    dirs = [Path(p) for p in os.environ.get("NIC_MODEL_DIR", "").split(os.pathsep) if p]
    return dirs + [SHIPPED_DIR, SHIPPED_DIR / "legacy"]


def read_model_file(path: Path) -> bytes:
    """A model file's bytes; a retired one (``.npz.xz``) is inflated first, to at most ``MAX_MODEL_BYTES``."""
    data = path.read_bytes()
    if not path.name.endswith(RETIRED_SUFFIX):
        return data
    import lzma  # only CPython reads models/legacy/ (Pyodide ships lzma as a separate package)

    inflater = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        data = inflater.decompress(data, max_length=MAX_MODEL_BYTES)
    except lzma.LZMAError as e:
        raise NicError(f"model file {path.name}: not valid xz data ({e})") from None
    if not inflater.eof:
        raise NicError(f"model file {path.name}: truncated, or over {MAX_MODEL_BYTES} bytes once inflated")
    return data


def get_model(model_id: bytes) -> Model:
    if model_id in _registry:
        return _registry[model_id]
    for d in model_dirs():
        if not d.is_dir():
            continue
        # a file named after the id first (export and retire name them so): a legacy file then inflates
        # only its own decoder, not every retired one sorted before it; any other name is found by the scan
        named = [d / f"nic-{model_id.hex()}{suffix}" for suffix in (MODEL_SUFFIX, RETIRED_SUFFIX)]
        scan = sorted([*d.glob("*" + MODEL_SUFFIX), *d.glob("*" + RETIRED_SUFFIX)])
        for path in [p for p in named if p.is_file()] + scan:
            key = str(path.resolve())
            if key not in _scanned:
                _scanned.add(key)
                register_model(read_model_file(path))
            if model_id in _registry:
                return _registry[model_id]
    raise NicError(f"unknown model id {model_id.hex()} "
                   "(no matching model file registered, in models/ or in models/legacy/)")


def save_model(arrays: dict[str, np.ndarray], meta: dict, path: Path) -> str:
    """Write a model file deterministically (fixed zip dates, sorted names); returns its id.

    Members are stored, not deflated: the site sends the file gzip-encoded (the browser inflates it natively),
    and Pyodide then reads a stored member with a copy: registering takes 15 ms instead of 23 (Node).
    """
    buf = io.BytesIO()
    items = dict(arrays, meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8))
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(items):
            arr = io.BytesIO()
            np.lib.format.write_array(arr, np.require(items[name], requirements="C"), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(name + ".npy", date_time=(2020, 1, 1, 0, 0, 0)), arr.getvalue(),
                        compress_type=zipfile.ZIP_STORED)
    data = buf.getvalue()
    tmp = Path(str(path) + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return model_id_of(data).hex()
