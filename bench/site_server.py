"""Start the real site the way the README does (`nic serve`) on a free loopback port.

Shared by the browser benchmark and the e2e tests so that both measure the same thing.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import json
import os
from pathlib import Path
import queue
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse
import urllib.request

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(port: int) -> list[str]:
    nic = Path(sys.executable).with_name("nic")
    if nic.is_file():
        return [str(nic), "serve", "--port", str(port)]
    return [sys.executable, "-m", "nic_site", "--port", str(port)]


def catalog(url: str) -> list[dict]:
    """The entries of a running site's ``/catalog.json`` (its sample images, their .nic and comparison files)."""
    return json.loads(urllib.request.urlopen(url + "/catalog.json", timeout=60).read())["entries"]


def catalog_entry(url: str, key: str) -> dict:
    """The running site's catalog entry ``key`` (e.g. "kodim01-q4"); SystemExit naming it where the site has none."""
    entry = next((e for e in catalog(url) if e["key"] == key), None)
    if entry is None:
        raise SystemExit(f"no catalog entry {key!r} on the site at {url}")
    return entry


def require_compiled_decoder(url: str) -> None:
    """Refuse to time a site that serves the webdecoder wheel as source (webdecoder/ edited after
    scripts/setup_web.sh): its start-up and first decode would measure the interpreter compiling it."""
    rt = json.loads(urllib.request.urlopen(url + "/nic-runtime.json", timeout=60).read())
    if not rt.get("wheelCompiled", True):  # a checkout from before the flag existed: not known, not refused
        raise RuntimeError(f"{url} serves webdecoder as source, not byte-compiled: run scripts/setup_web.sh "
                           "(in that checkout) before measuring")


@contextlib.contextmanager
def running_site(cache_dir: Path, startup_timeout_s: float, extra_env: dict[str, str] | None = None,
                 root: Path = ROOT) -> Iterator[str]:
    """Yield the base URL of a running `nic serve`; RuntimeError (with its log) if it does not start.

    Encoder effort defaults to "none" (NIC_ENCODE_EFFORT overrides) so a first start is quick.
    ``extra_env`` adds settings for this server only (e.g. ``NIC_WEB_DIR``: another runtime bundle);
    ``root`` serves another checkout's site code (e.g. a ``git worktree`` of an older commit).
    """
    port = free_port()
    env = dict(os.environ, **(extra_env or {}))
    env.setdefault("NIC_CACHE_DIR", str(cache_dir))
    env.setdefault("NIC_ENCODE_EFFORT", "none")
    # Works from a plain checkout too (editable install not required).
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(root / "site"), str(root), env.get("PYTHONPATH")] if p)
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(server_command(port), cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []

    def pump() -> None:  # keep draining the pipe so the server never blocks on a full buffer
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    url = None
    deadline = time.monotonic() + startup_timeout_s
    try:
        while url is None:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{''.join(log[-40:])}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not print its URL in {startup_timeout_s:.0f} s:\n{''.join(log[-40:])}")
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line.startswith("nic site: http://"):
                url = line.split(": ", 1)[1].strip().rstrip("/")
        if urlparse(url).hostname != "127.0.0.1":
            raise RuntimeError(f"server is not on loopback: {url}")
        # The URL is printed just before app.run binds; wait until it answers.
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/nic-runtime.json", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
