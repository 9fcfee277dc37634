"""<nic-img>: load events and properties, sizing, lazy loading, corrupt files, no-WebAssembly fallback."""

from __future__ import annotations

from nic_e2e import RGB_SHA256_JS

# Adds a <nic-img> and resolves with what a page author would look at, without ever rejecting:
# errors come back as data so the test can assert on them.
ADD_AND_WAIT_JS = """
async ({ attrs, css, bytes }) => {
  const el = document.createElement("nic-img");
  const seen = { bubbledToBody: 0 };
  document.body.addEventListener("load", () => seen.bubbledToBody++);   // bubble phase: must stay 0
  document.body.addEventListener("error", () => seen.bubbledToBody++);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "src" && bytes) continue;
    el.setAttribute(k, v);
  }
  if (bytes) el.setAttribute("src", URL.createObjectURL(new Blob([new Uint8Array(bytes)])));
  if (css) el.style.cssText = css;
  const done = new Promise((resolve) => {
    el.addEventListener("load", (e) => resolve({ type: "load", detail: e.detail, bubbles: e.bubbles }));
    el.addEventListener("error", (e) => resolve({ type: "error", detail: e.detail, bubbles: e.bubbles }));
  });
  document.body.append(el);
  const before = el.getBoundingClientRect();
  const completeBefore = el.complete;
  const ev = await done;
  const fb = el.shadowRoot.querySelector("img.fb");
  if (fb && !fb.complete) await new Promise((r) => { fb.onload = fb.onerror = r; });
  await new Promise((r) => requestAnimationFrame(r));
  const after = el.getBoundingClientRect();
  const canvas = el.shadowRoot.querySelector("canvas");
  let sha = null;
  if (ev.type === "load") {
    sha = await window.rgbSha256(canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height));
  }
  const altSpan = el.shadowRoot.querySelector(".alt");
  return { ...ev, seen, completeBefore, complete: el.complete, naturalWidth: el.naturalWidth,
           naturalHeight: el.naturalHeight, before: [before.width, before.height],
           after: [after.width, after.height], state: el.dataset.state, sha,
           fallbackShown: !!fb && fb.isConnected && getComputedStyle(fb).display !== "none" && fb.naturalWidth > 0,
           altShown: getComputedStyle(altSpan).display !== "none" ? altSpan.textContent : null };
}
"""


def _setup(page, server):
    page.goto(server + "/latency?autorun=0")  # a site page with nic-img.js loaded and nothing decoding
    page.evaluate(RGB_SHA256_JS)
    page.evaluate("document.querySelector('main').innerHTML = ''")


def test_load_event_properties_and_sizing(page, server, catalog, cpython_hashes):
    _setup(page, server)
    e = catalog[0]
    attrs = {"src": e["nic"]["url"], "alt": e["title"], "width": str(e["width"]), "height": str(e["height"])}
    r = page.evaluate(ADD_AND_WAIT_JS, {"attrs": attrs, "css": "", "bytes": None})
    assert r["type"] == "load", r
    assert r["bubbles"] is False and r["seen"]["bubbledToBody"] == 0
    assert r["completeBefore"] is False and r["complete"] is True
    assert (r["naturalWidth"], r["naturalHeight"]) == (e["width"], e["height"])
    d = r["detail"]
    assert d["bytes"] == e["nic"]["bytes"] and d["width"] == e["width"] and d["height"] == e["height"]
    assert d["decodeMs"] > 0 and d["kmacPerPx"] == e["kmac_per_px"]
    # width/height reserve the box before decoding: no layout shift when pixels arrive.
    assert r["before"] == [e["width"], e["height"]] == r["after"]
    assert r["sha"] == cpython_hashes[e["key"]], "canvas pixels differ from CPython's decode"

    # CSS sizes it like <img>: a CSS width with height:auto keeps the aspect ratio from width/height.
    r2 = page.evaluate(ADD_AND_WAIT_JS, {"attrs": attrs, "css": "width: 300px; height: auto", "bytes": None})
    assert r2["type"] == "load"
    want_h = 300 * e["height"] / e["width"]
    assert r2["before"][0] == 300 and abs(r2["before"][1] - want_h) < 1, r2["before"]


def test_lazy_images_decode_only_when_scrolled_into_view(page, server, catalog):
    nic_requests: list[str] = []
    page.on("request", lambda req: nic_requests.append(req.url) if req.url.endswith(".nic") else None)
    page.goto(server + "/")
    page.wait_for_function("document.querySelector('nic-img') && document.querySelector('nic-img').complete")
    last = catalog[-1]
    state = page.evaluate("""() => { const all = [...document.querySelectorAll('nic-img')];
        const el = all[all.length - 1]; const r = el.getBoundingClientRect();
        return { complete: el.complete, top: r.top, vh: innerHeight, n: all.length,
                 done: all.filter((x) => x.complete).length }; }""")
    assert state["n"] == len(catalog)
    assert state["top"] > state["vh"] + 1000, "test needs the last image far below the fold"
    assert not state["complete"]
    assert state["done"] < state["n"] // 2, f"{state['done']} of {state['n']} decoded without scrolling"
    assert not any(u.endswith(last["nic"]["url"]) for u in nic_requests), "off-screen image was fetched"

    page.evaluate("""() => new Promise((resolve, reject) => {
        const all = document.querySelectorAll('nic-img'); const el = all[all.length - 1];
        el.addEventListener('load', resolve); el.addEventListener('error', (e) => reject(new Error(e.detail.message)));
        el.scrollIntoView(); })""")
    assert any(u.endswith(last["nic"]["url"]) for u in nic_requests)
    assert page.evaluate("() => { const a = document.querySelectorAll('nic-img'); return a[a.length - 1].complete; }")


def test_the_runtime_starts_with_the_first_nic_img_even_a_lazy_one_off_screen(page, server, catalog):
    """The codec's start-up (~2 s) begins when a <nic-img> is in the document, not when a lazy one reaches the
    viewport; the element's own file still waits for the viewport."""
    nic_requests: list[str] = []
    manifests: list[str] = []
    page.on("request", lambda req: nic_requests.append(req.url) if req.url.endswith(".nic") else None)
    page.on("request", lambda req: manifests.append(req.url) if "nic-runtime.json" in req.url else None)
    _setup(page, server)
    started = page.evaluate("""async (src) => {
        const nic = await import('/static/nic.js');
        if (nic.stats() !== null) return 'already started';
        const spacer = document.createElement('div');
        spacer.style.height = (innerHeight + 4000) + 'px';
        const el = document.createElement('nic-img');
        el.setAttribute('loading', 'lazy');
        el.setAttribute('src', src);
        document.querySelector('main').append(spacer, el);
        for (let i = 0; i < 2400 && nic.stats() === null; i++) await new Promise((r) => setTimeout(r, 50));
        return { ready: nic.stats() !== null, complete: el.complete, state: el.dataset.state || null };
    }""", catalog[0]["nic"]["url"])
    assert started == {"ready": True, "complete": False, "state": None}, started
    assert not nic_requests, f"an off-screen lazy image was fetched: {nic_requests}"
    assert not manifests, f"the page carries the runtime manifest inline, yet nic.js fetched {manifests}"


def test_nic_js_fetches_the_manifest_it_was_configured_with(page, server, catalog):
    """The page's inline manifest stands for /nic-runtime.json only: configured with another manifest URL, nic.js
    fetches that one (as on a page without the inline copy) and decodes with the runtime it names."""
    manifests: list[str] = []
    page.on("request", lambda req: manifests.append(req.url) if "nic-runtime.json" in req.url else None)
    page.goto(server + "/latency?autorun=0")
    size = page.evaluate("""async (src) => {
        const nic = await import('/static/nic.js');
        nic.configure({ manifestURL: '/nic-runtime.json?copy=1' });
        const r = await nic.decodeDetailed(src);
        return [r.width, r.height];
    }""", catalog[0]["nic"]["url"])
    assert size == [catalog[0]["width"], catalog[0]["height"]]
    assert manifests == [server + "/nic-runtime.json?copy=1"], manifests


def _corrupt_variants(data: bytes) -> dict[str, bytes]:
    from webdecoder import format as nic_format

    mid = len(data) // 2
    flipped = bytearray(data)
    for i in range(mid, min(mid + 64, len(data))):
        flipped[i] ^= 0x5A
    header = bytearray(data)
    header[6] ^= 0xFF  # inside the fixed header
    # Well-formed but for its y stream (written again by format.pack, CRC and all): the decode fails in y's rANS
    # loop, after the helper thread's first job has started.
    h = nic_format.parse(data)
    z_rans, z_esc, y_rans, y_esc = h.sections(data)
    bad_y = bytearray(y_rans)
    for i in range(len(bad_y) // 2, len(bad_y) // 2 + 100):
        bad_y[i] ^= 0x5A
    y_only = nic_format.pack(h, z_rans, z_esc, bytes(bad_y), y_esc)
    return {
        "y-stream-crc-right": y_only,
        "payload-bit-flips": bytes(flipped),
        "header-byte": bytes(header),
        "truncated": data[: len(data) // 3],
        "garbage": bytes((i * 131 + 7) % 256 for i in range(5000)),
        "empty": b"",
    }


def test_corrupt_files_fire_error_show_fallback_and_leave_the_worker_usable(page, server, catalog,
                                                                            cpython_hashes):
    from nic_e2e import fetch_bytes

    _setup(page, server)
    e = catalog[0]
    data = fetch_bytes(server + e["nic"]["url"])
    fallback = e["comparisons"]["jpeg"]["url"]
    for name, bad in _corrupt_variants(data).items():
        attrs = {"alt": f"corrupt {name}", "width": "200", "height": "100", "fallback": fallback}
        r = page.evaluate(ADD_AND_WAIT_JS, {"attrs": attrs, "css": "", "bytes": list(bad)})
        assert r["type"] == "error", (name, r)
        assert r["bubbles"] is False and r["seen"]["bubbledToBody"] == 0
        assert r["complete"] is True and r["naturalWidth"] == 0
        assert r["state"] == "fallback" and r["fallbackShown"], (name, r)
        assert r["detail"]["message"], name
    # Without a fallback the alt text shows, like a broken <img>; a 404 is an error too.
    r = page.evaluate(ADD_AND_WAIT_JS, {"attrs": {"src": "/missing.nic", "alt": "nothing here"},
                                        "css": "", "bytes": None})
    assert r["type"] == "error" and r["state"] == "error" and r["altShown"] == "nothing here"
    # The same worker still decodes a good file correctly afterwards, on both its threads (a decode that failed after
    # starting the helper's job must not leave the helper busy: nic-helper.js lets that job end).
    r = page.evaluate(ADD_AND_WAIT_JS, {"attrs": {"src": e["nic"]["url"], "alt": "ok"}, "css": "", "bytes": None})
    assert r["type"] == "load" and r["sha"] == cpython_hashes[e["key"]]
    assert r["after"] == [e["width"], e["height"]], "without width/height it takes its natural size"
    info = page.evaluate("async (u) => (await (await import('/static/nic.js')).decodeDetailed(u)).info",
                         e["nic"]["url"])
    assert info["threads"] == 2 and len(info["helper_jobs_ms"]) == 2, "one thread only after the corrupt files"


def test_fallback_when_webassembly_is_missing(ctx, server, catalog):
    context, guard = ctx
    context.add_init_script("delete globalThis.WebAssembly;")
    page = guard.watch(context.new_page())
    runtime_requests: list[str] = []
    page.on("request", lambda req: runtime_requests.append(req.url) if "/a/" in req.url else None)
    _setup(page, server)
    e = catalog[0]
    attrs = {"src": e["nic"]["url"], "alt": "no wasm", "width": str(e["width"]), "height": str(e["height"]),
             "fallback": e["comparisons"]["jpeg"]["url"]}
    r = page.evaluate(ADD_AND_WAIT_JS, {"attrs": attrs, "css": "", "bytes": None})
    assert r["type"] == "error" and "WebAssembly" in r["detail"]["message"]
    assert r["fallbackShown"] and r["after"] == [e["width"], e["height"]]
    assert not [u for u in runtime_requests if "pyodide" in u or u.endswith(".nic")], runtime_requests


def test_changing_src_mid_decode_loads_only_the_new_image(page, server, catalog):
    _setup(page, server)
    land = next(e for e in catalog if e["width"] > e["height"])
    port = next(e for e in catalog if e["width"] < e["height"])
    r = page.evaluate("""async ({ a, b }) => {
        const el = document.createElement("nic-img");
        const events = [];
        el.addEventListener("load", (e) => events.push(["load", e.detail.width, e.detail.height]));
        el.addEventListener("error", (e) => events.push(["error", e.detail.message]));
        el.setAttribute("src", a);
        document.body.append(el);
        await new Promise((r) => setTimeout(r, 50));  // first decode is under way
        el.setAttribute("src", b);
        while (!events.length) await new Promise((r) => setTimeout(r, 50));
        await new Promise((r) => setTimeout(r, 3000));  // a stale result would arrive in this window
        return { events, natural: [el.naturalWidth, el.naturalHeight] };
    }""", {"a": land["nic"]["url"], "b": port["nic"]["url"]})
    assert r["events"] == [["load", port["width"], port["height"]]], r
    assert r["natural"] == [port["width"], port["height"]]


def test_a_hung_decode_times_out_and_the_worker_is_replaced(page, server, catalog):
    _setup(page, server)
    url = catalog[0]["nic"]["url"]
    r = page.evaluate("""async (url) => {
        const nic = await import("/static/nic.js");
        await nic.ready();
        nic.configure({ timeoutMs: 20 });  // far below a real decode: treated as a hung worker
        let first;
        try { await nic.decode(url); first = "resolved"; } catch (e) { first = e.message; }
        nic.configure({ timeoutMs: 180000 });
        const img = await nic.decode(url);  // a fresh worker is started and decodes normally
        return { first, width: img.width };
    }""", url)
    assert "timed out" in r["first"], r
    assert r["width"] == catalog[0]["width"]
