"""The gallery renders (screenshot checked for content) and the latency page benchmarks every image."""

from __future__ import annotations

import json

from nic_e2e import SCREENSHOTS
import numpy as np
from PIL import Image


def test_gallery_screenshot_is_not_blank(page, server, catalog):
    finished: list = []
    page.on("requestfinished", lambda r: finished.append(r))
    page.goto(server + "/")
    # Every <nic-img> in the first screenful decoded (lazy ones further down are not waited for).
    page.wait_for_function("""() => { const els = [...document.querySelectorAll('nic-img')]
        .filter((el) => el.getBoundingClientRect().top < innerHeight);
      return els.length > 0 && els.every((el) => el.complete && el.dataset.state === 'loaded'); }""")
    page.wait_for_function("[...document.images].slice(0, 3).every((i) => i.complete && i.naturalWidth > 0)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / "gallery.png"
    page.screenshot(path=str(path))
    px = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    assert px.std() > 20, f"screenshot looks blank (std {px.std():.1f})"
    # The decoded <nic-img> itself must hold a picture, not an empty canvas.
    box = page.locator("nic-img").first.bounding_box()
    assert box and box["width"] > 100
    crop = page.locator("nic-img").first.screenshot()
    SCREENSHOTS.joinpath("nic-img.png").write_bytes(crop)
    img = np.asarray(Image.open(SCREENSHOTS / "nic-img.png").convert("L"), dtype=np.float64)
    assert img.std() > 20, f"decoded image region looks blank (std {img.std():.1f})"
    # What a first-time visitor (empty cache) downloaded for the first screenful, as sent on the wire.
    sizes = {r.url.rsplit("/", 1)[-1] or "/": r.sizes()["responseBodySize"] for r in finished}
    runtime = {k: v for k, v in sizes.items() if k.endswith((".wasm", ".whl", ".zip", ".npz", ".json"))
               or k.startswith("pyodide")}
    (SCREENSHOTS / "first-visit-bytes.json").write_text(json.dumps(
        {"total": sum(sizes.values()), "runtime": sum(runtime.values()), "files": sizes}, indent=1))
    print(f"\nfirst visit: {len(sizes)} responses, {sum(sizes.values()) / 1e6:.2f} MB on the wire "
          f"({sum(runtime.values()) / 1e6:.2f} MB decoder runtime + weights)")
    text = page.inner_text("main")
    for e in catalog[:1]:
        assert f"{e['nic']['bytes']} B" in text and "dB" in text and "bpp" in text


def test_latency_page_reports_nic_and_native_decode_times(page, server, catalog):
    page.goto(server + "/latency?reps=2")
    page.wait_for_function("window.nicBenchDone === true", timeout=900_000)
    bench = page.evaluate("window.nicBench")
    assert "error" not in bench, bench
    assert bench["coldStartMs"] > 0 and bench["reps"] == 2
    # the session's first decode is a warm-up, apart from the table; the calibration is the first timed decode
    assert bench["firstDecodeMs"] > 0 and bench["calibration"]["fromKey"] == catalog[0]["key"]
    assert bench["calibration"]["decodeMs"] == bench["images"][0]["decodeMs"][0]
    assert [r["key"] for r in bench["images"]] == [e["key"] for e in catalog]
    for r in bench["images"]:
        assert len(r["decodeMs"]) == 2 and all(ms > 0 for ms in r["decodeMs"])
        for fmt in ("jpeg", "webp", "avif"):
            assert len(r["nativeMs"][fmt]) == 2, (r["key"], fmt)
    assert page.locator("#chart svg rect").count() >= len(catalog) * 4
    with page.expect_download() as dl:
        page.click("#download")
    saved = json.loads(open(dl.value.path()).read())
    assert saved["images"] == bench["images"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "nic-bench.json").write_text(json.dumps(bench, indent=1))
    page.screenshot(path=str(SCREENSHOTS / "latency.png"), full_page=True)
    s = bench["summary"]
    print(f"\ncold start {bench['coldStartMs']:.0f} ms; median decode nic {s['nicMedianMs']} ms, "
          f"native {s['nativeMedianMs']}")
