"""The benchmarking harness: BD-rate math (exact cases) and smoke runs of every bench on tiny images."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

from bench.bdrate import bd_psnr, bd_rate, msssim_db

ANCHORS = Path(__file__).resolve().parent.parent / "bench" / "anchors" / "kodak"

RATE = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNR = [27.0, 29.5, 32.0, 34.8, 37.9]


# --------------------------------------------------------------------------- BD-rate


def test_bd_rate_identical_curves_is_zero():
    assert bd_rate(RATE, PSNR, RATE, PSNR) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(RATE, PSNR, RATE, PSNR) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_half_rate_is_minus_50_percent():
    half = [r / 2 for r in RATE]
    assert bd_rate(RATE, PSNR, half, PSNR) == pytest.approx(-50.0, abs=1e-9)
    assert bd_rate(half, PSNR, RATE, PSNR) == pytest.approx(100.0, abs=1e-9)


def test_bd_psnr_constant_shift():
    assert bd_psnr(RATE, PSNR, RATE, [p + 1.0 for p in PSNR]) == pytest.approx(1.0, abs=1e-9)


def test_bd_rate_order_and_unusable_points_do_not_matter():
    half = [r / 2 for r in RATE]
    shuffled = [4, 0, 3, 1, 2]
    r = [half[i] for i in shuffled] + [float("nan")]
    p = [PSNR[i] for i in shuffled] + [40.0]
    assert bd_rate(RATE, PSNR, r, p) == pytest.approx(-50.0, abs=1e-9)


def test_bd_rate_undefined_cases_are_nan():
    assert math.isnan(bd_rate(RATE[:3], PSNR[:3], RATE, PSNR))  # a cubic needs 4 points
    assert math.isnan(bd_rate(RATE, PSNR, RATE, [p + 20 for p in PSNR]))  # no overlap


def test_msssim_db():
    assert msssim_db([0.9, 0.99]) == pytest.approx([10.0, 20.0])


@pytest.mark.skipif(not ANCHORS.is_dir(), reason="shared anchors not present")
def test_bd_rate_reproduces_the_anchor_readme():
    """bench/anchors/README.md: shallow-ntc vs BPG = +21.4 %, +5.7 %, -5.1 %."""

    def curve(name):
        r = json.loads((ANCHORS / name).read_text())["results"]
        return r["bpp"], r["psnr-rgb"]

    bpg = curve("bpg_444_x265_ycbcr.json")
    for name, want in [
        ("paper-shallow-ntc-jpeg-like-syn.json", 21.4),
        ("paper-shallow-ntc-2-layer-syn.json", 5.7),
        ("paper-shallow-ntc-2-layer-syn-sga.json", -5.1),
        ("compressai-mbt2018-mean_mse_cpu.json", -3.4),
    ]:
        assert bd_rate(*bpg, *curve(name)) == pytest.approx(want, abs=0.06), name


# --------------------------------------------------------------------------- smoke runs


@pytest.fixture(scope="module")
def tiny_dir(kodak, tmp_path_factory) -> Path:
    """One 192x256 crop: the smallest size MS-SSIM's 5 scales accept (> 160 px) with nic's 64-px grid."""
    d = tmp_path_factory.mktemp("tiny")
    img = np.asarray(Image.open(kodak[0]).convert("RGB"))[100:292, 200:456]
    Image.fromarray(img).save(d / "tiny.png")
    return d


def test_rd_smoke(tiny_dir, tmp_path):
    from bench.rd import run_eval

    sweeps = {
        "jpeg": (10, 40, 70, 90),
        "webp": (10, 40, 70, 90),
        "avif": (10, 40, 70, 85),
        "jxl": (8, 4, 2, 1),
    }
    res = run_eval(
        tiny_dir,
        tmp_path,
        qualities=(0, 2, 5, 7),
        codecs=("nic", "jpeg", "webp", "avif", "jxl"),
        nic_efforts=("none",),
        depths=(1, 2),
        sweeps=sweeps,
        anchors=ANCHORS,
        progress=False,
    )
    names = ["nic-d1-none", "nic-d2-none", "jpeg", "webp", "avif", "jxl"]
    assert list(res["results"]) == names
    for n in names:
        d = json.loads((tmp_path / f"{n}.json").read_text())
        r = d["results"]
        assert d["name"] == n and d["description"]
        for k in ("bpp", "psnr-rgb", "ms-ssim", "encoding_time", "decoding_time"):
            assert len(r[k]) == 4 and all(math.isfinite(v) for v in r[k]), (n, k)
        assert r["bpp"] == sorted(r["bpp"])
        if n.startswith("nic"):
            assert d["meta"]["model_id"]
        else:  # classical codecs at these settings are always far better than noise
            assert min(r["psnr-rgb"]) > 20 and 0 < min(r["ms-ssim"]) <= max(r["ms-ssim"]) <= 1
    rows = json.loads((tmp_path / "per_image.json").read_text())
    assert len(rows) == 6 * 4
    for row in rows:  # rate is the real file size
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (192 * 256))
    bd = json.loads((tmp_path / "bdrate.json").read_text())
    assert set(bd) == {"psnr", "ms-ssim", "overlap_db"}
    assert bd["overlap_db"]["psnr"]["webp"]["jpeg"] > 1.0
    assert math.isfinite(bd["psnr"]["webp"]["jpeg"])
    md = (tmp_path / "summary.md").read_text()
    assert "| nic-d2-none |" in md and "BD-rate, PSNR-RGB" in md
    assert (tmp_path / "rd.png").stat().st_size > 10_000


def test_rd_lane_policies(tiny_dir, tmp_path):
    """`nic eval --lanes auto compact`: one curve per policy; same pixels, so the same PSNR, in fewer bytes."""
    from bench.rd import Config, _task_key, run_eval

    res = run_eval(tiny_dir, tmp_path, qualities=(0, 7), codecs=("nic",), depths=(2,), lanes=("auto", "compact"),
                   anchors=None, progress=False)
    auto, compact = (res["results"][n]["results"] for n in ("nic-d2-none", "nic-d2-none-compact"))
    assert compact["psnr-rgb"] == auto["psnr-rgb"]
    assert all(c < a for c, a in zip(compact["bpp"], auto["bpp"], strict=True)), (compact["bpp"], auto["bpp"])
    # the default policy keeps the task key results were saved under before lanes existed
    base = Config("nic-d2-none", "nic", (0, 7), 2, "none")
    assert _task_key(base, "m") == "80a16a0afa51"
    assert _task_key(Config("nic-d2-none-compact", "nic", (0, 7), 2, "none", lanes="compact"), "m") != "80a16a0afa51"


def test_rd_parallel_and_resume_match_serial(tiny_dir, tmp_path):
    from bench.rd import run_eval

    kw = dict(codecs=("jpeg",), sweeps={"jpeg": (20, 80)}, anchors=None, progress=False)
    a = run_eval(tiny_dir, tmp_path / "a", workers=1, **kw)
    b = run_eval(tiny_dir, tmp_path / "b", workers=2, **kw)
    assert a["results"]["jpeg"]["results"]["bpp"] == b["results"]["jpeg"]["results"]["bpp"]
    assert a["results"]["jpeg"]["results"]["psnr-rgb"] == b["results"]["jpeg"]["results"]["psnr-rgb"]
    # resume: nothing is recomputed, the curve is read back from parts/
    c = run_eval(tiny_dir, tmp_path / "a", workers=1, resume=True, **kw)
    assert c["results"]["jpeg"]["meta"]["resumed_tasks"] == 1
    assert c["results"]["jpeg"]["results"]["bpp"] == a["results"]["jpeg"]["results"]["bpp"]


def test_rd_command_line(tiny_dir, tmp_path, capsys):
    """The argument set `nic eval` shares: parse, run, print the Markdown summary."""
    import argparse

    from bench.rd import add_arguments, run_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args([str(tiny_dir), "-o", str(tmp_path), "--codecs", "webp", "--anchors", "none"])
    res = run_from_args(args)
    assert list(res["results"]) == ["webp"] and (tmp_path / "webp.json").is_file()
    assert "| webp |" in capsys.readouterr().out


def test_rans_speed_smoke(tiny_dir, tmp_path):
    from bench.rans_speed import markdown, run

    res = run(n=3000, lanes=(8, 64), repeats=1, out=tmp_path / "r.json")
    assert [r["coder"] for r in res["rows"]] == ["compressai C++ rANS", "nic NumPy rANS", "nic NumPy rANS"]
    assert all(r["decode_sym_per_s"] > 0 for r in res["rows"])
    assert json.loads((tmp_path / "r.json").read_text())["symbols"] == 3000
    assert "decode Msym/s" in markdown(res)
    real = run(lanes=(16,), repeats=1, image=tiny_dir / "tiny.png", quality=3)
    assert real["symbols"] > 0 and len(real["rows"]) >= 3  # nic's own lane count is added


def test_decode_speed_smoke(tiny_dir, tmp_path):
    from bench.decode_speed import markdown, run

    res = run(tiny_dir, limit=1, quality=3, repeats=1, out=tmp_path / "d.json")
    s = res["summary"]
    assert {"nic-d1", "nic-d2", "webp", "avif", "jpeg", "compressai-mbt2018-mean"} <= set(s)
    assert set(s["nic-d2"]["stages_s"]) == {"parse", "z", "hyper", "y", "synthesis"}
    assert s["nic-d2"]["time_vs_nic-d2"] == 1.0
    assert "| nic stage (ms) |" in markdown(res)
    assert json.loads((tmp_path / "d.json").read_text())["images"] == 1
    from bench import latency_chart  # its chart, as the command line draws it beside the JSON

    latency_chart.main([str(tmp_path / "d.json")])
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sga_schedule_smoke(tiny_dir, tmp_path, capsys):
    from bench.sga_schedule import main
    from encoder import sga

    before = sga.DECAY
    main([str(tiny_dir), "--every", "1", "--images", "1", "--crop", "64", "128", "--steps", "4", "--qualities", "2",
          "--decay", "5e-4", "2.5e-4", "-o", str(tmp_path / "s.json")])
    assert sga.DECAY == before  # restored after the run
    res = json.loads((tmp_path / "s.json").read_text())["results"]
    assert set(res) == {"4 steps, decay 0.0005", "4 steps, decay 0.00025"}
    assert all(len(r["costs"]) == 1 and r["costs"][0] > 0 for r in res.values())
    out = capsys.readouterr().out
    assert "| 4 | 0.0005 | 0.123 | +0.00 % | 0 of 1 |" in out
    assert "| steps | decay | q2 |" in out  # the per-quality table against no SGA


# --------------------------------------------------------------------------- host CPU time


def test_host_cpu_watch_reports_the_stolen_share(tmp_path, monkeypatch):
    from bench import host

    stat = tmp_path / "stat"
    monkeypatch.setattr(host, "STAT", stat)
    # user nice system idle iowait irq softirq steal (guest fields after them are ignored)
    stat.write_text("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 1 2 3\n")
    watch = host.CpuWatch()
    stat.write_text("cpu  160 0 70 900 10 0 0 140 0 0\ncpu0 1 2 3\n")  # +60 +20 +100 idle +100 steal: 280 ticks
    cpu = watch.report()
    assert cpu["stealPercent"] == pytest.approx(100 * 100 / 280, abs=0.05)
    assert cpu["busyPercent"] == pytest.approx(100 * 80 / 280, abs=0.05)
    assert "35.7 % stolen" in host.describe(cpu)
    # busy seconds (bench.cold_start's CPU per cold start): user + nice + system + irq + softirq, not idle, I/O wait
    # or steal
    tick = os.sysconf("SC_CLK_TCK")
    stat.write_text("cpu  160 5 70 900 10 3 2 140 0 0\n")
    before = host.busy_seconds()
    assert before == pytest.approx((160 + 5 + 70 + 3 + 2) / tick)
    stat.write_text("cpu  260 5 90 5000 900 3 2 9000 0 0\n")  # +100 user, +20 system; idle, iowait, steal ignored
    assert host.busy_seconds() - before == pytest.approx(120 / tick)
    stat.unlink()  # no /proc/stat (not Linux): no figure, and the table says so
    assert host.CpuWatch().report() is None and "not available" in host.describe(None)
    assert host.busy_seconds() is None


def test_first_decode_takes_its_checks_and_slow_first_calls_apart() -> None:
    """bench.first_decode: a check nested in another counts inside it and once in the total; each kernel's largest
    call against the third decode's; medians skip what a round lacks."""
    from bench.first_decode import medians, summarize

    first = {"decodeMs": 250.0, "trace": [
        ["check:winograd_plan", 12.0, 20.0], ["check:winograd", 10.0, 40.0],  # the plan check inside Winograd's
        ["check:phase", 50.0, 60.0], ["nic_wino_convt", 60.0, 65.0], ["nic_wino_convt", 70.0, 90.0],
        ["job.start", 90.0, 99.0]]}
    third = {"decodeMs": 22.0, "trace": [["nic_wino_convt", 1.0, 9.0], ["job.start", 9.0, 9.5],
                                         ["nic_rans_decode", 10.0, 12.0]]}
    r = summarize([first, {"decodeMs": 30.0, "trace": []}, third])
    assert r["firstMs"] == 250.0 and r["warmMs"] == 22.0
    assert r["checks"] == {"winograd_plan": 8.0, "winograd": 30.0, "phase": 10.0}
    assert r["checksMs"] == 40.0  # 10-40 and 50-60: the nested plan check counted once
    assert r["slowerFirstCall"] == {"nic_wino_convt": 12.0, "job.start": 8.5}  # rANS: not in the first decode
    other = {**r, "firstMs": 200.0, "checksMs": 30.0, "checks": {"phase": 20.0}, "slowerFirstCall": {}}
    m = medians([r, other])
    assert m["firstMs"] == 225.0 and m["checksMs"] == 35.0
    assert m["checks"] == {"phase": 15.0, "winograd": 30.0, "winograd_plan": 8.0}
    assert m["slowerFirstCall"] == {"job.start": 8.5, "nic_wino_convt": 12.0}


def test_helper_jobs_pairs_each_jobs_two_threads_over_decodes() -> None:
    """bench.browser_latency's two-thread balance: per job index, medians over the decodes that ran it of the helper's
    start delay + busy time against this thread's own work, and this thread's wait; decodes with fewer jobs (a small
    image, one thread) do not count for the later jobs."""
    from bench.browser_latency import helper_jobs

    decodes = [[[0.2, 6.0, 0.1, 0.1, 6.5, -0.5], [0.3, 14.0, 0.0, 0.2, 14.5]],
               [[0.2, 7.0, 0.3, 0.1, 6.0, 0.3], [0.1, 15.0, 1.0, 0.2, 13.0]],
               [[0.4, 8.0, 0.2, 0.1, 7.5, 0.2]],
               []]
    got = helper_jobs(decodes)
    assert got == [{"helperMs": 7.2, "thisThreadMs": 6.5, "waitMs": 0.2, "helperLateMs": 0.2},
                   {"helperMs": 14.7, "thisThreadMs": 13.75, "waitMs": 0.5, "helperLateMs": None}]
    assert helper_jobs([[], []]) == []


def test_kernel_speed_times_builds_side_by_side_and_checks_their_outputs(tiny_dir, tmp_path, monkeypatch):
    from bench import kernel_speed
    import encoder

    img = np.asarray(Image.open(tiny_dir / "tiny.png").convert("RGB"))
    nic = tmp_path / "tiny.nic"
    nic.write_bytes(encoder.encode(img, quality=3, depth=2, effort="none"))
    so = Path(kernel_speed.ROOT) / "webdecoder" / "native" / "nicmm.wasm.so"
    res = kernel_speed.run(nic, [("a", so), ("b", so)], rounds=3, max_pages=32768, out=tmp_path / "k.json",
                           keep=tmp_path / "ops.bin")
    assert set(res["median_ms"]) == {"a", "b"}
    ops = (tmp_path / "ops.bin").read_bytes()  # the operands kept for a profiler: kernel_speed.mjs's input
    assert json.loads(ops[4 : 4 + int.from_bytes(ops[:4], "little")])["arrays"]["ref_means"]
    assert all(set(t) == set(kernel_speed.KERNELS) and min(t.values()) > 0 for t in res["median_ms"].values())
    assert "| b / a |" in kernel_speed.markdown(res)
    assert json.loads((tmp_path / "k.json").read_text())["builds"]["a"] == str(so)
    # A build whose outputs differ from the NumPy reference fails the run (here: the reference is off by one).
    real = kernel_speed.operands

    def off_by_one(data: bytes):
        arrays, scalars = real(data)
        arrays["ref_means"] = arrays["ref_means"] + 1
        return arrays, scalars

    monkeypatch.setattr(kernel_speed, "operands", off_by_one)
    with pytest.raises(SystemExit, match="differ from the NumPy reference"):
        kernel_speed.run(nic, [("a", so)], rounds=1, max_pages=32768, out=None)


def test_latency_chart_draws_a_run(tmp_path):
    """bench.latency_chart draws a browser_latency result (its JSON's fields) into a PNG, also from the command line,
    and a run without throttled pages or native decodes still draws."""
    from bench import latency_chart

    def row(key: str, nic: float, avif: float | None) -> dict:
        return {"key": key, "nicMs": nic, "kmacPerPx": 2.59,
                "nativeMs": {} if avif is None else {"avif": avif, "webp": avif * 0.9, "jpeg": avif / 2}}

    run = {"browser": "156", "startedAt": "2026-12-04T00:00:00Z", "settleS": 5.0,
           "host": {"cpu": {"seconds": 40.0, "stealPercent": 0.1, "busyPercent": 60.0}},
           "worker": [row("kodim01-q1", 22.0, 4.0), row("kodim01-q4", 24.0, 4.5), row("kodim04-q4", 23.0, None)],
           "pageThrottled": {"1": [row("kodim01-q4", 40.0, 5.0)], "4": [row("kodim01-q4", 180.0, 9.0)]},
           "summary": {"worker1x": {"nicMedianMs": 23.0, "ratioVsAvif": 5.4}}}
    png = latency_chart.plot(run, tmp_path / "chart.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    (tmp_path / "run.json").write_text(json.dumps({**run, "pageThrottled": {}}))
    latency_chart.main([str(tmp_path / "run.json")])
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# A `perf report --sort pid,dso,sym` excerpt of a two-thread decode (bench.chromium_profile's input), its WebAssembly
# functions named by index: {convt}, {rans} and {internal} are filled in from the module's own (they move as kernels
# are added).
PERF_REPORT = """
    15.98%    16145:DedicatedWorker  jitted-16066-1.so  [.] JS:wasm-function[{convt}]-{convt}-turbofan
    15.30%    16130:DedicatedWorker  jitted-16066-2.so  [.] JS:wasm-function[{convt}]-{convt}-turbofan
    14.59%        0:swapper          [kernel.kallsyms]  [k] pv_native_safe_halt
     3.74%    16130:DedicatedWorker  jitted-16066-3.so  [.] JS:wasm-function[{rans}]-{rans}-liftoff
     2.36%    16145:DedicatedWorker  jitted-16066-4.so  [.] JS:wasm-function[{internal}]-{internal}-turbofan
     1.26%    16130:DedicatedWorker  jitted-16066-5.so  [.] JS:wasm-function[3434]-3434-turbofan
     0.70%    16130:DedicatedWorker  jitted-16066-6.so  [.] Builtin:WasmLiftoffFrameSetup
     0.34%    16130:DedicatedWorker  libc.so.6          [.] __memmove_avx512_unaligned_erms
     0.24%    16130:DedicatedWorker  chromium           [.] 0x0000000004a6dde2
     0.11%    16066:chromium         [kernel.kallsyms]  [k] clear_page_erms
"""


def test_chromium_profile_names_the_kernels_and_splits_the_threads():
    from bench import chromium_profile as cp

    names = cp.function_names((Path(__file__).resolve().parents[1] / "webdecoder/native/nicmm.wasm.so").read_bytes())
    index = {name: i for i, name in names.items()}
    # what V8's wasm-function[N] counts: the module's functions in order, the static C ones kept out of line (defined,
    # not exported) named by their index
    assert names[0] == "__wasm_call_ctors" and names[1] == "nic_matmul_f64"
    internal = min(i for i, name in names.items() if name.startswith("internal #"))
    assert names[internal] == f"internal #{internal}"
    assert len(names) == max(names) + 1 and "nic_wino3_conv" in names.values()
    report = PERF_REPORT.format(convt=index["nic_wino_convt"], rans=index["nic_rans_decode"], internal=internal)
    shares = cp.classify(report, names)
    assert shares["16130:DedicatedWorker"] == pytest.approx({
        "nic_wino_convt": 15.30, "nic_rans_decode": 3.74, "Pyodide + NumPy (WebAssembly)": 1.26,
        "V8: JavaScript, builtins": 0.70, "libc (memcpy, memset)": 0.34, "V8 + Chromium runtime": 0.24})
    assert shares["0:swapper"] == {"idle": 14.59} and shares["16066:chromium"] == {"Linux kernel": 0.11}
    # 8 s on 2 cores over 160 decodes: 1 % of the samples is 1 ms a decode.
    res = cp.per_decode(shares, 8.0, 2, 160, names)
    assert (res["workerThread"], res["helperThread"]) == ("16130:DedicatedWorker", "16145:DedicatedWorker")
    cols = res["msPerDecode"]
    assert cols["helper"] == pytest.approx({"nic_wino_convt": 15.98, names[internal]: 2.36})
    assert cols["idle"] == pytest.approx({"idle": 14.59}) and cols["other threads"] == pytest.approx(
        {"Linux kernel": 0.11})
    assert "| nic_wino_convt | 15.30 | 15.98 | 0.00 | 0.00 |" in cp.markdown(
        {"file": "k", "seconds": 8.0, "decodes": 160, **res})
    with pytest.raises(ValueError):
        cp.function_names(b"not wasm")


def test_chromium_timeline_takes_medians_per_event_and_gaps_per_decode():
    from bench import chromium_timeline as ct

    def decode(shift: float, cut: bool = True) -> dict:  # a worker's events, [name, start, end] ms, and its end
        ev = [["nic_rans_decode", 0.4, 0.5], ["job.start", 2.0, 2.2], ["nic_wino3_conv", 2.3, 4.3]]
        if cut:
            ev.append(["job.wait_part", 4.3, 4.5 + shift])
        ev += [["job.wait", 7.0 + shift, 7.3 + shift], ["job.start", 8.0 + shift, 8.2 + shift],
               ["job.wait", 20.0 + shift, 20.5 + shift]]
        return {"traceMs": [*ev, [ct.END, 21.0 + shift, 21.0 + shift]]}

    decodes = [decode(0.0), decode(1.0), decode(2.0), decode(0.5, cut=False)]
    rows, same = ct.timeline(decodes)
    assert same == 3  # the decode without the part's wait is left out of the rows
    assert [r["what"] for r in rows] == ["nic_rans_decode", "job.start", "nic_wino3_conv", "job.wait_part", "job.wait",
                                         "job.start", "job.wait", ct.END]
    wait_part, first_wait = rows[3], rows[4]
    assert wait_part["ms"] == pytest.approx(1.2) and first_wait["gapMs"] == pytest.approx(2.5)  # each decode's own gap
    assert rows[-1]["startMs"] == pytest.approx(22.0)
    # the helper's jobs: [start delay, time on the job, ...] after each start's post (the end of job.start)
    spans = ct.helper_spans(decodes[0]["traceMs"], [[0.3, 4.0, 0, 0, 0, 0], [0.2, 11.0, 0, 0, 0, 0]])
    assert [v for span in spans for v in span] == pytest.approx([2.5, 6.5, 8.4, 19.4])
    assert ct.helper_spans(decodes[0]["traceMs"], [[0.3, 4.0]]) == []  # a job missing: no pairing
    s = ct.summary(decodes[0]["traceMs"], spans)
    assert s == pytest.approx({"decodeMs": 21.0, "kernelsMs": 2.1, "aloneBeforeFirstJobMs": 2.2, "waitsMs": 1.0,
                               "betweenJobsMs": 0.9, "afterLastJobMs": 0.5, "helperBusyMs": 15.0, "helperIdleMs": 6.0})
    text = ct.markdown({"file": "k", "decodes": 4, "sameOrder": 3, "workerDecodeMs": 22.0, "summary": s,
                        "timeline": rows, "helper": [{"job": 1, "startMs": 2.5, "ms": 4.0}]})
    assert "| job.wait_part | " in text and "| job 1 | 2.50 | 4.00 |" in text
