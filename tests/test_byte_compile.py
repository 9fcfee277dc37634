"""The runtime's Python archives are served byte-compiled (site/nic_site/byte_compile.py).

``compile_zip`` normally runs inside Pyodide (bytecode is per interpreter version); its logic is the
same in any CPython, so the unit tests run it here and import the result with this interpreter. The
last test checks the bundle that ``scripts/setup_web.sh`` assembled, when there is one.
"""

import base64
import hashlib
import json
import marshal
from pathlib import Path
import sys
import zipfile

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "site"))

from nic_site import bundle, byte_compile  # noqa: E402
from nic_site.bundle import NUMPY_WHEEL  # noqa: E402


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def test_stdlib_zip_imports_sourceless(tmp_path, monkeypatch):
    src = _zip(tmp_path / "lib.zip", {
        "nicpkg/__init__.py": "from nicpkg.mod import VALUE\n",
        "nicpkg/mod.py": "VALUE = 6 * 7\n",
        "nicpkg/data.txt": "kept as is",
        "broken.py": "def (:\n",  # does not compile: kept as source
    })
    out = tmp_path / "lib-pyc.zip"
    assert byte_compile.compile_zip(src, out, "stdlib") == 2
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert zf.read("nicpkg/data.txt") == b"kept as is"
    assert sorted(names) == ["broken.py", "nicpkg/__init__.pyc", "nicpkg/data.txt", "nicpkg/mod.pyc"]
    monkeypatch.syspath_prepend(str(out))
    import nicpkg  # noqa: PLC0415

    assert nicpkg.VALUE == 42
    assert nicpkg.__spec__.origin.endswith("nicpkg/__init__.pyc")
    # tracebacks name the path the module has inside Pyodide
    assert nicpkg.mod.__spec__.loader.get_code("nicpkg.mod").co_filename == "/lib/python312.zip/nicpkg/mod.py"
    for mod in ("nicpkg", "nicpkg.mod"):
        sys.modules.pop(mod)


def test_wheel_record_lists_the_compiled_files(tmp_path):
    src = _zip(tmp_path / "w-1.0-py3-none-any.whl", {
        "w/__init__.py": "X = 1\n",
        "w-1.0.dist-info/METADATA": "Name: w\n",
        "w-1.0.dist-info/RECORD": "stale\n",
    })
    out = tmp_path / "out.whl"
    assert byte_compile.compile_zip(src, out, "wheel") == 1
    with zipfile.ZipFile(out) as zf:
        record = zf.read("w-1.0.dist-info/RECORD").decode().splitlines()
        pyc = zf.read("w/__init__.pyc")
    digest = base64.urlsafe_b64encode(hashlib.sha256(pyc).digest()).rstrip(b"=").decode()
    assert f"w/__init__.pyc,sha256={digest},{len(pyc)}" in record
    assert record[-1] == "w-1.0.dist-info/RECORD,,"
    assert not any(line.startswith("w/__init__.py,") for line in record)


def test_numpy_wheel_is_trimmed_and_stored(tmp_path):
    src = _zip(tmp_path / "numpy-2.0-py3-none-any.whl", {
        "numpy/__init__.py": "from numpy import linalg\n",
        "numpy/linalg/__init__.py": "from numpy.linalg._linalg import *\n",
        "numpy/linalg/_linalg.py": "from numpy._typing import NDArray\n",
        "numpy/random/__init__.py": "R = 1\n",
        "numpy/_core/_multiarray_umath.cpython-312-wasm32-emscripten.so": "kept",
        "numpy/_core/_umath_tests.cpython-312-wasm32-emscripten.so": "a test extension",
        "numpy/_core/_multiarray_tests.cpython-312-wasm32-emscripten.so": "the one _add_newdocs documents",
        "numpy/_core/_add_newdocs.py": "add_newdoc('numpy._core._multiarray_tests', 'f', 'doc')\n",
        "numpy/linalg/_umath_linalg.cpython-312-wasm32-emscripten.so": "LAPACK, 1.9 MB of wasm",
        "numpy/linalg/lapack_lite.cpython-312-wasm32-emscripten.so": "LAPACK lite",
        "numpy/_core/include/numpy/ndarrayobject.h": "C header",
        "numpy/__init__.pyi": "stub",
        "numpy-2.0.dist-info/RECORD": "stale\n",
    })
    out = tmp_path / "out.whl"
    # numpy/__init__ and the three stubs (numpy.linalg; _add_newdocs and _add_newdocs_scalars, which add no docstrings)
    assert byte_compile.compile_zip(src, out, "numpy") == 4
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())  # unpacking is a copy
        record = zf.read("numpy-2.0.dist-info/RECORD").decode()
    assert names == {"numpy/__init__.pyc", "numpy/linalg/__init__.pyc", "numpy/_core/_add_newdocs.pyc",
                     "numpy/_core/_add_newdocs_scalars.pyc", "numpy-2.0.dist-info/RECORD",
                     "numpy/_core/_multiarray_umath.cpython-312-wasm32-emscripten.so"}
    assert "random" not in record and "numpy/linalg/__init__.pyc,sha256=" in record
    assert "_linalg" not in record and "lapack" not in record
    with zipfile.ZipFile(out) as zf:  # the stub, not the original numpy/linalg/__init__
        stub = marshal.loads(zf.read("numpy/linalg/__init__.pyc")[16:])
    assert "LinAlgError" in stub.co_names and "_linalg" not in stub.co_names
    with zipfile.ZipFile(out) as zf:  # docstrings only: no add_newdoc call, no import of _multiarray_tests
        newdocs = marshal.loads(zf.read("numpy/_core/_add_newdocs.pyc")[16:])
    assert newdocs.co_names == ("__doc__",) and "_multiarray_tests" not in record
    assert byte_compile.numpy_unused("numpy/fft/_pocketfft.pyc") and not byte_compile.numpy_unused("numpy/lib/npyio.py")
    assert byte_compile.numpy_unused("numpy/linalg/_linalg.py") and byte_compile.numpy_unused("numpy/linalg/linalg.pyc")
    assert not byte_compile.numpy_unused("numpy/linalg/__init__.pyc")  # the stub's name: served (the stub)


def test_numpy_linalg_stub_says_what_is_missing():
    """``import numpy`` imports names from the stub package (numpy.matrixlib, numpy.lib's polynomial code): they
    exist; calling one says what is missing; the import system's own lookups (dunder names) find nothing."""
    import types

    stub = types.ModuleType("numpy.linalg")
    exec(byte_compile.NUMPY_STUBS["numpy/linalg/__init__.py"], stub.__dict__)  # noqa: S102 (our own constant)
    inv, matrix_power = stub.inv, stub.matrix_power
    assert inv.__name__ == "inv" and callable(matrix_power) and issubclass(stub.LinAlgError, ValueError)
    with pytest.raises(NotImplementedError, match="numpy.linalg is not in nic's decoder runtime: numpy.linalg.inv"):
        inv([[1.0]])
    with pytest.raises(AttributeError):
        stub.__path__  # noqa: B018 (the lookup is the test)
    assert stub.__all__ == []


def test_package_keeps_sources_and_caches_bytecode(tmp_path, monkeypatch):
    src = _zip(tmp_path / "p-1.0-py3-none-any.whl", {
        "ppkg/__init__.py": "Y = 2\n",
        "p-1.0.dist-info/RECORD": "stale\n",
    })
    out = tmp_path / "p.whl"
    assert byte_compile.compile_zip(src, out, "package") == 1
    tag = sys.implementation.cache_tag
    with zipfile.ZipFile(out) as zf:
        assert zf.read("ppkg/__init__.py") == b"Y = 2\n"
        assert f"ppkg/__pycache__/__init__.{tag}.pyc" in zf.namelist()
        zf.extractall(tmp_path / "site")
    # the unchecked-hash bytecode is used as is, even where the source beside it says otherwise
    (tmp_path / "site" / "ppkg" / "__init__.py").write_text("Y = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    import ppkg  # noqa: PLC0415

    assert ppkg.Y == 2
    sys.modules.pop("ppkg")


def test_site_serves_compiled_webdecoder_only_when_made_from_the_same_wheel(tmp_path):
    name, data = "webdecoder-0.1.0-py3-none-any.whl", b"source wheel bytes"
    assert bundle.compiled_wheel(tmp_path, name, data) == data  # no bundle at all
    (tmp_path / "runtime").mkdir()
    (tmp_path / bundle.COMPILED_DIR).mkdir()
    (tmp_path / bundle.COMPILED_DIR / name).write_bytes(b"compiled")
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    stamp = {name: {"from": sha(data), "to": sha(b"compiled")}}
    (tmp_path / "runtime" / bundle._STAMP).write_text(json.dumps(stamp))
    assert bundle.compiled_wheel(tmp_path, name, data) == b"compiled"
    assert bundle.compiled_wheel(tmp_path, name, b"edited decoder") == b"edited decoder"  # stale: source
    (tmp_path / bundle.COMPILED_DIR / name).write_bytes(b"tampered")
    assert bundle.compiled_wheel(tmp_path, name, data) == data


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown archive kind"):
        byte_compile.compile_in_pyodide(tmp_path, [(tmp_path / "a.zip", tmp_path / "b.zip", "egg")])


def test_served_runtime_is_byte_compiled_and_locked():
    web = ROOT / "build" / "web"
    if not (web / "runtime" / ".byte-compiled.json").is_file():
        pytest.skip("no runtime bundle: run scripts/setup_web.sh")
    runtime = web / "runtime"
    stamp = json.loads((runtime / ".byte-compiled.json").read_text())
    lock = json.loads((runtime / "pyodide-lock.json").read_text())
    served = hashlib.sha256((runtime / NUMPY_WHEEL).read_bytes()).hexdigest()
    assert lock["packages"]["numpy"]["sha256"] == served == stamp[NUMPY_WHEEL]["to"]
    for name in ("python_stdlib.zip", NUMPY_WHEEL):
        with zipfile.ZipFile(runtime / name) as zf:
            names = zf.namelist()
        assert sum(n.endswith(".pyc") for n in names) > 100
        assert not [n for n in names if n.endswith(".py")]  # every module compiled
        with zipfile.ZipFile(web / "source" / name) as zf:  # from the pinned original, module for module
            kept = [n for n in zf.namelist() if n.endswith(".py") and not (name == NUMPY_WHEEL
                                                                           and byte_compile.numpy_unused(n))]
            assert {n + "c" for n in kept} <= set(names)
    with zipfile.ZipFile(runtime / NUMPY_WHEEL) as zf:  # trimmed (byte_compile.NUMPY_UNUSED_DIRS)
        assert not [n for n in zf.namelist() if byte_compile.numpy_unused(n)]
    for name in ("python_stdlib.zip", NUMPY_WHEEL):  # stored: gzip is the HTTP layer's job (the .gz twin)
        with zipfile.ZipFile(runtime / name) as zf:
            assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
        assert (runtime / (name + ".gz")).is_file()
