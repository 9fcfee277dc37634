"""webdecoder stands alone (NumPy + stdlib); the code base stays ruff clean."""

from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parent.parent


def test_webdecoder_decodes_with_torch_absent(small_files, tmp_path):
    f = tmp_path / "x.nic"
    f.write_bytes(small_files[2])
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['PIL'] = None\n"
        "import webdecoder\n"
        f"out = webdecoder.decode(open({str(f)!r}, 'rb').read())\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print(out.shape)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(96, 160, 3)"


def test_webdecoder_imports_only_numpy_and_stdlib():
    # js: Pyodide's own bridge to JavaScript, part of its runtime (parallel.py imports it only in Pyodide)
    allowed = set(sys.stdlib_module_names) | {"numpy", "webdecoder", "js"}
    for path in (ROOT / "webdecoder").glob("*.py"):
        if path.name == "pillow.py":  # the optional Pillow plugin, imported only by Pillow users
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                assert words[1].split(".")[0] in allowed, f"{path.name}: {line}"


def test_ruff_clean():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
