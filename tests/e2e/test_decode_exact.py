"""Every gallery .nic decodes in the browser (Pyodide in a Web Worker) to exactly CPython's pixels."""

from __future__ import annotations

from nic_e2e import RGB_SHA256_JS, ROOT

DECODE_ALL_JS = """
async (items) => {
  const nic = await import("/static/nic.js");
  const out = {};
  for (const [key, url] of items) {
    const r = await nic.decodeDetailed(url);
    out[key] = { sha: await window.rgbSha256(r.imageData), width: r.width, height: r.height,
                 decodeMs: r.decodeMs, kernels: r.info.kernels, threads: r.info.threads,
                 helperBytes: r.info.helper_wasm_bytes, trace: r.info.trace_ms || null };
  }
  return { out, stats: nic.stats() };
}
"""


def test_every_sample_is_bit_exact_in_the_worker(page, server, catalog, cpython_hashes):
    samples = sorted(p.stem for p in (ROOT / "samples").glob("*.png"))
    titles = {e["title"] for e in catalog}
    assert titles == set(samples), "the default gallery shows every sample"
    assert len(catalog) == len(samples) * len({e["quality"] for e in catalog}) >= len(samples) * 2

    page.goto(server + "/latency?autorun=0")  # a site page that decodes nothing by itself
    page.evaluate(RGB_SHA256_JS)
    res = page.evaluate(DECODE_ALL_JS, [[e["key"], e["nic"]["url"]] for e in catalog])
    assert res["stats"]["mode"] == "worker"
    got = res["out"]
    for e in catalog:
        assert (got[e["key"]]["width"], got[e["key"]]["height"]) == (e["width"], e["height"])
    mismatched = [k for k, sha in cpython_hashes.items() if got[k]["sha"] != sha]
    assert not mismatched, f"browser pixels differ from CPython for {mismatched}"
    assert all(v["kernels"] for v in got.values()), "the worker decoded without its WebAssembly kernels"
    # The site is cross-origin isolated (COOP + COEP), so the worker's helper thread took part in every
    # decode: these pixels are the two-thread schedule's (bands and half products made by nic-helper.js).
    assert page.evaluate("crossOriginIsolated"), "the site's pages are not cross-origin isolated"
    assert all(v["threads"] == 2 for v in got.values()), "the worker decoded without its helper thread"
    assert 0 < max(v["helperBytes"] for v in got.values()) < 64 << 20, "the helper's memory, as reported"
    ms = sorted(v["decodeMs"] for v in got.values())
    print(f"\n{len(got)} images bit-exact; worker decode ms min/median/max "
          f"{ms[0]:.0f}/{ms[len(ms) // 2]:.0f}/{ms[-1]:.0f}; cold start {res['stats']['coldStartMs']:.0f} ms")


DECODE_BYTES_JS = """
async (b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const nic = await import("/static/nic.js");
  const r = await nic.decodeDetailed(bytes);
  return { sha: await window.rgbSha256(r.imageData), threads: r.info.threads, kernels: r.info.kernels };
}
"""


def test_depth_one_on_two_threads_is_bit_exact(page, server, encoder, kodak):
    """A full-size depth-1 image (the gallery's are depth 2): its k18/s16 layer's lower latent rows run on the
    worker's helper thread (webdecoder.synthesis._one_by_bands), to exactly CPython's pixels."""
    import base64
    import hashlib

    import numpy as np
    from PIL import Image

    import webdecoder

    data = encoder.encode(np.asarray(Image.open(kodak[0]).convert("RGB")), 4, 1, effort="none")
    want = hashlib.sha256(webdecoder.decode(data).tobytes()).hexdigest()
    page.goto(server + "/latency?autorun=0")
    page.evaluate(RGB_SHA256_JS)
    got = page.evaluate(DECODE_BYTES_JS, base64.b64encode(data).decode())
    assert got["threads"] == 2 and got["kernels"], got
    assert got["sha"] == want


def test_one_core_worker_is_bit_exact(page, server, catalog, cpython_hashes):
    """The latency page's ?cores=1: the worker starts no helper thread and computes every band itself."""
    entries = sorted(catalog, key=lambda e: e["nic"]["bytes"])[::3]
    page.goto(server + "/latency?autorun=0&cores=1")
    page.evaluate(RGB_SHA256_JS)
    got = page.evaluate(DECODE_ALL_JS, [[e["key"], e["nic"]["url"]] for e in entries])["out"]
    assert all(v["threads"] == 1 and v["kernels"] for v in got.values())
    assert {k: v["sha"] for k, v in got.items()} == {e["key"]: cpython_hashes[e["key"]] for e in entries}


def test_traced_worker_is_bit_exact_and_reports_its_timeline(page, server, catalog, cpython_hashes):
    """The latency page's ?trace=1 (bench/chromium_timeline.py): every kernel call and helper job of a decode, in
    order, on the worker's clock; timing only, the same pixels. Untraced pages report no timeline."""
    entries = sorted(catalog, key=lambda e: e["nic"]["bytes"])[-2:]
    page.goto(server + "/latency?autorun=0&trace=1")
    page.evaluate(RGB_SHA256_JS)
    got = page.evaluate(DECODE_ALL_JS, [[e["key"], e["nic"]["url"]] for e in entries])["out"]
    assert {k: v["sha"] for k, v in got.items()} == {e["key"]: cpython_hashes[e["key"]] for e in entries}
    for v in got.values():
        names = [name for name, _, _ in v["trace"]]
        assert {"nic_rans_decode", "nic_wino3_conv", "nic_wino_convt32", "job.start", "job.wait"} <= set(names), names
        assert names.index("nic_rans_decode") < names.index("nic_wino_convt32")  # z and y before the synthesis
        ends = [end for _, _, end in v["trace"]]
        assert all(0 <= start <= end for _, start, end in v["trace"]) and ends == sorted(ends)
        assert ends[-1] <= v["decodeMs"]
    page.goto(server + "/latency?autorun=0")
    page.evaluate(RGB_SHA256_JS)
    assert page.evaluate(DECODE_ALL_JS, [[entries[0]["key"], entries[0]["nic"]["url"]]])["out"][entries[0]["key"]][
        "trace"] is None


def test_numpy_only_worker_is_bit_exact(page, server, catalog, cpython_hashes):
    """The latency page's ?kernels=off: the worker boots with NIC_NO_KERNEL and NumPy alone decodes, to the
    same pixels (the reference path that the kernels' self-checks compare against, here in Chromium)."""
    entries = sorted(catalog, key=lambda e: e["nic"]["bytes"])
    entries = [entries[0], entries[-1]]  # the smallest and the largest file: a few seconds without kernels
    page.goto(server + "/latency?autorun=0&kernels=off")
    page.evaluate(RGB_SHA256_JS)
    res = page.evaluate(DECODE_ALL_JS, [[e["key"], e["nic"]["url"]] for e in entries])
    got = res["out"]
    assert not any(v["kernels"] for v in got.values()), "kernels=off still loaded the WebAssembly kernels"
    assert all(v["threads"] == 1 for v in got.values()), "the helper thread runs only kernels: none without them"
    assert {k: v["sha"] for k, v in got.items()} == {e["key"]: cpython_hashes[e["key"]] for e in entries}


RECYCLE_JS = """
async ({ items, mode }) => {
  const nic = await import("/static/nic.js");
  if (mode === "page") nic.configure({ mode: "page" });
  const out = [];
  let last = null;
  for (const [key, url] of items) {
    const r = await nic.decodeDetailed(url);
    last = r.imageData;
    const sha = await window.rgbSha256(r.imageData);
    const taken = nic.recycle(r.imageData);  // as <nic-img> does once the pixels are drawn
    out.push({ key, sha, recycled: r.recycled, taken, leftBytes: r.imageData.data.byteLength });
  }
  // Not an ImageData, or one already handed back: nothing to take.
  return { out, refused: [nic.recycle(null), nic.recycle({}), nic.recycle(last)] };
}
"""


def test_pixels_written_into_handed_back_buffers_are_exact(ctx, server, catalog, cpython_hashes):
    """nic.recycle: a drawn image's pixel buffer goes back to the decoder and the next result of that size is written
    into it (no new memory to fault in). Both modes: every such result equals CPython's pixels, every handed-back
    ImageData is left empty, and the results after the first reuse a buffer (Kodak's landscape and portrait
    images have the same number of pixels)."""
    context, guard = ctx
    entries = sorted(catalog, key=lambda e: e["nic"]["bytes"])[::4]
    items = [[e["key"], e["nic"]["url"]] for e in entries]
    for mode in ("worker", "page"):
        page = guard.watch(context.new_page())
        page.goto(server + "/latency?autorun=0")
        page.evaluate(RGB_SHA256_JS)
        res = page.evaluate(RECYCLE_JS, {"items": items, "mode": mode})
        got = res["out"]
        assert [r["sha"] for r in got] == [cpython_hashes[k] for k, _ in items], mode
        assert all(r["taken"] and r["leftBytes"] == 0 for r in got), (mode, got)
        assert [r["recycled"] for r in got] == [False] + [True] * (len(got) - 1), (mode, got)
        assert res["refused"] == [False, False, False], res["refused"]
        page.close()
