"""Runs inside Pyodide (bench/pyodide_run.mjs): the wasm matmul kernel loads and matches NumPy bit for bit.

Prints one JSON line: {"kernel": bool, "products_equal": bool, "files": {name: [sha_kernel, sha_numpy]}}.
"""

import hashlib
import json
import sys

import numpy as np

import webdecoder
from webdecoder import conv

models, files = sys.argv[1].split(","), sys.argv[2:]
for m in models:
    webdecoder.register_model(open(m, "rb").read())
kernel = conv._load_kernel()
rng = np.random.default_rng(1)
equal = kernel is not None
for p, k, n in ((4, 1, 4), (5, 3, 7), (75, 6, 1000), (2028, 192, 97), (64, 48, 130)):
    w = rng.integers(-(1 << 14) + 1, 1 << 14, (p, k)).astype(np.float64)  # weights below 2^14
    a = rng.integers(-(1 << 22), (1 << 22) + 1, (k, n)).astype(np.float64)  # activations within +-2^22
    if kernel is not None:
        equal = equal and np.array_equal(kernel(w, a), np.einsum("pk,kn->pn", w, a))
out = {}
for f in files:
    data = open(f, "rb").read()
    conv._kernel = kernel
    with_kernel = hashlib.sha256(webdecoder.decode(data).tobytes()).hexdigest()
    conv._kernel = None  # the NumPy fallback
    without = hashlib.sha256(webdecoder.decode(data).tobytes()).hexdigest()
    out[f] = [with_kernel, without]
print(json.dumps({"kernel": kernel is not None, "products_equal": bool(equal), "files": out}))
