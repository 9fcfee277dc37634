"""POST /api/encode: upload an image, get a `.nic` file back.

Off by default, because encoding costs seconds of CPU per image and the site may be reachable by others.
It is enabled by either
  * ENCODE_TOKEN (env NIC_ENCODE_TOKEN): then every request must send `Authorization: Bearer <token>`, or
  * ENCODE_API = True (env NIC_ENCODE_API=true): open, meant for a local, single-user demo.
When off, the endpoint answers 404 as if it did not exist.

Request: multipart/form-data with the image in field `image` (or the raw image as the body), optional
`quality` (0..7, default 4) and `depth` (default the site's DEPTH) as form or query fields.
Optional `effort` (none, light, fast, default, best; default fast) and `lanes` (auto, default: files CPython also
decodes fast; compact: 1-3 % smaller files for browser-only use).
Limits, all config keys (NIC_<KEY>):
  * MAX_CONTENT_LENGTH caps the body (Flask answers 413), MAX_ENCODE_PIXELS the pixel count (400, checked
    from the image header before any pixel is decoded: a decompression bomb costs nothing).
  * Time per request: SGA steps = min(effort's steps, ENCODE_MAX_SGA_STEPS, ENCODE_STEP_BUDGET / megapixels).
    An encode's work is (analysis transform + steps x SGA step), both linear in pixels, so pixel cap x step
    budget bound its time; every effort but none adds the rounding step, at most 27 synthesis passes (forward
    and backward), like 27 more steps. (A torch computation cannot be interrupted from outside, so the bound is on
    work, not on a wall-clock deadline.)
  * Load: ENCODE_CONCURRENCY encodes run at once, at most ENCODE_QUEUE more wait (up to
    ENCODE_QUEUE_TIMEOUT_S); anything beyond is answered at once with 503 and `Retry-After`, so a burst of
    uploads cannot pile up threads and memory.
`encoder` (torch) is imported on first use only, so the rest of the site serves without torch installed;
without it the endpoint answers 503.
"""

from __future__ import annotations

import hmac
import io
import math
import threading
import time

from flask import Blueprint, Response, abort, current_app, jsonify, request

bp = Blueprint("api", __name__, url_prefix="/api")
# = encoder.sga.EFFORT_STEPS, copied: no torch here (tests/test_rounding.py checks they agree)
EFFORT_STEPS = {"none": 0, "light": 0, "fast": 100, "default": 300, "best": 1000}


class EncodeGate:
    """ENCODE_CONCURRENCY slots plus a wait queue of ENCODE_QUEUE; `acquire` says False when full or timed out."""

    def __init__(self, slots: int, queue: int, timeout_s: float) -> None:
        self.slots = max(1, slots)
        self.queue = max(0, queue)
        self.timeout_s = timeout_s
        self.running = 0
        self.waiting = 0
        self.busy_s = 0.0  # running mean of one encode's seconds, for Retry-After
        self._cond = threading.Condition()

    def full(self) -> bool:
        """Every slot busy and the queue full: refuse before even reading the upload."""
        with self._cond:
            return self.running >= self.slots and self.waiting >= self.queue

    def acquire(self) -> bool:
        with self._cond:
            if self.running < self.slots:
                self.running += 1
                return True
            if self.waiting >= self.queue:
                return False  # refuse at once: no thread or upload is held for a request we cannot serve
            self.waiting += 1
            try:
                if not self._cond.wait_for(lambda: self.running < self.slots, self.timeout_s):
                    return False
                self.running += 1
                return True
            finally:
                self.waiting -= 1

    def release(self, seconds: float) -> None:
        with self._cond:
            self.running -= 1
            self.busy_s = seconds if self.busy_s == 0 else 0.8 * self.busy_s + 0.2 * seconds
            self._cond.notify()

    def retry_after(self) -> int:
        return max(1, math.ceil(self.busy_s * (1 + self.queue) / self.slots))


def _busy(gate: EncodeGate) -> Response:
    resp = _error(503, "encoder busy: too many encodes queued, retry later")
    resp.headers["Retry-After"] = str(gate.retry_after())
    return resp


def _gate() -> EncodeGate:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    gate = app.extensions.get("nic_encode_gate")
    if gate is None:
        with _gate_lock:
            gate = app.extensions.setdefault("nic_encode_gate", EncodeGate(
                int(app.config["ENCODE_CONCURRENCY"]), int(app.config["ENCODE_QUEUE"]),
                float(app.config["ENCODE_QUEUE_TIMEOUT_S"])))
    return gate


_gate_lock = threading.Lock()


def sga_steps(effort: str, pixels: int, max_steps: int, budget: float) -> int:
    """Steps for one request: the effort's preset, capped per request and by the step x megapixel budget."""
    return int(min(EFFORT_STEPS[effort], max_steps, budget / max(pixels / 1e6, 1e-6)))


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
    if _gate().full():
        return _busy(_gate())
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
    if depth not in (1, 2):
        return _error(400, "depth must be 1 or 2")
    effort = request.values.get("effort", "fast")
    if effort not in EFFORT_STEPS:
        return _error(400, f"effort must be one of {', '.join(EFFORT_STEPS)}")

    lanes = request.values.get("lanes", "auto")
    if lanes not in ("auto", "compact"):
        return _error(400, "lanes must be auto or compact")

    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(raw))
        if img.width * img.height > current_app.config["MAX_ENCODE_PIXELS"]:
            return _error(400, f"image too large: {img.width}x{img.height}")
        img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return _error(400, f"not a readable image: {e}")
    try:
        import encoder  # lazy: torch is heavy and optional for serving
    except ImportError as e:
        return _error(503, f"encoder unavailable on this server: {e}")
    cfg = current_app.config
    steps = sga_steps(effort, img.width * img.height, int(cfg["ENCODE_MAX_SGA_STEPS"]),
                      float(cfg["ENCODE_STEP_BUDGET"]))
    # Pass sga_steps only when it differs from the preset, so `encode(img, quality, depth, effort)` stays the
    # whole interface in the common case.
    extra = {"sga_steps": steps} if steps != EFFORT_STEPS[effort] else {}
    if lanes != "auto":
        extra["lanes"] = lanes
    gate = _gate()
    if not gate.acquire():
        return _busy(gate)
    t0 = time.perf_counter()
    try:
        data = encoder.encode(img, quality=quality, depth=depth, effort=effort, **extra)
    except ValueError as e:  # ImageError is a ValueError: a clear 400, never a 500 with a traceback
        return _error(400, f"cannot encode this image: {e}")
    finally:
        gate.release(time.perf_counter() - t0)
    name = (upload.filename if upload is not None and upload.filename else "image").rsplit(".", 1)[0]
    resp = Response(data, mimetype="image/x-nic")
    resp.headers["Content-Disposition"] = f'attachment; filename="{_safe(name)}.nic"'
    return resp


def _safe(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return keep[:80] or "image"
