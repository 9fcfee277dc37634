"""Fast wasm32 check without a browser: webdecoder in Pyodide under Node decodes like CPython.

Catches wasm32-only problems (e.g. NumPy's intp is int32 there, so int64 index arrays passed to
`np.repeat`/`np.add.reduceat` raise) in seconds, on small files, before the slower browser tests run.
"""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import subprocess

from nic_e2e import ROOT, files_with_cpython_hashes
import pytest

import webdecoder

HERE = Path(__file__).resolve().parent


def test_webdecoder_in_pyodide_matches_cpython(tmp_path, small_files):
    from nic_site.bundle import build_wheel_bytes


    runtime = ROOT / "build" / "web" / "runtime"
    if not (runtime / "pyodide.mjs").is_file():
        pytest.fail("browser runtime missing: run scripts/setup_web.sh (./dev test does)")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required (scripts/setup_web.sh needs it too)")
    name, wheel = build_wheel_bytes()
    (tmp_path / name).write_bytes(wheel)
    files, want, models = files_with_cpython_hashes(small_files, tmp_path)
    bad = tmp_path / "corrupt.nic"
    bad.write_bytes(small_files[2][: len(small_files[2]) // 2])
    files.append(str(bad))
    # The fuzz corpus' hostile files (escape streams cut or overlong, a lane state below 2^16, a huge image over a
    # tiny stream, ...) take the WebAssembly kernels' paths here (the rANS loop with its value mode, the
    # hyper-decoder's kernels): each must be refused with the very message CPython's NumPy paths give.
    corpus = sorted((ROOT / "tests" / "corpus").glob("*.nic"))
    refused = {}
    for path in corpus:
        with pytest.raises(webdecoder.NicError) as err:
            webdecoder.decode(path.read_bytes())
        refused[str(path)] = f"NicError: {err.value}"
    files += list(refused)
    out = subprocess.run([node, str(HERE / "pyodide_decode.mjs"), str(runtime), str(tmp_path / name),
                          ",".join(map(str, models)), *files], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout[-2000:] or out.stderr[-2000:])
    got = {r["file"]: r for r in map(json.loads, out.stdout.splitlines())}
    for f, sha in want.items():
        assert "error" not in got[f], got[f]["error"]
        assert got[f]["sha256"] == sha, f"Pyodide pixels differ from CPython for {Path(f).name}"
    assert got[str(bad)]["error"].startswith("NicError"), got[str(bad)]
    assert len(refused) >= 8
    for f, message in refused.items():
        assert got[f].get("error") == message, (Path(f).name, got[f], message)


def test_pyodide_ab_compares_two_builds_of_the_kernels_in_one_process(tmp_path, small_files):
    """bench/pyodide_ab.py --so: both builds opened beside each other, swapped in turn, each decoding the same
    pixels (the run stops otherwise) and timed."""
    node = shutil.which("node")
    assert node is not None, "node is required (scripts/setup_web.sh needs it too)"
    nic = tmp_path / "small.nic"
    nic.write_bytes(small_files[2])  # depth 2: every kind of kernel
    so = ROOT / "webdecoder" / "native" / "nicmm.wasm.so"
    other = tmp_path / "copy.so"
    other.write_bytes(so.read_bytes())
    out = subprocess.run([node, str(ROOT / "scripts" / "pyodide_run.mjs"), str(ROOT / "build" / "web" / "runtime"),
                          str(ROOT / "bench" / "pyodide_ab.py"), "--so", str(so), str(other), "--rounds", "2",
                          str(nic)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout[-2000:] or out.stderr[-2000:])
    lines = out.stdout.strip().splitlines()[-2:]
    assert lines[0].startswith(f"A ({so}): median") and lines[1].startswith(f"B ({other}): median"), lines


def test_helper_threads_job_protocol_keeps_templates():
    """nic-helper.js under Node (no Pyodide, nicmm.wasm.so's scale-index kernel on a stand-in heap): a job made from a
    template goes short once the client has its spec ("need" before), and names only the template to the helper
    thread once that thread keeps its calls; a failed job makes the helper forget every template and get whole specs
    again; a job never waited for is let end by the next start, its output dropped; past 64 templates the oldest are
    forgotten on both sides and asked for again. Every job's output is right."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required (scripts/setup_web.sh needs it too)")
    so = ROOT / "webdecoder" / "native" / "nicmm.wasm.so"
    client = ROOT / "site" / "nic_site" / "static" / "nic-helper.js"
    out = subprocess.run([node, str(HERE / "helper_protocol.mjs"), str(so), str(client)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    f = json.loads(out.stdout)
    assert f["allRight"], f
    assert (f["first"]["need"], f["first"]["sentSpec"], f["first"]["keep"]) == (True, True, False)  # its constant moved
    assert (f["second"]["need"], f["second"]["sentSpec"], f["second"]["keep"]) == (False, True, True)
    assert (f["third"]["need"], f["third"]["sentSpec"]) == (False, False)
    assert f["plain"]["sentSpec"] and not f["plain"]["keep"] and f["unknown"] == "need" and f["failed"]
    assert f["afterFailure"]["forget"] == "all" and f["afterFailure"]["sentSpec"]
    assert f["afterAbandoned"]["answer"] is True and f["abandonedDropped"], f
    assert f["again"]["keep"] and not f["againShort"]["sentSpec"]
    assert 1 in f["forgotten"] and 100 in f["forgotten"]
    assert f["evicted"]["need"] and f["evicted"]["keep"]
