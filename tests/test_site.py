"""Flask site without a browser: config layering, content-hash caching, MIME types, the encode API."""

from __future__ import annotations

import io
from pathlib import Path
import sys
import types
import zipfile

import numpy as np
from PIL import Image
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "site"))  # plain checkout: nic_site lives in site/ (pyproject maps it)

from nic_site import create_app  # noqa: E402
from nic_site.bundle import build_wheel_bytes  # noqa: E402


@pytest.fixture
def fake_web(tmp_path: Path) -> Path:
    """A minimal runtime folder shaped like setup_web.sh output (contents are placeholders)."""
    web = tmp_path / "web"
    rt = web / "runtime"
    rt.mkdir(parents=True)
    (rt / "pyodide.js").write_text("// js")
    (rt / "pyodide.asm.wasm").write_bytes(b"\0asm" + bytes(100))
    (rt / "pyodide.asm.wasm.gz").write_bytes(b"gz")
    numpy_wheel = "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"
    (rt / "pyodide-lock.json").write_text(f'{{"packages": {{"numpy": {{"file_name": "{numpy_wheel}"}}}}}}')
    (rt / numpy_wheel).write_bytes(b"PK placeholder")
    (web / "manifest.json").write_text('{"files": {"runtime/pyodide.js": {"sha256": "x", "bytes": 5}}}')
    return web


@pytest.fixture
def app(tmp_path: Path, fake_web: Path):
    return create_app({"TESTING": True, "WEB_DIR": str(fake_web), "CACHE_DIR": str(tmp_path / "cache"),
                       "ASSET_DIR": str(tmp_path / "empty")})


def test_config_layers_env_then_mapping(monkeypatch, tmp_path, fake_web):
    monkeypatch.setenv("NIC_QUALITIES", "2,5")
    monkeypatch.setenv("NIC_DEPTH", "1")
    app = create_app({"WEB_DIR": str(fake_web), "DEPTH": 2})
    assert app.config["QUALITIES"] == [2, 5]  # from the environment
    assert app.config["DEPTH"] == 2  # the mapping wins over the environment
    assert app.config["ENCODE_API"] is False and app.config["ENCODE_TOKEN"] is None


def test_runtime_manifest_and_immutable_content_urls(app):
    client = app.test_client()
    rt = client.get("/nic-runtime.json").get_json()
    assert rt["indexURL"].startswith("/a/") and rt["wheelURL"].endswith("-py3-none-any.whl")
    # the worker fetches the NumPy wheel itself (while Pyodide boots): the lock's file, from the same folder
    assert rt["numpyURL"].startswith(rt["indexURL"] + "numpy-") and rt["numpyURL"].endswith(".whl")
    assert client.get(rt["numpyURL"]).status_code == 200
    wasm = client.get(rt["indexURL"] + "pyodide.asm.wasm")
    assert wasm.status_code == 200 and wasm.mimetype == "application/wasm"
    cc = wasm.headers["Cache-Control"]
    assert "immutable" in cc and "max-age=31536000" in cc and "public" in cc
    gz = client.get(rt["indexURL"] + "pyodide.asm.wasm", headers={"Accept-Encoding": "gzip, br"})
    assert gz.headers["Content-Encoding"] == "gzip" and gz.data == b"gz"
    assert "Accept-Encoding" in gz.headers["Vary"]
    js = client.get(rt["indexURL"] + "pyodide.js")
    assert js.mimetype == "text/javascript"
    assert client.get("/a/0000/pyodide.js").status_code == 404
    assert client.get("/static/nic.js").mimetype == "text/javascript"


def test_every_page_carries_the_runtime_manifest_inline(app):
    """base.html writes /nic-runtime.json into the page (nic.js reads it there instead of fetching it before its
    worker can start): the same JSON, marked with the URL it stands for, and escaped so that it cannot end its
    element early."""
    import html
    import json
    import re

    client = app.test_client()
    served = client.get("/nic-runtime.json").get_json()
    for path in ("/", "/latency"):
        page = client.get(path).get_data(as_text=True)
        m = re.search(r'<script type="application/json" id="nic-runtime"\s+data-manifest="([^"]*)">(.*?)</script>',
                      page, re.S)
        assert m, f"{path}: no inline runtime manifest"
        assert html.unescape(m.group(1)) == "/nic-runtime.json"
        assert json.loads(m.group(2)) == served
        assert m.start() < page.index('<script type="module" async src="/static/nic-img.js'), "after its reader"
    with app.app_context():
        app.config["RUNTIME"] = {**app.config["RUNTIME"], "problems": ["</script><script>alert(1)</script>"]}
    page = client.get("/latency").get_data(as_text=True)
    body = re.search(r'id="nic-runtime"[^>]*>(.*?)</script>', page, re.S).group(1)
    assert "<" not in body and json.loads(body)["problems"] == ["</script><script>alert(1)</script>"]


def test_model_weights_are_sent_gzip_encoded(app):
    """The model file's zip members are stored (Pyodide copies them); the wire carries it gzipped, and the
    worker's fetch gets the very bytes of models/nic.npz back (the browser inflates Content-Encoding)."""
    import gzip

    client = app.test_client()
    rt = client.get("/nic-runtime.json").get_json()
    url = next(u for u in rt["modelURLs"] if u.endswith("/nic.npz"))
    raw = (ROOT / "models" / "nic.npz").read_bytes()
    gz = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert gz.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in gz.headers["Vary"]
    assert gzip.decompress(gz.data) == raw and len(gz.data) == rt["bytes"]["nic.npz"] < len(raw)
    plain = client.get(url)
    assert "Content-Encoding" not in plain.headers and plain.data == raw
    assert "immutable" in gz.headers["Cache-Control"]


def test_nic_files_are_image_x_nic(app, tmp_path):
    from nic_site import assets

    p = tmp_path / "x.nic"
    p.write_bytes(b"NIC-ish bytes")
    with app.app_context():
        url = assets.registry(app).add_file(p)
    r = app.test_client().get(url)
    assert r.mimetype == "image/x-nic" and r.data == b"NIC-ish bytes"
    assert "immutable" in r.headers["Cache-Control"]


def test_webdecoder_wheel_is_valid_and_deterministic():
    name, data = build_wheel_bytes()
    assert name == "webdecoder-0.1.0-py3-none-any.whl"
    assert build_wheel_bytes()[1] == data  # same sources -> same bytes -> same content-hash URL
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert "webdecoder/__init__.py" in names and "webdecoder-0.1.0.dist-info/RECORD" in names
        assert "Tag: py3-none-any" in zf.read("webdecoder-0.1.0.dist-info/WHEEL").decode()
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_pages_render_without_images(app):
    client = app.test_client()
    assert b"No images to show" in client.get("/").data
    assert b"nicBench" not in client.get("/latency").data  # the page script holds the logic
    assert client.get("/latency").status_code == 200
    assert client.get("/catalog.json").get_json()["entries"] == []


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_encode_api_is_off_by_default(app):
    r = app.test_client().post("/api/encode", data={"image": (io.BytesIO(_png()), "a.png")})
    assert r.status_code == 404


def test_encode_api_with_token(monkeypatch, tmp_path, fake_web):
    fake = types.ModuleType("encoder")
    fake.encode = lambda img, quality=4, depth=2, effort="fast", lanes="auto": (
        b"NIC" + bytes([quality, depth]) + lanes.encode())
    monkeypatch.setitem(sys.modules, "encoder", fake)  # the API imports encoder lazily
    app = create_app({"TESTING": True, "WEB_DIR": str(fake_web), "ENCODE_TOKEN": "s3cret",
                      "MAX_CONTENT_LENGTH": 4096})
    client = app.test_client()
    upload = {"image": (io.BytesIO(_png()), "photo.png"), "quality": "3"}
    assert client.post("/api/encode", data=dict(upload)).status_code == 401
    r = client.post("/api/encode", data={"image": (io.BytesIO(_png()), "photo.png"), "quality": "3"},
                    headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.mimetype == "image/x-nic" and r.data == b"NIC\x03\x02auto"
    assert 'filename="photo.nic"' in r.headers["Content-Disposition"]
    auth = {"Authorization": "Bearer s3cret"}
    r = client.post("/api/encode", data={"image": (io.BytesIO(_png()), "p.png"), "lanes": "compact"}, headers=auth)
    assert r.status_code == 200 and r.data == b"NIC\x04\x02compact"
    r = client.post("/api/encode", data={"image": (io.BytesIO(_png()), "p.png"), "lanes": "few"}, headers=auth)
    assert r.status_code == 400 and "lanes must be auto or compact" in r.get_data(as_text=True)
    big = {"image": (io.BytesIO(bytes(10_000)), "big.png")}
    assert client.post("/api/encode", data=big, headers={"Authorization": "Bearer s3cret"}).status_code == 413
    bad = {"image": (io.BytesIO(b"not an image"), "x.png")}
    assert client.post("/api/encode", data=bad, headers={"Authorization": "Bearer s3cret"}).status_code == 400


def test_missing_runtime_is_reported_not_fatal(tmp_path):
    app = create_app({"TESTING": True, "WEB_DIR": str(tmp_path / "nothing"), "ASSET_DIR": str(tmp_path)})
    assert app.config["RUNTIME_OK"] is False
    client = app.test_client()
    rt = client.get("/nic-runtime.json").get_json()
    assert rt["indexURL"] is None and any("setup_web.sh" in p for p in rt["problems"])
    assert b"Runtime problem" in client.get("/").data  # pages still serve; <nic-img> falls back


def test_runtime_says_whether_the_decoder_wheel_is_byte_compiled(tmp_path, fake_web, capsys):
    """nic-runtime.json's wheelCompiled: the benchmarks refuse to time a site serving webdecoder as source."""
    import hashlib
    import json

    from nic_site import bundle

    app = create_app({"TESTING": True, "WEB_DIR": str(fake_web), "ASSET_DIR": str(tmp_path)})
    assert app.test_client().get("/nic-runtime.json").get_json()["wheelCompiled"] is False
    assert "served as source" in capsys.readouterr().err
    name, data = bundle.build_wheel_bytes()  # what the site builds from the webdecoder CPython imports
    (fake_web / bundle.COMPILED_DIR).mkdir()
    (fake_web / bundle.COMPILED_DIR / name).write_bytes(b"compiled")
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    (fake_web / "runtime" / bundle._STAMP).write_text(json.dumps({name: {"from": sha(data), "to": sha(b"compiled")}}))
    app = create_app({"TESTING": True, "WEB_DIR": str(fake_web), "ASSET_DIR": str(tmp_path)})
    assert app.test_client().get("/nic-runtime.json").get_json()["wheelCompiled"] is True
    assert "served as source" not in capsys.readouterr().err
