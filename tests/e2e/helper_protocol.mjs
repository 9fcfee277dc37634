// nic-helper.js's job protocol under Node, without Pyodide: a client and its helper thread run jobs that
// webdecoder/parallel.py would send, on a plain memory standing in for Pyodide's heap.
// Usage: node helper_protocol.mjs NICMM_WASM_SO NIC_HELPER_JS   -> one JSON line of findings, exit 0
// What it drives: whole specs that name a template (the client keeps the parsed spec, the helper thread its calls),
// the short form {template, at} for new addresses, "need" for a template the client does not keep, a failed job
// (after which the helper thread is told to forget every template and gets whole specs again), a job never waited
// for (the next start lets it end, its output dropped), and more templates than either side keeps (the oldest
// forgotten, then asked for again).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Worker } from "node:worker_threads";

const [soPath, helperJs] = process.argv.slice(2).map((p) => path.resolve(p));
const { create } = createRequire(import.meta.url)(helperJs);
const heap = new Uint8Array(1 << 20);
const messages = [];
const h = await create({
  wasm: readFileSync(soPath),
  heap: () => heap,
  spawn: () => {
    const w = new Worker(helperJs, { workerData: { nicHelper: true } });
    const post = w.postMessage.bind(w);
    w.postMessage = (m, ...rest) => { messages.push(m); return post(m, ...rest); };
    return w;
  },
});

// nic_scale_index(t, out, n, lut, lo, hi): out[i] = lut[clamp(t[i], lo, hi) - lo], t float64, out and lut int32
const N = 6, LO = -2, HI = 3;
const LUT_AT = 0;
new Int32Array(heap.buffer, LUT_AT, HI - LO + 1).set([10, 11, 12, 13, 14, 15]);
let next = 4096;
function job(template, keyed = true) { // a job at fresh addresses: its whole spec, short form and expected output
  const tAt = next, outAt = next + 8 * N;
  next += 4096;
  const t = new Float64Array(heap.buffer, tAt, N);
  t.set([-9, -2, 0, 1, 3, 40].map((v) => v + (template % 2)));
  const want = Array.from(t, (v) => 10 + Math.min(HI, Math.max(LO, v)) - LO);
  const spec = {
    bufs: [{ ptr: tAt, n: 8 * N, role: "in" }, { ptr: LUT_AT, n: 4 * (HI - LO + 1), role: "const", key: "lut" },
           { ptr: outAt, n: 4 * N, role: "out" }],
    calls: [["nic_scale_index", [[0, 0], [2, 0], N, [1, 0], LO, HI]]],
    parts: [],
  };
  if (keyed) spec.template = template;
  return { whole: JSON.stringify(spec), short: JSON.stringify({ template, at: [tAt, outAt] }), want,
           got: () => Array.from(new Int32Array(heap.buffer, outAt, N)) };
}

const findings = {};
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
function run(j, form) { // "short" falls back to the whole spec on "need", as parallel.Job.start does
  let answer = h.start(form === "short" ? j.short : j.whole);
  const need = answer === "need";
  if (need) answer = h.start(j.whole);
  const { rcs } = JSON.parse(h.wait(5000));
  const last = messages[messages.length - 1];
  return { answer, need, rcs, right: same(j.got(), j.want), sentSpec: Boolean(last.bufs), keep: Boolean(last.keep),
           forget: last.forget };
}

findings.first = run(job(1), "short"); // unknown: "need", then the whole spec, which both sides keep
findings.second = run(job(1), "short"); // short; no constant to send: the helper thread keeps the calls from now
findings.third = run(job(1), "short"); // short, and the helper thread's message names the template only
findings.plain = run(job(2, false), "whole"); // a job with no template: its spec every time
findings.unknown = h.start(JSON.stringify({ template: 999, at: [1, 2] }));
const broken = JSON.parse(job(3).whole);
broken.calls[0][0] = "nic_no_such_kernel";
h.start(JSON.stringify(broken));
try { h.wait(5000); findings.failed = false; } catch (e) { findings.failed = String(e.message).includes("failed"); }
findings.afterFailure = run(job(1), "short"); // the client still has the spec; the helper is told to forget all
findings.again = run(job(1), "short");
findings.againShort = run(job(1), "short");
// A job never waited for (Python's decode raised after starting it): the next start lets it end and drops its output.
const abandoned = job(4);
h.start(abandoned.whole);
const untouched = abandoned.got();
findings.afterAbandoned = run(job(1), "short");
findings.abandonedDropped = same(abandoned.got(), untouched);
for (let id = 100; id < 100 + 70; id++) run(job(id), "short"); // past the 64 each side keeps
findings.forgotten = messages.filter((m) => Array.isArray(m.forget) && m.forget.length).flatMap((m) => m.forget);
findings.evicted = run(job(100), "short"); // the client dropped its spec: asked for again, kept again
findings.allRight = [findings.first, findings.second, findings.third, findings.plain, findings.afterFailure,
                     findings.afterAbandoned, findings.again, findings.againShort, findings.evicted].every((r) => r.right && r.answer === true && same(r.rcs, [0]));
console.log(JSON.stringify(findings));
h.terminate();
