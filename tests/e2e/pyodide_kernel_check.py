"""Runs inside Pyodide (scripts/pyodide_run.mjs): the wasm matmul kernel loads and matches NumPy bit for bit.

Prints one JSON line: {"kernel", "products_equal", "rans_kernel", "rans_equal", "rans_pause_equal", "conv_kernels",
"igdn_kernel", "igdn16_kernel", "pixels_kernel", "requantize_kernel", "scale_kernel", "values_kernel", "wino3_kernel",
"latent_kernel", "to_i16t_kernel": bool,
"linalg": [the file numpy.linalg came from, what a numpy.linalg call gave],
"files": {name: [sha_kernel, sha_numpy, [Winograd layers, int16 direct layers, F(2x2, 3x3) hyper layers, phase-gathered
5x5/s2 hyper layers, int16 latents] run in the kernel decode]},
"helper": {name: [sha with a LoopbackHelper, its jobs, sha with the runner's helper thread or None, its jobs,
sha with a helper that refuses jobs, sha with one whose jobs fail, shas with every learnt share at the low and at the
high end of its range]},
"after_corrupt": [the NicError of a file whose y stream is corrupt (CRC made right), the helper's jobs in the next
decode, its sha] (with the helper thread and a big-d2.nic among the files; else null),
"check_calls": {kernel: calls during the load-time checks}, "tiered": [the kernels their ``_native.tier_up`` ran]}.
Run with ``scripts/pyodide_run.mjs --helper`` for the helper thread (site/nic_site/static/nic-helper.js).
"""

import hashlib
import json
import sys

import numpy as np

import webdecoder
from webdecoder import _native, conv, parallel, winograd

models, files = sys.argv[1].split(","), sys.argv[2:]
for m in models:
    webdecoder.register_model(open(m, "rb").read())
# Kernel calls during the load-time checks, by export (webdecoder.trace): each check runs its kernel again through
# _native.tier_up, so that V8 optimises it before a decode's first large call.
from webdecoder import trace  # noqa: E402

trace.enable()
check_origin = trace.begin()
tiered: set[str] = set()  # the kernels that the checks' tier_up calls ran
tier_up = _native.tier_up


def recording_tier_up(call):
    n = len(trace._events)
    tier_up(call)
    tiered.update(name for name, _, _ in trace._events[n:])


_native.tier_up = recording_tier_up
kernel = conv._load_kernel()
rng = _native.CheckInts(1)  # the served NumPy has no numpy.random (byte_compile.NUMPY_UNUSED_DIRS)
equal = kernel is not None
for p, k, n in ((4, 1, 4), (5, 3, 7), (75, 6, 1000), (2028, 192, 97), (64, 48, 130)):
    w = rng.integers(-(1 << 14) + 1, 1 << 14, (p, k)).astype(np.float64)  # weights below 2^14
    a = rng.integers(-(1 << 22), (1 << 22) + 1, (k, n)).astype(np.float64)  # activations within +-2^22
    if kernel is not None:
        equal = equal and np.array_equal(kernel(w, a), np.einsum("pk,kn->pn", w, a))
        # Zero operands leave the int32 flush unbounded (chunk capped by conv.MAX_CHUNK): no overrun.
        equal = equal and not kernel(np.zeros_like(w), a).any() and not kernel(w, np.zeros_like(a)).any()
if conv.kernels_on():
    wt = rng.integers(-(1 << 14) + 1, 1 << 14, (4, 3, 13, 13)).astype(np.float64)
    zero = np.zeros((4, 5, 7))
    equal = equal and not conv._fused_convt(zero, wt, conv.weight_matrix(wt), 8, 3).any()
    equal = equal and not conv._gather_i16(zero, wt[:, :, :3, :3].copy(), 1).any()
    small = wt[:, :2] // 8  # transforms within int16; an even channel count (winograd pairs them)
    equal = equal and not winograd.convt(zero, small, 8, 3).any()
    # Beyond its input bound, Winograd declines (conv_transpose then takes the direct kernel).
    equal = equal and winograd.convt(np.full((4, 5, 7), winograd.MAX_INPUT + 1.0), small, 8, 3) is None
# rANS: the C step loop against the NumPy one on random streams, whole and truncated (must raise alike).
from webdecoder import rans  # noqa: E402

rans_ok = rans._kernel_ok()
rans_equal = rans_ok
freqs = np.array([40000, 20000, 5535, 1, 60000, 5535, 1], np.int64)  # tables of 4 and 3 symbols
offsets = np.array([0, 4, 7], np.int64)
for lanes, n in ((1, 50), (5, 999), (256, 20000)):
    tables = rng.integers(0, 2, n)
    symbols = np.where(tables == 0, rng.integers(0, 4, n), rng.integers(0, 3, n))
    data = rans.RansEncoder(lanes).encode(symbols, freqs, offsets, tables)
    for cut in (0, 2, 10):
        stream = data[: len(data) - cut] if cut else data
        got = []
        for use_kernel in (True, False):
            rans._kernel_state = use_kernel and rans_ok
            try:
                dec = rans.RansDecoder(stream, lanes)
                got.append(("ok", dec.decode(freqs, offsets, tables).tolist(), dec.ptr, dec.x.tolist()))
            except webdecoder.NicError as e:
                got.append(("error", str(e)))
        rans_equal = rans_equal and got[0] == got[1]
rans._kernel_state = rans_ok
# A table index outside the tables, int32 as the latent's come: the C loop refuses it as it reads it (decode_values
# makes no NumPy pass first), with the error the NumPy check gives (decode), and never reads past its tables.
from webdecoder import entropy  # noqa: E402

data = rans.RansEncoder(5).encode(np.zeros(40, np.int64), freqs, offsets, np.zeros(40, np.int64))
for bad in (2, -1, 1 << 20):
    tables = np.zeros(40, np.int32)
    tables[37] = bad
    errors = []
    for how in ("loop", "numpy"):
        try:
            dec = rans.RansDecoder(data, 5)
            if how == "loop":
                dec.decode_values(freqs, offsets, tables, entropy._value_tables(offsets))
            else:
                dec.decode(freqs, offsets, tables)
            errors.append(None)
        except webdecoder.NicError as e:
            errors.append(str(e))
    rans_equal = rans_equal and errors == [rans.TABLE_RANGE] * 2
# A decode paused at symbol `at` (hyper_decode_deferred's pending scales): the same values, escapes, states and word
# pointer, the pause called once, and no table from `at` on read before it (there, an index no table has until then).
from webdecoder import known_answers  # noqa: E402

pause_equal = entropy._values_kernel_ok()
vfreqs, voffsets, vtables, _, vlanes = entropy._values_check_case()
vtables = vtables.astype(np.int32)
whole = rans.RansDecoder(known_answers.VALUES, vlanes)
want = whole.decode_values(vfreqs, voffsets, vtables, entropy._value_tables(voffsets))
for at in (0, 1, vlanes - 1, vlanes, vlanes + 1, 500, 1481, vtables.size - 1, vtables.size):
    tables = vtables.copy()
    tables[at:] = 1 << 20
    calls = []

    def fill(at=at, tables=tables, calls=calls):
        calls.append(at)
        tables[at:] = vtables[at:]

    dec = rans.RansDecoder(known_answers.VALUES, vlanes)
    got = dec.decode_values(vfreqs, voffsets, tables, entropy._value_tables(voffsets), (at, fill))
    pause_equal = pause_equal and calls == [at] and all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    pause_equal = pause_equal and dec.ptr == whole.ptr and np.array_equal(dec.x, whole.x) and want[1].size > 2
# The conv kernels (overlap-add, direct, fused int16, phase gather, Winograd: each path's check) and the fused iGDN:
# loaded and self-checked.
from webdecoder import synthesis  # noqa: E402

conv_ok = conv.kernels_on() and all(ok() for ok in conv.CONV_CHECKS)
igdn_ok = synthesis._igdn_kernel_ok()
igdn16_ok = synthesis._igdn16_kernel_ok()
latent_ok = synthesis._latent_kernel_ok()
to_i16t_ok = conv._to_i16t_kernel_ok()
pixels_ok = synthesis._pixels_kernel_ok()
direct_pixels_ok = synthesis._direct_pixels_kernel_ok()
requantize_ok = conv._requantize_kernel_ok()
from webdecoder import hyper  # noqa: E402

scale_ok = hyper._scale_kernel_ok()
wino3_ok = hyper._wino3_kernel_ok()
from webdecoder import entropy  # noqa: E402

values_ok = entropy._values_kernel_ok()
# The C plan builders (checked on known answers) against the NumPy plans, on the check's cases and on every model's
# k13/s8 and 3x3 hyper weights, each half of the 3x3 layer's rows as the two threads split them.
from webdecoder import model as model_registry  # noqa: E402
from webdecoder import wino3  # noqa: E402

lay13 = winograd._layout(13, 8, 3)
plan_pairs = [(winograd._plan_weights_c(w, lay13, kp), winograd._plan_weights(w, lay13, kp))
              for w, kp in winograd.plan_check_cases()]
plan_pairs += [(_native.wino3_plan(w, rows.start, rows.stop - rows.start), wino3._plan_numpy(w, rows))
               for w, rows in wino3.plan_check_cases()]
for m in model_registry._registry.values():
    if "two.up.w" in m.arrays:
        w = np.ascontiguousarray(synthesis._fused_up(m)[0], np.float64)
        kp = -(-w.shape[0] // 8) * 8
        plan_pairs.append((winograd._plan_weights_c(w, lay13, kp), winograd._plan_weights(w, lay13, kp)))
    w = np.ascontiguousarray(m.convt("h2.w")[0], np.float64)
    half = w.shape[1] // 2
    plan_pairs += [(_native.wino3_plan(w, r0, half), wino3._plan_numpy(w, slice(r0, r0 + half))) for r0 in (0, half)]


def same_plan(c, r) -> bool:
    return c is not None and r is not None and all(np.array_equal(x, y) and x.dtype == y.dtype
                                                   for x, y in zip(c, r, strict=True))


plans_equal = (bool(plan_pairs) and all(same_plan(c, r) for c, r in plan_pairs)
               and conv.kernel_checked("winograd_plan", winograd._plan_check)
               and conv.kernel_checked("wino3_plan", wino3._plan_check))
check_calls = {}
for name, _, _ in trace.events(check_origin):
    check_calls[name] = check_calls.get(name, 0) + 1
trace.disable()
_native.tier_up = tier_up
out = {}
wino_runs = []
convt_band = winograd.convt_band


def counted(*args, **kw):
    rc = convt_band(*args, **kw)
    wino_runs.append(1 if rc == 0 else 0)  # 1: a Winograd layer ran (the single-thread decodes: one band)
    return rc


winograd.convt_band = counted
direct_i16 = _native.convt_direct_i16_into


def counted_direct(*args, **kw):
    rc = direct_i16(*args, **kw)
    wino_runs.append(2 if rc == 0 else 0)  # 2: the output layer ran in int16 (None: recorded for the helper)
    return rc


_native.convt_direct_i16_into = counted_direct
direct_pixels = _native.convt_direct_i16_pixels16


def counted_direct_pixels(*args, **kw):
    rc = direct_pixels(*args, **kw)
    wino_runs.append(2 if rc == 0 else 0)  # 2 as well: the output layer in int16, its sums rounded to pixels at once
    return rc


_native.convt_direct_i16_pixels16 = counted_direct_pixels
from webdecoder import wino3  # noqa: E402

prepare3 = wino3.prepare


def counted3(*args):
    got = prepare3(*args)
    wino_runs.append(3 if got is not None else 0)  # 3: the hyper-decoder's last layer ran through F(2x2, 3x3)
    return got


wino3.prepare = counted3
phase_i16 = conv._phase_i16


def counted_phase(*args):
    got = phase_i16(*args)
    wino_runs.append(4 if got is not None else 0)  # 4: a 5x5/s2 hyper-decoder layer ran as the int16 phase gather
    return got


conv._phase_i16 = counted_phase
latent16 = _native.latent16


def counted_latent16(*args):
    got = latent16(*args)
    wino_runs.append(5 if got is not None else 0)  # 5: the depth-2 latent went to the synthesis as int16
    return got


_native.latent16 = counted_latent16
real = parallel.helper()  # the runner's helper thread: used below, not in the single-thread decodes here
parallel.set_helper(None)
for f in files:
    data = open(f, "rb").read()
    conv._kernel, rans._kernel_state, entropy._values_state = kernel, rans_ok, values_ok
    wino_runs.clear()
    with_kernel = hashlib.sha256(webdecoder.decode(data).tobytes()).hexdigest()
    ran = [sum(v == k for v in wino_runs) for k in (1, 2, 3, 4, 5)]
    conv._kernel, rans._kernel_state, entropy._values_state = None, False, False  # the NumPy fallbacks
    without = hashlib.sha256(webdecoder.decode(data).tobytes()).hexdigest()
    out[f] = [with_kernel, without, ran]
conv._kernel, rans._kernel_state, entropy._values_state = kernel, rans_ok, values_ok
# The two-thread schedule (bands, half products): through a LoopbackHelper (the recorded jobs run here, from
# their JSON) and through the runner's helper thread where there is one (pyodide_run.mjs --helper).
helper_out = {}


class Refusing:
    def start(self, spec):
        return False


class Failing:
    def start(self, spec):
        return True

    def wait(self, limit_ms):
        raise RuntimeError("the helper thread died")


for f in files:
    data = open(f, "rb").read()
    row = []
    for h in (parallel.LoopbackHelper(), real):
        if h is None:
            row += [None, 0]
            continue
        jobs = parallel.jobs_done()
        parallel.set_helper(h)
        row.append(hashlib.sha256(webdecoder.decode(data).tobytes()).hexdigest())
        row.append(h.jobs if isinstance(h, parallel.LoopbackHelper) else parallel.jobs_done() - jobs)
    # A helper that refuses every job, and one whose jobs fail: this thread computes everything itself.
    for h in (Refusing(), Failing()):
        parallel.set_helper(h)
        row.append(hashlib.sha256(webdecoder.decode(data).tobytes()).hexdigest())
    # Every split the learnt shares may take: both ends of each share's range (the schedule moves, the pixels do not).
    parallel.set_helper(real or parallel.LoopbackHelper())
    learnt = {k: v.value for k, v in parallel.SHARES.items()}
    for end in ("lo", "hi"):
        for v in parallel.SHARES.values():
            v.value = getattr(v, end)
            v.RATE = 0.0  # held there while decoding
        row.append(hashlib.sha256(webdecoder.decode(data).tobytes()).hexdigest())
    for k, v in parallel.SHARES.items():
        v.value, v.RATE = learnt[k], parallel.Share.RATE
    parallel.set_helper(None)
    helper_out[f] = row
# A well-formed file (its CRC made right) whose y stream is corrupt: the decode raises after it started the helper's
# job, which no one then waits for; the next decode must still get the helper (nic-helper.js lets such a job end).
after_corrupt = None
big = [f for f in files if f.endswith("big-d2.nic")]
if real is not None and big:
    from webdecoder import format as nic_format  # noqa: E402

    good = open(big[0], "rb").read()
    header = nic_format.parse(good)
    z_rans, z_esc, y_rans, y_esc = header.sections(good)
    bad_y = bytearray(y_rans)
    for i in range(len(bad_y) // 2, len(bad_y) // 2 + 100):
        bad_y[i] ^= 0x5A
    bad = nic_format.pack(header, z_rans, z_esc, bytes(bad_y), y_esc)  # its CRC right
    parallel.set_helper(real)
    try:
        webdecoder.decode(bad)
        error = None
    except webdecoder.NicError as e:
        error = str(e)
    jobs = parallel.jobs_done()
    sha = hashlib.sha256(webdecoder.decode(good).tobytes()).hexdigest()
    after_corrupt = [error, parallel.jobs_done() - jobs, sha]
    parallel.set_helper(None)
# The served NumPy carries a stub package in numpy.linalg's place (site/nic_site/byte_compile.py NUMPY_STUBS):
# import numpy loads it (the decoder never calls numpy.linalg), and a call says what is missing.
import numpy.linalg as linalg_stub  # noqa: E402

try:
    np.linalg.inv(np.eye(2))
    linalg_call = "computed"
except NotImplementedError as e:
    linalg_call = str(e)
print(json.dumps({"helper": helper_out, "after_corrupt": after_corrupt, "check_calls": check_calls,
                  "plans_equal": plans_equal, "tiered": sorted(tiered),
                  "kernel": kernel is not None,
                  "products_equal": bool(equal),
                  "linalg": ["/".join(str(linalg_stub.__file__).rsplit("/", 2)[-2:]), linalg_call],
                  "rans_kernel": bool(rans_ok),
                  "conv_kernels": conv_ok, "igdn_kernel": igdn_ok, "igdn16_kernel": igdn16_ok,
                  "pixels_kernel": pixels_ok, "direct_pixels_kernel": direct_pixels_ok,
                  "requantize_kernel": requantize_ok, "scale_kernel": scale_ok,
                  "values_kernel": values_ok, "wino3_kernel": wino3_ok, "latent_kernel": latent_ok,
                  "to_i16t_kernel": to_i16t_ok,
                  "rans_equal": bool(rans_equal), "rans_pause_equal": bool(pause_equal), "files": out}))
