"""Byte-compile the runtime's Python archives ahead of time, inside the Pyodide that ships them.

Pyodide 0.27.7's npm ``python_stdlib.zip`` and the NumPy wheel carry only ``.py`` sources, so in the
browser every import first compiles source to bytecode. Measured under Node (``bench/boot_speed.mjs``)
that is most of Pyodide's own boot (1.9 s -> 0.8 s precompiled) and of ``import numpy``. This module
rewrites each ``.py`` member of a zip as a sourceless ``.pyc`` (unchecked-hash, PEP 552), which is what
Pyodide's own build does for the packages on its CDN; every other member is copied unchanged.

Bytecode is specific to the interpreter version, so the compiling runs inside the very Pyodide that is
shipped (under Node), never in the host CPython:

    host CPython:  byte_compile.compile_in_pyodide(npm_dir, [(src, dst, kind), ...])
      -> scripts/pyodide_run.mjs boots npm_dir's Pyodide under Node and runs this file as a script:
    Pyodide:       python byte_compile.py KIND SRC DST [KIND SRC DST ...]

``KIND`` is ``stdlib`` (names as zipimport sees them under ``/lib/python312.zip``), ``wheel``
(installed under site-packages, sourceless; the wheel's RECORD is rewritten to list the ``.pyc``
files) or ``package`` (a wheel that keeps its sources, for readable tracebacks, and gains
``__pycache__/*.cpython-312.pyc`` beside them: our own ``webdecoder``), or ``numpy``: a ``wheel``
trimmed to what the decoder's interpreter imports (``NUMPY_UNUSED_DIRS``). ``stdlib`` and ``numpy``
archives are stored uncompressed: the site sends them gzip-encoded (their ``.gz`` twins), so the browser
inflates them natively instead of Python's ``zipfile``/``zipimport`` inside wasm (Node: Pyodide boot
858 -> 796 ms with the stdlib stored, and 3.59 instead of 4.02 MB on the wire).

Why ``numpy`` is trimmed and stored: the worker's NumPy is private to the decoder, which never imports
``numpy.random``, ``fft``, ``polynomial``, ``ma``, ``f2py`` or ``testing`` (``import numpy`` does not
either), and unpacking the wheel runs Python's ``zipfile`` inside wasm on the critical path of a cold
start. Dropping those packages (and C headers, type stubs, NumPy's own test extensions) halves the
bytes to unpack. ``import numpy`` does import numpy.linalg, which the decoder never calls either: the whole
package goes too (its LAPACK extensions, its 3,000 lines of Python and the typing machinery they import), a stub
taking its place (``NUMPY_STUBS``). Storing the members
uncompressed turns the unpack into a copy, while the HTTP layer still sends the wheel gzip-compressed (its ``.gz``
twin), decompressed natively by the browser.
Stdlib only, like ``bundle``.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
import shutil
import subprocess
import sys
import zipfile

KINDS = {"stdlib": "/lib/python312.zip/", "wheel": "/lib/python3.12/site-packages/",
         "package": "/lib/python3.12/site-packages/", "numpy": "/lib/python3.12/site-packages/"}

# Members of the NumPy wheel that the decoder's interpreter never loads (kind ``numpy``): subpackages that
# ``import numpy`` leaves alone (they load only on attribute access, which webdecoder never makes), C
# headers and static libraries for building extensions, type stubs, and NumPy's own test extensions.
NUMPY_UNUSED_DIRS = ("numpy/random/", "numpy/fft/", "numpy/polynomial/", "numpy/ma/", "numpy/f2py/",
                     "numpy/testing/", "numpy/typing/", "numpy/_pyinstaller/", "numpy/_core/include/",
                     "numpy/_core/lib/", "numpy/_core/tests/", "numpy/tests/")
NUMPY_UNUSED_SUFFIXES = (".pyi", ".pxd", "/py.typed")
NUMPY_TEST_EXTENSIONS = ("_multiarray_tests", "_operand_flag_tests", "_rational_tests", "_simd", "_struct_ufunc_tests",
                         "_umath_tests")
# numpy.linalg (its LAPACK extensions: 2.35 MB of WebAssembly; numpy.linalg._linalg: 3,000 lines of Python, which
# import numpy._typing): ``import numpy`` imports it (numpy.matrixlib and numpy.lib's polynomial code import names
# from it), which compiled _umath_linalg's 1.9 MB on the worker's thread during every cold start and then ran those
# modules (30-40 ms of the BOOT script in Chromium); webdecoder never calls numpy.linalg (its products are matmul
# and einsum, in _multiarray_umath). The served wheel has a stub package in its place (``NUMPY_STUBS``).
NUMPY_STUBBED_PACKAGES = ("numpy/linalg/",)
_LINALG_STUB = '''"""numpy.linalg, left out of nic's decoder runtime (nic_site/byte_compile.py), which never calls it.

``import numpy`` imports names from it (numpy.matrixlib: matrix_power; numpy.lib's polynomial code: eigvals, lstsq,
inv): each is a function that says what is missing when called."""

__all__ = []


class LinAlgError(ValueError):
    """numpy.linalg's error type, for code that catches it."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)

    def missing(*args, **kwargs):
        raise NotImplementedError(f"numpy.linalg is not in nic's decoder runtime: numpy.linalg.{name} was left out "
                                  "with its LAPACK code, which the decoder never calls")

    missing.__name__ = missing.__qualname__ = name
    return missing
'''
# The docstrings NumPy attaches to its C objects at import (267 add_newdoc calls over 199 KB of bytecode, and the one
# that imports the _multiarray_tests extension to document it: ~10 ms of the BOOT script in Chromium): the decoder's
# worker never reads a docstring. The stubs leave them out as ``python -OO`` does, where NumPy adds none either.
_NEWDOCS_STUB = '''"""Docstrings for NumPy's C objects: left out of nic's decoder runtime (nic_site/byte_compile.py),
whose worker never reads them, as NumPy adds none under ``python -OO``."""
'''
NUMPY_STUBS = {"numpy/linalg/__init__.py": _LINALG_STUB,  # member -> source (byte-compiled like the others)
               "numpy/_core/_add_newdocs.py": _NEWDOCS_STUB, "numpy/_core/_add_newdocs_scalars.py": _NEWDOCS_STUB}


def numpy_unused(name: str) -> bool:
    """Whether a member of the NumPy wheel is left out of the served one (see ``NUMPY_UNUSED_DIRS``). A stub's own
    module (``NUMPY_STUBS``, as source or compiled) is served: the stub, not the original of that name."""
    stem = name.rsplit("/", 1)[-1].split(".", 1)[0]
    if name.removesuffix("c") in NUMPY_STUBS:
        return False
    return (name.startswith(NUMPY_UNUSED_DIRS) or name.endswith(NUMPY_UNUSED_SUFFIXES)
            or (name.startswith("numpy/_core/") and name.endswith(".so") and stem in NUMPY_TEST_EXTENSIONS)
            or name.startswith(NUMPY_STUBBED_PACKAGES))

# The repo's one way to run a Python file inside Pyodide under Node (mounts the host folders it names).
PYODIDE_RUN = Path(__file__).resolve().parents[2] / "scripts" / "pyodide_run.mjs"


class ByteCompileError(RuntimeError):
    """Node or Pyodide failed to byte-compile an archive."""


def compile_in_pyodide(pyodide_dir: Path, jobs: list[tuple[Path, Path, str]]) -> None:
    """Host side: byte-compile each (src zip, dst zip, kind) with the Pyodide in ``pyodide_dir``."""
    node = shutil.which("node")
    if node is None:
        raise ByteCompileError("node is needed to byte-compile the runtime (apt-get install nodejs)")
    args = [str(Path(__file__).resolve())]
    for src, dst, kind in jobs:
        if kind not in KINDS:
            raise ValueError(f"unknown archive kind {kind!r}")
        args += [kind, str(Path(src).resolve()), str(Path(dst).resolve())]
    proc = subprocess.run([node, str(PYODIDE_RUN), "--no-numpy", str(Path(pyodide_dir).resolve()), *args],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = [line[:300] for line in (proc.stderr or proc.stdout).strip().splitlines()[-8:]]
        raise ByteCompileError("byte-compiling in Pyodide failed:\n" + "\n".join(tail))


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def compile_zip(src: Path, dst: Path, kind: str) -> int:
    """Inside Pyodide: write ``dst``, ``src`` with every ``.py`` as a sourceless ``.pyc``; returns how many.

    Members keep their order and timestamps; a member that does not compile keeps its source.
    """
    from importlib._bootstrap_external import _code_to_hash_pyc  # noqa: PLC0415 (the interpreter's own)
    import importlib.util  # noqa: PLC0415

    prefix = KINDS[kind]
    members: list[tuple[zipfile.ZipInfo, bytes]] = []
    record_name, compiled = None, 0
    with zipfile.ZipFile(src) as zin:
        infos = [(info, zin.read(info)) for info in zin.infolist()  # a stubbed module's original goes too
                 if not (kind == "numpy" and (numpy_unused(info.filename) or info.filename in NUMPY_STUBS))]
    if kind == "numpy":  # the stubs of what was left out, beside the modules that import them
        stamp = infos[0][0].date_time if infos else (1980, 1, 1, 0, 0, 0)
        infos += [(zipfile.ZipInfo(name, stamp), text.encode()) for name, text in NUMPY_STUBS.items()]
    for info, data in infos:
        if info.filename.endswith(".dist-info/RECORD"):
            record_name = info.filename
        if info.filename.endswith(".py"):
            try:
                code = compile(data, prefix + info.filename, "exec", dont_inherit=True)
            except SyntaxError:
                members.append((info, data))
                continue
            pyc = bytes(_code_to_hash_pyc(code, importlib.util.source_hash(data), checked=False))
            if kind == "package":  # the source stays; the interpreter finds the .pyc in __pycache__
                members.append((info, data))
                folder, _, stem = info.filename[:-3].rpartition("/")
                name = f"{folder}/__pycache__/{stem}.{sys.implementation.cache_tag}.pyc".lstrip("/")
            else:
                name = info.filename + "c"
            out = zipfile.ZipInfo(name, info.date_time)
            out.external_attr = info.external_attr
            members.append((out, pyc))
            compiled += 1
        else:
            members.append((info, data))
    if kind in ("wheel", "package", "numpy"):
        if record_name is None:
            raise ValueError(f"{src}: a wheel without RECORD")
        lines = [_record_line(i.filename, d) for i, d in members if i.filename != record_name]
        record = ("\n".join([*lines, f"{record_name},,"]) + "\n").encode()
        members = [(i, record if i.filename == record_name else d) for i, d in members]
    # Stored, not deflated: the interpreter reads these archives inside wasm (zipimport for the stdlib, an
    # unpack for NumPy), where inflating costs more than the browser's native gzip of the whole file.
    method = zipfile.ZIP_STORED if kind in ("numpy", "stdlib") else zipfile.ZIP_DEFLATED
    tmp = dst.with_name(dst.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", method, compresslevel=9 if method == zipfile.ZIP_DEFLATED else None) as zout:
        for info, data in members:
            info.compress_type = method
            zout.writestr(info, data)
    tmp.replace(dst)
    return compiled


def main(argv: list[str]) -> int:
    """Inside Pyodide: ``KIND SRC DST`` triples."""
    if len(argv) % 3:
        print("usage: byte_compile.py KIND SRC DST [KIND SRC DST ...]", file=sys.stderr)
        return 2
    for i in range(0, len(argv), 3):
        kind, src, dst = argv[i : i + 3]
        n = compile_zip(Path(src), Path(dst), kind)
        print(f"{dst}: {n} modules byte-compiled")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
