"""Content-addressed assets: the Pyodide runtime, the webdecoder wheel, model weights and gallery files.

Every file is served under `/a/<digest>/<name>`, where digest is a prefix of the sha256 of the bytes (for
the Pyodide runtime: of its manifest, so the whole folder shares one indexURL). A URL therefore never
changes meaning, and responses carry `Cache-Control: public, max-age=31536000, immutable`: a returning
visitor downloads nothing again. Runtime files with a precompressed `.gz` twin (made by setup_web.sh) are
sent gzip-encoded to clients that accept it, which cuts the 10 MB wasm to about 3 MB. Model weights are
gzipped in memory at startup (their zip members are stored, so the browser inflates and Pyodide only copies).

MIME types are set here rather than left to `mimetypes`: `.nic` is `image/x-nic` (an unregistered,
vendor-style type of our own; browsers never render it themselves, `<nic-img>` does), `.wasm` must be
`application/wasm` for streaming compilation, and `.mjs`/`.js` must be `text/javascript` because module
scripts are MIME-checked.
"""

from __future__ import annotations

from dataclasses import dataclass
import gzip
import hashlib
import io
import json
from pathlib import Path
import sys
from typing import TYPE_CHECKING

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file

from . import bundle

if TYPE_CHECKING:
    from flask import Flask

bp = Blueprint("assets", __name__)

MIME = {
    ".nic": "image/x-nic",
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".zip": "application/zip",
    ".whl": "application/zip",
    ".npz": "application/octet-stream",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".png": "image/png",
}
IMMUTABLE_MAX_AGE = 31536000
_DIGEST_LEN = 20  # hex chars (80 bits): plenty to keep distinct files apart, short enough for URLs


@dataclass
class _Item:
    path: Path | None
    data: bytes | None
    gz: Path | None = None
    gz_data: bytes | None = None  # an in-memory gzip twin (model weights)


class Registry:
    """Maps (digest, name) to a file on disk or bytes in memory."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], _Item] = {}
        self.sizes: dict[str, int] = {}  # url -> bytes on the wire (gzip size where a twin exists)

    def add_file(self, path: Path, name: str | None = None) -> str:
        digest = bundle.sha256_file(path)[:_DIGEST_LEN]
        return self._add(digest, name or path.name, _Item(path, None), path.stat().st_size)

    def add_gzipped(self, path: Path) -> str:
        """A file sent gzip-encoded from an in-memory twin, made once here (mtime 0: the same bytes each run)."""
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:_DIGEST_LEN]
        gz = gzip.compress(data, compresslevel=6, mtime=0)
        return self._add(digest, path.name, _Item(path, None, gz_data=gz), len(gz))

    def add_bytes(self, data: bytes, name: str) -> str:
        digest = hashlib.sha256(data).hexdigest()[:_DIGEST_LEN]
        return self._add(digest, name, _Item(None, data), len(data))

    def add_folder(self, folder: Path, manifest: dict) -> str:
        """All files of one folder under one digest (the runtime: Pyodide resolves names against indexURL)."""
        digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:_DIGEST_LEN]
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix != ".gz" and not p.name.startswith("."):
                gz = p.with_name(p.name + ".gz")
                item = _Item(p, None, gz if gz.is_file() else None)
                self._add(digest, p.name, item, (gz if item.gz else p).stat().st_size)
        return f"/a/{digest}/"

    def _add(self, digest: str, name: str, item: _Item, size: int) -> str:
        self._items[(digest, name)] = item
        url = f"/a/{digest}/{name}"
        self.sizes[url] = size
        return url

    def get(self, digest: str, name: str) -> _Item | None:
        return self._items.get((digest, name))


def registry(app: Flask | None = None) -> Registry:
    return (app or current_app).extensions["nic_registry"]


def init_app(app: Flask) -> None:
    """Hash the runtime bundle, the webdecoder wheel and the model weights once, at startup."""
    reg = Registry()
    app.extensions["nic_registry"] = reg
    runtime: dict[str, object] = {"indexURL": None, "numpyURL": None, "wheelURL": None, "modelURLs": [],
                                  "wheelCompiled": False, "problems": []}
    web = Path(app.config["WEB_DIR"])
    manifest_path = web / "manifest.json"
    if manifest_path.is_file() and (web / "runtime" / "pyodide.asm.wasm").is_file():
        manifest = json.loads(manifest_path.read_text())
        runtime_files = {k: v for k, v in manifest["files"].items() if k.startswith("runtime/")}
        runtime["indexURL"] = reg.add_folder(web / "runtime", runtime_files)
        # The browser unpacks the NumPy wheel itself (nic-core.js), so it needs its URL, not just the lock.
        numpy_wheel = json.loads((web / "runtime" / "pyodide-lock.json").read_text())["packages"]["numpy"]["file_name"]
        if (web / "runtime" / numpy_wheel).is_file():
            runtime["numpyURL"] = runtime["indexURL"] + numpy_wheel
        else:
            runtime["problems"].append(f"the NumPy wheel {numpy_wheel} is missing from {web / 'runtime'}")
    else:
        runtime["problems"].append(f"no runtime bundle in {web}: run scripts/setup_web.sh")
    # The wheel is rebuilt from the webdecoder package CPython imports (deterministic, ~15 KB), so the
    # browser can never run a stale decoder after webdecoder/ changes.
    try:
        name, data = bundle.build_wheel_bytes()
        served = bundle.compiled_wheel(web, name, data)
        runtime["wheelURL"] = reg.add_bytes(served, name)
        runtime["wheelCompiled"] = served is not data
        if not runtime["wheelCompiled"] and runtime["indexURL"]:
            # Works, but every visitor's interpreter compiles the decoder: browser timings are then off.
            print("nic site: webdecoder/ changed since scripts/setup_web.sh byte-compiled it; its wheel is served "
                  "as source (slower start-up) until setup runs again", file=sys.stderr, flush=True)
    except Exception as e:  # no webdecoder importable: pages still serve, decode falls back
        runtime["problems"].append(f"cannot build the webdecoder wheel: {e}")
    model_dir = Path(app.config["MODEL_DIR"])
    for p in sorted(model_dir.glob("*.npz")) if model_dir.is_dir() else []:
        runtime["modelURLs"].append(reg.add_gzipped(p))
    if not runtime["modelURLs"]:
        runtime["problems"].append(f"no model weights (*.npz) in {model_dir}")
    for msg in runtime["problems"]:
        print(f"nic site: {msg}", file=sys.stderr, flush=True)
    app.config["RUNTIME"] = runtime
    app.config["RUNTIME_OK"] = bool(runtime["indexURL"] and runtime["numpyURL"] and runtime["wheelURL"])


def runtime_bytes(app: Flask | None = None) -> dict[str, int]:
    """Bytes a first-time visitor's worker downloads (wire size, i.e. gzip twins where they exist)."""
    app = app or current_app
    rt = app.config["RUNTIME"]
    reg = registry(app)
    out: dict[str, int] = {}
    if rt["indexURL"]:
        # What Pyodide fetches from indexURL at boot: pyodide.js, the asm pair, the stdlib and the lock.
        for n in ("pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"):
            out[n] = reg.sizes.get(rt["indexURL"] + n, 0)
    for url in [rt["numpyURL"], rt["wheelURL"], *rt["modelURLs"]]:  # what nic-core.js fetches itself
        if url:
            out[url.rsplit("/", 1)[1]] = reg.sizes[url]
    return out


@bp.get("/a/<digest>/<path:name>")
def content(digest: str, name: str) -> Response:
    item = registry().get(digest, name)
    if item is None and "nic_entries" not in current_app.extensions:
        # Gallery files are registered when a page first lists them; a client that kept a URL across a
        # server restart asks for it before any page was rendered: register them now rather than 404.
        from .pages import _entries

        _entries()
        item = registry().get(digest, name)
    if item is None:
        abort(404)
    mimetype = MIME.get(Path(name).suffix.lower(), "application/octet-stream")
    gzip_ok = "gzip" in request.headers.get("Accept-Encoding", "")
    if item.gz is not None and gzip_ok:
        resp = send_file(item.gz, mimetype=mimetype, conditional=True, etag=True)
        resp.headers["Content-Encoding"] = "gzip"
    elif item.gz_data is not None and gzip_ok:
        resp = send_file(io.BytesIO(item.gz_data), mimetype=mimetype, download_name=name, etag=digest + "-gz",
                         conditional=True)
        resp.headers["Content-Encoding"] = "gzip"
    elif item.data is not None:
        resp = send_file(io.BytesIO(item.data), mimetype=mimetype, download_name=name, etag=digest,
                         conditional=True)
    else:
        resp = send_file(item.path, mimetype=mimetype, conditional=True, etag=True)
    if item.gz is not None or item.gz_data is not None:
        resp.vary.add("Accept-Encoding")
    resp.cache_control.public = True
    resp.cache_control.max_age = IMMUTABLE_MAX_AGE
    resp.cache_control.immutable = True
    resp.cache_control.no_cache = None
    # The worker fetches these from the same origin; allowing any origin lets a page elsewhere reuse them.
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


def runtime_manifest() -> dict:
    """What nic.js hands the worker: indexURL, wheel and weight URLs (root-relative; nic.js absolutises them against
    /nic-runtime.json) and the bytes a first visit downloads. Served at /nic-runtime.json and written into every
    page (base.html), so that a page's nic.js need not fetch it before its worker can start."""
    return {**current_app.config["RUNTIME"], "bytes": runtime_bytes()}


@bp.app_context_processor
def _templates_get_the_manifest() -> dict:
    return {"runtime_manifest": runtime_manifest}


@bp.get("/nic-runtime.json")
def runtime_json() -> Response:
    resp = jsonify(runtime_manifest())
    resp.cache_control.no_cache = True  # small and must follow the content hashes
    return resp
