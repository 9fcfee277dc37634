// <nic-img>: an <img>-like element for .nic files, decoded by nic.js in a Web Worker.
//
//   <script type="module" src="/static/nic-img.js"></script>
//   <nic-img src="photo.nic" alt="A lighthouse" width="768" height="512" loading="lazy"
//            fallback="photo.jpg" progressive="auto"></nic-img>
//
// Behaves like <img> where it can: width/height reserve space with the right aspect ratio (no layout
// shift) and are presentational hints that page CSS overrides; loading="lazy" waits until the element is
// near the viewport to fetch and decode its file, but the decoder's runtime (Pyodide, NumPy, weights: ~2 s of
// start-up in its worker, the codec's one-off "install") starts as soon as the first element with a src is in
// the document, so the first image near the viewport does not wait for it too; `load`/`error` events do not bubble and carry
// detail {decodeMs, bytes, kmacPerPx, totalMac, width, height, ...}; `complete`, `naturalWidth`, `naturalHeight`.
// When WebAssembly is missing or decoding fails it fires `error` and shows `fallback` (or the alt text).
//
// Progressive preview (on by default): the file is fetched with a streaming reader; a .nic puts its header
// and the hyper-latent z first (a few % of the bytes), so as soon as those are in the element paints a
// coarse preview (webdecoder.decode_preview: every latent at its predicted mean), sets
// data-state="preview" and fires `preview` (detail {atMs, decodeMs, bytes, width, height}: atMs from the
// start of the load), then the full image and `load`. progressive="auto" (default) previews only when the
// rest of the download is predicted to outlast the preview (a preview costs ~90% of a full decode: the
// hyper-decoder and the synthesis, all but the entropy decode of y, so it pays off on slow networks only;
// nic.js predicts from the download rate and the file's stated MAC cost at the session's measured speed);
// "always" previews even when the whole file is in; "off" never.
// `load` detail also has atMs, previewAtMs (null if no preview), fetchMs, totalMac and stages (ms per
// decoder stage: parse, z, hyper, y, synthesis), so pages can predict decode time from the cost.

import { decodeProgressive, ready, recycle, supported } from "./nic.js";

const ATTRS = ["src", "alt", "width", "height", "loading", "fallback", "progressive"];

const BASE_CSS = `
:host { display: inline-block; position: relative; overflow: hidden; box-sizing: border-box;
        vertical-align: baseline; contain: content; }
:host([hidden]) { display: none; }
canvas { position: absolute; inset: 0; width: 100%; height: 100%; display: block; object-fit: inherit; }
img.fb { display: block; width: 100%; height: 100%; object-fit: inherit; }
:host(:not([width])) img.fb { width: auto; height: auto; max-width: 100%; }
.alt { display: none; font: inherit; color: inherit; padding: 0.2em; overflow-wrap: anywhere; }
:host([data-state="error"]) canvas, :host([data-state="fallback"]) canvas { display: none; }
:host([data-state="error"]) .alt { display: inline; }
`;

// One observer for every lazy element; 200px margin so images are ready just as they scroll in.
let lazyObserver = null;
let runtimeStarted = false; // _bootRuntime ran
function observeLazy(el) {
  if (!lazyObserver) {
    lazyObserver = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (e.isIntersecting) {
          lazyObserver.unobserve(e.target);
          e.target._startNow();
        }
      }
    }, { rootMargin: "200px" });
  }
  lazyObserver.observe(el);
}

function dimension(v) {
  const n = parseInt(v, 10);
  return Number.isFinite(n) && n >= 0 ? n : null;
}

export class NicImg extends HTMLElement {
  static get observedAttributes() {
    return ATTRS;
  }

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    this._sizeStyle = document.createElement("style");
    const base = document.createElement("style");
    base.textContent = BASE_CSS;
    this._canvas = document.createElement("canvas");
    this._canvas.width = 0;
    this._canvas.height = 0;
    this._canvas.setAttribute("aria-hidden", "true");
    this._alt = document.createElement("span");
    this._alt.className = "alt";
    root.append(base, this._sizeStyle, this._canvas, this._alt);
    this._fb = null;
    this._token = 0;
    this._abort = null;
    this._complete = false;
    this._natural = [0, 0];
    this._scheduled = false;
  }

  // Reflecting properties: attributes are the source of truth (side effects live in attributeChanged).
  get src() { return this.getAttribute("src") || ""; }
  set src(v) { this.setAttribute("src", v); }
  get alt() { return this.getAttribute("alt") || ""; }
  set alt(v) { this.setAttribute("alt", v); }
  get fallback() { return this.getAttribute("fallback") || ""; }
  set fallback(v) { this.setAttribute("fallback", v); }
  get loading() { return this.getAttribute("loading") === "lazy" ? "lazy" : "eager"; }
  set progressive(v) { this.setAttribute("progressive", v); }
  get progressive() {
    const v = this.getAttribute("progressive");
    return v === "off" || v === "always" ? v : "auto";
  }
  set loading(v) { this.setAttribute("loading", v); }
  get width() { return dimension(this.getAttribute("width")) ?? this.naturalWidth; }
  set width(v) { this.setAttribute("width", String(v)); }
  get height() { return dimension(this.getAttribute("height")) ?? this.naturalHeight; }
  set height(v) { this.setAttribute("height", String(v)); }
  get complete() { return this._complete; }
  get naturalWidth() { return this._natural[0]; }
  get naturalHeight() { return this._natural[1]; }

  connectedCallback() {
    // A property set before the element was upgraded shadows our accessors: re-apply it.
    for (const p of ATTRS) {
      if (Object.prototype.hasOwnProperty.call(this, p)) {
        const v = this[p];
        delete this[p];
        this[p] = v;
      }
    }
    if (!this.hasAttribute("role")) this.setAttribute("role", "img");
    this._updateAlt();
    this._updateSize();
    this._schedule();
  }

  disconnectedCallback() {
    if (lazyObserver) lazyObserver.unobserve(this);
    this._cancel();
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (oldValue === newValue) return;
    if (name === "alt") this._updateAlt();
    else if (name === "width" || name === "height") this._updateSize();
    else if (name === "progressive") return; // read when a load starts; does not restart one
    else if (this.isConnected) this._schedule(); // src, fallback, loading
  }

  _updateAlt() {
    this.setAttribute("aria-label", this.alt);
    this._alt.textContent = this.alt;
    if (this._fb) this._fb.alt = this.alt;
  }

  // Presentational hints, like <img width height>: a :host rule loses to any page CSS for the element.
  _updateSize() {
    const w = dimension(this.getAttribute("width"));
    const h = dimension(this.getAttribute("height"));
    const [nw, nh] = this._natural;
    const rules = [];
    if (w !== null) rules.push(`width: ${w}px;`);
    if (h !== null) rules.push(`height: ${h}px;`);
    if (w !== null && h !== null && w > 0 && h > 0) rules.push(`aspect-ratio: auto ${w} / ${h};`);
    else if (nw > 0 && nh > 0) rules.push(`aspect-ratio: ${nw} / ${nh};`);
    if (w === null && h === null && nw > 0 && this.dataset.state === "loaded") rules.push(`width: ${nw}px;`);
    this._sizeStyle.textContent = rules.length ? `:host { ${rules.join(" ")} }` : "";
  }

  _cancel() {
    this._token++;
    if (this._abort) this._abort.abort();
    this._abort = null;
  }

  // Coalesce attribute changes made in one task (e.g. src then fallback) into a single load.
  _schedule() {
    if (this._scheduled) return;
    this._scheduled = true;
    queueMicrotask(() => {
      this._scheduled = false;
      if (!this.isConnected) return;
      this._cancel();
      this._complete = false;
      if (lazyObserver) lazyObserver.unobserve(this);
      this._bootRuntime();
      if (this.loading === "lazy" && typeof IntersectionObserver === "function") observeLazy(this);
      else this._startNow();
    });
  }

  // The runtime's start-up, once per page: at the first connected element with a src rather than when a lazy one
  // reaches the viewport (after the first layout: 0.1-0.25 s later on the gallery). Not before the page's module
  // scripts have run (they run before DOMContentLoaded), which may still call nic.js configure(); then in a task
  // of its own, a user-blocking one where the browser has scheduler.postTask: while a page loads, a timer waits
  // behind its layout and image tasks (60 ms on the gallery). Its failure is reported by the decode that awaits it
  // (ready() keeps the error), not here.
  _bootRuntime() {
    if (runtimeStarted || !this.src || !supported()) return;
    runtimeStarted = true;
    const start = () => ready().catch(() => {});
    const soon = () => {
      if (typeof scheduler === "object" && typeof scheduler.postTask === "function") {
        scheduler.postTask(start, { priority: "user-blocking" });
      } else {
        setTimeout(start, 0);
      }
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", soon, { once: true });
    else soon();
  }

  async _startNow() {
    this._cancel();
    const token = this._token;
    const src = this.src;
    if (!src) {
      this._complete = true; // like <img> without src
      return;
    }
    this.dataset.state = "loading";
    if (!supported()) {
      this._fail(token, new Error("WebAssembly is not available"), null);
      return;
    }
    this._abort = new AbortController();
    const onPreview = (p) => {
      if (token !== this._token || this._complete) return;
      this._paint(p);
      this.dataset.state = "preview";
      this._fire("preview", { atMs: p.atMs, decodeMs: p.decodeMs, bytes: p.bytes, width: p.width,
                              height: p.height });
    };
    try {
      const r = await decodeProgressive(src, { signal: this._abort.signal, progressive: this.progressive,
                                                onPreview });
      if (token !== this._token) return; // superseded by a newer src, or removed
      this._paint(r);
      this._removeFallback();
      this.dataset.state = "loaded";
      this._updateSize();
      this._complete = true;
      this._fire("load", { decodeMs: r.decodeMs, bytes: r.bytes, kmacPerPx: r.info.kmac_per_px,
                           totalMac: r.info.total_mac, width: r.width, height: r.height, atMs: r.atMs,
                           fetchMs: r.fetchMs, previewAtMs: r.previewAtMs, stages: r.info.stages_ms });
    } catch (err) {
      if (token !== this._token) return;
      this._fail(token, err, null);
    }
  }

  _paint(r) {
    this._canvas.width = r.width;
    this._canvas.height = r.height;
    this._canvas.getContext("2d").putImageData(r.imageData, 0, 0);
    recycle(r.imageData); // drawn: the canvas holds a copy, the decoder reuses the memory for the next image
    this._natural = [r.width, r.height];
  }

  _fail(token, err, bytes) {
    this._natural = [0, 0];
    this._complete = true;
    const fallback = this.fallback;
    if (fallback) {
      this.dataset.state = "fallback";
      if (!this._fb) {
        this._fb = document.createElement("img");
        this._fb.className = "fb";
        this._fb.decoding = "async";
        // If the fallback image is broken too, show the alt text as <img> would.
        this._fb.addEventListener("error", () => {
          if (token === this._token) this.dataset.state = "error";
        });
        this.shadowRoot.append(this._fb);
      }
      this._fb.alt = this.alt;
      this._fb.src = new URL(fallback, document.baseURI).href;
    } else {
      this.dataset.state = "error";
    }
    this._updateSize();
    this._fire("error", { decodeMs: null, bytes, kmacPerPx: null, width: 0, height: 0,
                          message: String((err && err.message) || err), fallback: fallback || null });
  }

  _removeFallback() {
    if (this._fb) this._fb.remove();
    this._fb = null;
  }

  _fire(type, detail) {
    // Non-bubbling, like <img>'s load/error; listen on the element (or in the capture phase).
    this.dispatchEvent(new CustomEvent(type, { bubbles: false, composed: false, detail }));
  }
}

if (!customElements.get("nic-img")) customElements.define("nic-img", NicImg);
