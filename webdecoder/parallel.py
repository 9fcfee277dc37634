"""A second core in the browser: part of a decode's kernel calls run on a helper thread.

Python in Pyodide runs on one thread, and so do the WebAssembly kernels it calls. The browser's decode worker
(and ``scripts/pyodide_run.mjs`` under Node) can start a helper thread that instantiates the same kernel
module (site/nic_site/static/nic-helper.js); ``helper()`` finds it. A caller then records the kernel calls of
one independent piece of work (a band of the synthesis, half of a layer's output channels) in a ``Job``,
starts it, does its own part, and waits. A job may end a part early (``end_part``): the caller takes that part's
outputs as soon as they are done (``wait_part``) while the helper goes on with the rest. The helper copies bytes
and calls kernels in the recorded order; all the arithmetic is the kernels', so a part computed there is bit for
bit the part computed here.

Everything is optional: without a helper (CPython, a page that is not cross-origin isolated, a failed helper)
``helper()`` is None and the caller computes every part itself.
"""

from __future__ import annotations

from collections.abc import Callable
import ctypes
import itertools
import json
import re
import time
from typing import Any

import numpy as np

from webdecoder import _native

ROLES = ("const", "in", "out", "scratch", "zero")
WAIT_MIN_MS = 5000.0
LATE_MIN_MS = 0.05  # a wait longer than this means the helper ended after this thread asked
LOG_JOBS = 64
# per job, ms: the helper's start delay, its time on the job, this thread's wait, the copy back, this thread's own
# work between the start and the wait, and how much later than this thread the helper ended (negative: earlier)
_log: list[list[float]] = []
_jobs_done = 0
_memory_bytes = 0  # the helper's WebAssembly memory after its last job (it only grows)
_UNSET = object()
_helper: Any = _UNSET
_const_keys: dict[int, np.ndarray] = {}  # id -> the array itself, so that its id is not reused while keyed
_const_generation = 0  # part of every key: after the dict is cleared, a reused id cannot match an old key
CONST_ARRAYS = 256


def set_helper(helper: Any) -> None:
    """Use this helper client (an object with ``start`` and ``wait``, like ``NicHelper.create``'s), or none."""
    global _helper
    _helper = helper


def helper() -> Any:
    """The helper client, or None: none there, or the kernels are off (the helper runs only kernels).

    Unless ``set_helper`` chose one, it is JavaScript's ``globalThis.nicHelper``, which the decode worker
    (nic-core.js) and ``scripts/pyodide_run.mjs --helper`` set once the helper thread is up."""
    if _native.lib() is None:
        return None
    global _found
    if _helper is not _UNSET:
        return _helper
    if _found is None:  # looked up until it is there (~20 us a lookup in Pyodide), then kept: set once, never replaced
        import js  # Pyodide only: lib() is None elsewhere

        _found = getattr(js.globalThis, "nicHelper", None)
    return _found


_found: Any = None  # globalThis.nicHelper, once seen


def jobs_done() -> int:
    """How many jobs the helper has finished so far (``recent`` gives their times)."""
    return _jobs_done


def recent(n: int) -> list[list[float]]:
    """The last n jobs' times (at most ``LOG_JOBS``), ms: [the helper's start delay, its time on the job, this
    thread's wait, the copy back, this thread's own work from the start to the wait, how much later than this thread
    the helper ended (negative: earlier)]."""
    return [list(r) for r in _log[len(_log) - min(n, len(_log)):]] if n > 0 else []


class Share:
    """This thread's share of one kind of split work (the synthesis bands' rows, the hyper-decoder's scales), which
    each job's end times teach: after each, it moves toward the share at which both threads would have ended
    together. The two threads do not run at one speed (the helper copies its inputs and outputs; a browser may run
    it on a slower core), and a fixed half left one waiting 1-2 ms for the other in Chromium. The split only moves
    work between the threads: every share gives the same integers."""

    RATE = 0.5  # half a step toward the even share per job: measured ends vary by a millisecond or so

    def __init__(self, value: float, lo: float, hi: float) -> None:
        self.value, self.lo, self.hi = value, lo, hi

    def rows(self, n: int) -> int:
        """This thread's part of n rows (or row blocks) at the current share: at least one, and one fewer than all."""
        return min(n - 1, max(1, round(self.value * n)))

    def learn(self, late_ms: float, helper_ms: float, helper_units: float) -> None:
        """The helper ended ``late_ms`` after this thread (negative: before) and worked ``helper_ms`` on
        ``helper_units`` of the split work (in units of the whole): moving late / 2 ms of work to this thread would
        have evened the ends."""
        if helper_units <= 0 or helper_ms <= 0:
            return
        whole_ms = helper_ms / helper_units
        self.value = min(self.hi, max(self.lo, self.value + self.RATE * late_ms / (2 * whole_ms)))


# The hyper-decoder's starts at all the scales here: a first, cold job on the helper is slow, and this thread would
# wait for its scales before y. It may go down to a fifth: in Chromium this thread's y (scalar code) costs about half
# of all the scales (SIMD code), which puts the even split near half of them, and a floor there had this thread
# ending 0.8 ms after the helper (session 34).
SHARES = {"hyper": Share(1.0, 0.2, 1.0), "bands1": Share(0.5, 0.3, 0.7), "bands2": Share(0.5, 0.3, 0.7)}


def share(kind: str) -> Share:
    """The learnt share of a kind of split work: "hyper" (the last layer's scales: the helper computes the rest, then
    the means), "bands1" / "bands2" (the synthesis's upper band at depth 1 / 2: the helper computes the lower one)."""
    return SHARES[kind]


def memory_bytes() -> int:
    """The helper thread's WebAssembly memory in bytes, as of its last job (0 before any)."""
    return _memory_bytes


class Job:
    """Kernel calls for the helper, with the buffers they read and write.

    ``buf(arr, role)`` declares an array, by role:

    - "const": sent once and kept by the helper while ``arr`` lives (weights, plans);
    - "in": copied in for this job (``gather_in``: an input made of several arrays);
    - "out": zeros to start with, copied back into ``arr`` by ``wait``;
    - "scratch": the helper's memory only, ``arr`` merely names it and is never touched; ``copy_out`` brings part
      of one back;
    - "zero": a scratch that starts as zeros (an accumulator the kernels add to), never copied back.

    The ``_native`` wrappers take a Job as their ``run`` argument; their pointer arguments must then lie in
    declared arrays.
    """

    def __init__(self) -> None:
        self._bufs: list[dict] = []
        self._calls: list[tuple[str, list]] = []
        self.parts: list[tuple[int, list[int]]] = []  # (calls so far, the "out" buffers that come back then)
        # A job made from a template (``Template.make``): the template and its bases' addresses, which give the spec's
        # JSON, the short form that names the template, and the lists should anything read them (which drops the
        # template: the lists may then change)
        self._lazy: tuple[Template, list[int]] | None = None
        self._parts_taken = 0
        self.learn: tuple[Share, float] | None = None  # (share, the helper's units of it): updated by ``wait``
        self._spans: list[tuple[int, int, int]] = []  # (start, end, index)
        self._arrays: list[np.ndarray] = []  # alive until the job is done: it holds only their addresses
        self._started = 0.0

    @property
    def bufs(self) -> list[dict]:
        """The declared buffers, in order (``buf``)."""
        self._own_lists()
        return self._bufs

    @property
    def calls(self) -> list[tuple[str, list]]:
        """The recorded kernel calls, as (name, arguments) with pointers as [buffer, offset]."""
        self._own_lists()
        return self._calls

    def _own_lists(self) -> None:
        if self._lazy is not None:  # the lists may change from here on: the template no longer describes the job
            template, at = self._lazy
            self._lazy = None
            self._bufs, self._calls = template.bufs_at(at), list(template.calls)

    def spec_json(self) -> str:
        """The job as the helper's client reads it (``start``): its template's JSON with this job's addresses, or its
        lists' JSON."""
        if self._lazy is not None:
            return self._lazy[0].render(self._lazy[1])
        return json.dumps({"bufs": self.bufs, "calls": self.calls, "parts": self.parts})

    def short_json(self) -> str | None:
        """For a job made from a template: the template's id and this job's addresses, all a client that keeps the
        template's spec needs (``start``); else None."""
        return None if self._lazy is None else self._lazy[0].short(self._lazy[1])

    def buf(self, arr: np.ndarray, role: str) -> np.ndarray:
        global _const_generation
        assert role in ROLES and arr.flags.c_contiguous
        ptr, n = _native.ptr(arr), arr.nbytes
        entry = {"ptr": ptr, "n": n, "role": role}
        if role == "const":
            if id(arr) not in _const_keys and len(_const_keys) >= CONST_ARRAYS:
                _const_keys.clear()
                _const_generation += 1
            _const_keys[id(arr)] = arr
            entry["key"] = f"{_const_generation}:{id(arr)}:{n}"
        self._arrays.append(arr)
        self._spans.append((ptr, ptr + max(n, 1), len(self.bufs)))
        self.bufs.append(entry)
        return arr

    def gather_in(self, name: np.ndarray, parts: list[np.ndarray]) -> None:
        """Declare ``name`` an input made of ``parts`` one after the other (contiguous arrays of ``name.nbytes``
        in all): the helper gets them as one contiguous array; ``name`` itself is never touched."""
        assert name.flags.c_contiguous and all(a.flags.c_contiguous for a in parts)
        assert sum(a.nbytes for a in parts) == name.nbytes
        self.buf(name, "in")
        self._arrays.extend(parts)
        self.bufs[-1]["parts"] = [[_native.ptr(a), a.nbytes] for a in parts]

    def gather_blocks(self, name: np.ndarray, view: np.ndarray) -> None:
        """``gather_in`` of the blocks ``view[0], view[1], ...``, each contiguous (rows of a band across channels):
        described by pointer arithmetic, without an array object per block."""
        assert view[0].flags.c_contiguous and name.flags.c_contiguous and view.nbytes == name.nbytes
        self.buf(name, "in")
        self._arrays.append(view)
        # One run [first, n, step, count]: the spec stays short (192 blocks: 5 KB of JSON as pairs, ~0.2 ms of
        # json.dumps here and JSON.parse in the client for every band).
        self.bufs[-1]["parts"] = [[_native.ptr(view), view[0].nbytes, view.strides[0], view.shape[0]]]

    def copy_out(self, dst: np.ndarray, src: np.ndarray) -> None:
        """After the calls, copy ``src`` (a contiguous part of a declared "scratch" array) back into ``dst``."""
        assert dst.flags.c_contiguous and src.flags.c_contiguous and dst.nbytes == src.nbytes
        i, off = self._arg(_native.ptr(src), True)
        assert self.bufs[i]["role"] == "scratch" and off + src.nbytes <= self.bufs[i]["n"]
        self._arrays.append(dst)
        self.bufs.append({"ptr": _native.ptr(dst), "n": dst.nbytes, "role": "out", "from": [i, off]})

    def _arg(self, value: Any, pointer: bool) -> Any:
        if not pointer:
            return value
        if value is None or value == 0:
            return 0
        for start, end, i in self._spans:
            if start <= value < end:
                return [i, value - start]
        raise ValueError("a kernel pointer outside the job's buffers")

    def __call__(self, name: str, *args: Any) -> None:
        """Record ``lib().name(*args)`` (the ``run`` hook of the ``_native`` wrappers)."""
        types = getattr(_native.lib(), name).argtypes
        self.calls.append((name, [self._arg(a, t is ctypes.c_void_p) for a, t in zip(args, types, strict=True)]))

    def end_part(self) -> None:
        """The calls recorded so far are a part: its outputs (the "out" buffers declared so far and in no earlier
        part) come back as soon as those calls are done, through ``wait_part``, while the helper goes on with the
        calls recorded after this."""
        taken = {i for _, outs in self.parts for i in outs}
        outs = [i for i, b in enumerate(self.bufs) if b["role"] == "out" and i not in taken]
        self.parts.append((len(self.calls), outs))

    def start(self, h: Any) -> bool:
        """Hand the job to helper ``h``; False when it cannot take it (the caller then runs it itself). A job made from
        a template goes as its short form (``short_json``) to a client that keeps the template; the client answers
        "need" when it does not (a template it has not seen, or has dropped), and then gets the whole spec, which
        names the template for next time (nic-helper.js: parsing, laying out and posting the whole spec to the
        helper thread made a start 0.32 ms of this thread under Node, the short form 0.24 ms)."""
        self._started = time.perf_counter()
        try:
            short = self.short_json()
            if short is not None:
                answer = h.start(short)
                if answer != "need":
                    return bool(answer)
            return bool(h.start(self.spec_json()))
        except Exception:  # a JavaScript error: treat the helper as unavailable for this job
            return False

    def wait_part(self, h: Any) -> list[int] | None:
        """The return codes of the calls up to the next ``end_part`` once that part's outputs are back; None if the
        helper failed (``wait`` then returns None too: the caller computes every part not taken itself)."""
        assert self._parts_taken < len(self.parts), "no part left to wait for"
        self._parts_taken += 1
        limit = max(WAIT_MIN_MS, 10_000 * (time.perf_counter() - self._started))
        try:
            answer = json.loads(str(h.waitPart(limit)))  # nic-helper.js names it in JavaScript style
        except Exception:
            return None
        return answer["rcs"]

    def wait(self, h: Any) -> list[int] | None:
        """The return codes of the job's calls once its outputs are back; None if the helper failed."""
        global _memory_bytes, _jobs_done
        # The helper's part is about as large as this thread's: give it ten times what this thread took (and at
        # least WAIT_MIN_MS) before declaring it dead; the client then starts no more jobs.
        own = time.perf_counter() - self._started
        limit = max(WAIT_MIN_MS, 10_000 * own)
        try:
            answer = json.loads(str(h.wait(limit)))
        except Exception:
            return None
        if "ms" in answer:
            ms = answer["ms"]
            _log.append([*ms[:4], 1000 * own, *ms[4:]])
            del _log[:-LOG_JOBS]
            _jobs_done += 1
            if self.learn is not None and len(ms) >= 5:
                # Late: this thread's own wait, on one clock; early: the two threads' clocks (performance.timeOrigin
                # + now() in each), which may disagree by a fraction of a millisecond, only ever as early.
                late = ms[2] if ms[2] > LATE_MIN_MS else min(0.0, ms[4])
                self.learn[0].learn(late, ms[1], self.learn[1])
        _memory_bytes = max(_memory_bytes, int(answer.get("memoryBytes", 0)))
        return answer["rcs"]


class Template:
    """A recorded job, to make again for other arrays of the same sizes without recording it again.

    A job's kernel calls depend on shapes alone (their pointers are recorded relative to its buffers), and so do its
    buffers, but for the addresses of the arrays each decode makes anew (its latent, its image). A template keeps the
    calls and buffers of one recorded job, with every address that the helper's client reads or writes (an "in" or
    "out" buffer, a gathered part) as an offset into one of ``bases``; ``make(bases)`` is that job for new bases of
    the same sizes. Constants are the arrays they were, which ``Job.buf`` keeps alive until its constant keys are
    cleared: ``make`` then returns None, and the caller records the job again. Recording a depth-2 band took ~0.6
    ms of this thread's time for every decode (Pyodide under Node)."""

    def __init__(self, job: Job, bases: list[np.ndarray]) -> None:
        spans = [(_native.ptr(b), b.nbytes) for b in bases]

        def where(p: int, n: int, step: int = 0, count: int = 1) -> list[int]:
            end = p + (count - 1) * step + n  # a run of blocks: its span
            for i, (start, size) in enumerate(spans):
                if start <= p and end <= start + size:
                    return [i, p - start]
            raise ValueError("a job's input or output outside its template's bases")

        self._sizes = [b.nbytes for b in bases]
        self._generation = _const_generation
        self._bufs: list[dict] = []
        for b in job.bufs:
            entry = dict(b)
            if "parts" in b:
                entry["parts"] = [where(*part) + part[1:] for part in b["parts"]]
            elif b["role"] in ("in", "out"):
                entry["ptr"] = where(b["ptr"], b["n"])
            self._bufs.append(entry)
        self._calls, self._parts = job.calls, job.parts
        self.id = next(_template_ids)  # names the template to the helper's client, which keeps its spec
        self._json, self._slots = self._render()

    def make(self, bases: list[np.ndarray]) -> Job | None:
        """The template's job for these bases (same sizes, same order as when it was made), or None where its constants
        may be gone (``Job.buf``'s keys were cleared since). Its spec's JSON is the template's with these addresses
        filled in (a job's lists are built only if something reads them: building them and ``json.dumps`` took
        ~0.2 ms of this thread's time for every job, Pyodide under Node)."""
        if self._generation != _const_generation:
            return None
        assert [b.nbytes for b in bases] == self._sizes and all(b.flags.c_contiguous for b in bases)
        at = [_native.ptr(b) for b in bases]
        job = Job()
        job._lazy = (self, at)
        job.parts = list(self._parts)
        job._arrays = list(bases)
        return job

    def render(self, at: list[int]) -> str:
        """The spec's JSON for bases at addresses ``at``: what recording the job for them gives, and the template's
        id."""
        return self._json % {f"p{k}": at[i] + off for k, (i, off) in enumerate(self._slots)}

    def short(self, at: list[int]) -> str:
        """The short form of ``render(at)``: the template's id and each moving address in the order of its JSON (for
        each buffer: each gathered part's, else an input's or output's own), which a client that keeps the template's
        spec puts back in place (nic-helper.js ``slotsOf``; ``LoopbackHelper``)."""
        return f'{{"template": {self.id}, "at": [{",".join(str(at[i] + off) for i, off in self._slots)}]}}'

    def bufs_at(self, at: list[int]) -> list[dict]:
        """The buffers for bases at addresses ``at``."""
        return self._bufs_with(lambda i, off: at[i] + off)

    def _bufs_with(self, place: Callable[[int, int], Any]) -> list[dict]:
        """The buffers, each address that moves with the bases (base i, offset) replaced by ``place(i, off)``."""
        bufs = []
        for b in self._bufs:
            entry = dict(b)
            if "parts" in b:
                entry["parts"] = [[place(i, off), *rest] for i, off, *rest in b["parts"]]
            elif b["role"] in ("in", "out"):
                entry["ptr"] = place(*b["ptr"])
            bufs.append(entry)
        return bufs

    @property
    def calls(self) -> list[tuple[str, list]]:
        return self._calls

    def _render(self) -> tuple[str, list[tuple[int, int]]]:
        """The spec's JSON as a %-format with a named field for each address that moves with the bases, and those
        fields' (base, offset) in field order."""
        slots: list[tuple[int, int]] = []

        def slot(i: int, off: int) -> str:
            slots.append((i, off))
            return f"@@p{len(slots) - 1}@@"

        bufs = self._bufs_with(slot)
        text = json.dumps({"bufs": bufs, "calls": self._calls, "parts": self._parts, "template": self.id})
        text = text.replace("%", "%%")
        return re.sub(r'"@@(p\d+)@@"', r"%(\1)d", text), slots


_template_ids = itertools.count(1)


class Templates:
    """Recorded jobs (``Template``) kept per key, the oldest dropped past ``size`` (0: every job recorded anew).

    ``job(key, owners, bases, record)`` makes the job recorded for ``key`` again from ``bases``, or records it with
    ``record(job)``. ``owners``: the objects the recording depends on beyond the key (plans, weights), kept here and
    compared by identity, so that a new object at a freed one's address cannot reuse its jobs."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: dict[tuple, tuple[tuple, Template]] = {}

    def job(self, key: tuple, owners: tuple, bases: list[np.ndarray], record: Callable[[Job], None]) -> Job:
        full = (*map(id, owners), *key)
        kept = self._kept.get(full) if self.size else None
        if kept is not None and all(a is b for a, b in zip(kept[0], owners, strict=True)):
            made = kept[1].make(bases)
            if made is not None:
                return made
        job = Job()
        record(job)
        if self.size:
            while len(self._kept) >= self.size:
                self._kept.pop(next(iter(self._kept)))  # the oldest
            self._kept[full] = (owners, Template(job, bases))
        return job


def place_addresses(spec: dict, at: list[int]) -> dict:
    """A template's spec (its JSON parsed) with the addresses of a short form (``Template.short``) in their places, in
    the order ``Template._bufs_with`` visits them: for each buffer, each gathered part's, else an input's or an
    output's own. nic-helper.js ``slotsOf`` does the same."""
    slots: list[tuple[list | dict, int | str]] = []  # (container, index or key) of each moving address
    for b in spec["bufs"]:
        if "parts" in b:
            slots += [(part, 0) for part in b["parts"]]
        elif b["role"] in ("in", "out"):
            slots.append((b, "ptr"))
    if len(slots) != len(at):
        raise ValueError(f"a short job names {len(at)} addresses, its template has {len(slots)}")
    for (where, key), value in zip(slots, at, strict=True):
        where[key] = value  # type: ignore[index]
    return spec


class LoopbackHelper:
    """A helper that runs each job on this thread when waited for, through the same JSON as the real one: the
    tests' check of the recording (pointers, buffer roles) without a second thread."""

    def __init__(self) -> None:
        self.spec: dict | None = None
        self.jobs = 0
        self.short_starts = 0  # jobs started from a kept template's spec
        self._templates: dict[int, str] = {}  # template id -> its spec's JSON, as nic-helper.js keeps them
        self._run: tuple[list, list[int]] | None = None  # (addresses, return codes) of the job under way
        self._mem: list = []  # its own memory (scratch, gathered inputs), alive while it is under way
        self._parts = 0

    def start(self, spec_json: str) -> bool | str:
        """Takes the job (True); "need" for the short form of a template it does not keep (``Job.start``)."""
        spec = json.loads(spec_json)
        if "at" in spec:
            kept = self._templates.get(spec["template"])
            if kept is None:
                return "need"
            spec = place_addresses(json.loads(kept), spec["at"])
            self.short_starts += 1
        elif "template" in spec:
            self._templates[spec["template"]] = spec_json
        self.spec = spec
        self._run, self._parts = None, 0
        return True

    def waitPart(self, limit_ms: float = 0.0) -> str:  # nic-helper.js's name
        """Runs the job's calls up to its next part's end and copies that part's outputs back."""
        spec = self.spec
        assert spec is not None and self._parts < len(spec["parts"])
        ncalls, outs = spec["parts"][self._parts]
        self._parts += 1
        addr, rcs = self._begin(spec)
        self._calls(spec, addr, rcs, ncalls)
        self._copy_back(spec, addr, outs)
        return json.dumps({"rcs": rcs[:ncalls]})

    def wait(self, limit_ms: float = 0.0) -> str:
        spec, self.spec = self.spec, None
        assert spec is not None
        self.jobs += 1
        addr, rcs = self._begin(spec)
        self._calls(spec, addr, rcs, len(spec["calls"]))
        taken = {i for _, outs in spec["parts"][: self._parts] for i in outs}
        self._copy_back(spec, addr, [i for i, b in enumerate(spec["bufs"]) if b["role"] == "out" and i not in taken])
        self._run, self._mem = None, []
        return json.dumps({"rcs": rcs})

    def _begin(self, spec: dict) -> tuple[list, list[int]]:
        if self._run is not None:
            return self._run
        # Scratch, outputs and gathered inputs get memory of their own (zeros), as in the helper: names are never
        # touched, outputs come back when their part or the job is waited for; constants and plain inputs are read
        # in place (the helper copies them in).
        own = [b["role"] in ("scratch", "zero") or "parts" in b or (b["role"] == "out" and "from" not in b)
               for b in spec["bufs"]]
        mem = [np.zeros(max(b["n"], 1), np.uint8) if o else None for b, o in zip(spec["bufs"], own, strict=True)]
        addr = [b["ptr"] if m is None else _native.ptr(m) for b, m in zip(spec["bufs"], mem, strict=True)]
        for b, at in zip(spec["bufs"], addr, strict=True):
            for ptr, n, *run in b.get("parts", []):  # a gathered input: its parts one after the other
                step, count = run or (0, 1)  # [ptr, n], or a run of count blocks step bytes apart
                for i in range(count):
                    ctypes.memmove(at, ptr + i * step, n)
                    at += n
        self._mem = mem
        self._run = (addr, [])
        return self._run

    @staticmethod
    def _calls(spec: dict, addr: list, rcs: list[int], upto: int) -> None:
        for name, args in spec["calls"][len(rcs):upto]:
            vals = [addr[a[0]] + a[1] if isinstance(a, list) else a for a in args]
            rcs.append(int(getattr(_native.lib(), name)(*vals) or 0))

    @staticmethod
    def _copy_back(spec: dict, addr: list, indices: list[int]) -> None:
        for i in indices:
            b = spec["bufs"][i]
            src = addr[b["from"][0]] + b["from"][1] if "from" in b else addr[i]  # a copy_out: part of a scratch
            ctypes.memmove(b["ptr"], src, b["n"])
