"""webdecoder.parallel's job recording, in CPython with a stand-in kernel library.

The real helper thread (site/nic_site/static/nic-helper.js) and the real kernels are exercised under Node and in
Chromium (tests/e2e/test_pyodide_kernel.py, test_decode_exact.py); here the bookkeeping they rely on: pointers
rewritten as (buffer, offset), constants keyed for reuse, gathered inputs, scratch copied back, and the
LoopbackHelper, which runs a job from its JSON the way the helper does.
"""

from __future__ import annotations

import ctypes
import json

import numpy as np
import pytest

from webdecoder import _native, parallel


def _copy(dst: int, src: int, n: int) -> int:
    ctypes.memmove(dst, src, n)
    return 0


def _add_one(ptr: int, n: int) -> int:  # += 1 on n bytes: shows whether an output started at zero
    buf = (ctypes.c_uint8 * n).from_address(ptr)
    for i in range(n):
        buf[i] += 1
    return 7


_copy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
_add_one.argtypes = [ctypes.c_void_p, ctypes.c_int]


class FakeLib:
    """Two 'kernels' with ctypes argtypes, like the loaded side module's functions."""

    nic_copy = staticmethod(_copy)
    nic_add_one = staticmethod(_add_one)


@pytest.fixture
def fake(monkeypatch):
    lib = FakeLib()
    monkeypatch.setattr(_native, "lib", lambda: lib)
    monkeypatch.setattr(parallel, "_log", [])
    return lib


def test_pointers_become_buffer_and_offset(fake):
    job = parallel.Job()
    a = job.buf(np.arange(8, dtype=np.int32), "in")
    b = job.buf(np.zeros(8, np.int32), "out")
    job("nic_copy", b.ctypes.data + 4, a.ctypes.data, 12)
    assert job.calls == [("nic_copy", [[1, 4], [0, 0], 12])]
    with pytest.raises(ValueError, match="outside"):
        job("nic_copy", np.zeros(4).ctypes.data, a.ctypes.data, 4)
    with pytest.raises(ValueError):  # the argument count is the kernel's
        job("nic_copy", b.ctypes.data, a.ctypes.data)


def test_constants_keep_their_key_until_the_table_is_cleared(fake, monkeypatch):
    monkeypatch.setattr(parallel, "CONST_ARRAYS", 3)
    w = np.ones(5)
    keys = [parallel.Job().buf(w, "const") is w and None for _ in range(2)]
    assert keys == [None, None]
    j1, j2 = parallel.Job(), parallel.Job()
    j1.buf(w, "const")
    j2.buf(w, "const")
    assert j1.bufs[0]["key"] == j2.bufs[0]["key"]  # sent once, reused by the helper
    others = [np.zeros(1) for _ in range(3)]
    for o in others:  # a fourth constant clears the table: every key changes generation
        parallel.Job().buf(o, "const")
    j3 = parallel.Job()
    j3.buf(w, "const")
    assert j3.bufs[0]["key"] != j1.bufs[0]["key"]


def test_loopback_runs_a_job_from_its_json(fake):
    """Outputs and "zero" scratch start at zero, scratch lives apart from its name, gathered inputs arrive in one
    piece, and copy_out brings part of a scratch back."""
    lo, hi = np.arange(4, dtype=np.uint8), np.arange(10, 14, dtype=np.uint8)
    rows = np.stack([lo, hi])[:, None]  # two parts, apart in memory
    job = parallel.Job()
    gathered = np.full(8, 99, np.uint8)  # only a name: the helper's copy is assembled from the parts
    job.gather_in(gathered, [np.ascontiguousarray(r[0]) for r in rows])
    scratch = job.buf(np.full(8, 50, np.uint8), "scratch")
    out = job.buf(np.full(8, 9, np.uint8), "out")
    acc = job.buf(np.full(8, 5, np.uint8), "zero")
    summed = job.buf(np.full(8, 3, np.uint8), "out")
    job("nic_copy", scratch.ctypes.data, gathered.ctypes.data, 8)
    job("nic_add_one", scratch.ctypes.data, 8)
    job("nic_add_one", out.ctypes.data, 8)
    job("nic_add_one", acc.ctypes.data, 8)
    job("nic_copy", summed.ctypes.data, acc.ctypes.data, 8)
    back = np.zeros(3, np.uint8)
    job.copy_out(back, scratch[5:8])
    h = parallel.LoopbackHelper()
    assert job.start(h)
    assert job.wait(h) == [0, 7, 7, 7, 0]
    assert out.tolist() == [1] * 8  # zeros, then + 1: not the 9s that were there
    assert summed.tolist() == [1] * 8  # a "zero" scratch also starts at zero ...
    assert acc.tolist() == [5] * 8  # ... and, like any scratch, is not copied back
    assert back.tolist() == [12, 13, 14]  # the gathered input, + 1, from the helper's scratch
    assert scratch.tolist() == [50] * 8 and gathered.tolist() == [99] * 8  # names are never touched
    assert h.jobs == 1


def test_a_part_comes_back_before_the_rest_of_its_job(fake):
    """``end_part`` splits a job: ``wait_part`` returns the first calls' codes with only that part's outputs back (the
    hyper-decoder takes the helper's scales this way, before its means), ``wait`` the rest; the spec carries the
    split for nic-helper.js."""
    job = parallel.Job()
    first = job.buf(np.full(4, 9, np.uint8), "out")
    job("nic_add_one", first.ctypes.data, 4)
    job.end_part()
    second = job.buf(np.full(4, 9, np.uint8), "out")
    job("nic_add_one", second.ctypes.data, 4)
    job("nic_add_one", second.ctypes.data, 4)
    assert job.parts == [(1, [0])]
    h = parallel.LoopbackHelper()
    assert job.start(h)
    assert json.loads(json.dumps(h.spec))["parts"] == [[1, [0]]]
    assert job.wait_part(h) == [7]
    assert first.tolist() == [1] * 4 and second.tolist() == [9] * 4  # the later calls have not run yet
    assert job.wait(h) == [7, 7, 7]
    assert first.tolist() == [1] * 4 and second.tolist() == [2] * 4  # the first part's calls ran once
    assert h.jobs == 1


def test_gather_blocks_takes_rows_of_every_channel(fake):
    """A band of rows across channels (a strided view, e.g. the latent rows a Winograd band reads) arrives as one
    contiguous array, channel after channel."""
    a = np.arange(3 * 5 * 4, dtype=np.float64).reshape(3, 5, 4)
    view = a[:, 1:3]  # rows 1 and 2 of each of the 3 channels: 3 blocks 160 bytes apart
    job = parallel.Job()
    name = np.empty((3, 2, 4))
    job.gather_blocks(name, view)
    out = job.buf(np.zeros((3, 2, 4)), "out")
    job("nic_copy", out.ctypes.data, name.ctypes.data, out.nbytes)
    h = parallel.LoopbackHelper()
    assert job.start(h) and job.wait(h) == [0]
    assert np.array_equal(out, view)


def test_a_failing_or_refusing_helper_is_reported(fake):
    class Refuses:
        def start(self, spec: str) -> bool:
            return False

    class Dies:
        def start(self, spec: str) -> bool:
            json.loads(spec)
            return True

        def wait(self, limit_ms: float) -> str:
            assert limit_ms >= parallel.WAIT_MIN_MS
            raise RuntimeError("gone")

    job = parallel.Job()
    job.buf(np.zeros(4), "out")
    assert not job.start(Refuses())
    assert job.start(Dies()) and job.wait(Dies()) is None
    job.end_part()
    assert job.start(Dies()) and job.wait_part(Dies()) is None  # a client without parts counts as failed too


def test_no_helper_in_cpython():
    assert _native.lib() is None and parallel.helper() is None


def test_ptr_is_the_data_address_of_every_kind_of_array() -> None:
    # _native.ptr takes a shortcut for writable C-contiguous arrays and falls back for the rest: either way the address
    # must be the one ctypes gives, or a kernel would read the wrong bytes
    a = np.arange(60, dtype=np.float64).reshape(3, 4, 5)
    readonly = np.arange(8, dtype=np.int32)
    readonly.setflags(write=False)
    for arr in (a, a[1], a[:, 1:3], a.T, a[:, :, ::2], readonly, np.zeros(0), np.zeros(7, np.int16), a.reshape(-1)[3:]):
        assert _native.ptr(arr) == arr.ctypes.data


def test_a_share_moves_toward_even_ends_within_its_range():
    """A helper that ends late gets less of the next job, one that ends early more; half a step each time (the
    ends are noisy), never past the range."""
    s = parallel.Share(0.5, 0.3, 0.7)
    s.learn(2.0, 10.0, 0.5)  # the whole is 20 ms on the helper: 1 ms of it should move, half of that per step
    assert s.value == pytest.approx(0.5 + 0.5 * 2.0 / 40.0)
    s.learn(-2.0, 10.0, 0.5)
    assert s.value == pytest.approx(0.5)
    for _ in range(100):
        s.learn(50.0, 10.0, 0.5)
    assert s.value == 0.7
    s.learn(1.0, 0.0, 0.5)  # no time measured: nothing learnt
    s.learn(1.0, 5.0, 0.0)
    assert s.value == 0.7
    assert {"hyper", "bands1", "bands2"} <= set(parallel.SHARES)


def test_wait_feeds_the_job_timing_to_its_share(fake):
    class Timed(parallel.LoopbackHelper):
        def wait(self, limit_ms: float = 0.0) -> str:
            answer = json.loads(super().wait(limit_ms))
            return json.dumps({**answer, "ms": [0.1, 8.0, 1.5, 0.1, 1.5]})  # ended 1.5 ms after this thread

    s = parallel.Share(0.5, 0.3, 0.7)
    job = parallel.Job()
    job.buf(np.zeros(4, np.uint8), "out")
    job.learn = (s, 0.5)
    h = Timed()
    done = parallel.jobs_done()
    assert job.start(h) and job.wait(h) == []
    assert s.value == pytest.approx(0.5 + 0.5 * 1.5 / (2 * 16.0))  # the helper was late: this thread takes more
    assert parallel.jobs_done() == done + 1 and len(parallel.recent(1)[0]) == 6

    class Early(Timed):  # ended before this thread asked: its clock says 1 ms, this thread did not wait
        def wait(self, limit_ms: float = 0.0) -> str:
            return json.dumps({**json.loads(super().wait(limit_ms)), "ms": [0.1, 8.0, 0.0, 0.1, -1.0]})

    class Skewed(Timed):  # this thread waited 0.9 ms: the helper was late, whatever its clock says
        def wait(self, limit_ms: float = 0.0) -> str:
            return json.dumps({**json.loads(super().wait(limit_ms)), "ms": [0.1, 8.0, 0.9, 0.1, -0.2]})

    for helper, moved in ((Early(), -1.0), (Skewed(), 0.9)):
        before = s.value = 0.5
        job = parallel.Job()
        job.buf(np.zeros(4, np.uint8), "out")
        job.learn = (s, 0.5)
        assert job.start(helper) and job.wait(helper) == []
        assert s.value == pytest.approx(before + 0.5 * moved / (2 * 16.0))


def _band_like_job(src: np.ndarray, dst: np.ndarray, back: np.ndarray, w: np.ndarray) -> parallel.Job:
    """A job shaped like a synthesis band's: a constant, rows of ``src`` gathered, scratch, an output in ``dst`` and
    part of the scratch copied back into ``back``."""
    job = parallel.Job()
    job.buf(w, "const")
    gathered = np.empty(src[:, 1:].size, np.uint8)  # a name
    job.gather_blocks(gathered, src[:, 1:])
    scratch = job.buf(np.empty(gathered.size, np.uint8), "scratch")
    out = job.buf(dst[2:], "out")
    job("nic_copy", scratch.ctypes.data, gathered.ctypes.data, gathered.size)
    job("nic_add_one", scratch.ctypes.data, gathered.size)
    job("nic_copy", out.ctypes.data, scratch.ctypes.data, out.size)
    job.copy_out(back, scratch[:2])
    return job


def test_a_template_makes_the_job_a_recording_would(fake):
    """``Template.make`` gives, for new arrays of the same sizes, the spec that recording the job again gives (but for
    the addresses of mere names, scratch and gathered inputs, which no helper reads), and the LoopbackHelper runs it
    to the same outputs."""

    def spec(job: parallel.Job) -> str:
        bufs = [{k: v for k, v in b.items() if k != "ptr" or (b["role"] in ("in", "out", "const") and "parts" not in b)}
                for b in job.bufs]
        return json.dumps({"bufs": bufs, "calls": job.calls, "parts": job.parts})

    w = np.arange(3, dtype=np.uint8)
    first = [np.arange(12, dtype=np.uint8).reshape(3, 4), np.zeros(8, np.uint8), np.zeros(2, np.uint8)]
    tmpl = parallel.Template(_band_like_job(*first, w), first)
    for k in range(2):
        new = [np.arange(12, dtype=np.uint8).reshape(3, 4) * (k + 2), np.zeros(8, np.uint8), np.zeros(2, np.uint8)]
        want = _band_like_job(*new, w)
        made = tmpl.make(new)
        assert made is not None
        # What start sends: the short form (the template's id and these addresses), else the whole JSON
        rendered, short = made.spec_json(), json.loads(made.short_json())
        assert short["template"] == tmpl.id == json.loads(rendered)["template"]
        assert parallel.place_addresses(json.loads(tmpl.render([0] * 3)), short["at"]) == json.loads(rendered)
        assert json.loads(rendered) == json.loads(json.dumps({"bufs": made.bufs, "calls": made.calls,
                                                               "parts": made.parts, "template": tmpl.id}))
        assert made.short_json() is None  # read, its lists may change: no template describes it now
        assert "template" not in json.loads(made.spec_json())
        assert spec(made) == spec(want)
        h = parallel.LoopbackHelper()
        assert made.start(h) and made.wait(h) == [0, 7, 0]
        rows = (new[0][:, 1:].ravel() + 1).astype(np.uint8)
        assert new[1][2:].tolist() == rows[:6].tolist() and new[2].tolist() == rows[:2].tolist()
    made.calls.append(("nic_add_one", [[0, 0], 1]))  # a made job's lists are its own
    assert len(tmpl.make(new).calls) == 3


def test_a_client_that_keeps_a_template_gets_its_short_form(fake):
    """A made job goes to the client as its template's id and addresses; a client that has not seen the template
    answers "need" and gets the whole spec, which it keeps: the next job of that template goes short, to the same
    outputs in that job's own arrays."""
    w = np.arange(3, dtype=np.uint8)

    def arrays(k: int) -> list[np.ndarray]:
        return [np.arange(12, dtype=np.uint8).reshape(3, 4) * (k + 1), np.zeros(8, np.uint8), np.zeros(2, np.uint8)]

    first = arrays(0)
    tmpl = parallel.Template(_band_like_job(*first, w), first)
    h = parallel.LoopbackHelper()
    sent = []
    real_start = h.start
    h.start = lambda spec: sent.append(json.loads(spec)) or real_start(spec)
    for k in range(3):
        a = arrays(k)
        job = tmpl.make(a)
        assert job.start(h) and job.wait(h) == [0, 7, 0]
        assert a[1][2:].tolist() == (a[0][:, 1:].ravel() + 1)[:6].tolist() and a[2].tolist() == a[1][2:4].tolist()
    assert ["at" in s for s in sent] == [True, False, True, True]  # short, "need", the whole spec, then short twice
    assert h.short_starts == 2
    with pytest.raises(ValueError, match="addresses"):
        parallel.place_addresses(json.loads(tmpl.render([0] * 3)), [1, 2])


def test_a_template_refuses_what_it_cannot_remake(fake, monkeypatch):
    """A buffer the helper reads or writes outside the bases cannot be moved: refused when the template is made;
    other sizes are refused when it is used; after the constant keys are cleared (its constants may be gone) it
    makes nothing, and the caller records the job again."""
    w = np.arange(3, dtype=np.uint8)
    arrays = [np.arange(12, dtype=np.uint8).reshape(3, 4), np.zeros(8, np.uint8), np.zeros(2, np.uint8)]
    job = _band_like_job(*arrays, w)
    with pytest.raises(ValueError, match="outside"):
        parallel.Template(job, arrays[:2])  # the copy_out's destination is in none of them
    tmpl = parallel.Template(job, arrays)
    with pytest.raises(AssertionError):
        tmpl.make([arrays[0], np.zeros(9, np.uint8), arrays[2]])
    monkeypatch.setattr(parallel, "CONST_ARRAYS", 1)
    parallel.Job().buf(np.zeros(1), "const")  # a second constant clears the table
    assert tmpl.make(arrays) is None


def test_templates_record_once_per_key_and_owner(fake):
    """``Templates.job`` records a key's job once and then makes it from the template; another owner object under the
    same key, or size 0, records again; past ``size`` keys the oldest is dropped."""
    w = np.arange(3, dtype=np.uint8)
    recorded = []

    def arrays() -> list[np.ndarray]:
        return [np.arange(12, dtype=np.uint8).reshape(3, 4), np.zeros(8, np.uint8), np.zeros(2, np.uint8)]

    def record_for(a: list[np.ndarray]):
        def record(job: parallel.Job) -> None:
            recorded.append(1)
            job.__dict__.update(_band_like_job(*a, w).__dict__)
        return record

    kept = parallel.Templates(2)
    owner = object()
    for _ in range(3):
        a = arrays()
        job = kept.job(("k",), (owner,), a, record_for(a))
        h = parallel.LoopbackHelper()
        assert job.start(h) and job.wait(h) == [0, 7, 0]
        assert a[1][2:].tolist() == (a[0][:, 1:].ravel() + 1)[:6].tolist()  # the outputs landed in this call's arrays
    assert len(recorded) == 1
    a = arrays()
    kept.job(("k",), (object(),), a, record_for(a))  # another owner: recorded again
    assert len(recorded) == 2
    for key in ("x", "y"):  # two more keys: the first one is dropped
        a = arrays()
        kept.job((key,), (owner,), a, record_for(a))
    a = arrays()
    kept.job(("k",), (owner,), a, record_for(a))
    assert len(recorded) == 5
    off = parallel.Templates(0)
    for _ in range(2):
        a = arrays()
        off.job(("k",), (owner,), a, record_for(a))
    assert len(recorded) == 7
