"""<nic-img> progressive preview: `preview` fires before `load`, paints CPython's decode_preview pixels, and
the final pixels are the full decode; on a slow network the default ("auto") previews by itself."""

from __future__ import annotations

import hashlib

from nic_e2e import RGB_SHA256_JS, fetch_bytes

# Resolves with every event the element fired, each with the canvas pixels' RGB sha256 at that moment
# (hashed inside the handler, before anything else can repaint).
EVENTS_JS = """
async ({ url, progressive }) => {
  document.querySelector('main').innerHTML = '';
  const el = document.createElement("nic-img");
  if (progressive) el.setAttribute("progressive", progressive);
  const seen = [];
  const snap = (type, detail) => {
    const c = el.shadowRoot.querySelector("canvas");
    const img = c.width ? c.getContext("2d").getImageData(0, 0, c.width, c.height) : null;
    seen.push({ type, detail, state: el.dataset.state, complete: el.complete, sha: img && window.rgbSha256(img) });
  };
  const done = new Promise((resolve) => {
    el.addEventListener("preview", (e) => snap("preview", e.detail));
    el.addEventListener("load", (e) => { snap("load", e.detail); resolve(); });
    el.addEventListener("error", (e) => { snap("error", e.detail); resolve(); });
  });
  el.src = url;
  document.querySelector('main').append(el);
  await done;
  for (const s of seen) s.sha = await s.sha;
  return seen;
}
"""


def _sha(rgb) -> str:
    return hashlib.sha256(rgb.tobytes()).hexdigest()


def test_preview_fires_before_load_with_cpython_preview_pixels(page, server, catalog, cpython_hashes):
    import webdecoder

    e = min(catalog, key=lambda x: x["nic"]["bytes"])
    data = fetch_bytes(server + e["nic"]["url"])
    n = webdecoder.preview_bytes(data)
    want_preview = _sha(webdecoder.decode_preview(data[:n]))
    page.goto(server + "/latency?autorun=0")
    page.evaluate(RGB_SHA256_JS)
    # The JS header parse agrees with webdecoder.preview_bytes (nic.js decides without asking the worker).
    js_n = page.evaluate("async (u) => (await import('/static/nic.js')).previewBytes("
                         "new Uint8Array(await (await fetch(u)).arrayBuffer()))", e["nic"]["url"])
    assert js_n == n < len(data) // 2
    # "always": deterministic on a fast local network, where "auto" would skip the preview.
    seen = page.evaluate(EVENTS_JS, {"url": e["nic"]["url"], "progressive": "always"})
    assert [s["type"] for s in seen] == ["preview", "load"], seen
    pv, ld = seen
    assert pv["state"] == "preview" and pv["complete"] is False and ld["state"] == "loaded" and ld["complete"]
    assert pv["detail"]["bytes"] == n and pv["detail"]["width"] == e["width"] and pv["detail"]["atMs"] > 0
    assert pv["detail"]["atMs"] <= ld["detail"]["atMs"] and ld["detail"]["previewAtMs"] == pv["detail"]["atMs"]
    assert pv["sha"] == want_preview, "preview pixels differ from CPython's decode_preview"
    assert ld["sha"] == cpython_hashes[e["key"]] != pv["sha"], "final pixels must be the full decode"
    d = ld["detail"]
    assert d["totalMac"] == round(d["kmacPerPx"] * 1000) * e["width"] * e["height"]
    assert set(d["stages"]) == {"parse", "z", "hyper", "y", "synthesis"}

    # "off": no preview at all.
    seen = page.evaluate(EVENTS_JS, {"url": e["nic"]["url"], "progressive": "off"})
    assert [s["type"] for s in seen] == ["load"] and seen[0]["detail"]["previewAtMs"] is None


def test_default_previews_on_a_slow_network(page, server, catalog):
    e = max(catalog, key=lambda x: x["nic"]["bytes"])  # the largest file: the longest download
    page.goto(server + "/latency?autorun=0")
    page.evaluate(RGB_SHA256_JS)
    page.evaluate("async () => (await import('/static/nic.js')).ready()")  # runtime in before the throttle
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    # ~10 kB/s: the header + z section (a few kB) arrive long before the rest of the file.
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 100,
                                                   "downloadThroughput": 10_000, "uploadThroughput": 10_000})
    try:
        seen = page.evaluate(EVENTS_JS, {"url": e["nic"]["url"], "progressive": None})
    finally:
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                                                       "downloadThroughput": -1, "uploadThroughput": -1})
    assert [s["type"] for s in seen] == ["preview", "load"], [(s["type"], s["detail"]) for s in seen]
    pv, ld = seen
    assert pv["detail"]["atMs"] < ld["detail"]["atMs"] and pv["sha"] != ld["sha"]
    print(f"\nslow network, {e['nic']['bytes']} B: preview at {pv['detail']['atMs']:.0f} ms "
          f"({pv['detail']['bytes']} B), full image at {ld['detail']['atMs']:.0f} ms "
          f"(download {ld['detail']['fetchMs']:.0f} ms)")
