"""nic demo site: a gallery and a latency page where `.nic` images decode in the browser.

The browser runs the very same `webdecoder` package as CPython, inside Pyodide in a Web Worker.

    create_app(config=None)      Flask app factory (config layering: defaults < NIC_* env < `config`)
    serve(folder, port, host)    what `nic serve [FOLDER] [--port]` calls: prepare assets, print URL, run

Config keys (all can be set as NIC_<KEY> environment variables):
    ASSET_DIR      images and/or .nic files to show; default: the repo's samples/ (Kodak)
    CACHE_DIR      encoded .nic + JPEG/WebP/AVIF comparisons; default build/site-cache
    WEB_DIR        runtime bundle from scripts/setup_web.sh; default build/web
    MODEL_DIR      model weight files (*.npz) served to the browser; default models/
    QUALITIES      qualities the site encodes images at; default [1, 4, 7]
    DEPTH          synthesis depth for those encodes; default 2
    ENCODE_EFFORT  encoder effort for those encodes ("none", "fast", ...); default "fast" (about a
                   minute per image on 2 busy cores; "none" takes seconds, for tests)
    ENCODE_LANES   rANS lane policy for those encodes: "compact" (default: the fewest lanes, 1-3 % smaller
                   files that browsers decode as fast; CPython decodes them slower) or "auto"
    ENCODE_API     enable POST /api/encode (see api.py); default False
    ENCODE_TOKEN   if set, POST /api/encode is enabled and requires `Authorization: Bearer <token>`
    MAX_CONTENT_LENGTH  upload limit in bytes; default 16 MiB
    MAX_ENCODE_PIXELS, ENCODE_CONCURRENCY, ENCODE_QUEUE, ENCODE_QUEUE_TIMEOUT_S, ENCODE_MAX_SGA_STEPS,
    ENCODE_STEP_BUDGET  limits of POST /api/encode (see api.py)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

_PKG = Path(__file__).resolve().parent
# site/nic_site -> repo root, when running from a checkout (the usual case for this project).
_REPO = _PKG.parents[1]
_IN_REPO = (_REPO / "pyproject.toml").is_file() and (_REPO / "webdecoder").is_dir()
_BASE = _REPO if _IN_REPO else Path.cwd()


def default_config() -> dict[str, Any]:
    return {
        "ASSET_DIR": None,
        "SAMPLES_DIR": str(_BASE / "samples"),
        "CACHE_DIR": str(_BASE / "build" / "site-cache"),
        "WEB_DIR": str(_BASE / "build" / "web"),
        "MODEL_DIR": str(_BASE / "models"),
        "QUALITIES": [1, 4, 7],
        "DEPTH": 2,
        "ENCODE_EFFORT": "fast",
        "ENCODE_LANES": "compact",  # the gallery is decoded by browsers only (encoder.codec.LANE_POLICIES)
        "ENCODE_API": False,
        "ENCODE_TOKEN": None,
        "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
        "MAX_ENCODE_PIXELS": 2048 * 2048,  # uploads above are refused (400): an encode is linear in pixels
        "ENCODE_CONCURRENCY": 1,  # encodes at once (torch already uses every core)
        "ENCODE_QUEUE": 4,  # requests that may wait for a slot; more are refused with 503 + Retry-After
        "ENCODE_QUEUE_TIMEOUT_S": 30.0,  # longest wait for a slot before 503 + Retry-After
        "ENCODE_MAX_SGA_STEPS": 300,  # SGA steps per request at most, whatever effort is asked for
        "ENCODE_STEP_BUDGET": 40.0,  # SGA steps x megapixels per request: bounds the time of one encode
        "HOST": "127.0.0.1",
    }


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app. Cheap: it hashes the runtime bundle but encodes nothing (see `serve`)."""
    from flask import Flask  # local: `python -m nic_site.bundle` must work without Flask

    from . import api, assets, catalog, pages, security

    app = Flask(__name__)
    app.config.from_mapping(default_config())
    app.config.from_prefixed_env("NIC")
    if config:
        app.config.from_mapping(config)
    app.config["QUALITIES"] = _int_list(app.config["QUALITIES"])
    if app.config["ENCODE_LANES"] not in ("auto", "compact"):
        raise ValueError(f"ENCODE_LANES must be auto or compact, not {app.config['ENCODE_LANES']!r}")
    # Absolute folders: Flask's send_file resolves a relative path against the package, not the working
    # directory the cache was written from (NIC_CACHE_DIR=build/x gave 500s for every cached file).
    for key in ("ASSET_DIR", "SAMPLES_DIR", "CACHE_DIR", "WEB_DIR", "MODEL_DIR"):
        if app.config.get(key):
            app.config[key] = str(Path(app.config[key]).resolve())
    security.init_app(app)
    assets.init_app(app)
    catalog.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(assets.bp)
    app.register_blueprint(api.bp)
    return app


def _int_list(value: Any) -> list[int]:
    # NIC_QUALITIES may arrive as JSON ([1,4,7]), a single int, or "1,4,7".
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    return [int(v) for v in value]


def serve(folder: str | None, port: int = 8000, host: str = "127.0.0.1") -> None:
    """Serve the site: encode/cache the gallery assets first, print the URL, then block.

    `folder` holds images (encoded at QUALITIES on first start) and/or `.nic` files (served as they
    are); None means the bundled Kodak samples.
    """
    from . import catalog

    overrides: dict[str, Any] = {"HOST": host}
    if folder is not None:
        overrides["ASSET_DIR"] = str(Path(folder).resolve())
    app = create_app(overrides)
    if not app.config["RUNTIME_OK"]:
        print(f"warning: no browser runtime in {app.config['WEB_DIR']}; run scripts/setup_web.sh "
              "(pages will load, but .nic images fall back)", file=sys.stderr, flush=True)
    catalog.get(app).prepare(progress=lambda msg: print(msg, flush=True))
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    print(f"nic site: http://{shown}:{port}/", flush=True)
    # threaded: the gallery fetches many files at once; the dev server is fine for a local demo.
    app.run(host=host, port=port, threaded=True, debug=False, use_reloader=False)
