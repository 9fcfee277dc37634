"""The optional WebAssembly kernels (webdecoder/native: matmul, fused transposed convs, rANS loop, pixels) in
Pyodide under Node: they load, pass their self-checks, match the NumPy loops on whole and truncated rANS
streams, and decode to exactly the pixels of the NumPy fallback and of CPython: files of the shipped model
(latent within int16: one pass) and of a legacy one (12 fraction bits: split in two passes)."""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import subprocess

from nic_e2e import ROOT, files_with_cpython_hashes
import pytest

HERE = Path(__file__).resolve().parent
LEGACY_SPLIT = "c70e283cb922a40b"  # a model without syn.in_frac: its 17-bit latent takes the split int16 path


@pytest.fixture(scope="module")
def big_files(encoder, kodak) -> dict[str, bytes]:
    """A 256x384 crop at each depth: large enough to be split between the two threads."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(kodak[0]).convert("RGB"))[100:356, 200:584]
    return {f"big-d{d}.nic": encoder.encode(img, 4, d, effort="none") for d in (2, 1)}


def test_wasm_kernel_matches_numpy_and_cpython(tmp_path, small_files, big_files):

    runtime = ROOT / "build" / "web" / "runtime"
    node = shutil.which("node")
    if node is None or not (runtime / "pyodide.mjs").is_file():
        pytest.fail("node and build/web/runtime are required (scripts/setup_web.sh)")
    files, want, models = files_with_cpython_hashes(small_files, tmp_path)
    import hashlib

    import webdecoder

    legacy = ROOT / "tests" / "data" / f"legacy-{LEGACY_SPLIT}-d2.nic"
    files.append(str(legacy))
    want[str(legacy)] = hashlib.sha256(webdecoder.decode(legacy.read_bytes()).tobytes()).hexdigest()
    from webdecoder.model import read_model_file  # models/legacy/ keeps it xz-compressed; Pyodide gets the .npz

    inflated = tmp_path / f"nic-{LEGACY_SPLIT}.npz"
    inflated.write_bytes(read_model_file(ROOT / "models" / "legacy" / f"nic-{LEGACY_SPLIT}.npz.xz"))
    models.append(str(inflated))
    # 256x384 crops at depths 2 and 1: split between the two threads (bands and half products).
    for name, data in big_files.items():
        big = tmp_path / name
        big.write_bytes(data)
        files.append(str(big))
        want[str(big)] = hashlib.sha256(webdecoder.decode(data).tobytes()).hexdigest()
    out = subprocess.run([node, str(ROOT / "scripts" / "pyodide_run.mjs"), "--helper", str(runtime),
                          str(HERE / "pyodide_kernel_check.py"), ",".join(map(str, models)), *files],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["kernel"], "native/nicmm.wasm.so did not load or failed its self-check in Pyodide"
    assert r["products_equal"]
    assert r["rans_kernel"], "the C rANS loop did not load or failed its self-check in Pyodide"
    assert r["rans_equal"], "C and NumPy rANS loops differ (symbols, states, pointer or error)"
    assert r["rans_pause_equal"], "a rANS decode paused mid-stream differs from the whole one, or read ahead"
    assert r["conv_kernels"], "the overlap-add / direct conv kernels did not load or failed their self-check"
    assert r["igdn_kernel"], "the fused iGDN kernel did not load or failed its self-check"
    assert r["igdn16_kernel"], "the int32 iGDN kernel (depth 2's bands) did not load or failed its self-check"
    assert r["pixels_kernel"], "the pixels kernel did not load or failed its self-check"
    assert r["direct_pixels_kernel"], "the output layer + pixels kernel did not load or failed its self-check"
    assert r["requantize_kernel"], "the requantize kernel did not load or failed its self-check"
    assert r["scale_kernel"], "the scale-index kernel did not load or failed its self-check"
    assert r["values_kernel"], "the symbol-values kernel did not load or failed its self-check"
    assert r["wino3_kernel"], "the F(2x2, 3x3) hyper-decoder kernels did not load or failed their self-check"
    assert r["latent_kernel"], "the latent (symbols to synthesis input) kernel did not load or failed its self-check"
    assert r["to_i16t_kernel"], "the int16 operand kernel (conv._int16_parts) did not load or failed its self-check"
    assert r["plans_equal"], "the C plan builders differ from the NumPy plans, or failed their known answers"
    # Each kernel that a decode calls on a whole layer ran again in its check (_native.tier_up), so that V8 has
    # optimised it before that call (a call in progress keeps V8's baseline code to its end).
    hot = {"nic_wino_data16", "nic_wino_convt32", "nic_wino3_data", "nic_wino3_conv", "nic_convt_phase_i16",
           "nic_upres_igdn", "nic_upres_igdn16", "nic_convt_direct_i16_pixels16", "nic_latent16", "nic_rans_decode"}
    assert hot <= set(r["tiered"]), (sorted(hot - set(r["tiered"])), r["check_calls"])
    # Each check is one span on the timeline (webdecoder.trace.span: what bench/first_decode.py reads), once
    spans = {k: n for k, n in r["check_calls"].items() if k.startswith("check:")}
    checks = {"rans", "values", "overlap_add", "direct", "fused", "phase", "winograd", "winograd_plan", "wino3",
              "wino3_plan", "requantize", "scale_index", "latent", "upres_igdn", "upres_igdn16", "pixels",
              "direct_pixels", "to_i16t"}
    assert spans == {"check:" + c: 1 for c in checks}, spans
    # The served NumPy without numpy.linalg: import numpy (and so every decode above) ran on the stub package, which
    # names what is missing when called
    assert r["linalg"][0] == "linalg/__init__.pyc", r["linalg"]
    assert "numpy.linalg is not in nic's decoder runtime" in r["linalg"][1], r["linalg"]
    for f, (with_kernel, numpy_only, (winograd_runs, direct_i16_runs, wino3_runs, phase_runs, latent16_runs)) \
            in r["files"].items():
        assert with_kernel == numpy_only == want[f], Path(f).name
        # The shipped model's depth-2 file takes the Winograd k13/s8 layer (webdecoder/winograd.py) and the int16
        # output layer; depth 1 (k18/s16: 11 % fewer products, not worth it) and the legacy 17-bit latent (beyond
        # int16) take neither Winograd path, and depth 1 has no output layer.
        assert winograd_runs == (Path(f).name in ("d2.nic", "big-d2.nic")), (Path(f).name, winograd_runs)
        # ... whose latent comes as int16 (synthesis.latent_input's narrow); the legacy 17-bit one does not fit it.
        assert latent16_runs == winograd_runs, (Path(f).name, latent16_runs)
        assert direct_i16_runs == (Path(f).name not in ("d1.nic", "big-d1.nic")), (Path(f).name, direct_i16_runs)
        # The hyper-decoder's last layer (3x3) takes F(2x2, 3x3) (webdecoder/wino3.py) in every file: its input
        # stays far below 2^13 (legacy models' too).
        assert wino3_runs == 1, (Path(f).name, wino3_runs)
        # Its two 5x5/s2 layers are gathered by output phase in int16 (conv._phase_i16), every model's.
        assert phase_runs == 2, (Path(f).name, phase_runs)
    # The two-thread schedule: same pixels through recorded jobs run here and through the helper thread;
    # only the large files are split (two jobs: the hyper-decoder's last product and the lower synthesis band, at
    # depth 2 the Winograd band and at depth 1 the k18/s16 layer's lower latent rows).
    # A helper that refuses jobs or fails them changes nothing either: this thread then computes every part.
    # Nor do the splits the learnt shares (parallel.SHARES) may choose, at both ends of their ranges.
    # A decode that raised after starting the helper's job leaves it usable: the next one splits as before.
    error, jobs_after, sha_after = r["after_corrupt"]
    assert error and jobs_after == 2, r["after_corrupt"]
    assert sha_after == want[next(f for f in r["helper"] if f.endswith("big-d2.nic"))]
    for f, (loop_sha, loop_jobs, thread_sha, thread_jobs, *other_shas) in r["helper"].items():
        assert len(other_shas) == 4 and loop_sha == thread_sha == want[f], Path(f).name
        assert set(other_shas) == {want[f]}, Path(f).name  # refusing, failing, low shares, high shares
        split = Path(f).name in ("big-d2.nic", "big-d1.nic")
        assert loop_jobs == thread_jobs == (2 if split else 0), (Path(f).name, loop_jobs, thread_jobs)
