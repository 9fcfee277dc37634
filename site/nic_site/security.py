"""Security headers on every response, and a per-request CSP nonce for the one inline script.

Content-Security-Policy, and why each source is allowed:
  script-src 'self' 'nonce-…' 'wasm-unsafe-eval'
      our scripts and Pyodide's come from this origin; the gallery's small inline module carries the
      nonce; Pyodide compiles WebAssembly, which CSP treats as eval unless 'wasm-unsafe-eval' is given
      (no 'unsafe-eval': JavaScript eval stays off).
  worker-src 'self'             the decode worker is a same-origin classic worker (nic-worker.js).
  connect-src 'self' blob: data:
      fetch() of .nic files, the runtime and /nic-runtime.json; <nic-img src> may be a blob:/data: URL
      (a file the user picked), which nic.js fetches too.
  img-src 'self' data: blob:    fallback images, the data: favicon, blob: URLs of the latency page.
  style-src 'self' 'unsafe-inline'
      <nic-img> builds <style> elements in its shadow root (size hints per element); styles cannot run code.
  object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none' (with X-Frame-Options DENY
  for old browsers: no clickjacking frames).
A worker's CSP is the one sent with its script, so the same header on every response covers the worker too.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from flask import g

if TYPE_CHECKING:
    from flask import Flask, Response


def csp(nonce: str) -> str:
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'",
        "worker-src 'self'",
        "connect-src 'self' blob: data:",
        "img-src 'self' data: blob:",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def add_headers(resp: Response) -> Response:
    h = resp.headers
    h.setdefault("Content-Security-Policy", csp(_nonce()))
    h.setdefault("X-Content-Type-Options", "nosniff")  # a .nic or upload is never sniffed into HTML/script
    h.setdefault("Referrer-Policy", "no-referrer")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    # With COOP, makes the pages cross-origin isolated: SharedArrayBuffer, which the decode worker's helper
    # thread needs (nic-helper.js). Every resource of the site is same-origin, so nothing else changes.
    h.setdefault("Cross-Origin-Embedder-Policy", "require-corp")
    return resp


def init_app(app: Flask) -> None:
    app.after_request(add_headers)
    # Templates write <script nonce="{{ csp_nonce }}">; the header sent later uses the same value (g).
    app.context_processor(lambda: {"csp_nonce": _nonce()})
