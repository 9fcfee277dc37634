"""POST /api/encode: upload an image, get a `.nic` file back.

Off by default, because encoding costs seconds of CPU per image and the site may be reachable by others.
It is enabled by either
  * ENCODE_TOKEN (env NIC_ENCODE_TOKEN): then every request must send `Authorization: Bearer <token>`, or
  * ENCODE_API = True (env NIC_ENCODE_API=true): open, meant for a local, single-user demo.
When off, the endpoint answers 404 as if it did not exist.

Request: multipart/form-data with the image in field `image` (or the raw image as the body), optional
`quality` (0..7, default 4) and `depth` (default the site's DEPTH) as form or query fields.
Limits: the body is capped by MAX_CONTENT_LENGTH (Flask answers 413), the pixel count by
MAX_ENCODE_PIXELS (400). `encoder` (torch) is imported on first use only, so the rest of the site
serves without torch installed; without it the endpoint answers 503.
"""

from __future__ import annotations

import hmac
import io
import threading

from flask import Blueprint, Response, abort, current_app, jsonify, request

bp = Blueprint("api", __name__, url_prefix="/api")
# One encode at a time: torch already uses every core, and parallel encodes would only thrash.
_encode_lock = threading.Lock()


def _enabled() -> bool:
    cfg = current_app.config
    return bool(cfg.get("ENCODE_TOKEN")) or bool(cfg.get("ENCODE_API"))


def _error(status: int, message: str) -> Response:
    resp = jsonify({"error": message})
    resp.status_code = status
    return resp


@bp.post("/encode")
def encode() -> Response:
    if not _enabled():
        abort(404)
    token = current_app.config.get("ENCODE_TOKEN")
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), str(token).encode()):
            return _error(401, "missing or wrong bearer token")
    upload = request.files.get("image")
    raw = upload.read() if upload is not None else request.get_data()
    if not raw:
        return _error(400, "no image: send multipart field 'image' or the image as the body")
    try:
        quality = int(request.values.get("quality", 4))
        depth = int(request.values.get("depth", current_app.config["DEPTH"]))
    except ValueError:
        return _error(400, "quality and depth must be integers")
    if not 0 <= quality <= 7:
        return _error(400, "quality must be in 0..7")

    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(raw))
        if img.width * img.height > current_app.config["MAX_ENCODE_PIXELS"]:
            return _error(400, f"image too large: {img.width}x{img.height}")
        img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        return _error(400, f"not a readable image: {e}")
    try:
        import encoder  # lazy: torch is heavy and optional for serving
    except ImportError as e:
        return _error(503, f"encoder unavailable on this server: {e}")
    with _encode_lock:
        data = encoder.encode(img, quality=quality, depth=depth, effort="fast")
    name = (upload.filename if upload is not None and upload.filename else "image").rsplit(".", 1)[0]
    resp = Response(data, mimetype="image/x-nic")
    resp.headers["Content-Disposition"] = f'attachment; filename="{_safe(name)}.nic"'
    return resp


def _safe(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return keep[:80] or "image"
