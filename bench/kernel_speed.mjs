// The decode's two Winograd kernels on one file's operands, in builds of the wasm module side by side (bench/kernel_speed.py
// writes the operands and runs this). Usage: node bench/kernel_speed.mjs OPERANDS.bin NAME=MODULE.so ... [--rounds N]
// [--max-pages P]. Each module is instantiated bare (the kernels import only a memory and a stack pointer), every round
// calls each kernel of each build in turn, and each build's outputs must equal the NumPy reference bit for bit.
// Prints one JSON line: {build: {kernel: median ms}, ...}.
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i < 0 ? dflt : Number(args.splice(i, 2)[1]);
};
const rounds = opt("--rounds", 30);
// Pyodide's memory may grow to 4 GiB (65,536 pages); Node 20's V8 runs wasm 1.4-1.5x slower in such a memory than in
// one of at most 2 GiB, where Chromium shows no such step (BENCHMARKS.md): 2 GiB by default, as fast as Chromium.
const maxPages = opt("--max-pages", 32768);
const [operandsPath, ...builds] = args;

// OPERANDS.bin: a u32 length, a JSON index {name: [dtype, offset, count]} and the arrays, 64-byte aligned.
const raw = readFileSync(operandsPath);
const headerLen = raw.readUInt32LE(0);
const index = JSON.parse(raw.subarray(4, 4 + headerLen).toString());
const TYPES = { f64: Float64Array, i32: Int32Array, i16: Int16Array, u8: Uint8Array };
const ops = {};
for (const [name, [dtype, offset, count]] of Object.entries(index.arrays)) {
  const T = TYPES[dtype];
  ops[name] = new T(raw.buffer.slice(raw.byteOffset + offset, raw.byteOffset + offset + count * T.BYTES_PER_ELEMENT));
}
const k = index.scalars;

function instantiate(path) {
  const memory = new WebAssembly.Memory({ initial: 4096, maximum: maxPages }); // 256 MiB to start with
  const stackTop = 8 << 20; // the kernels' stack frames grow down from here; operands start at 16 MiB
  const env = { memory, __stack_pointer: new WebAssembly.Global({ value: "i32", mutable: true }, stackTop) };
  const e = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(path)), { env }).exports;
  e.__wasm_call_ctors?.();
  let top = 16 << 20;
  const alloc = (bytes) => {
    const p = top;
    top += (bytes + 63) & ~63;
    return p;
  };
  const put = (a) => {
    const p = alloc(a.byteLength);
    new Uint8Array(memory.buffer, p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    return p;
  };
  const P = {};
  for (const [name, a] of Object.entries(ops)) if (!name.startsWith("ref_")) P[name] = put(a);
  P.k13_data = alloc(k.k13_nd ** 2 * k.k13_tiles4 * k.k13_kp * 2);
  P.k13_maxabs = alloc(k.k13_nd ** 2 * 4);
  P.k13_scratch = alloc(k.k13_scratch * 2);
  P.k13_out = alloc(ops.ref_k13.byteLength);
  P.h2_data = alloc(16 * k.h2_groups * k.h2_kp * 8);
  P.h2_maxabs = alloc(64);
  P.h2_scratch = alloc((k.h2_h + 3) * (k.h2_w + 3) * k.h2_kp * 2);
  P.h2_seg = alloc(4 * 64);
  P.h2_means = alloc(ops.ref_means.byteLength);
  P.h2_scales = alloc(ops.ref_scales.byteLength);
  return { e, memory, P };
}

// The k13/s8 layer: its transformed inputs (nic_wino_data) and products (nic_wino_convt32, the decode's: int32 sums),
// the whole image in one band.
function k13(m) {
  const { e, P } = m;
  const t0 = performance.now();
  if (e.nic_wino_data(P.k13_x, k.k13_h * k.k13_w, 0, k.k13_h, k.k13_cin, k.k13_h, k.k13_w, 0, k.k13_th, k.k13_kp,
    P.k13_desc, k.k13_nd, k.k13_border, k.k13_limit, P.k13_scratch, P.k13_data, P.k13_maxabs)) throw new Error("k13 data");
  const t1 = performance.now();
  if (e.nic_wino_convt32(P.k13_w16, k.k13_kp, P.k13_tstart, P.k13_py, P.k13_px, k.k13_units, P.k13_combo, P.k13_mask,
    P.k13_wmax, P.k13_maxabs, k.k13_cout, P.k13_data, k.k13_tiles, k.k13_tiles4 * k.k13_kp, P.k13_pix, P.k13_out, k.k13_s,
    k.k13_plane, k.k13_row, k.k13_band)) throw new Error("k13 convt");
  return { k13_data: t1 - t0, k13_convt: performance.now() - t1 };
}

// The hyper-decoder's last layer: F(2x2, 3x3) inputs (nic_wino3_data), then the means and the scales' table indices.
function h2(m) {
  const { e, memory, P } = m;
  const t0 = performance.now();
  if (e.nic_wino3_data(P.h2_x, k.h2_cin, k.h2_h, k.h2_w, k.h2_kp, k.h2_limit, P.h2_scratch, P.h2_data, P.h2_maxabs)) {
    throw new Error("h2 data");
  }
  const t = { h2_data: performance.now() - t0 };
  const maxabs = new Int32Array(memory.buffer, P.h2_maxabs, 16);
  for (const half of ["means", "scales"]) {
    const nt = k[`h2_${half}_terms`], pairs = k.h2_kp / 2, rows = k.h2_rows;
    const combo = ops[`h2_${half}_combo`], wmax = ops[`h2_${half}_wmax`];
    const seg = new Int32Array(memory.buffer, P.h2_seg, nt); // wino3.segments
    for (let i = 0; i < nt; i++) seg[i] = Math.min(pairs, Math.floor(2147483647 / Math.max(1, 2 * wmax[i] * maxabs[combo[i]])));
    const lut = half === "scales";
    const t1 = performance.now();
    e.nic_wino3_conv(P[`h2_${half}_upk`], rows, pairs, nt, P[`h2_${half}_combo`], P[`h2_${half}_scale`], P.h2_seg,
      P[`h2_${half}_skip`], P.h2_data, k.h2_groups, k.h2_tiles, k.h2_tw, P[`h2_${half}_bias4`], k.h2_shift, -k.h2_limit_out,
      k.h2_limit_out, P[`h2_${half}`], 1, k.h2_h, k.h2_w, lut ? P.h2_lut : 0, lut ? k.h2_llo : 0,
      lut ? k.h2_llo + ops.h2_lut.length - 1 : 0, 0, rows);
    t[`h2_${half}`] = performance.now() - t1;
  }
  return t;
}

function exact(m) {
  const same = (p, ref) => {
    const got = new Uint8Array(m.memory.buffer, p, ref.byteLength), want = new Uint8Array(ref.buffer);
    return got.every((v, i) => v === want[i]);
  };
  return same(m.P.k13_out, ops.ref_k13) && same(m.P.h2_means, ops.ref_means) && same(m.P.h2_scales, ops.ref_scales);
}

const mods = builds.map((b) => {
  const [name, path] = b.split("=");
  return { name, m: instantiate(path), times: {} };
});
for (let r = 0; r < rounds; r++) {
  for (const b of r % 2 ? [...mods].reverse() : mods) {
    for (const [kernel, ms] of Object.entries({ ...k13(b.m), ...h2(b.m) })) (b.times[kernel] ??= []).push(ms);
  }
}
const median = (a) => {
  const s = a.slice(Math.min(2, a.length - 1)).sort((x, y) => x - y); // the first rounds tier the code up
  return s[s.length >> 1];
};
const out = {};
for (const b of mods) {
  if (!exact(b.m)) throw new Error(`${b.name}: outputs differ from the NumPy reference`);
  out[b.name] = Object.fromEntries(Object.entries(b.times).map(([kernel, v]) => [kernel, median(v)]));
}
console.log(JSON.stringify(out));
