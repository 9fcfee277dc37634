/* webdecoder hot loops in C for Pyodide: the transposed-conv product and the rANS decode loop.
 *
 * out (P x N) = W (P x K) @ A (K x N), row-major float64: the transposed-conv product of webdecoder.
 *
 * Built only for Pyodide (WebAssembly side module, loaded with ctypes by webdecoder/conv.py), because
 * Pyodide's NumPy has no BLAS. Inputs are integers carried in float64 whose every partial sum stays
 * below 2^53 (docs/FORMAT.md "Exactness"), so this gives bit-identical results to NumPy in any
 * summation order; conv.py checks that on load and falls back to NumPy otherwise.
 *
 * Blocking: a 4 x 4 register tile (8 f64x2 accumulators) runs over all of K; the A panel (K x 4) stays in
 * L1 while up to PB rows of W (in L2) sweep over it.
 *
 * Build (Debian emscripten 3.1.6; see build.sh): emcc -O3 -msimd128 -sSIDE_MODULE=1 matmul.c -o ...
 */
#include <stdint.h>
#include <wasm_simd128.h>

#define PB 64

static void tile4x4(const double *W, const double *A, double *out, int K, int N, int p0, int n0) {
  v128_t c00 = wasm_f64x2_splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  const double *w0 = W + (long)p0 * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
  const double *a = A + n0;
  for (int k = 0; k < K; k++, a += N) {
    v128_t a0 = wasm_v128_load(a), a1 = wasm_v128_load(a + 2);
    v128_t b = wasm_f64x2_splat(w0[k]);
    c00 = wasm_f64x2_add(c00, wasm_f64x2_mul(b, a0));
    c01 = wasm_f64x2_add(c01, wasm_f64x2_mul(b, a1));
    b = wasm_f64x2_splat(w1[k]);
    c10 = wasm_f64x2_add(c10, wasm_f64x2_mul(b, a0));
    c11 = wasm_f64x2_add(c11, wasm_f64x2_mul(b, a1));
    b = wasm_f64x2_splat(w2[k]);
    c20 = wasm_f64x2_add(c20, wasm_f64x2_mul(b, a0));
    c21 = wasm_f64x2_add(c21, wasm_f64x2_mul(b, a1));
    b = wasm_f64x2_splat(w3[k]);
    c30 = wasm_f64x2_add(c30, wasm_f64x2_mul(b, a0));
    c31 = wasm_f64x2_add(c31, wasm_f64x2_mul(b, a1));
  }
  double *o = out + (long)p0 * N + n0;
  wasm_v128_store(o, c00); wasm_v128_store(o + 2, c01); o += N;
  wasm_v128_store(o, c10); wasm_v128_store(o + 2, c11); o += N;
  wasm_v128_store(o, c20); wasm_v128_store(o + 2, c21); o += N;
  wasm_v128_store(o, c30); wasm_v128_store(o + 2, c31);
}

static void scalar(const double *W, const double *A, double *out, int K, int N, int p, int n) {
  double s = 0;
  for (int k = 0; k < K; k++) s += W[(long)p * K + k] * A[(long)k * N + n];
  out[(long)p * N + n] = s;
}

void nic_matmul_f64(const double *W, const double *A, double *out, int P, int K, int N) {
  int P4 = P - P % 4, N4 = N - N % 4;
  for (int pb = 0; pb < P4; pb += PB) {
    int pe = pb + PB < P4 ? pb + PB : P4;
    for (int n0 = 0; n0 < N4; n0 += 4)
      for (int p0 = pb; p0 < pe; p0 += 4) tile4x4(W, A, out, K, N, p0, n0);
  }
  for (int p = 0; p < P; p++)  /* ragged edges: last N % 4 columns of every row, last P % 4 rows */
    for (int n = (p < P4 ? N4 : 0); n < N; n++) scalar(W, A, out, K, N, p, n);
}

/* Interleaved rANS decode (webdecoder/rans.py RansDecoder.decode, same semantics): symbol i uses lane
 * i % lanes; within a step lanes renormalise in lane order from the shared word stream. lut maps
 * base[i] + slot (base = table << 16) to the global symbol index. Returns the new word pointer, or -1
 * when the stream runs out (rans.py raises NicError then). Integer-only, so it matches NumPy exactly. */
int nic_rans_decode(const int32_t *base, int n, int lanes, int64_t *x, const int64_t *words, int nwords, int ptr,
                    const int32_t *lut, const int64_t *freqs, const int64_t *start, int32_t *out) {
  for (int lo = 0; lo < n; lo += lanes) {
    int m = n - lo < lanes ? n - lo : lanes;
    for (int j = 0; j < m; j++) {
      int64_t s = x[j];
      int64_t slot = s & 0xFFFF;
      int32_t p = lut[base[lo + j] + slot];
      out[lo + j] = p;
      s = freqs[p] * (s >> 16) + slot - start[p];
      if (s < 65536) {
        if (ptr >= nwords) return -1;
        s = (s << 16) | words[ptr++];
      }
      x[j] = s;
    }
  }
  return ptr;
}
