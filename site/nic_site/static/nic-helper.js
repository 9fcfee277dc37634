/* nic-helper.js: a second core for the decode worker.
 *
 * Pyodide runs Python on one thread. The decoder's heaviest stage, the depth-2 synthesis, splits into bands
 * of image rows that need little from each other (webdecoder/synthesis.py), and the hyper-decoder's last
 * layer into halves of its output channels (webdecoder/hyper.py), so while Python computes one part, a helper
 * thread computes the other with the very same WebAssembly kernels (webdecoder's
 * nicmm.wasm.so, instantiated here a second time, on its own memory). Python describes the helper's part as
 * a job (webdecoder/parallel.py): buffers (constants kept between jobs, inputs, outputs, scratch) and kernel
 * calls whose pointer arguments name those buffers. Nothing in this file decides a pixel; it copies bytes
 * and calls exports in the order Python wrote.
 *
 * One classic script, three uses:
 *   - the client, in the Pyodide worker (importScripts) or in Node:
 *       const h = await NicHelper.create({wasm, heap, spawn})   wasm: the .so bytes; heap(): Pyodide's HEAPU8;
 *                                                               spawn(): a Worker running this file as helper
 *       h.start(jobJson) -> true (started) | false (broken: Python computes the band itself) | "need"
 *                          jobJson: a job's spec, or the short form {template, at} of a job made from a recorded
 *                          template (webdecoder/parallel.py Template), whose spec this client keeps once it has seen
 *                          it: "need" when it has not (Python then sends the whole spec, which names the template);
 *                          a job still running that Python never waited for is first let end, its outputs dropped
 *       h.waitPart(limitMs) -> JSON {rcs, ms} once the job's next part (its first calls, up to a mark Python set)
 *                          is done and that part's outputs are back; the job goes on with its later calls
 *                          (the hyper-decoder's scales are needed before its means); throws as wait does
 *       h.wait(limitMs) -> JSON {rcs: [...], ms: [...], memoryBytes} once the outputs are back in Python's memory;
 *                          throws on a helper error, or after limitMs (the helper is then considered dead:
 *                          start() refuses every later job); Python then computes the part itself
 *     wait blocks on Atomics.wait, so the client needs a thread that may block (a worker, Node): never a page.
 *   - the helper, in a browser Worker named "nic-helper" or a Node worker_threads Worker (workerData.nicHelper).
 * Transport: one SharedArrayBuffer for the job's bytes and a small one for the done flag; the browser gives
 * SharedArrayBuffer only to cross-origin isolated pages (COOP + COEP headers, set by the site).
 */
"use strict";

(function () {
  const STACK_BYTES = 1 << 20; // the helper's C stack: [0, 1 MiB), the kernels' locals are a few KB
  const ALIGN = 16;
  const PAGE = 65536;
  const CONST_CAP = 64 << 20; // constants kept in the helper (weights, plans); past this, all are sent again
  const align = (n) => Math.ceil(n / ALIGN) * ALIGN;
  const PROGRESS_AT = 56 * 4; // byte offset of the parts counter in the flag buffer (after ctrl and times)
  const PARTS_ALL = 1 << 30;
  const SPIN_MS = 1; // how long a wait polls before it blocks
  const TEMPLATES_KEPT = 64; // recorded jobs' specs kept (Python keeps 32 per kind of job, of two kinds)

  // Where a template's short form puts its addresses, in the order Python's Template._bufs_with visits them: for each
  // buffer, each gathered part's first number, else an input's or an output's ptr (parallel.place_addresses).
  function slotsOf(spec) {
    const slots = [];
    for (const b of spec.bufs) {
      if (b.parts) for (const part of b.parts) slots.push([part, 0]);
      else if (b.role === "in" || b.role === "out") slots.push([b, "ptr"]);
    }
    return slots;
  }

  function keepAtMost(map, key, value, n) { // a Map as a cache: the oldest entries go past n; returns them
    map.delete(key);
    map.set(key, value);
    const gone = [];
    for (const k of map.keys()) {
      if (map.size <= n) break;
      map.delete(k);
      gone.push(k);
    }
    return gone;
  }

  // ---------------------------------------------------------------- helper side
  function serve(port) {
    let exports = null;
    let memory = null;
    let times = null; // Float64Array after ctrl: when the last job began and ended (ms since the epoch), memory bytes
    let ctrl = null; // Int32Array on the flag SharedArrayBuffer: [state (0 idle, 1 done, 2 failed), ncalls, rcs...]
    let progress = null; // Int32Array(1) on it: parts of the running job done (PARTS_ALL once it has ended)
    let data = null; // the job bytes' SharedArrayBuffer (replaced by a larger one when needed)
    let consts = new Map(); // key -> offset in memory
    let constTop = STACK_BYTES;
    let kept = new Map(); // template id -> {bufs, calls, parts}: jobs the client then sends by id (no spec to clone)

    function ensure(bytes) {
      const have = memory.buffer.byteLength;
      if (bytes > have) memory.grow(Math.ceil((bytes - have) / PAGE));
    }

    async function init(msg) {
      memory = new WebAssembly.Memory({ initial: 64, maximum: 65536 });
      const sp = new WebAssembly.Global({ value: "i32", mutable: true }, STACK_BYTES);
      // The module imports nothing else (build.sh's -fno-builtin: no memset/memcpy); a build that did would fail
      // here, and the worker would decode on one thread.
      const env = { memory, __stack_pointer: sp };
      const { instance } = await WebAssembly.instantiate(msg.wasm, { env });
      exports = instance.exports;
      if (exports.__wasm_call_ctors) exports.__wasm_call_ctors();
      ctrl = new Int32Array(msg.ctrl, 0, 48);
      times = new Float64Array(msg.ctrl, 48 * 4, 3);
      progress = new Int32Array(msg.ctrl, PROGRESS_AT, 1);
    }

    function run(msg) {
      if (msg.data) data = msg.data;
      if (!data) throw new Error("nic-helper: a job without its buffer");
      if (msg.reset) { consts = new Map(); constTop = STACK_BYTES; }
      if (msg.forget === "all") kept = new Map();
      else for (const id of msg.forget || []) kept.delete(id);
      if (msg.keep) kept.set(msg.template, { bufs: msg.bufs, calls: msg.calls, parts: msg.parts });
      const spec = msg.bufs ? msg : kept.get(msg.template);
      if (!spec) throw new Error(`nic-helper: a job of template ${msg.template}, which this thread does not keep`);
      const src = new Uint8Array(data);
      const addr = [];
      for (const b of spec.bufs) { // constants first: they stay below this job's buffers
        if (b.role !== "const") continue;
        if (!consts.has(b.key)) {
          if (b.at < 0) throw new Error("nic-helper: a constant this thread does not hold");
          ensure(constTop + b.n);
          new Uint8Array(memory.buffer).set(src.subarray(b.at, b.at + b.n), constTop);
          consts.set(b.key, constTop);
          constTop = align(constTop + b.n);
        }
      }
      let top = constTop;
      for (const b of spec.bufs) {
        if (b.role === "const") { addr.push(consts.get(b.key)); continue; }
        if (b.from) { addr.push(addr[b.from[0]] + b.from[1]); continue; } // part of a scratch, copied back
        addr.push(top);
        top = align(top + b.n);
      }
      ensure(top);
      const mem = new Uint8Array(memory.buffer);
      spec.bufs.forEach((b, i) => {
        if (b.role === "in") mem.set(src.subarray(b.at, b.at + b.n), addr[i]);
        // outputs and "zero" scratch start as zeros (sums add to them)
        if ((b.role === "out" && !b.from) || b.role === "zero") mem.fill(0, addr[i], addr[i] + b.n);
      });
      // A part's outputs go back as soon as its calls are done (the client's waitPart); the rest at the end.
      const sendBack = (indices) => {
        const out = new Uint8Array(memory.buffer);
        for (const i of indices) src.set(out.subarray(addr[i], addr[i] + spec.bufs[i].n), spec.bufs[i].at);
      };
      const parts = spec.parts || [];
      const inPart = new Set(parts.flatMap(([, outs]) => outs));
      let done = 0;
      spec.calls.forEach(([name, args], c) => {
        const fn = exports[name];
        if (typeof fn !== "function") throw new Error(`nic-helper: no kernel ${name}`);
        ctrl[2 + c] = fn(...args.map((a) => (Array.isArray(a) ? addr[a[0]] + a[1] : a))) | 0;
        while (done < parts.length && parts[done][0] === c + 1) {
          sendBack(parts[done][1]);
          Atomics.store(progress, 0, ++done);
          Atomics.notify(progress, 0);
        }
      });
      sendBack(spec.bufs.map((b, i) => i).filter((i) => spec.bufs[i].role === "out" && !inPart.has(i)));
      ctrl[1] = spec.calls.length;
    }

    const now = () => performance.timeOrigin + performance.now(); // one clock for both threads
    const onMessage = async (msg) => {
      if (msg.type === "init") {
        try {
          await init(msg);
          port.postMessage({ type: "ready" });
        } catch (err) {
          port.postMessage({ type: "init-error", message: String((err && err.stack) || err) });
        }
        return;
      }
      if (msg.type === "job") {
        const t0 = now();
        let state = 1;
        try {
          run(msg);
        } catch (err) {
          state = 2;
          port.postMessage({ type: "error", message: String((err && err.stack) || err) });
        }
        times[0] = t0;
        times[1] = now();
        times[2] = memory.buffer.byteLength;
        Atomics.store(ctrl, 0, state);
        Atomics.notify(ctrl, 0);
        Atomics.store(progress, 0, PARTS_ALL); // wakes a waitPart too, failed or not
        Atomics.notify(progress, 0);
      }
    };
    if (port.on) port.on("message", onMessage); // Node worker_threads
    else port.onmessage = (e) => onMessage(e.data);
  }

  // ---------------------------------------------------------------- client side
  async function create({ wasm, heap, spawn, timeoutMs = 10000 }) {
    const worker = spawn();
    const ctrlBuf = new SharedArrayBuffer(4 * 64);
    const ctrl = new Int32Array(ctrlBuf, 0, 48);
    const times = new Float64Array(ctrlBuf, 48 * 4, 3);
    const progress = new Int32Array(ctrlBuf, PROGRESS_AT, 1);
    const now = () => performance.timeOrigin + performance.now();
    let posted = 0;
    const on = (fn) => (worker.on ? worker.on("message", fn) : worker.addEventListener("message", (e) => fn(e.data)));
    let errors = [];
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("nic-helper: no answer to init")), timeoutMs);
      on((msg) => {
        if (msg.type === "ready") { clearTimeout(timer); resolve(); }
        else if (msg.type === "init-error") { clearTimeout(timer); reject(new Error(msg.message)); }
        else if (msg.type === "error") errors.push(msg.message);
      });
      worker.postMessage({ type: "init", wasm, ctrl: ctrlBuf });
    });
    let data = new SharedArrayBuffer(1 << 20);
    let dataSent = false; // the helper gets the buffer with the first job, and each larger one with its job
    let sent = new Map(); // const key -> bytes, as the helper holds them
    let sentBytes = 0;
    let job = null; // the running job's output buffers: [{ptr, at, n, index}]
    let parts = []; // the running job's parts not yet taken: [[ncalls, [buffer index, ...]], ...]
    let partsTaken = 0;
    let broken = null;
    // Recorded jobs (Python's parallel.Template): template id -> {spec, slots, constKeys, layout, bytes}, the spec
    // parsed once (its addresses rewritten for each job) and the layout of a job that moves no constant, the same
    // for every such job of the template. The helper thread keeps those layouts with their calls (helperKeeps, in
    // the order it got them), so that such a job's message is its template's id: parsing the whole spec, its layout
    // and the clone of the message to the helper took this thread 0.32 ms a job in all under Node, 0.24 ms now.
    const templates = new Map();
    let helperKeeps = new Map();
    let forget = []; // template ids the helper thread may drop, sent with the next job ("all" after a failure)

    function template(msg) { // the kept record of this job's template, its spec at this job's addresses
      if (msg.at) {
        const t = templates.get(msg.template);
        if (!t) return null;
        if (msg.at.length !== t.slots.length) throw new Error("nic-helper: a short job that does not fit its template");
        t.slots.forEach(([where, key], k) => { where[key] = msg.at[k]; });
        return t;
      }
      if (msg.template === undefined) return undefined; // a job recorded for this decode only
      const t = { spec: msg, slots: slotsOf(msg), constKeys: msg.bufs.filter((b) => b.role === "const").map((b) => b.key),
                  layout: null, bytes: 0 };
      keepAtMost(templates, msg.template, t, TEMPLATES_KEPT);
      return t;
    }

    function start(jobJson) {
      if (broken) return false;
      if (job && !drain()) return false;
      const msg = JSON.parse(jobJson);
      const t = template(msg);
      if (t === null) return "need";
      const spec = t ? t.spec : msg;
      let reset = false, bufs, at = 0;
      if (t && t.layout && t.constKeys.every((k) => sent.has(k))) {
        bufs = t.layout; // no constant to send: the layout of the template's earlier jobs
        at = t.bytes;
      } else {
        const newBytes = spec.bufs.reduce((s, b) => s + (b.role === "const" && !sent.has(b.key) ? b.n : 0), 0);
        if (sentBytes + newBytes > CONST_CAP) { sent = new Map(); sentBytes = 0; reset = true; }
        // Layout in the shared buffer: inputs and new constants (copied in), outputs (copied back).
        bufs = spec.bufs.map((b) => {
          const moves = b.role === "in" || b.role === "out" || (b.role === "const" && !sent.has(b.key));
          const d = { role: b.role, n: b.n, key: b.key, from: b.from, at: moves ? at : -1 };
          if (moves) at = align(at + b.n);
          return d;
        });
        if (t && !bufs.some((d) => d.role === "const" && d.at >= 0)) { t.layout = bufs; t.bytes = at; }
      }
      let grown = dataSent ? null : data;
      if (at > data.byteLength) grown = data = new SharedArrayBuffer(align(Math.max(at, 2 * data.byteLength)));
      dataSent = true;
      const src = heap();
      const dst = new Uint8Array(data);
      spec.bufs.forEach((b, i) => {
        if (b.parts) { // a gathered input: its parts one after the other, [ptr, n] or runs [ptr, n, step, count]
          let at = bufs[i].at;
          for (const [ptr, n, step = 0, count = 1] of b.parts) {
            for (let k = 0, p = ptr; k < count; k++, p += step) { dst.set(src.subarray(p, p + n), at); at += n; }
          }
        } else if (bufs[i].at >= 0 && bufs[i].role !== "out") dst.set(src.subarray(b.ptr, b.ptr + b.n), bufs[i].at);
        if (b.role === "const" && !sent.has(b.key)) { sent.set(b.key, b.n); sentBytes += b.n; }
      });
      job = spec.bufs.map((b, i) => ({ ptr: b.ptr, at: bufs[i].at, n: b.n, role: b.role, index: i }))
        .filter((b) => b.role === "out");
      parts = spec.parts || [];
      partsTaken = 0;
      Atomics.store(ctrl, 0, 0);
      Atomics.store(progress, 0, 0);
      errors = [];
      const message = { type: "job", data: grown, reset, forget };
      forget = [];
      if (t && bufs === t.layout && helperKeeps.has(msg.template)) message.template = msg.template;
      else {
        Object.assign(message, { bufs, calls: spec.calls, parts });
        if (t && bufs === t.layout) { // the helper keeps it from now on
          Object.assign(message, { template: msg.template, keep: true });
          forget = keepAtMost(helperKeeps, msg.template, true, TEMPLATES_KEPT);
        }
      }
      posted = now();
      worker.postMessage(message);
      return true;
    }

    // Blocks until the helper has ended (state !== 0) or, with part >= 0, has done that many + 1 parts. Spins for
    // up to SPIN_MS first: the shares of work are balanced so that the helper ends about when this thread asks,
    // and a thread woken from Atomics.wait resumes 0.3-0.4 ms after the notify (measured in Chromium's worker).
    function block(limitMs, part) {
      const deadline = now() + limitMs;
      const ready = () => (part < 0 ? Atomics.load(ctrl, 0) !== 0 : Atomics.load(progress, 0) > part);
      for (const spinEnd = now() + Math.min(SPIN_MS, limitMs); now() < spinEnd;) if (ready()) return;
      for (;;) {
        const seen = Atomics.load(progress, 0); // read before ready(): a change after it ends the wait at once
        if (ready()) return;
        const left = deadline - now();
        if (left <= 0 || Atomics.wait(progress, 0, seen, left) === "timed-out") {
          if (ready()) return;
          broken = "no answer within " + limitMs + " ms";
          job = null;
          throw new Error("nic-helper: " + broken);
        }
      }
    }

    // A job Python started and never waited for (its decode raised in between, e.g. on a corrupt y stream): wait
    // for the helper to end it, its outputs dropped (Python has moved on: their memory may be another array's now),
    // so that the next job may use the shared buffer. Without this, every later start() answered "busy" and the
    // page decoded on one thread from then on. False when the helper does not end it (it is then broken).
    function drain() {
      try {
        block(timeoutMs, -1);
      } catch (err) {
        return false;
      }
      job = null;
      if (Atomics.load(ctrl, 0) === 2) failed(); // its state is unknown: constants and templates sent again
      return true;
    }

    // Copies outputs back from the shared buffer into Python's memory; returns when the copy began.
    function copyBack(outs) {
      const src = new Uint8Array(data);
      const dst = heap();
      const copied = now();
      for (const b of outs) dst.set(src.subarray(b.at, b.at + b.n), b.ptr);
      return copied;
    }

    function failed() {
      sent = new Map(); // the helper's state is unknown: send every constant again, and every template
      sentBytes = 0;
      helperKeeps = new Map();
      forget = "all";
      job = null;
      return new Error("nic-helper: the job failed " + errors.join("; "));
    }

    function waitPart(limitMs = timeoutMs) {
      if (!job || partsTaken >= parts.length) throw new Error("nic-helper: no part left to wait for");
      const waited = now();
      block(limitMs, partsTaken);
      if (Atomics.load(ctrl, 0) === 2) throw failed();
      const [ncalls, outs] = parts[partsTaken++];
      const copied = copyBack(job.filter((b) => outs.includes(b.index)));
      const rcs = Array.from(ctrl.subarray(2, 2 + ncalls));
      return JSON.stringify({ rcs, ms: [times[0] - posted, 0, copied - waited, now() - copied] });
    }

    function wait(limitMs = timeoutMs) {
      if (!job) throw new Error("nic-helper: no job running");
      const taken = new Set(parts.slice(0, partsTaken).flatMap(([, outs]) => outs));
      const outs = job.filter((b) => !taken.has(b.index));
      const waited = now();
      block(limitMs, -1);
      job = null;
      if (Atomics.load(ctrl, 0) !== 1) throw failed();
      const copied = copyBack(outs);
      const rcs = Array.from(ctrl.subarray(2, 2 + ctrl[1]));
      // ms: the helper's start delay after the post, its time on the job, this thread's wait, the copy back, and
      // how much later than this thread's call to wait the helper ended (negative: it had ended that much before)
      const ms = [times[0] - posted, times[1] - times[0], copied - waited, now() - copied, times[1] - waited];
      return JSON.stringify({ rcs, ms, memoryBytes: times[2] });
    }

    return { start, wait, waitPart, terminate: () => worker.terminate() };
  }

  const api = { create };
  const g = typeof self !== "undefined" ? self : globalThis;
  g.NicHelper = api;

  // Running as the helper thread?
  if (typeof WorkerGlobalScope !== "undefined" && self.name === "nic-helper") serve(self);
  else if (typeof require === "function") {
    const wt = require("node:worker_threads");
    if (!wt.isMainThread && wt.workerData && wt.workerData.nicHelper) serve(wt.parentPort);
    if (typeof module === "object") module.exports = api;
  }
})();
