"""HTML pages (gallery, latency) and the catalog JSON that the latency page and the e2e tests read."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, render_template

from . import assets, catalog

bp = Blueprint("pages", __name__)


def _entries() -> list[dict]:
    """Catalog entries as JSON-ready dicts with content-hash URLs (computed once per app)."""
    cached = current_app.extensions.get("nic_entries")
    if cached is not None:
        return cached
    cat = catalog.get(current_app)
    cat.prepare()  # no-op after `serve` prepared it; makes `flask run` and tests work too
    reg = assets.registry()
    out = []
    for e in cat.entries:
        d = e.to_json()
        d["nic"]["url"] = reg.add_file(Path(e.nic.path), e.nic.name)
        for fmt, v in e.comparisons.items():
            d["comparisons"][fmt]["url"] = reg.add_file(Path(v.path), v.name)
        out.append(d)
    current_app.extensions["nic_entries"] = out
    return out


@bp.get("/")
def gallery() -> str:
    entries = _entries()
    return render_template("gallery.html", entries=entries, runtime=current_app.config["RUNTIME"],
                           errors=catalog.get(current_app).errors,
                           first_visit=sum(assets.runtime_bytes().values()))


@bp.get("/latency")
def latency() -> str:
    return render_template("latency.html", runtime=current_app.config["RUNTIME"])


@bp.get("/catalog.json")
def catalog_json() -> Response:
    resp = jsonify({"entries": _entries(), "errors": catalog.get(current_app).errors})
    resp.cache_control.no_cache = True
    return resp
