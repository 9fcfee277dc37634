"""Load and fault test of the real server (`nic serve`), loopback only, bounded in count and time.

    nice -n 15 .venv/bin/python -m bench.load --requests 2000 --clients 32 -o build/load/load.json

1. Builds a small asset folder (crops of the Kodak samples) and starts `nic serve FOLDER --port P` as the
   README does, with NIC_ENCODE_API=true, NIC_ENCODE_EFFORT=none and a fresh cache folder.
2. Fault 1: kills the server (SIGKILL) while its first start is still writing the cache, starts it again.
3. Load: --requests requests from --clients threads (http.client, one keep-alive connection each), mixing
   pages, runtime files, model weights, .nic and comparison images (bodies checked against the sha256 in
   their content-addressed URL), encode uploads (small PNGs: expect 200, or 503 + Retry-After when the
   bounded queue is full) and hostile paths (expect 404/400).
4. Fault 2: at half the requests the server is SIGKILLed and restarted; requests that fail while it is down
   are counted apart ("during restart"), everything else that is not the expected status is "unexpected".
5. Afterwards: the server still answers; then every cached .nic decodes, every cached image opens, every
   cached JSON parses, and no temporary file is left behind.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
from pathlib import Path
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ["/static/../pyproject.toml", "/static/%2e%2e/%2e%2e/etc/passwd", "/a/x/..%2f..%2fetc%2fpasswd",
           "/static/", "/a/", "//etc/passwd", "/.git/config"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`nic serve` in a subprocess; output is kept (and echoed with --verbose)."""

    def __init__(self, folder: Path, cache: Path, port: int, verbose: bool) -> None:
        self.folder, self.cache, self.port, self.verbose = folder, cache, port, verbose
        self.proc: subprocess.Popen[str] | None = None
        self.log: list[str] = []
        self.ready = threading.Event()
        self.progress = threading.Event()  # first "encoding"/"making" line of this start

    def start(self) -> None:
        nic = Path(sys.executable).with_name("nic")
        cmd = [str(nic), "serve"] if nic.is_file() else [sys.executable, "-m", "nic_site"]
        env = dict(os.environ, NIC_ENCODE_API="true", NIC_ENCODE_EFFORT="none", NIC_CACHE_DIR=str(self.cache),
                   NIC_QUALITIES="1,4", PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "site")]))
        self.ready.clear()
        self.progress.clear()
        self.proc = subprocess.Popen([*cmd, str(self.folder), "--port", str(self.port)], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.log.append(line.rstrip())
            if self.verbose:
                print("  server:", line.rstrip(), flush=True)
            if line.startswith(("encoding ", "making ")):
                self.progress.set()
            if "nic site: http://" in line:
                self.ready.set()

    def wait_ready(self, timeout: float) -> float:
        t0 = time.perf_counter()
        while not self.ready.wait(0.5):
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("server exited:\n" + "\n".join(self.log[-20:]))
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError("server not ready in time:\n" + "\n".join(self.log[-20:]))
        while time.perf_counter() - t0 < timeout:  # the URL is printed just before app.run binds
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return time.perf_counter() - t0
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server printed its URL but does not accept connections")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def make_assets(folder: Path, n: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for p in sorted((ROOT / "samples").glob("*.png"))[:n]:
        im = Image.open(p).convert("RGB")
        im.crop((0, 0, size, size)).save(folder / p.name)


def small_png(rng: random.Random) -> bytes:
    w, h = rng.choice(((16, 16), (32, 24), (48, 32), (64, 64)))
    arr = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (h, w, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def get_json(port: int, path: str) -> Any:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError(f"GET {path}: {r.status}")
    return json.loads(body)


def url_pool(port: int) -> dict[str, list[str]]:
    cat = get_json(port, "/catalog.json")
    rt = get_json(port, "/nic-runtime.json")
    nic = [e["nic"]["url"] for e in cat["entries"]]
    images = [v["url"] for e in cat["entries"] for v in e["comparisons"].values()]
    names = ("pyodide.js", "pyodide-lock.json", "pyodide.asm.js")
    runtime = [rt["indexURL"] + n for n in names] if rt["indexURL"] else []
    return {
        "page": ["/", "/latency", "/catalog.json", "/nic-runtime.json", "/static/nic.js", "/static/nic-img.js",
                 "/static/nic-worker.js", "/static/nic-core.js", "/static/style.css"],
        "runtime": runtime + ([rt["wheelURL"]] if rt["wheelURL"] else []),
        "big": ([rt["indexURL"] + "pyodide.asm.wasm"] if rt["indexURL"] else []) + rt["modelURLs"],
        "nic": nic,
        "image": images,
    }


class Load:
    def __init__(self, port: int, pool: dict[str, list[str]], args: argparse.Namespace) -> None:
        self.port, self.pool, self.args = port, pool, args
        self.lock = threading.Lock()
        self.next_i = 0
        self.records: list[dict[str, Any]] = []
        self.restarting = threading.Event()
        self.restart_window: list[float] = []
        rt_index = next((u.rsplit("/", 1)[0] for u in pool["runtime"] if u.endswith("pyodide.js")), None)
        self.hashed = {u for k in ("nic", "image", "runtime", "big") for u in pool[k]
                       if rt_index is None or not u.startswith(rt_index + "/")}
        # kind -> share of requests
        self.mix = [("page", 0.25), ("runtime", 0.12), ("big", 0.02), ("nic", 0.3), ("image", 0.16),
                    ("encode", 0.1), ("hostile", 0.05)]

    def take(self) -> int | None:
        with self.lock:
            if self.next_i >= self.args.requests:
                return None
            self.next_i += 1
            return self.next_i - 1

    def client(self, seed: int) -> None:
        rng = random.Random(seed)
        conn: http.client.HTTPConnection | None = None
        while (i := self.take()) is not None:
            if i == self.args.requests // 2 and self.args.restart:
                threading.Thread(target=self.on_restart, daemon=True).start()
            kind = rng.choices([k for k, _ in self.mix], [w for _, w in self.mix])[0]
            if kind not in ("encode", "hostile") and not self.pool[kind]:
                kind = "page"
            rec = self.one(kind, rng, conn_box := [conn])
            conn = conn_box[0]
            with self.lock:
                self.records.append(rec)

    def one(self, kind: str, rng: random.Random, conn_box: list[http.client.HTTPConnection | None]) -> dict[str, Any]:
        headers = {"Accept-Encoding": "gzip"}
        body = None
        method = "GET"
        if kind == "encode":
            method, path, body = "POST", "/api/encode?effort=none&quality=" + str(rng.randrange(8)), small_png(rng)
            headers["Content-Type"] = "image/png"
        elif kind == "hostile":
            path = rng.choice(HOSTILE)
        else:
            path = rng.choice(self.pool[kind])
        during = self.restarting.is_set()
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"kind": kind, "path": path, "status": None, "ok": False, "error": None}
        try:
            if conn_box[0] is None:
                conn_box[0] = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.args.timeout_s)
            conn = conn_box[0]
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            rec["status"] = r.status
            rec["ok"], rec["error"] = self.check(kind, path, r, data)
            if r.getheader("Connection", "").lower() == "close" or r.version == 10:
                conn.close()
                conn_box[0] = None
        except (OSError, http.client.HTTPException) as e:
            rec["error"] = f"{type(e).__name__}: {e}"
            if conn_box[0] is not None:
                conn_box[0].close()
            conn_box[0] = None
            if self.restarting.is_set():
                time.sleep(0.2)  # server down: back off as a real client would, rather than spin
        rec["ms"] = 1000 * (time.perf_counter() - t0)
        rec["during_restart"] = during or self.restarting.is_set()
        return rec

    def check(self, kind: str, path: str, r: http.client.HTTPResponse, data: bytes) -> tuple[bool, str | None]:
        hashed = self.hashed
        if kind == "hostile":
            return r.status in (400, 404, 308), None if r.status in (400, 404, 308) else f"hostile got {r.status}"
        if kind == "encode":
            if r.status == 503:
                ok = (r.getheader("Retry-After") or "").isdigit()
                return ok, None if ok else "503 without Retry-After"
            if r.status != 200:
                return False, f"encode {r.status}: {data[:120]!r}"
            import webdecoder

            try:
                webdecoder.info(data)  # a whole, CRC-checked file
            except webdecoder.NicError as e:
                return False, f"encode returned a bad file: {e}"
            return True, None
        if r.status != 200:
            return False, f"{r.status}"
        if "X-Content-Type-Options" not in r.headers or "Content-Security-Policy" not in r.headers:
            return False, "security headers missing"
        if path in hashed:  # content-addressed: the URL names the bytes (runtime files: their manifest)
            import gzip

            raw = gzip.decompress(data) if r.getheader("Content-Encoding") == "gzip" else data
            if not hashlib.sha256(raw).hexdigest().startswith(path.split("/")[2]):
                return False, "body does not match the sha256 in its URL"
        return True, None

    def on_restart(self) -> None:
        self.restarting.set()
        t0 = time.perf_counter()
        self.server.kill()
        self.server.start()
        self.server.wait_ready(300)
        time.sleep(0.2)
        self.restarting.clear()
        self.restart_window = [t0, time.perf_counter()]

    def run(self, server: Server) -> float:
        self.server = server
        threads = [threading.Thread(target=self.client, args=(k,)) for k in range(self.args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        while self.restarting.is_set():  # a restart still in progress when the last request finished
            time.sleep(0.1)
        return time.perf_counter() - t0


def check_cache(cache: Path) -> dict[str, Any]:
    import webdecoder

    out: dict[str, Any] = {"nic": 0, "images": 0, "json": 0, "bad": [], "temporaries": []}
    for p in sorted(cache.rglob("*")):
        if not p.is_file():
            continue
        if p.name.startswith(".") or p.suffix in (".tmp", ".part"):
            out["temporaries"].append(str(p.relative_to(cache)))
            continue
        try:
            if p.suffix == ".nic":
                webdecoder.decode(p.read_bytes())
                out["nic"] += 1
            elif p.suffix in (".jpg", ".webp", ".avif", ".png"):
                with Image.open(p) as im:
                    im.load()
                out["images"] += 1
            elif p.suffix == ".json":
                json.loads(p.read_text())
                out["json"] += 1
        except Exception as e:
            out["bad"].append(f"{p.relative_to(cache)}: {type(e).__name__}: {e}")
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(load: Load, seconds: float) -> dict[str, Any]:
    recs = load.records
    kinds: dict[str, Any] = {}
    for kind in [k for k, _ in load.mix]:
        rs = [r for r in recs if r["kind"] == kind]
        if not rs:
            continue
        ms = [r["ms"] for r in rs if r["status"] is not None]
        statuses: dict[str, int] = {}
        for r in rs:
            key = str(r["status"]) if r["status"] is not None else "conn-error"
            statuses[key] = statuses.get(key, 0) + 1
        kinds[kind] = {"count": len(rs), "p50_ms": round(percentile(ms, 50), 1), "p99_ms": round(percentile(ms, 99), 1),
                       "max_ms": round(max(ms), 1) if ms else None, "statuses": statuses}
    unexpected = [r for r in recs if not r["ok"] and not r["during_restart"]]
    during = [r for r in recs if not r["ok"] and r["during_restart"]]
    status_all: dict[str, int] = {}
    for r in recs:
        key = str(r["status"]) if r["status"] is not None else "conn-error"
        status_all[key] = status_all.get(key, 0) + 1
    return {
        "requests": len(recs), "clients": load.args.clients, "seconds": round(seconds, 2),
        "throughput_rps": round(len(recs) / seconds, 1), "per_kind": kinds, "status_counts": status_all,
        "unexpected_errors": len(unexpected), "unexpected_examples": [
            {k: r[k] for k in ("kind", "path", "status", "error")} for r in unexpected[:10]],
        "failed_during_restart": len(during),
        "restart_window_s": round(load.restart_window[1] - load.restart_window[0], 2) if load.restart_window else None,
    }


def print_table(r: dict[str, Any]) -> None:
    print(f"\n{r['requests']} requests, {r['clients']} clients, {r['seconds']} s, {r['throughput_rps']} req/s")
    print(f"{'kind':<9}{'count':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  statuses")
    for k, v in r["per_kind"].items():
        st = ", ".join(f"{s}: {n}" for s, n in sorted(v["statuses"].items()))
        print(f"{k:<9}{v['count']:>7}{v['p50_ms']:>9}{v['p99_ms']:>9}{v['max_ms'] or 0:>9}  {st}")
    print(f"status counts: {r['status_counts']}")
    print(f"unexpected errors: {r['unexpected_errors']}; failed while the server was down for its restart: "
          f"{r['failed_during_restart']} (restart took {r['restart_window_s']} s)")
    for f in r.get("faults", []):
        print(f"fault: {f}")
    print(f"after: server answers: {r['after']['answers']}; cache: {r['cache']['nic']} .nic decode, "
          f"{r['cache']['images']} images open, {r['cache']['json']} JSON parse, bad {r['cache']['bad']}, "
          f"temporaries {r['cache']['temporaries']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--timeout-s", type=float, default=60.0, help="per-request socket timeout")
    p.add_argument("--images", type=int, default=3, help="sample images in the asset folder")
    p.add_argument("--size", type=int, default=256, help="crop size of those images")
    p.add_argument("--no-restart", dest="restart", action="store_false", help="skip the kill + restart faults")
    p.add_argument("--work-dir", default=str(ROOT / "build" / "load"))
    p.add_argument("-o", "--output", default=None, help="JSON (default WORK_DIR/load.json)")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    work = Path(args.work_dir).resolve()
    shutil.rmtree(work / "cache", ignore_errors=True)  # a fresh cache: the first start writes it (fault 1)
    make_assets(work / "assets", args.images, args.size)
    port = free_port()
    server = Server(work / "assets", work / "cache", port, args.verbose)
    faults = []
    result: dict[str, Any] = {}
    try:
        server.start()
        if args.restart:  # fault 1: SIGKILL while the first start is writing the cache
            if server.progress.wait(300):
                time.sleep(1.0)
                server.kill()
                faults.append(f"SIGKILL during first start after: {server.log[-1]!r}")
                server.start()
        startup = server.wait_ready(900)
        print(f"server ready on port {port} ({startup:.1f} s)", flush=True)
        pool = url_pool(port)
        load = Load(port, pool, args)
        random.seed(args.seed)
        seconds = load.run(server)
        if load.restart_window:
            faults.append(f"SIGKILL + restart at request {args.requests // 2} "
                          f"({load.restart_window[1] - load.restart_window[0]:.1f} s down)")
        result = summarise(load, seconds)
        result["faults"] = faults
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/")
            status = c.getresponse().status
            result["after"] = {"answers": status == 200, "status": status}
        except OSError as e:
            result["after"] = {"answers": False, "error": str(e)}
    finally:
        server.stop()
    result["cache"] = check_cache(work / "cache")
    result["command"] = " ".join(["python -m bench.load", *(argv if argv is not None else sys.argv[1:])])
    print_table(result)
    out = Path(args.output) if args.output else work / "load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    ok = result["unexpected_errors"] == 0 and result["after"]["answers"] and not result["cache"]["bad"] \
        and not result["cache"]["temporaries"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
