"""Site hardening with the Flask test client (no browser, no torch): headers, traversal, upload limits, queue."""

from __future__ import annotations

import io
from pathlib import Path
import re
import struct
import sys
import threading
import types
import zlib

import numpy as np
from PIL import Image
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "site"))  # plain checkout: nic_site lives in site/

from nic_site import create_app  # noqa: E402
from nic_site.api import sga_steps  # noqa: E402

SECRET = "TOP-SECRET-CONTENT-outside-the-site"


def tiny_nic(width: int = 8, height: int = 8) -> bytes:
    """A valid .nic without torch: all-zero latents, entropy-coded by the decoder's own coder."""
    from webdecoder import entropy, format
    from webdecoder.hyper import hyper_decode
    from webdecoder.model import SHIPPED_DIR, get_model, model_id_of

    shipped = SHIPPED_DIR / "nic.npz"
    model = get_model(model_id_of(shipped.read_bytes()))
    _, _, hz, wz = format.latent_shape(width, height)
    cz = model["z.offsets"].size - 1
    z = np.zeros((cz, hz, wz), np.int64)
    _, idx = hyper_decode(model, z)
    zr, ze = entropy.encode_values(z, np.repeat(np.arange(cz), hz * wz), model["z.freqs"], model["z.offsets"], 1)
    yr, ye = entropy.encode_values(np.zeros(idx.size, np.int64), idx.ravel(), model["y.freqs"], model["y.offsets"], 1)
    h = format.Header(2, 4, width, height, 1, 1, model.model_id, model.mac_per_px(2), len(zr), len(ze), len(yr),
                      len(ye))
    return format.pack(h, zr, ze, yr, ye)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An app over a folder with one .nic, a symlink to a .nic outside the folder, and a secret file outside."""
    base = tmp_path_factory.mktemp("site")
    web = base / "web"
    (web / "runtime").mkdir(parents=True)
    (web / "runtime" / "pyodide.js").write_text("// js")
    (web / "runtime" / "pyodide.asm.wasm").write_bytes(b"\0asm")
    (web / "runtime" / "pyodide-lock.json").write_text('{"packages": {"numpy": {"file_name": "numpy.whl"}}}')
    (web / "manifest.json").write_text('{"files": {"runtime/pyodide.js": {"sha256": "x", "bytes": 5}}}')
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / "elsewhere.nic").write_bytes(tiny_nic(16, 8))
    assets = base / "assets"
    assets.mkdir()
    (assets / "inside.nic").write_bytes(tiny_nic())
    (assets / "linked.nic").symlink_to(outside / "elsewhere.nic")
    (assets / "secret.png").symlink_to(outside / "secret.txt")
    app = create_app({"TESTING": True, "WEB_DIR": str(web), "CACHE_DIR": str(base / "cache"),
                      "ASSET_DIR": str(assets)})
    client = app.test_client()
    entries = client.get("/catalog.json").get_json()
    return {"app": app, "client": client, "catalog": entries, "base": base}


def _check_headers(r) -> None:
    h = r.headers
    csp = h["Content-Security-Policy"]
    for part in ("default-src 'self'", "'wasm-unsafe-eval'", "frame-ancestors 'none'", "object-src 'none'",
                 "worker-src 'self'"):
        assert part in csp, (r.request.path, part)
    assert "'unsafe-eval'" not in csp.replace("'wasm-unsafe-eval'", "")
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "no-referrer"
    assert h["X-Frame-Options"] == "DENY"


def test_security_headers_on_every_kind_of_response(site):
    client = site["client"]
    nic_url = site["catalog"]["entries"][0]["nic"]["url"]
    rt = client.get("/nic-runtime.json").get_json()
    paths = ["/", "/latency", "/catalog.json", "/nic-runtime.json", "/static/nic.js", "/static/style.css", nic_url,
             rt["indexURL"] + "pyodide.asm.wasm", rt["wheelURL"], "/no/such/page", "/static/nope.js"]
    for path in paths:
        _check_headers(client.get(path))
    _check_headers(client.post("/api/encode", data=b"x"))  # 404 while off
    _check_headers(client.delete("/"))  # 405


def test_inline_script_carries_the_csp_nonce(site):
    r = site["client"].get("/")
    nonce = r.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"'.encode() in r.data
    tags = re.findall(rb"<script[^>]*>", r.data)
    # every inline script that runs; a JSON data block (the runtime manifest) is never executed, so CSP leaves it be
    assert tags and all(b" src=" in t or f'nonce="{nonce}"'.encode() in t or b'type="application/json"' in t
                        for t in tags)
    assert sum(b'type="application/json"' in t for t in tags) == 1
    other = site["client"].get("/").headers["Content-Security-Policy"]
    assert nonce not in other  # fresh per response


def test_content_types(site):
    client = site["client"]
    nic = client.get(site["catalog"]["entries"][0]["nic"]["url"])
    assert nic.status_code == 200 and nic.mimetype == "image/x-nic"
    assert client.get("/").mimetype == "text/html"
    assert client.get("/catalog.json").mimetype == "application/json"
    assert client.get("/static/nic-img.js").mimetype == "text/javascript"
    assert client.get("/static/style.css").mimetype == "text/css"


def test_symlinks_out_of_the_asset_folder_are_not_served(site):
    keys = [e["key"] for e in site["catalog"]["entries"]]
    assert keys == ["inside"]
    errors = " ".join(site["catalog"]["errors"])
    assert "linked.nic: links outside" in errors and "secret.png: links outside" in errors


HOSTILE_PATHS = [
    "/static/../pyproject.toml", "/static/..%2fpyproject.toml", "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/static/%2e%2e%2f%2e%2e%2fpyproject.toml", "/static/..\\..\\pyproject.toml", "/static//etc/passwd",
    "/static/%2fetc%2fpasswd", "/static/....//....//etc/passwd", "/static/%252e%252e/pyproject.toml",
    "/static/nic.js%00.png", "/static/", "/static", "/a/", "/a/x/", "/a/../../etc/passwd",
    "/a/{d}/../../../../etc/passwd", "/a/{d}/%2e%2e/%2e%2e/etc/passwd", "/a/{d}/..%2f..%2f..%2fetc%2fpasswd",
    "/a/{d}//etc/passwd", "/a/{d}/%2fetc%2fpasswd", "/a/{d}/", "/a/{d}/.", "/a/{d}/..", "/a/{d}/runtime",
    "/a/{d}/pyodide.asm.wasm.gz", "/a/{d}/../../outside/secret.txt", "/..%2f..%2fetc/passwd", "//etc/passwd",
    "/templates/base.html", "/nic_site/api.py", "/.git/config", "/api/../pyproject.toml",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_no_path_traversal_or_listing(site, path):
    d = site["app"].config["RUNTIME"]["indexURL"].split("/")[2]
    r = site["client"].get(path.format(d=d))
    assert r.status_code in (404, 400, 308, 301), (path, r.status_code)  # redirects only to normalised paths
    assert SECRET.encode() not in r.data and b"root:" not in r.data and b"[project]" not in r.data
    assert b"Index of" not in r.data and b"<li><a href" not in r.data  # no directory listing
    if r.status_code in (301, 308):  # werkzeug merges "//" (and a decoded %2f) and redirects: still nothing
        assert r.headers["Location"].startswith("/") or "localhost" in r.headers["Location"]
        assert site["client"].get(path.format(d=d), follow_redirects=True).status_code == 404


def _png(w: int = 8, h: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _bomb_png(w: int = 100_000, h: int = 100_000) -> bytes:
    """A PNG whose header claims w x h pixels (a few bytes of data): must be refused from the header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


@pytest.fixture
def fake_encoder(monkeypatch):
    """`encoder` stand-in: records calls; `gate` (an Event) lets a test hold an encode in progress."""
    fake = types.ModuleType("encoder")
    fake.calls = []
    fake.gate = None

    def encode(img, quality=4, depth=2, effort="fast", **kw):
        fake.calls.append({"size": img.size, "quality": quality, "depth": depth, "effort": effort, **kw})
        if fake.gate is not None:
            fake.gate.wait(10)
        return b"NIC" + bytes([quality, depth])

    fake.encode = encode
    monkeypatch.setitem(sys.modules, "encoder", fake)
    return fake


def _api_app(tmp_path: Path, **cfg):
    return create_app({"TESTING": True, "WEB_DIR": str(tmp_path / "none"), "ASSET_DIR": str(tmp_path),
                       "CACHE_DIR": str(tmp_path / "cache"), **cfg})


def test_encode_api_stays_off_unless_configured(tmp_path, fake_encoder, monkeypatch):
    for var in ("NIC_ENCODE_API", "NIC_ENCODE_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    off = _api_app(tmp_path).test_client()
    assert off.post("/api/encode", data={"image": (io.BytesIO(_png()), "a.png")}).status_code == 404
    assert off.post("/api/encode", data=_png()).status_code == 404
    assert fake_encoder.calls == []
    monkeypatch.setenv("NIC_ENCODE_API", "true")
    on = _api_app(tmp_path).test_client()
    assert on.post("/api/encode", data=_png()).status_code == 200
    monkeypatch.delenv("NIC_ENCODE_API")
    monkeypatch.setenv("NIC_ENCODE_TOKEN", "tok")
    tok = _api_app(tmp_path).test_client()
    assert tok.post("/api/encode", data=_png()).status_code == 401
    assert tok.post("/api/encode", data=_png(), headers={"Authorization": "Bearer nope"}).status_code == 401
    assert tok.post("/api/encode", data=_png(), headers={"Authorization": "Bearer tok"}).status_code == 200


def test_encode_api_rejects_bad_uploads_clearly(tmp_path, fake_encoder):
    client = _api_app(tmp_path, ENCODE_API=True, MAX_CONTENT_LENGTH=64 * 1024,
                      MAX_ENCODE_PIXELS=512 * 512).test_client()
    cases = {
        "too big body": (bytes(100_000), {}, 413),
        "empty": (b"", {}, 400),
        "not an image": (b"GIF89a garbage", {}, 400),
        "bomb header": (_bomb_png(), {}, 400),
        "over pixel cap": (_bomb_png(1000, 1000), {}, 400),
        "truncated png": (_png(64, 64)[:60], {}, 400),
        "quality 9": (_png(), {"quality": "9"}, 400),
        "quality text": (_png(), {"quality": "high"}, 400),
        "depth 3": (_png(), {"depth": "3"}, 400),
        "effort ludicrous": (_png(), {"effort": "ludicrous"}, 400),
    }
    for name, (body, query, status) in cases.items():
        r = client.post("/api/encode", data=body, query_string=query)
        assert r.status_code == status, (name, r.status_code, r.data[:200])
        if status != 413:
            assert r.is_json and r.get_json()["error"], name
        _check_headers(r)
    assert fake_encoder.calls == []  # nothing reached the encoder


def test_encode_time_is_bounded_by_the_step_budget(tmp_path, fake_encoder):
    assert sga_steps("fast", 768 * 512, 300, 40.0) == 100  # a Kodak image at "fast": the preset
    assert sga_steps("best", 768 * 512, 300, 40.0) == 101  # 1000 asked: capped by the budget
    assert sga_steps("best", 64 * 64, 300, 40.0) == 300  # small image: capped per request
    assert sga_steps("none", 2048 * 2048, 300, 40.0) == 0
    client = _api_app(tmp_path, ENCODE_API=True).test_client()
    assert client.post("/api/encode", data=_png(2000, 1000), query_string={"effort": "best"}).status_code == 200
    assert fake_encoder.calls[-1]["sga_steps"] == 20  # 40 step-Mpx / 2 Mpx
    assert client.post("/api/encode", data=_png(), query_string={"effort": "fast"}).status_code == 200
    assert "sga_steps" not in fake_encoder.calls[-1]  # preset unchanged


def test_encode_queue_full_answers_503_with_retry_after(tmp_path, fake_encoder):
    app = _api_app(tmp_path, ENCODE_API=True, ENCODE_CONCURRENCY=1, ENCODE_QUEUE=1, ENCODE_QUEUE_TIMEOUT_S=10)
    fake_encoder.gate = threading.Event()
    results: list[int] = []

    def post() -> None:
        results.append(app.test_client().post("/api/encode", data=_png()).status_code)

    running = threading.Thread(target=post)
    running.start()
    while not fake_encoder.calls:  # first request holds the only slot
        threading.Event().wait(0.01)
    waiting = threading.Thread(target=post)
    waiting.start()
    gate = app.extensions["nic_encode_gate"]
    while gate.waiting < 1:  # second one is queued
        threading.Event().wait(0.01)
    r = app.test_client().post("/api/encode", data=_png())  # third: queue full, refused at once
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1 and "busy" in r.get_json()["error"]
    fake_encoder.gate.set()
    running.join(10)
    waiting.join(10)
    assert results == [200, 200]
    assert app.test_client().post("/api/encode", data=_png()).status_code == 200  # slots are given back


def test_encode_queue_wait_is_bounded(tmp_path, fake_encoder):
    app = _api_app(tmp_path, ENCODE_API=True, ENCODE_CONCURRENCY=1, ENCODE_QUEUE=4, ENCODE_QUEUE_TIMEOUT_S=0.2)
    fake_encoder.gate = threading.Event()
    t = threading.Thread(target=lambda: app.test_client().post("/api/encode", data=_png()))
    t.start()
    while not fake_encoder.calls:
        threading.Event().wait(0.01)
    r = app.test_client().post("/api/encode", data=_png())
    assert r.status_code == 503 and "Retry-After" in r.headers
    fake_encoder.gate.set()
    t.join(10)


def test_encoder_errors_are_400_not_500(tmp_path, fake_encoder):
    def broken(img, **kw):
        raise ValueError("image of 1x1 is unsupported by this fake")

    fake_encoder.encode = broken
    client = _api_app(tmp_path, ENCODE_API=True).test_client()
    r = client.post("/api/encode", data=_png())
    assert r.status_code == 400 and "unsupported" in r.get_json()["error"]
    assert client.post("/api/encode", data=_png()).status_code == 400  # the slot was released


def test_download_name_cannot_inject_headers(tmp_path, fake_encoder):
    client = _api_app(tmp_path, ENCODE_API=True).test_client()
    r = client.post("/api/encode", data={"image": (io.BytesIO(_png()), '../../a"\r\nX-Evil: 1.png')})
    assert r.status_code == 200 and "X-Evil" not in r.headers
    cd = r.headers["Content-Disposition"]
    assert "/" not in cd.split("filename=")[1] and cd.count('"') == 2


def test_gallery_urls_work_first_thing_after_a_restart(site, tmp_path):
    """A fresh process (same folders) serves a kept .nic URL before any page was rendered."""
    url = site["catalog"]["entries"][0]["nic"]["url"]
    cfg = {k: site["app"].config[k] for k in ("WEB_DIR", "CACHE_DIR", "ASSET_DIR")}
    fresh = create_app({"TESTING": True, **cfg}).test_client()
    r = fresh.get(url)
    assert r.status_code == 200 and r.mimetype == "image/x-nic"


def test_relative_folders_are_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = create_app({"TESTING": True, "WEB_DIR": "web", "CACHE_DIR": "cache", "ASSET_DIR": "assets"})
    assert all(Path(app.config[k]).is_absolute() for k in ("WEB_DIR", "CACHE_DIR", "ASSET_DIR", "MODEL_DIR"))
