"""bench.browser_latency end to end, at its smallest: one file, one repeat, no throttle past 1x, a short settle.

The full benchmark takes minutes and lives in BENCHMARKS.md; this keeps its machinery working (the real site, the
worker's early and settled passes, the one-thread and NumPy-only pages, the tables and the chart).
"""

from __future__ import annotations

import json
import subprocess
import sys

from nic_e2e import ROOT


def bench(module: str, *args: str) -> None:
    """``python -m bench.<module> ARGS`` in a process of its own: a benchmark drives its own Playwright, which cannot
    start inside this session's (an event loop is running there once an earlier test has opened the browser)."""
    done = subprocess.run([sys.executable, "-m", f"bench.{module}", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def test_browser_latency_times_the_early_and_the_settled_worker_decodes(server, tmp_path):
    out = tmp_path / "bl.json"
    bench("browser_latency", "--limit", "1", "--reps", "1", "--throttle-reps", "1", "--numpy-reps", "1", "--rates",
          "1", "--settle-s", "0.5", "--no-progressive", "-o", str(out))
    d = json.loads(out.read_text())
    assert d["settleS"] == 0.5 and len(d["worker"]) == len(d["workerEarly"]) == 1
    s = d["summary"]
    assert {"worker1x", "worker1xEarly", "worker1xOneThread", "worker1xNumpyOnly", "page1x"} <= set(s)
    for run in ("worker1x", "worker1xEarly", "worker1xOneThread"):
        assert s[run]["nicMedianMs"] > 0 and s[run]["ratioVsAvif"] > 0, (run, s[run])
    assert d["worker"][0]["threads"] == 2 and d["workerOneThread"][0]["threads"] == 1  # the helper, and not
    # The page hands every result's pixels back (nic.recycle, as <nic-img> does): the timed decode reused the buffer
    # of the warm-up before it.
    assert d["recycle"] is True and d["worker"][0]["recycled"] == 1, d["worker"][0]
    md = out.with_suffix(".md").read_text()
    assert "| worker1xEarly |" in md and "After 0.5 s of decodes" in md
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the run's chart
    assert not d["foreignRequests"], d["foreignRequests"]  # nothing left 127.0.0.1


def test_recycle_ab_compares_new_and_handed_back_buffers(server, tmp_path):
    """bench.recycle_ab at its smallest: both variants timed on one file, and only the handed-back one reused."""
    out = tmp_path / "ab.json"
    bench("recycle_ab", "--rounds", "1", "--reps", "1", "--files", "1", "--settle-s", "0.2", "--out", str(out))
    d = json.loads(out.read_text())
    (row,) = d["rows"]
    assert row["newMs"] > 0 and row["recycledMs"] > 0 and row["newCopyMs"] > 0, row
    assert d["resultsReusingABuffer"] == {"new": 0, "recycled": 1}, d["resultsReusingABuffer"]


def test_checkout_ab_times_two_sites_file_by_file(server, tmp_path):
    """bench.checkout_ab at its smallest, this checkout against itself: both sites serve, every file is timed in both
    pages and against the AVIF in the same rounds, and the table says so."""
    out = tmp_path / "cab.json"
    bench("checkout_ab", "--checkout", "a=.", "--checkout", "b=.", "--rounds", "1", "--reps", "1", "--files", "2",
          "--settle-s", "0.2", "--out", str(out))
    d = json.loads(out.read_text())
    assert d["checkouts"] == ["a", "b"] and [r["key"] for r in d["rows"]] == ["kodim01-q1", "kodim01-q4"]
    for r in d["rows"]:
        assert min(r["ms"]) > 0 and r["avifMs"] > 0 and r["ratio"][0] == 1.0 and len(r["vsAvif"]) == 2, r
