/* webdecoder hot loops in C for Pyodide: the transposed-conv product, its overlap-add, and the rANS decode loop.
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
 * Build (Debian emscripten 3.1.6; see build.sh): emcc -O3 -msimd128 -fno-builtin -sSIDE_MODULE=1 matmul.c -o ...
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

/* The same product on 16-bit integers, 8 multiply-adds per instruction (i32x4.dot_i16x8_s), for the
 * common case where conv.py can split the operands into int16 parts (weights below 2^15 and activations
 * split into high and low halves when they exceed 15 bits; see conv.py _int16_product):
 *   out (P x N) += scale * (W (P x Kp) @ At (N x Kp)^T),  Kp a multiple of 8, zero-padded.
 * int32 sums (over 4 lanes) are flushed to float64 every `chunk` blocks of 8, a bound conv.py computes from
 * the operands' largest magnitudes so that no int32 sum can overflow; float64 then holds every partial sum
 * exactly (below 2^53). So the result equals the float64 kernel's, bit for bit. */
/* [sum(c0), sum(c1), sum(c2), sum(c3)] of four int32x4 vectors (caller bounds the four-lane sums). */
static inline v128_t reduce4(v128_t c0, v128_t c1, v128_t c2, v128_t c3) {
  v128_t x = wasm_i32x4_add(wasm_i32x4_shuffle(c0, c1, 0, 4, 1, 5), wasm_i32x4_shuffle(c0, c1, 2, 6, 3, 7));
  v128_t y = wasm_i32x4_add(wasm_i32x4_shuffle(c2, c3, 0, 4, 1, 5), wasm_i32x4_shuffle(c2, c3, 2, 6, 3, 7));
  /* x = [c0a, c1a, c0b, c1b], y = [c2a, c3a, c2b, c3b] with a/b the two half sums of each vector */
  return wasm_i32x4_add(wasm_i32x4_shuffle(x, y, 0, 1, 4, 5), wasm_i32x4_shuffle(x, y, 2, 3, 6, 7));
}

/* One step of a 2 x 4 tile of int16 dot products (tile2x4_core, taps2x4): 8 channels of four pixels (q, q + ai, q +
 * 2 ai, q + 3 ai) against two weight rows (r, r + wr) into the int32 accumulators c00 .. c13; then the flush of those
 * sums into the float64 pairs f0 .. f3 (rows 0 and 1, pixels 0-1 and 2-3). Macros, so that both loops keep their
 * eight accumulators and four sums in registers exactly as written out. */
#define STEP2X4(q, ai, r, wr)                                                                                    \
  do {                                                                                                          \
    v128_t b0 = wasm_v128_load(q), b1 = wasm_v128_load((q) + (ai)), b2 = wasm_v128_load((q) + 2 * (ai)),        \
           b3 = wasm_v128_load((q) + 3 * (ai));                                                                 \
    v128_t x = wasm_v128_load(r);                                                                               \
    c00 = wasm_i32x4_add(c00, wasm_i32x4_dot_i16x8(x, b0));                                                     \
    c01 = wasm_i32x4_add(c01, wasm_i32x4_dot_i16x8(x, b1));                                                     \
    c02 = wasm_i32x4_add(c02, wasm_i32x4_dot_i16x8(x, b2));                                                     \
    c03 = wasm_i32x4_add(c03, wasm_i32x4_dot_i16x8(x, b3));                                                     \
    x = wasm_v128_load((r) + (wr));                                                                             \
    c10 = wasm_i32x4_add(c10, wasm_i32x4_dot_i16x8(x, b0));                                                     \
    c11 = wasm_i32x4_add(c11, wasm_i32x4_dot_i16x8(x, b1));                                                     \
    c12 = wasm_i32x4_add(c12, wasm_i32x4_dot_i16x8(x, b2));                                                     \
    c13 = wasm_i32x4_add(c13, wasm_i32x4_dot_i16x8(x, b3));                                                     \
  } while (0)
#define FLUSH2X4()                                                                                              \
  do {                                                                                                          \
    v128_t r0 = reduce4(c00, c01, c02, c03), r1 = reduce4(c10, c11, c12, c13);                                  \
    f0 = wasm_f64x2_add(f0, wasm_f64x2_convert_low_i32x4(r0));                                                  \
    f1 = wasm_f64x2_add(f1, wasm_f64x2_convert_low_i32x4(wasm_i32x4_shuffle(r0, r0, 2, 3, 0, 1)));              \
    f2 = wasm_f64x2_add(f2, wasm_f64x2_convert_low_i32x4(r1));                                                  \
    f3 = wasm_f64x2_add(f3, wasm_f64x2_convert_low_i32x4(wasm_i32x4_shuffle(r1, r1, 2, 3, 0, 1)));              \
  } while (0)

/* FLUSH2X4 for sums bounded lane by lane: each int32 lane goes to float64 before any lane is added to another, so a
 * lane may hold up to 2^31 - 1 (a block adds at most 2 wmax amax to it) where FLUSH2X4's four-lane sum must (8 wmax
 * amax a block): a quarter of the flushes, each about twice the work. The hyper-decoder's 5x5/s2 layers (6-8 blocks
 * a tap) flushed after every tap or every few blocks (taps2x4), ~20-40 % of their time. */
static inline v128_t lanes_f64(v128_t c) { /* [l0 + l2, l1 + l3] in float64: exact */
  return wasm_f64x2_add(wasm_f64x2_convert_low_i32x4(c), wasm_f64x2_convert_low_i32x4(wasm_i32x4_shuffle(c, c, 2, 3, 0, 1)));
}
static inline v128_t pair_f64(v128_t a, v128_t b) { /* [a0 + a1, b0 + b1] */
  return wasm_f64x2_add(wasm_i64x2_shuffle(a, b, 0, 2), wasm_i64x2_shuffle(a, b, 1, 3));
}
#define FLUSH2X4_LANES()                                                                                        \
  do {                                                                                                          \
    f0 = wasm_f64x2_add(f0, pair_f64(lanes_f64(c00), lanes_f64(c01)));                                          \
    f1 = wasm_f64x2_add(f1, pair_f64(lanes_f64(c02), lanes_f64(c03)));                                          \
    f2 = wasm_f64x2_add(f2, pair_f64(lanes_f64(c10), lanes_f64(c11)));                                          \
    f3 = wasm_f64x2_add(f3, pair_f64(lanes_f64(c12), lanes_f64(c13)));                                          \
  } while (0)

/* The 2 x 4 tile of int16 dot products, as float64 pairs: f[0] = row 0 (tiles 0, 1), f[1] = row 0 (2, 3), f[2] = row
 * 1 (0, 1), f[3] = row 1 (2, 3). Step k (8 channels) of weight row r is at w + r wr + ws k, of tile i at a + i ai +
 * as k: rows of their own (wr = ai = Kp, ws = as = 1) or runs interleaved by 8 channels (nic_wino_data's groups: wr
 * = ai = 8, ws = 2, as = 4, so that one base pointer and constant offsets address a step). */
static inline __attribute__((always_inline)) void tile2x4_core(const int16_t *w, long wr, int ws, const int16_t *a,
                                                              long ai, int as, int Kp, int chunk, v128_t f[4]) {
  v128_t f0 = wasm_f64x2_splat(0), f1 = f0, f2 = f0, f3 = f0;
  for (int kb = 0; kb < Kp; kb += 8 * chunk) {
    int ke = kb + 8 * chunk < Kp ? kb + 8 * chunk : Kp;
    v128_t c00 = wasm_i32x4_splat(0), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    for (int k = kb; k < ke; k += 8) {
      const int16_t *q = a + as * k, *r = w + ws * k; /* one base per step: constant offsets where ai, wr are */
      STEP2X4(q, ai, r, wr);
    }
    FLUSH2X4();
  }
  f[0] = f0; f[1] = f1; f[2] = f2; f[3] = f3;
}

/* Rows p0, p0+1 of W against rows n0..n0+3 of At. */
static inline void tile2x4_i16_sums(const int16_t *W, const int16_t *At, int Kp, int p0, int n0, int chunk,
                                    v128_t f[4]) {
  tile2x4_core(W + (long)p0 * Kp, Kp, 1, At + (long)n0 * Kp, Kp, 1, Kp, chunk, f);
}

static void tile2x4_i16(const int16_t *W, const int16_t *At, double *out, int Kp, int N, int p0, int n0,
                        int chunk, double scale) {
  v128_t f[4];
  tile2x4_i16_sums(W, At, Kp, p0, n0, chunk, f);
  v128_t sc = wasm_f64x2_splat(scale);
  double *o = out + (long)p0 * N + n0;
  wasm_v128_store(o, wasm_f64x2_add(wasm_v128_load(o), wasm_f64x2_mul(sc, f[0])));
  wasm_v128_store(o + 2, wasm_f64x2_add(wasm_v128_load(o + 2), wasm_f64x2_mul(sc, f[1])));
  o += N;
  wasm_v128_store(o, wasm_f64x2_add(wasm_v128_load(o), wasm_f64x2_mul(sc, f[2])));
  wasm_v128_store(o + 2, wasm_f64x2_add(wasm_v128_load(o + 2), wasm_f64x2_mul(sc, f[3])));
}

static int64_t dot_i16(const int16_t *a, const int16_t *b, int Kp) {
  int64_t s = 0;
  for (int k = 0; k < Kp; k++) s += (int64_t)a[k] * b[k];
  return s;
}

void nic_matmul_i16(const int16_t *W, const int16_t *At, double *out, int P, int Kp, int N, int chunk,
                    double scale) {
  int P2 = P - P % 2, N4 = N - N % 4;
  for (int pb = 0; pb < P2; pb += PB) {
    int pe = pb + PB < P2 ? pb + PB : P2;
    for (int n0 = 0; n0 < N4; n0 += 4)
      for (int p0 = pb; p0 < pe; p0 += 2) tile2x4_i16(W, At, out, Kp, N, p0, n0, chunk, scale);
  }
  for (int p = 0; p < P; p++)  /* ragged edges in int64, exact */
    for (int n = (p < P2 ? N4 : 0); n < N; n++)
      out[(long)p * N + n] += scale * (double)dot_i16(W + (long)p * Kp, At + (long)n * Kp, Kp);
}

/* The int16 product fused with the overlap-add: a whole transposed conv without the (P, N) patch matrix
 * (25 MB for the k13/s8 layer of a Kodak image). Row p of W is tap (c, ky, kx) of the weights, row n of At
 * input pixel (y, x); their dot product, times `scale`, is added to out (cout, H, Wd) at row
 * y*s + ky - pad, column x*s + kx - pad when that lies inside (the crop). The caller passes per row
 * tap[p] = (ky - pad, kx - pad, c*H*Wd + (ky - pad)*Wd + kx - pad) and per column pix[n] = (y*s, x*s), so
 * the target is tap.off + ys*Wd + xs. Same int32 chunking as nic_matmul_i16, then float64 sums of integers
 * below 2^53: the result equals product + overlap-add exactly, in any order. */
static inline void put(double *out, const int32_t *tp, const int32_t *px, int H, int Wd, double v) {
  int Y = px[0] + tp[0], X = px[1] + tp[1];
  if ((unsigned)Y < (unsigned)H && (unsigned)X < (unsigned)Wd) out[tp[2] + (long)px[0] * Wd + px[1]] += v;
}

void nic_convt_i16(const int16_t *W, const int16_t *At, double *out, int P, int Kp, int N, int chunk,
                   double scale, const int32_t *tap, const int32_t *pix, int H, int Wd) {
  int P2 = P - P % 2, N4 = N - N % 4;
  v128_t f[4];
  for (int pb = 0; pb < P2; pb += PB) {
    int pe = pb + PB < P2 ? pb + PB : P2;
    for (int n0 = 0; n0 < N4; n0 += 4)
      for (int p0 = pb; p0 < pe; p0 += 2) {
        tile2x4_i16_sums(W, At, Kp, p0, n0, chunk, f);
        const int32_t *t0 = tap + 3 * p0, *t1 = t0 + 3, *q = pix + 2 * n0;
        put(out, t0, q, H, Wd, scale * wasm_f64x2_extract_lane(f[0], 0));
        put(out, t0, q + 2, H, Wd, scale * wasm_f64x2_extract_lane(f[0], 1));
        put(out, t0, q + 4, H, Wd, scale * wasm_f64x2_extract_lane(f[1], 0));
        put(out, t0, q + 6, H, Wd, scale * wasm_f64x2_extract_lane(f[1], 1));
        put(out, t1, q, H, Wd, scale * wasm_f64x2_extract_lane(f[2], 0));
        put(out, t1, q + 2, H, Wd, scale * wasm_f64x2_extract_lane(f[2], 1));
        put(out, t1, q + 4, H, Wd, scale * wasm_f64x2_extract_lane(f[3], 0));
        put(out, t1, q + 6, H, Wd, scale * wasm_f64x2_extract_lane(f[3], 1));
      }
  }
  for (int p = 0; p < P; p++)  /* ragged edges in int64, exact */
    for (int n = (p < P2 ? N4 : 0); n < N; n++)
      put(out, tap + 3 * p, pix + 2 * n, H, Wd, scale * (double)dot_i16(W + (long)p * Kp, At + (long)n * Kp, Kp));
}

/* Sums over a phase's nt taps of a 2 x 4 tile (two weight rows, four neighbouring input pixels), in the same int32
 * registers across taps, flushed to float64 lane by lane (FLUSH2X4_LANES) every `chunk` blocks of 8 at most (not at
 * every tap: tile2x4_core's reduction and conversions at each of 9 taps of 48 channels cost as much as the
 * products): g taps a flush, or cb blocks a flush where one tap has more blocks than the interval
 * (nic_convt_phase_i16). Operands channel-block major, so that a step's loads are one base pointer and constant
 * offsets: tap t's block kb of weight row r at w + wo[t] + 16 kb + 8 r, of pixel i at a + ao[t] + ks kb + 8 i. */
static inline __attribute__((always_inline)) void taps2x4(const int16_t *w, const long *wo, const int16_t *a,
                                                         const long *ao, long ks, int nt, int nb, int g, int cb,
                                                         v128_t f[4]) {
  v128_t f0 = wasm_f64x2_splat(0), f1 = f0, f2 = f0, f3 = f0;
  for (int t0 = 0; t0 < nt; t0 += g) {
    int t1 = t0 + g < nt ? t0 + g : nt;
    for (int kb0 = 0; kb0 < nb; kb0 += cb) {
      int kb1 = kb0 + cb < nb ? kb0 + cb : nb;
      v128_t c00 = wasm_i32x4_splat(0), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
      for (int t = t0; t < t1; t++) {
        const int16_t *r = w + wo[t] + 16 * kb0, *q = a + ao[t] + ks * kb0;
        for (int kb = kb0; kb < kb1; kb++, r += 16, q += ks) {
          STEP2X4(q, 8, r, 8);
        }
      }
      FLUSH2X4_LANES();
    }
  }
  f[0] = f0; f[1] = f1; f[2] = f2; f[3] = f3;
}

/* The transposed conv as a gather by output phase, in int16 products: the hyper-decoder's two 5x5/s2 layers (48-64
 * channels each way), for which nic_convt_i16 adds every product sum to the output one by one (a bounds-checked
 * read-modify-write, 25 per output pixel): 2.10 -> 1.45 ms of a Kodak decode in Chromium. Output pixel (s i + py, s j + px) sums, over the taps (ky, kx) of its
 * phase, w[., ., ky, kx]^T a[., i - dy, j - dx] with ky = s dy + py + pad (and the same for x): each output is
 * summed in registers and stored once, no zeroing. a (cin, h, w) float64 integers, transposed here into scratch
 * (Kp / 8, npix, 8) int16, npix = (h + 2 border) (w + 2 border) + 4: pixels with a zero border wide enough for
 * every tap (the caller's ``border``) and 4 of slack for the last group's reads, 8 channels a block. W (k * k,
 * cout / 2, Kp / 8, 2, 8) int16: tap-major, each pair of channels interleaved by 8 input channels. out (cout, s h,
 * s w) float64. cout even. The int32 flush interval comes from wmax (max |w|) and the largest |a| read; returns 1,
 * out untouched, where an input exceeds int16 or one block could overflow int32 (else 0). Integer sums below 2^53:
 * the same result as product + overlap-add, in any order. */
int nic_convt_phase_i16(const double *a, int cin, int h, int w, const int16_t *W, int cout, int Kp, int k, int s,
                        int pad, int wmax, int border, int16_t *scratch, double *out) {
  if ((k + s - 1) / s > 8 || Kp < 8) return 1;
  int wp = w + 2 * border, H = s * h, Wd = s * w, nb = Kp / 8;
  long npix = (long)(h + 2 * border) * wp + 4, ks = 8 * npix;
  for (long i = 0; i < npix * Kp; i++) scratch[i] = 0;
  int amax = 0;
  for (int c = 0; c < cin; c++)
    for (int y = 0; y < h; y++) {
      const double *row = a + ((long)c * h + y) * w;
      int16_t *t = scratch + (c >> 3) * ks + ((long)(y + border) * wp + border) * 8 + (c & 7);
      for (int x = 0; x < w; x++) {
        double v = row[x];
        if (!(v >= -32767 && v <= 32767)) return 1;
        int iv = (int)v;
        amax = iv > amax ? iv : -iv > amax ? -iv : amax;
        t[8 * x] = (int16_t)iv;
      }
    }
  long long bound = 2LL * wmax * amax; /* a block's most to one lane: its two products (FLUSH2X4_LANES) */
  if (bound > 2147483647LL) return 1;
  int chunk = bound ? (int)(2147483647LL / bound < 4096 ? 2147483647LL / bound : 4096) : 4096;
  int g = chunk >= nb ? chunk / nb : 1, cb = chunk >= nb ? nb : chunk; /* taps per flush; blocks per flush in one */
  v128_t f[4];
  for (int py = 0; py < s; py++)
    for (int px = 0; px < s; px++) {
      /* the phase's taps: ky = s dy + py + pad in [0, k) (and x alike), read at input row i - dy */
      int nt = 0;
      long ao[64], wo[64];
      for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++) {
          int ry = ky - py - pad, rx = kx - px - pad;
          if (ry % s || rx % s) continue;
          ao[nt] = 8L * (-(ry / s) * wp - rx / s);
          wo[nt++] = (long)(ky * k + kx) * cout * Kp;
        }
      for (int i = 0; i < h; i++) {
        const int16_t *arow = scratch + ((long)(i + border) * wp + border) * 8;
        double *orow = out + (long)(s * i + py) * Wd + px;
        for (int c = 0; c < cout; c += 2)
          for (int j = 0; j < w; j += 4) {
            double v[8];
            if (nt) {
              taps2x4(W + (long)c * Kp, wo, arow + 8L * j, ao, ks, nt, nb, g, cb, f);
              for (int q = 0; q < 4; q++) wasm_v128_store(v + 2 * q, f[q]);
            } else
              for (int q = 0; q < 8; q++) v[q] = 0; /* a phase without taps (k < s) */
            int cnt = w - j < 4 ? w - j : 4;
            double *o0 = orow + (long)c * H * Wd + s * j, *o1 = o0 + (long)H * Wd;
            for (int q = 0; q < cnt; q++) {
              o0[s * q] = v[q];
              o1[s * q] = v[4 + q];
            }
          }
      }
    }
  return 0;
}

/* Overlap-add of a transposed conv (webdecoder/conv.py conv_transpose, same result): patches (cout, k, k, h, w)
 * row-major, tap (ky, kx) of input pixel (y, x) lands on output pixel (y*s + ky - pad, x*s + kx - pad) of
 * out (cout, s*h, s*w), which the caller zeroes; taps falling outside are dropped (the crop). Integer values
 * in float64 with sums below 2^53, so the order of the additions cannot change the result. */
void nic_overlap_add(const double *patches, double *out, int cout, int k, int s, int h, int w, int pad) {
  int H = s * h, W = s * w;
  for (int c = 0; c < cout; c++)
    for (int ky = 0; ky < k; ky++)
      for (int y = 0; y < h; y++) {
        int oy = y * s + ky - pad;
        if (oy < 0 || oy >= H) continue;
        double *orow = out + ((long)c * H + oy) * W;
        for (int kx = 0; kx < k; kx++) {
          const double *prow = patches + ((((long)c * k + ky) * k + kx) * h + y) * w;
          int num = W - 1 - kx + pad;
          if (num < 0) continue;
          int xlo = kx < pad ? (pad - kx + s - 1) / s : 0, xhi = num / s + 1 < w ? num / s + 1 : w;
          double *o = orow + kx - pad;
          for (int x = xlo; x < xhi; x++) o[x * s] += prow[x];
        }
      }
}

/* A whole transposed conv for few input channels (the last synthesis layer has 6), same result as product +
 * overlap-add without materialising the (cout*k*k, h*w) patches: out (cout, s*h, s*w) gets ap convolved with
 * wt (cin, cout, k, k), cropped from `pad`. ap is the (cin, h, w + 2e) input with e zero columns on each
 * side, so every tap reads a whole row. Output phase px of row oy is a gather of at most MAX_TERMS
 * (weight, shifted input row) terms, summed in registers over 8 pixels at a time, then spread at stride s.
 * Exact for the same reason as above: integer terms, sums below 2^53. */
#define MAX_TERMS 256

void nic_convt_direct(const double *ap, const double *wt, double *out, int cin, int cout, int k, int s, int h,
                      int w, int pad, int e) {
  int H = s * h, W = s * w, wp = w + 2 * e;
  double tw[MAX_TERMS];
  const double *tp[MAX_TERMS];
  for (int c = 0; c < cout; c++)
    for (int oy = 0; oy < H; oy++) {
      double *row = out + ((long)c * H + oy) * W;
      int ty = oy + pad;
      for (int px = 0; px < s; px++) {
        int tx = px + pad, nt = 0;
        for (int ky = ty % s; ky < k; ky += s) {
          int y = (ty - ky) / s;
          if (y < 0 || y >= h) continue;
          for (int kx = tx % s; kx < k; kx += s) {
            int dx = (tx - kx) / s; /* exact: kx = tx (mod s); |dx| <= e by the caller's choice of e */
            for (int ci = 0; ci < cin && nt < MAX_TERMS; ci++, nt++) {
              tw[nt] = wt[(((long)ci * cout + c) * k + ky) * k + kx];
              tp[nt] = ap + ((long)ci * h + y) * wp + e + dx;
            }
          }
        }
        double *o = row + px;
        int x = 0;
        for (; x + 8 <= w; x += 8) {
          v128_t a0 = wasm_f64x2_splat(0), a1 = a0, a2 = a0, a3 = a0;
          for (int t = 0; t < nt; t++) {
            v128_t wv = wasm_f64x2_splat(tw[t]);
            const double *q = tp[t] + x;
            a0 = wasm_f64x2_add(a0, wasm_f64x2_mul(wv, wasm_v128_load(q)));
            a1 = wasm_f64x2_add(a1, wasm_f64x2_mul(wv, wasm_v128_load(q + 2)));
            a2 = wasm_f64x2_add(a2, wasm_f64x2_mul(wv, wasm_v128_load(q + 4)));
            a3 = wasm_f64x2_add(a3, wasm_f64x2_mul(wv, wasm_v128_load(q + 6)));
          }
          double *d = o + (long)x * s;
          d[0] = wasm_f64x2_extract_lane(a0, 0); d[s] = wasm_f64x2_extract_lane(a0, 1);
          d[2 * s] = wasm_f64x2_extract_lane(a1, 0); d[3 * s] = wasm_f64x2_extract_lane(a1, 1);
          d[4 * s] = wasm_f64x2_extract_lane(a2, 0); d[5 * s] = wasm_f64x2_extract_lane(a2, 1);
          d[6 * s] = wasm_f64x2_extract_lane(a3, 0); d[7 * s] = wasm_f64x2_extract_lane(a3, 1);
        }
        for (; x < w; x++) {
          double acc = 0;
          for (int t = 0; t < nt; t++) acc += tw[t] * tp[t][x];
          o[(long)x * s] = acc;
        }
      }
    }
}

/* nic_convt_direct in int16 (depth 2's output layer: 6 -> 3 channels, k5/s2), 8 multiply-adds per
 * i32x4.dot_i16x8_s instead of 2 per float64 pair. The input is re-laid as channel pairs interleaved per
 * pixel, ap[pair][y][e + x] = (a[2 pair][y][x], a[2 pair + 1][y][x]) with e zero pixels each side, so one
 * 16-byte load holds 4 consecutive pixels of a pair and one dot against the splatted weight pair
 * (wpk[((c k + ky) k + kx) pairs + pair] = w0 | w1 << 16) adds that pair's two products to each of 4
 * output pixels of one phase: no horizontal sums. A dot adds at most (|w0| + |w1|) max|a| to an int32
 * lane; the terms of each output phase are cut into runs whose bounds sum below 2^31, and the lanes are
 * flushed to float64 after each run (usually once: most weights are far below the largest). float64 then
 * holds integers below 2^53: the result equals nic_convt_direct's. Returns 1, with out untouched, where some
 * |a| exceeds 2^15 - 1 or one dot alone could overflow: the caller falls back to the float64 kernel. */
#define I32_LIMIT 2147483647.0

static double pairs_to_i16(const double *a, int cin, int h, int w, int e, int16_t *ap) {
  int wp = w + 2 * e, pairs = (cin + 1) / 2;
  v128_t m = wasm_f64x2_splat(0);
  double ms = 0;
  for (int q = 0; q < pairs; q++)
    for (int y = 0; y < h; y++) {
      const double *r0 = a + ((long)(2 * q) * h + y) * w, *r1 = 2 * q + 1 < cin ? r0 + (long)h * w : 0;
      int16_t *d = ap + ((long)q * h + y) * wp * 2;
      for (int i = 0; i < 2 * e; i++) d[i] = d[2 * (e + w) + i] = 0; /* the zero border, both sides */
      d += 2 * e;
      int x = 0;
      for (; r1 && x + 4 <= w; x += 4) {
        v128_t a0 = wasm_v128_load(r0 + x), a1 = wasm_v128_load(r0 + x + 2);
        v128_t b0 = wasm_v128_load(r1 + x), b1 = wasm_v128_load(r1 + x + 2);
        /* pmax: one instruction in V8 (max is several, for NaN); the inputs are integers, never NaN */
        m = wasm_f64x2_pmax(m, wasm_f64x2_pmax(wasm_f64x2_pmax(wasm_f64x2_abs(a0), wasm_f64x2_abs(a1)),
                                               wasm_f64x2_pmax(wasm_f64x2_abs(b0), wasm_f64x2_abs(b1))));
        /* (x, x+1) of both channels as int32, interleaved pixel by pixel, then narrowed (saturating: an input
         * beyond int16 shows in the maximum and the call returns before any use) */
        v128_t p0 = wasm_i32x4_shuffle(wasm_i32x4_trunc_sat_f64x2_zero(a0), wasm_i32x4_trunc_sat_f64x2_zero(b0),
                                       0, 4, 1, 5);
        v128_t p1 = wasm_i32x4_shuffle(wasm_i32x4_trunc_sat_f64x2_zero(a1), wasm_i32x4_trunc_sat_f64x2_zero(b1),
                                       0, 4, 1, 5);
        wasm_v128_store(d + 2 * x, wasm_i16x8_narrow_i32x4(p0, p1));
      }
      for (; x < w; x++) {
        double u = r0[x], v = r1 ? r1[x] : 0;
        double au = u < 0 ? -u : u, av = v < 0 ? -v : v;
        ms = au > ms ? au : ms;
        ms = av > ms ? av : ms;
        d[2 * x] = (int16_t)(au <= 32767.0 ? u : 0);
        d[2 * x + 1] = (int16_t)(av <= 32767.0 ? v : 0);
      }
    }
  double mv = wasm_f64x2_extract_lane(m, 0) > wasm_f64x2_extract_lane(m, 1) ? wasm_f64x2_extract_lane(m, 0)
                                                                            : wasm_f64x2_extract_lane(m, 1);
  return mv > ms ? mv : ms;
}

/* One output row phase (row oy, column phase px) for output channels c0 .. c0 + CG - 1 at once: each term (tap,
 * pair) loads its 8 pixels once for all CG channels (the output layer's 3: a third of the loads and pointer reads of
 * a channel at a time). The runs bound every channel's lanes by the largest of the group's weight pairs. The sums
 * go to row sy of out's (C, H, W) planes (sy = oy, or 0 for a one-row buffer). */
static inline __attribute__((always_inline)) void direct_i16_group(const int32_t *wpk, double *out, int c0, int CG,
                                                                  int k, int s, int h, int w, int pad, int e,
                                                                  int pairs, int H, int W, int oy, int sy, int px,
                                                                  double amax, const int16_t *ap) {
  v128_t tw[MAX_TERMS][4];
  int32_t tws[MAX_TERMS][4];
  int run_end[MAX_TERMS + 1];
  const int16_t *tp[MAX_TERMS];
  int wp = w + 2 * e, ty = oy + pad, tx = px + pad, nt = 0, nrun = 0;
  double load = 0;
  for (int ky = ty % s; ky < k; ky += s) {
    int y = (ty - ky) / s;
    if (y < 0 || y >= h) continue;
    for (int kx = tx % s; kx < k; kx += s) {
      int dx = (tx - kx) / s; /* exact: kx = tx (mod s); |dx| <= e by the caller's choice of e */
      for (int q = 0; q < pairs && nt < MAX_TERMS; q++, nt++) {
        double bound = 0;
        for (int g = 0; g < CG; g++) {
          int32_t v = wpk[(((long)(c0 + g) * k + ky) * k + kx) * pairs + q];
          int w0 = (int16_t)(v & 0xFFFF), w1 = (int16_t)(v >> 16);
          double b = ((w0 < 0 ? -w0 : w0) + (w1 < 0 ? -w1 : w1)) * amax;
          bound = b > bound ? b : bound;
          tws[nt][g] = v;
          tw[nt][g] = wasm_i32x4_splat(v);
        }
        if (load + bound > I32_LIMIT) { run_end[nrun++] = nt; load = 0; }
        load += bound;
        tp[nt] = ap + (((long)q * h + y) * wp + e + dx) * 2;
      }
    }
  }
  run_end[nrun++] = nt;
  int x = 0;
  for (; x + 8 <= w; x += 8) {
    v128_t f[4][4];
    for (int g = 0; g < CG; g++) f[g][0] = f[g][1] = f[g][2] = f[g][3] = wasm_f64x2_splat(0);
    for (int r = 0, t = 0; r < nrun; r++) {
      v128_t c[4][2];
      for (int g = 0; g < CG; g++) c[g][0] = c[g][1] = wasm_i32x4_splat(0);
      for (; t < run_end[r]; t++) {
        const int16_t *q = tp[t] + 2 * x;
        v128_t d0 = wasm_v128_load(q), d1 = wasm_v128_load(q + 8);
        for (int g = 0; g < CG; g++) {
          c[g][0] = wasm_i32x4_add(c[g][0], wasm_i32x4_dot_i16x8(d0, tw[t][g]));
          c[g][1] = wasm_i32x4_add(c[g][1], wasm_i32x4_dot_i16x8(d1, tw[t][g]));
        }
      }
      for (int g = 0; g < CG; g++) {
        f[g][0] = wasm_f64x2_add(f[g][0], wasm_f64x2_convert_low_i32x4(c[g][0]));
        f[g][1] = wasm_f64x2_add(f[g][1], wasm_f64x2_convert_low_i32x4(wasm_i32x4_shuffle(c[g][0], c[g][0], 2, 3, 0, 1)));
        f[g][2] = wasm_f64x2_add(f[g][2], wasm_f64x2_convert_low_i32x4(c[g][1]));
        f[g][3] = wasm_f64x2_add(f[g][3], wasm_f64x2_convert_low_i32x4(wasm_i32x4_shuffle(c[g][1], c[g][1], 2, 3, 0, 1)));
      }
    }
    for (int g = 0; g < CG; g++) {
      double *d = out + ((long)(c0 + g) * H + sy) * W + px + (long)x * s;
      d[0] = wasm_f64x2_extract_lane(f[g][0], 0); d[s] = wasm_f64x2_extract_lane(f[g][0], 1);
      d[2 * s] = wasm_f64x2_extract_lane(f[g][1], 0); d[3 * s] = wasm_f64x2_extract_lane(f[g][1], 1);
      d[4 * s] = wasm_f64x2_extract_lane(f[g][2], 0); d[5 * s] = wasm_f64x2_extract_lane(f[g][2], 1);
      d[6 * s] = wasm_f64x2_extract_lane(f[g][3], 0); d[7 * s] = wasm_f64x2_extract_lane(f[g][3], 1);
    }
  }
  for (; x < w; x++) /* the tail in int64, exact */
    for (int g = 0; g < CG; g++) {
      int64_t acc = 0;
      for (int t = 0; t < nt; t++) {
        const int16_t *q = tp[t] + 2 * x;
        acc += (int64_t)q[0] * (int16_t)(tws[t][g] & 0xFFFF) + (int64_t)q[1] * (int16_t)(tws[t][g] >> 16);
      }
      out[((long)(c0 + g) * H + sy) * W + px + (long)x * s] = (double)acc;
    }
}

/* The group calls of one output row (every column phase, channels in groups of 4 and one of the rest: constants,
 * so each group size is its own unrolled copy). */
static void direct_i16_row(const int32_t *wpk, double *out, int cout, int k, int s, int h, int w, int pad, int e,
                           int pairs, int H, int W, int oy, int sy, double amax, const int16_t *ap) {
  for (int px = 0; px < s; px++)
    for (int c0 = 0; c0 < cout;) {
      int n = cout - c0;
#define GROUP(CG) direct_i16_group(wpk, out, c0, CG, k, s, h, w, pad, e, pairs, H, W, oy, sy, px, amax, ap)
      if (n >= 4) { GROUP(4); c0 += 4; }
      else if (n == 3) { GROUP(3); c0 += 3; }
      else if (n == 2) { GROUP(2); c0 += 2; }
      else { GROUP(1); c0 += 1; }
#undef GROUP
    }
}

int nic_convt_direct_i16(const double *a, const int32_t *wpk, double *out, int cin, int cout, int k, int s, int h,
                         int w, int pad, int e, int wmax, int16_t *ap) {
  int H = s * h, W = s * w, pairs = (cin + 1) / 2;
  double amax = pairs_to_i16(a, cin, h, w, e, ap);
  if (!(amax <= 32767.0) || 2.0 * wmax * amax > I32_LIMIT) return 1;
  for (int oy = 0; oy < H; oy++)
    direct_i16_row(wpk, out, cout, k, s, h, w, pad, e, pairs, H, W, oy, oy, amax, ap);
  return 0;
}

void nic_pixels(const double *acc, const double *b, uint8_t *out, int C, int H, int W, int oh, int ow,
                int cstride, int pstride, int alpha, int shift);

/* nic_convt_direct_i16 and nic_pixels row by row, from the input already in int16 channel pairs (pairs_to_i16's
 * layout, as nic_upres_igdn16 writes it; *amax a bound of its |values|, read when the call runs: a helper job's
 * earlier call writes it): output rows row0 .. row0 + oh - 1, columns 0 .. ow - 1 of the transposed conv become
 * pixels (nic_pixels below: clip(floor((sum + b_c + 2^(shift-1)) / 2^shift), 0, 255), on the same exact float64
 * sums) at img[((y - row0) * ow + x) * ps + c], ps = cout (RGB) or cout + 1 (RGBA, the alpha byte 255). Each row's
 * sums go to rowbuf (cout * s * w float64: a few KB, in cache) and straight on to pixels: the float64 planes of the
 * whole output are never written nor read back, and rows outside the range are not computed. (Rounding in the sum
 * loop's registers instead measured 6 % slower for the whole synthesis: more live registers.) 0, or 1 (img
 * untouched) where the int16 products cannot be exact. */
int nic_convt_direct_i16_pixels16(const int16_t *ap, const int32_t *amax, const int32_t *wpk, int cin, int cout, int k,
                                  int s, int h, int w, int pad, int e, int wmax, const double *b, int shift,
                                  uint8_t *img, int row0, int oh, int ow, int ps, double *rowbuf) {
  int W = s * w, pairs = (cin + 1) / 2;
  double bound = (double)*amax;
  if (!(bound >= 0 && bound <= 32767.0) || 2.0 * wmax * bound > I32_LIMIT) return 1;
  for (int oy = row0; oy < row0 + oh; oy++) {
    /* planes of one row (H = 1, stored as row 0): channel c of this row at rowbuf[c * W] */
    direct_i16_row(wpk, rowbuf, cout, k, s, h, w, pad, e, pairs, 1, W, oy, 0, bound, ap);
    nic_pixels(rowbuf, b, img + (long)(oy - row0) * ow * ps, cout, 1, W, 1, ow, 1, ps, ps > cout, shift);
  }
  return 0;
}

/* The depth-2 hidden layer after its transposed conv (webdecoder/synthesis.py, same arithmetic): for every
 * pixel j, with rq(v, sh) = clip(floor((v + 2^(sh-1)) / 2^sh), -lim, lim) (exact on float64 integers),
 *   u_i = rq(acc_i + b_i, s_up),  r_i = rq(acc_{C+i} + b_{C+i}, s_res),
 *   n_i = rq(beta_i + sum_m gamma_im |u_m|, s_gdn),  out_i = rq(u_i * n_i, s_frac) + r_i.
 * acc is (2C, npx), out (C, npx); C <= 16. */
static inline v128_t rq2(v128_t v, v128_t half, v128_t inv, v128_t lim, v128_t nlim) {
  /* pmax/pmin (b < a ? b : a): one instruction each in V8, where max/min (NaN-propagating) are several; the
   * same values here, as no operand is NaN or a signed zero */
  return wasm_f64x2_pmax(nlim, wasm_f64x2_pmin(lim, wasm_f64x2_floor(wasm_f64x2_mul(wasm_f64x2_add(v, half), inv))));
}

static inline double rq(double v, double half, double inv, double lim) {
  double q = __builtin_floor((v + half) * inv);
  return q < -lim ? -lim : (q > lim ? lim : q);
}

void nic_upres_igdn(const double *acc, const double *b, const double *gamma, const double *beta, double *out,
                    int C, int npx, int s_up, int s_res, int s_gdn, int s_frac, double lim) {
  double hu = (double)(1LL << (s_up - 1)), iu = 1.0 / (double)(1LL << s_up);
  double hr = (double)(1LL << (s_res - 1)), ir = 1.0 / (double)(1LL << s_res);
  double hg = (double)(1LL << (s_gdn - 1)), ig = 1.0 / (double)(1LL << s_gdn);
  double hf = (double)(1LL << (s_frac - 1)), iff = 1.0 / (double)(1LL << s_frac);
  v128_t vhu = wasm_f64x2_splat(hu), viu = wasm_f64x2_splat(iu), vhr = wasm_f64x2_splat(hr),
         vir = wasm_f64x2_splat(ir), vhg = wasm_f64x2_splat(hg), vig = wasm_f64x2_splat(ig),
         vhf = wasm_f64x2_splat(hf), vif = wasm_f64x2_splat(iff), vl = wasm_f64x2_splat(lim),
         vnl = wasm_f64x2_splat(-lim);
  v128_t u[16], au[16];
  int j = 0;
  /* four pixels per step, two vectors: each splat of a gamma or bias serves twice as many pixels */
  for (; j + 4 <= npx; j += 4) {
    v128_t u2[16], au2[16];
    for (int i = 0; i < C; i++) {
      v128_t bi = wasm_f64x2_splat(b[i]);
      const double *a = acc + (long)i * npx + j;
      u[i] = rq2(wasm_f64x2_add(wasm_v128_load(a), bi), vhu, viu, vl, vnl);
      u2[i] = rq2(wasm_f64x2_add(wasm_v128_load(a + 2), bi), vhu, viu, vl, vnl);
      au[i] = wasm_f64x2_abs(u[i]);
      au2[i] = wasm_f64x2_abs(u2[i]);
    }
    for (int i = 0; i < C; i++) {
      v128_t n = wasm_f64x2_splat(0), n2 = n;
      for (int m = 0; m < C; m++) {
        v128_t g = wasm_f64x2_splat(gamma[i * C + m]);
        n = wasm_f64x2_add(n, wasm_f64x2_mul(g, au[m]));
        n2 = wasm_f64x2_add(n2, wasm_f64x2_mul(g, au2[m]));
      }
      v128_t be = wasm_f64x2_splat(beta[i]), br = wasm_f64x2_splat(b[C + i]);
      n = rq2(wasm_f64x2_add(n, be), vhg, vig, vl, vnl);
      n2 = rq2(wasm_f64x2_add(n2, be), vhg, vig, vl, vnl);
      const double *ar = acc + (long)(C + i) * npx + j;
      v128_t r = rq2(wasm_f64x2_add(wasm_v128_load(ar), br), vhr, vir, vl, vnl);
      v128_t r2 = rq2(wasm_f64x2_add(wasm_v128_load(ar + 2), br), vhr, vir, vl, vnl);
      double *o = out + (long)i * npx + j;
      wasm_v128_store(o, wasm_f64x2_add(rq2(wasm_f64x2_mul(u[i], n), vhf, vif, vl, vnl), r));
      wasm_v128_store(o + 2, wasm_f64x2_add(rq2(wasm_f64x2_mul(u2[i], n2), vhf, vif, vl, vnl), r2));
    }
  }
  for (; j + 2 <= npx; j += 2) { /* two pixels per step: the same operations, lane-wise */
    for (int i = 0; i < C; i++) {
      v128_t v = wasm_f64x2_add(wasm_v128_load(acc + (long)i * npx + j), wasm_f64x2_splat(b[i]));
      u[i] = rq2(v, vhu, viu, vl, vnl);
      au[i] = wasm_f64x2_abs(u[i]);
    }
    for (int i = 0; i < C; i++) {
      v128_t n = wasm_f64x2_splat(0);
      for (int m = 0; m < C; m++) n = wasm_f64x2_add(n, wasm_f64x2_mul(wasm_f64x2_splat(gamma[i * C + m]), au[m]));
      n = rq2(wasm_f64x2_add(n, wasm_f64x2_splat(beta[i])), vhg, vig, vl, vnl);
      v128_t r = rq2(wasm_f64x2_add(wasm_v128_load(acc + (long)(C + i) * npx + j), wasm_f64x2_splat(b[C + i])),
                     vhr, vir, vl, vnl);
      wasm_v128_store(out + (long)i * npx + j, wasm_f64x2_add(rq2(wasm_f64x2_mul(u[i], n), vhf, vif, vl, vnl), r));
    }
  }
  double su[16], sa[16];
  for (; j < npx; j++) {
    for (int i = 0; i < C; i++) {
      su[i] = rq(acc[(long)i * npx + j] + b[i], hu, iu, lim);
      sa[i] = su[i] < 0 ? -su[i] : su[i];
    }
    for (int i = 0; i < C; i++) {
      double n = 0;
      for (int m = 0; m < C; m++) n += gamma[i * C + m] * sa[m];
      n = rq(n + beta[i], hg, ig, lim);
      double r = rq(acc[(long)(C + i) * npx + j] + b[C + i], hr, ir, lim);
      out[(long)i * npx + j] = rq(su[i] * n, hf, iff, lim) + r;
    }
  }
}

/* One pixel of nic_upres_igdn16 in int64 (exact at any of the layer's values; the vector loop's fallback). */
static inline int64_t shr_clip(int64_t v, int sh, int64_t lim) {
  int64_t q = (v + (1LL << (sh - 1))) >> sh; /* arithmetic shift: the floor of the division */
  return q < -lim ? -lim : (q > lim ? lim : q);
}

/* Pixel j = y w + x, written at column x of row y of the pairs (row stride wp, e zero columns first); returns its
 * largest |value|. */
static int64_t igdn_pixel(const int32_t *acc, long npx, int y, int x, int w, const int64_t *b, const int64_t *gamma,
                          const int64_t *beta, int C, int s_up, int s_res, int s_gdn, int s_frac, int64_t lim,
                          int16_t *ap, int h, int wp, int e) {
  int64_t u[16], big = 0;
  long j = (long)y * w + x;
  for (int i = 0; i < C; i++) u[i] = shr_clip(acc[i * npx + j] + b[i], s_up, lim);
  for (int i = 0; i < C + (C & 1); i++) {
    int64_t o = 0; /* the odd channel of an odd C: zero */
    if (i < C) {
      int64_t n = beta[i];
      for (int m = 0; m < C; m++) n += gamma[i * C + m] * (u[m] < 0 ? -u[m] : u[m]);
      n = shr_clip(n, s_gdn, lim);
      o = shr_clip(u[i] * n, s_frac, lim) + shr_clip(acc[(C + i) * npx + j] + b[C + i], s_res, lim);
    }
    big = (o < 0 ? -o : o) > big ? (o < 0 ? -o : o) : big;
    ap[(((long)(i >> 1) * h + y) * wp + e + x) * 2 + (i & 1)] = (int16_t)o;
  }
  return big;
}

/* nic_upres_igdn16's loop over the rows, its parameters checked and converted (below): the largest |value|. */
static inline __attribute__((always_inline)) int32_t igdn16_rows(const int32_t *acc, const int64_t *bl,
                                                                  const int64_t *gl, const int64_t *betal, int16_t *ap,
                                                                  int C, int h, int w, int e, int s_up, int s_res,
                                                                  int s_gdn, int s_frac, int64_t L, int64_t umax,
                                                                  int64_t hg, int64_t hf) {
  long npx = (long)h * w;
  int wp = w + 2 * e, pairs = (C + 1) / 2;
  v128_t vl = wasm_i32x4_splat((int32_t)L), vnl = wasm_i32x4_splat((int32_t)-L), vumax = wasm_i32x4_splat((int32_t)umax);
  v128_t big = wasm_i32x4_splat(0);
  int64_t sbig = 0;
  v128_t bu[16], br[16], bg[16], gs[256];
  for (int i = 0; i < C * C; i++) gs[i] = wasm_i32x4_splat((int32_t)gl[i]);
  for (int i = 0; i < C; i++) {
    bu[i] = wasm_i32x4_splat((int32_t)(bl[i] + (1LL << (s_up - 1))));
    br[i] = wasm_i32x4_splat((int32_t)(bl[C + i] + (1LL << (s_res - 1))));
    bg[i] = wasm_i32x4_splat((int32_t)(betal[i] + hg));
  }
  v128_t vhf = wasm_i32x4_splat((int32_t)hf);
  for (int y = 0; y < h; y++) {
    for (int q = 0; q < pairs; q++) { /* the zero borders */
      int16_t *d = ap + ((long)q * h + y) * wp * 2;
      for (int i = 0; i < 2 * e; i++) d[i] = d[2 * (e + w) + i] = 0;
    }
    int x = 0;
    for (; x + 4 <= w; x += 4) {
      long j = (long)y * w + x;
      v128_t u[16], au[16], o[17], mx = wasm_i32x4_splat(0);
      for (int i = 0; i < C; i++) {
        v128_t v = wasm_i32x4_add(wasm_v128_load(acc + i * npx + j), bu[i]);
        u[i] = wasm_i32x4_max(vnl, wasm_i32x4_min(vl, wasm_i32x4_shr(v, s_up)));
        au[i] = wasm_i32x4_abs(u[i]);
        mx = wasm_i32x4_max(mx, au[i]);
      }
      if (wasm_v128_any_true(wasm_i32x4_gt(mx, vumax))) { /* rare: these four pixels in int64 */
        for (int p = 0; p < 4; p++) {
          int64_t a = igdn_pixel(acc, npx, y, x + p, w, bl, gl, betal, C, s_up, s_res, s_gdn, s_frac, L, ap, h, wp, e);
          sbig = a > sbig ? a : sbig;
        }
        continue;
      }
      for (int i = 0; i < C; i++) {
        v128_t n = bg[i];
        for (int m = 0; m < C; m++)
          n = wasm_i32x4_add(n, wasm_i32x4_mul(gs[i * C + m], au[m]));
        n = wasm_i32x4_max(vnl, wasm_i32x4_min(vl, wasm_i32x4_shr(n, s_gdn)));
        v128_t r = wasm_i32x4_add(wasm_v128_load(acc + (C + i) * npx + j), br[i]);
        r = wasm_i32x4_max(vnl, wasm_i32x4_min(vl, wasm_i32x4_shr(r, s_res)));
        v128_t p = wasm_i32x4_shr(wasm_i32x4_add(wasm_i32x4_mul(u[i], n), vhf), s_frac);
        o[i] = wasm_i32x4_add(wasm_i32x4_max(vnl, wasm_i32x4_min(vl, p)), r);
        big = wasm_i32x4_max(big, wasm_i32x4_abs(o[i]));
      }
      o[C] = wasm_i32x4_splat(0);
      for (int q = 0; q < pairs; q++) { /* channels 2q, 2q + 1 interleaved pixel by pixel */
        v128_t lo = wasm_i32x4_shuffle(o[2 * q], o[2 * q + 1], 0, 4, 1, 5);
        v128_t hi = wasm_i32x4_shuffle(o[2 * q], o[2 * q + 1], 2, 6, 3, 7);
        wasm_v128_store(ap + (((long)q * h + y) * wp + e + x) * 2, wasm_i16x8_narrow_i32x4(lo, hi));
      }
    }
    for (; x < w; x++) { /* the row's last pixels */
      int64_t a = igdn_pixel(acc, npx, y, x, w, bl, gl, betal, C, s_up, s_res, s_gdn, s_frac, L, ap, h, wp, e);
      sbig = a > sbig ? a : sbig;
    }
  }
  int32_t m = 0;
  for (int l = 0; l < 4; l++) {
    int32_t v = wasm_i32x4_extract_lane(big, 0);
    m = v > m ? v : m;
    big = wasm_i32x4_shuffle(big, big, 1, 2, 3, 0);
  }
  if (sbig > m) sbig = sbig > 2147483647LL ? 2147483647LL : sbig, m = (int32_t)sbig;
  return m;
}

/* nic_upres_igdn's arithmetic on int32 sums (nic_wino_convt32's, each below 2^30 in magnitude), four pixels to a
 * vector of int32 lanes, and written as the output layer's int16 channel pairs: pairs_to_i16's layout ((C + 1) / 2
 * pairs, h, w + 2e, 2; e zero pixels each side of every row; the odd channel of an odd C zero), so that
 * nic_convt_direct_i16_pixels16 reads them with no float64 planes in between. rq(v, sh) = clip(floor((v +
 * 2^(sh-1)) / 2^sh), -lim, lim) is an arithmetic shift and a clip in int32 wherever no sum can leave int32: the biases
 * below 2^29, and every |u| of the four pixels at most umax (from the largest row sum of |gamma|, |beta| and the
 * rounding offsets); four pixels past umax go through int64 (igdn_pixel). Every value is an integer (b, gamma, beta
 * float64 integers, as the model keeps them). 0 with *amax = the largest |output|; 1 where an output leaves int16
 * or a parameter is beyond these bounds (ap then partly written: the caller takes its float64 path). */
int nic_upres_igdn16(const int32_t *acc, const double *b, const double *gamma, const double *beta, int16_t *ap,
                     int C, int h, int w, int e, int s_up, int s_res, int s_gdn, int s_frac, double lim,
                     int32_t *amax) {
  const int64_t I31 = 2147483647LL;
  int64_t bl[32], gl[256], betal[16], L = (int64_t)lim, gmax = 0, betamax = 0;
  if (C < 1 || C > 16 || !(lim >= 1 && lim < 1073741824.0) || s_up < 1 || s_res < 1 || s_gdn < 1 || s_frac < 1 ||
      s_up > 28 || s_res > 28 || s_gdn > 30 || s_frac > 30)
    return 1;
  for (int i = 0; i < 2 * C; i++) {
    if (!(b[i] > -536870912.0 && b[i] < 536870912.0) || b[i] != (double)(int64_t)b[i]) return 1;
    bl[i] = (int64_t)b[i];
  }
  for (int i = 0; i < C; i++) {
    int64_t g = 0;
    if (!(beta[i] > -1073741824.0 && beta[i] < 1073741824.0) || beta[i] != (double)(int64_t)beta[i]) return 1;
    betal[i] = (int64_t)beta[i];
    betamax = betal[i] < 0 ? (-betal[i] > betamax ? -betal[i] : betamax) : (betal[i] > betamax ? betal[i] : betamax);
    for (int m = 0; m < C; m++) {
      double v = gamma[i * C + m];
      if (!(v > -1073741824.0 && v < 1073741824.0) || v != (double)(int64_t)v) return 1;
      gl[i * C + m] = (int64_t)v;
      g += v < 0 ? -(int64_t)v : (int64_t)v;
    }
    gmax = g > gmax ? g : gmax;
  }
  /* |beta + sum gamma |u| + half| <= I31 for |u| <= umax; then |n| <= nmax, and |u n| + half <= I31 */
  int64_t hg = 1LL << (s_gdn - 1), hf = 1LL << (s_frac - 1);
  int64_t umax = gmax ? (I31 - betamax - hg) / gmax : L;
  int64_t nmax = (I31 >> s_gdn) + 1 < L ? (I31 >> s_gdn) + 1 : L;
  int64_t u2 = (I31 - hf) / nmax;
  umax = umax < u2 ? umax : u2;
  umax = umax < L ? umax : L;
  if (umax < 0) return 1;
  /* C as a constant where it is the shipped model's: its loops unrolled, u and |u| in registers (0.97 against 2.72
   * ms for a Kodak image's hidden layer under Node) */
  int32_t m;
  if (C == 6)
    m = igdn16_rows(acc, bl, gl, betal, ap, 6, h, w, e, s_up, s_res, s_gdn, s_frac, L, umax, hg, hf);
  else
    m = igdn16_rows(acc, bl, gl, betal, ap, C, h, w, e, s_up, s_res, s_gdn, s_frac, L, umax, hg, hf);
  *amax = m;
  return m > 32767;
}

/* Interleaved rANS decode (webdecoder/rans.py RansDecoder.decode, same semantics): symbol i uses lane
 * i % lanes, table tables[i]; within a step lanes renormalise in lane order from the shared word stream.
 * The symbol whose range covers a slot is found without the NumPy path's 16 MiB slot table: bucket[t *
 * 257 + b] (b < 256) is the global index of the symbol covering slot b << 8 of table t, and bucket[t * 257
 * + 256] its last symbol, so the answer lies in [bucket[b], bucket[b + 1]]: a binary search of at most
 * 9 steps, usually none. Returns the new word pointer, -1 when the stream runs out, or -2 at a table index outside
 * 0 .. ntables - 1 (rans.py raises NicError for either): the loop checks what it reads, so the caller need not make
 * two passes over the tables first (the latent's 295K indices: ~0.5 ms of NumPy's min and max in Pyodide).
 * Integer-only, so it matches NumPy exactly.
 *
 * out[i] is the symbol's global index (table offset + symbol) where base is NULL. With base, it is the latent
 * value (webdecoder/entropy.py decode_values, same integers) in the same pass: global index a of table t is the
 * value a - base[t] (base = the table's offset + its half-range R), or an escape when it is the table's last
 * symbol escsym[t] (offset + 2R + 1): value 0 then, its position appended to escpos and counted in *nesc. */
static inline __attribute__((always_inline)) int rans_loop(const int32_t *tables, int n, int ntables, int lanes,
                                                           int64_t *x,
                                                           const int64_t *words, int nwords, int ptr,
                                                           const int32_t *bucket, const int64_t *freqs,
                                                           const int64_t *start, int32_t *out, const int32_t *base,
                                                           const int32_t *escsym, int32_t *escpos, int32_t *nesc,
                                                           int values) {
  int ne = 0;
  for (int lo = 0; lo < n; lo += lanes) {
    int m = n - lo < lanes ? n - lo : lanes;
    for (int j = 0; j < m; j++) {
      int64_t s = x[j];
      int64_t slot = s & 0xFFFF;
      int t = tables[lo + j];
      if ((unsigned)t >= (unsigned)ntables) return -2;
      const int32_t *bk = bucket + (long)t * 257 + (slot >> 8);
      int32_t a = bk[0], z = bk[1];
      while (a < z) {
        int32_t mid = (a + z + 1) >> 1;
        if (start[mid] <= slot) a = mid; else z = mid - 1;
      }
      if (values) {
        int e = a == escsym[t];
        out[lo + j] = e ? 0 : a - base[t];
        escpos[ne] = lo + j;
        ne += e;
      } else {
        out[lo + j] = a;
      }
      s = freqs[a] * (s >> 16) + slot - start[a];
      if (s < 65536) {
        if (ptr >= nwords) return -1;
        s = (s << 16) | words[ptr++];
      }
      x[j] = s;
    }
  }
  if (values) *nesc = ne;
  return ptr;
}

int nic_rans_decode(const int32_t *tables, int n, int ntables, int lanes, int64_t *x, const int64_t *words,
                    int nwords, int ptr, const int32_t *bucket, const int64_t *freqs, const int64_t *start,
                    int32_t *out, const int32_t *base, const int32_t *escsym, int32_t *escpos, int32_t *nesc) {
  if (base)
    return rans_loop(tables, n, ntables, lanes, x, words, nwords, ptr, bucket, freqs, start, out, base, escsym, escpos,
                     nesc, 1);
  return rans_loop(tables, n, ntables, lanes, x, words, nwords, ptr, bucket, freqs, start, out, 0, 0, 0, 0, 0);
}

/* The last synthesis layer's accumulators to pixels (webdecoder/synthesis.py to_pixels, same arithmetic):
 * clip(floor((acc + b_c + 2^(shift-1)) * 2^-shift), 0, 255) as uint8, for acc (C, H, W). Every step is exact on
 * float64 integers (the scale is a power of two), so the result equals NumPy's bit for bit. Only the image
 * (y < oh, x < ow: the padded planes cropped) is written, pixel (y, x) of channel c at
 * out[c * cstride + (y * ow + x) * pstride]: planes (cstride = oh * ow, pstride = 1), RGB (1, 3) or RGBA
 * (1, 4, with alpha set: byte C of every pixel 255), so the browser gets its canvas layout in this one pass. */
/* Four pixels of one channel as int32 0..255: clip((acc + (b + half)) * inv, 0, 255) truncated. Truncation is the
 * floor on [0, 255], and a value below 0 clips to 0 either way; acc + b + half are integers below 2^53, exact in any
 * order: the same bytes as the general loop below. */
static inline v128_t pixels4(const double *a, v128_t bh, v128_t inv, v128_t lo, v128_t hi) {
  v128_t v0 = wasm_f64x2_mul(wasm_f64x2_add(wasm_v128_load(a), bh), inv);
  v128_t v1 = wasm_f64x2_mul(wasm_f64x2_add(wasm_v128_load(a + 2), bh), inv);
  v0 = wasm_f64x2_pmax(lo, wasm_f64x2_pmin(hi, v0));
  v1 = wasm_f64x2_pmax(lo, wasm_f64x2_pmin(hi, v1));
  return wasm_i32x4_shuffle(wasm_i32x4_trunc_sat_f64x2_zero(v0), wasm_i32x4_trunc_sat_f64x2_zero(v1), 0, 1, 4, 5);
}

void nic_pixels(const double *acc, const double *b, uint8_t *out, int C, int H, int W, int oh, int ow,
                int cstride, int pstride, int alpha, int shift) {
  double half = (double)(1LL << (shift - 1)), inv = 1.0 / (double)(1LL << shift);
  v128_t vh = wasm_f64x2_splat(half), vi = wasm_f64x2_splat(inv), lo = wasm_f64x2_splat(0), hi = wasm_f64x2_splat(255);
  if (C == 3 && cstride == 1 && pstride == 4 && alpha) {
    /* A canvas's RGBA, four pixels a step: the three channels packed into one 16-byte store with the alpha, rather
     * than a byte store per channel and pixel and a second pass for the alpha (the browser's layout, every decode) */
    v128_t b0 = wasm_f64x2_splat(b[0] + half), b1 = wasm_f64x2_splat(b[1] + half), b2 = wasm_f64x2_splat(b[2] + half);
    v128_t opaque = wasm_i32x4_splat((int32_t)0xFF000000u);
    for (int y = 0; y < oh; y++) {
      const double *r = acc + (long)y * W, *g = r + (long)H * W, *bl = g + (long)H * W;
      uint8_t *o = out + (long)y * ow * 4;
      int x = 0;
      for (; x + 4 <= ow; x += 4) {
        v128_t p = wasm_v128_or(pixels4(r + x, b0, vi, lo, hi), wasm_i32x4_shl(pixels4(g + x, b1, vi, lo, hi), 8));
        p = wasm_v128_or(p, wasm_v128_or(wasm_i32x4_shl(pixels4(bl + x, b2, vi, lo, hi), 16), opaque));
        wasm_v128_store(o + 4 * x, p);
      }
      for (; x < ow; x++)
        for (int c = 0; c < 4; c++) {
          double v = c < 3 ? __builtin_floor(((acc[((long)c * H + y) * W + x] + b[c]) + half) * inv) : 255;
          o[4 * x + c] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
        }
    }
    return;
  }
  for (int c = 0; c < C; c++) {
    double bc = b[c];
    v128_t vb = wasm_f64x2_splat(bc);
    for (int y = 0; y < oh; y++) {
      const double *a = acc + ((long)c * H + y) * W;
      uint8_t *o = out + (long)c * cstride + (long)y * ow * pstride;
      int x = 0;
      for (; x + 4 <= ow; x += 4) { /* the same operations, two lanes at a time */
        v128_t v0 = wasm_f64x2_mul(wasm_f64x2_add(wasm_f64x2_add(wasm_v128_load(a + x), vb), vh), vi);
        v128_t v1 = wasm_f64x2_mul(wasm_f64x2_add(wasm_f64x2_add(wasm_v128_load(a + x + 2), vb), vh), vi);
        v0 = wasm_f64x2_pmax(lo, wasm_f64x2_pmin(hi, wasm_f64x2_floor(v0)));
        v1 = wasm_f64x2_pmax(lo, wasm_f64x2_pmin(hi, wasm_f64x2_floor(v1)));
        v128_t i = wasm_i32x4_shuffle(wasm_i32x4_trunc_sat_f64x2_zero(v0), wasm_i32x4_trunc_sat_f64x2_zero(v1), 0, 1, 4, 5);
        i = wasm_u8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(i, i), wasm_i16x8_narrow_i32x4(i, i));
        uint8_t *d = o + (long)x * pstride;
        if (pstride == 1) {
          uint32_t four = (uint32_t)wasm_i32x4_extract_lane(i, 0);
          __builtin_memcpy(d, &four, 4);
        } else {
          d[0] = wasm_u8x16_extract_lane(i, 0);
          d[pstride] = wasm_u8x16_extract_lane(i, 1);
          d[2 * pstride] = wasm_u8x16_extract_lane(i, 2);
          d[3 * pstride] = wasm_u8x16_extract_lane(i, 3);
        }
      }
      for (; x < ow; x++) {
        double v = __builtin_floor(((a[x] + bc) + half) * inv);
        o[(long)x * pstride] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
      }
    }
  }
  if (alpha)
    for (long p = 0; p < (long)oh * ow; p++) out[p * pstride + C] = 255;
}

/* Requantization of a fixed-point accumulator (webdecoder/conv.py requantize_channels, same arithmetic):
 * out = clip(floor((acc * m_c + b_c + 2^(shift-1)) * 2^-shift), lo, hi) for acc (C, npx), with a per-channel
 * multiplier m (NULL: none) and bias b (NULL: none). Products and sums are integers below 2^53 and the scale
 * a power of two, so every step is exact and the result equals NumPy's bit for bit. */
void nic_requantize(const double *acc, const double *m, const double *b, double *out, int C, int npx, int shift,
                    double lo, double hi) {
  double half = (double)(1LL << (shift - 1)), inv = 1.0 / (double)(1LL << shift);
  v128_t vh = wasm_f64x2_splat(half), vi = wasm_f64x2_splat(inv), vlo = wasm_f64x2_splat(lo), vhi = wasm_f64x2_splat(hi);
  for (int c = 0; c < C; c++) {
    const double *a = acc + (long)c * npx;
    double *o = out + (long)c * npx;
    double mc = m ? m[c] : 1.0, bc = b ? b[c] : 0.0;
    v128_t vm = wasm_f64x2_splat(mc), vb = wasm_f64x2_splat(bc);
    int j = 0;
    for (; j + 2 <= npx; j += 2) {
      v128_t v = wasm_f64x2_add(wasm_f64x2_add(wasm_f64x2_mul(wasm_v128_load(a + j), vm), vb), vh);
      v = wasm_f64x2_floor(wasm_f64x2_mul(v, vi));
      wasm_v128_store(o + j, wasm_f64x2_pmax(vlo, wasm_f64x2_pmin(vhi, v)));
    }
    for (; j < npx; j++) {
      double v = __builtin_floor((a[j] * mc + bc + half) * inv);
      o[j] = v < lo ? lo : (v > hi ? hi : v);
    }
  }
}

/* Winograd F(2,2) for the transposed convs with at most two taps per output phase and axis (s < k <= 2s: the
 * k13/s8 layer): conv.py ``_wino_convt`` plans it, docs in its docstring. Output phase p of an axis sums
 * d[q + m] g0 + d[q + m - 1] g1; for the two outputs q0, q0 + 1 of a tile that is
 *   out0 = (d[q0+m-1] - d[q0+m]) g1 + d[q0+m] (g0 + g1),   out1 = d[q0+m] (g0 + g1) + (d[q0+m+1] - d[q0+m]) g0,
 * three products for four, shared across both axes: 9 for 16 (a 1-tap phase keeps its 2 for 2). Integers
 * throughout, so the sums equal the direct ones exactly.
 *
 * nic_wino_data: the transformed inputs of tile rows ty0 .. ty1 - 1 (a band; 0 .. ceil(h/2) for all). The input
 * image is (cin, h, w) float64 integers, of which the caller passes rows a0 .. a0 + ar - 1 (every row the band reads
 * inside the image): row y of channel c at a[c * cs + (y - a0) * w]. Returns 1 (nothing usable) if any |a| read
 * exceeds `limit` (at most 2^13 - 1, so that every transform, at most 4 terms, fits int16), else 0. desc (nd
 * pairs): per axis, data vector i is d[q0 + j] (kind 0) or d[q0 + j + 1] - d[q0 + j] (kind 1) for (kind, j) =
 * desc[2i], desc[2i + 1], with reads at most `border` rows outside the band (zeros outside the image). out (nd * nd,
 * tiles4 / 4, Kp / 8, 4, 8) int16: tiles = (ty1 - ty0) * ceil(w/2) row-major, in groups of four (tiles4 = tiles
 * rounded up to a multiple of 4, the last group's missing tiles zero), each group's four tiles interleaved by 8
 * channels (zero past cin), so that nic_wino_convt reads one 64-byte run per step instead of four 16-byte streams;
 * maxabs[combo] = the largest |value|. scratch: (2 (ty1 - ty0) + 2 border) * (w + 2 border) * Kp int16, the band's
 * input transposed pixel-major with its border. */
static inline __attribute__((always_inline)) int wino_data(const double *a, const int16_t *a16, long cs, int a0,
                                                           int ar, int cin, int h, int w, int ty0, int ty1, int Kp,
                                                           const int32_t *desc, int nd, int border, int limit,
                                                           int16_t *scratch, int16_t *out, int32_t *maxabs) {
  int wp = w + 2 * border, th = ty1 - ty0, tw = (w + 1) / 2, r0 = 2 * ty0 - border, rows = 2 * th + 2 * border;
  int tiles4 = (th * tw + 3) / 4 * 4;
  for (long i = 0; i < (long)rows * wp * Kp; i++) scratch[i] = 0;
  for (int i = 0; i < nd * nd; i++) maxabs[i] = -1; /* until known: nic_wino_convt refuses a failed transform's */
  int y0 = r0 > a0 ? r0 : a0, y1 = r0 + rows < a0 + ar ? r0 + rows : a0 + ar; /* image rows the band reads */
  for (int c = 0; c < cin; c++)
    for (int y = y0; y < y1; y++) {
      long at = (long)c * cs + (long)(y - a0) * w;
      int16_t *t = scratch + ((long)(y - r0) * wp + border) * Kp + c;
      if (a16) { /* int16 inputs (nic_latent16's) */
        const int16_t *row = a16 + at;
        for (int x = 0; x < w; x++) {
          if (row[x] < -limit || row[x] > limit) return 1;
          t[(long)x * Kp] = row[x];
        }
      } else {
        const double *row = a + at;
        for (int x = 0; x < w; x++) {
          if (!(row[x] >= -limit && row[x] <= limit)) return 1; /* the caller takes another path */
          t[(long)x * Kp] = (int16_t)row[x];
        }
      }
    }
  for (int iy = 0; iy < nd; iy++)
    for (int ix = 0; ix < nd; ix++) {
      /* up to 4 (sign, row offset, column offset) reads */
      int ny = desc[2 * iy] ? 2 : 1, nx = desc[2 * ix] ? 2 : 1, nt = 0, sg[4], oy[4], ox[4];
      for (int u = 0; u < ny; u++)
        for (int v = 0; v < nx; v++, nt++) {
          sg[nt] = ((ny == 2 && u == 0) ? -1 : 1) * ((nx == 2 && v == 0) ? -1 : 1);
          oy[nt] = desc[2 * iy + 1] + u;
          ox[nt] = desc[2 * ix + 1] + v;
        }
      int16_t *oc = out + (long)(iy * nd + ix) * tiles4 * Kp;
      v128_t mx = wasm_i16x8_splat(0);
      for (int ty = 0, n = 0; ty < th; ty++)
        for (int tx = 0; tx < tw; tx++, n++) {
          int16_t *o = oc + (long)(n >> 2) * 4 * Kp + (n & 3) * 8; /* channel c at o + 4 c */
          const int16_t *src[4];
          for (int t = 0; t < nt; t++)
            src[t] = scratch + ((long)(2 * ty + oy[t] + border) * wp + 2 * tx + ox[t] + border) * Kp; /* ty: in band */
          for (int c = 0; c < Kp; c += 8) {
            v128_t acc = wasm_i16x8_splat(0);
            for (int t = 0; t < nt; t++) {
              v128_t v = wasm_v128_load(src[t] + c);
              acc = sg[t] > 0 ? wasm_i16x8_add(acc, v) : wasm_i16x8_sub(acc, v);
            }
            wasm_v128_store(o + 4 * c, acc);
            mx = wasm_i16x8_max(mx, wasm_i16x8_abs(acc));
          }
        }
      for (int n = th * tw; n < tiles4; n++) /* the last group's missing tiles */
        for (int c = 0; c < Kp; c += 8) wasm_v128_store(oc + (long)(n >> 2) * 4 * Kp + (n & 3) * 8 + 4 * c, wasm_i16x8_splat(0));
      int m = 0;
      for (int l = 0; l < 8; l++) {
        int v = (int)(uint16_t)wasm_i16x8_extract_lane(mx, 0);
        m = v > m ? v : m;
        mx = wasm_i8x16_shuffle(mx, mx, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1);
      }
      maxabs[iy * nd + ix] = m;
    }
  return 0;
}

int nic_wino_data(const double *a, long cs, int a0, int ar, int cin, int h, int w, int ty0, int ty1, int Kp,
                  const int32_t *desc, int nd, int border, int limit, int16_t *scratch, int16_t *out, int32_t *maxabs) {
  return wino_data(a, 0, cs, a0, ar, cin, h, w, ty0, ty1, Kp, desc, nd, border, limit, scratch, out, maxabs);
}

/* nic_wino_data of an int16 input (the latent as nic_latent16 makes it): a quarter of the bytes to read, and to
 * hand to the helper thread for its band. */
int nic_wino_data16(const int16_t *a, long cs, int a0, int ar, int cin, int h, int w, int ty0, int ty1, int Kp,
                    const int32_t *desc, int nd, int border, int limit, int16_t *scratch, int16_t *out,
                    int32_t *maxabs) {
  return wino_data(0, a, cs, a0, ar, cin, h, w, ty0, ty1, Kp, desc, nd, border, limit, scratch, out, maxabs);
}

/* A pair of weight rows w (interleaved by 8 channels) against a group of four tiles a (nic_wino_data's, interleaved
 * by 8 channels): one 32-byte and one 64-byte run per step. */
static inline void tile2x4_grouped_sums(const int16_t *w, const int16_t *a, int Kp, int chunk, v128_t f[4]) {
  tile2x4_core(w, 8, 2, a, 8, 4, Kp, chunk, f);
}

/* The products of nic_wino_data's transforms with the transformed weights, summed per output pixel in
 * registers and stored once (no read-modify-write of the 9.4 MB canvas, no zeroing). Unit u is an output
 * phase pair (py, px); its terms tstart[u] .. tstart[u + 1] - 1 are its (term y, term x) pairs, term t
 * multiplying transform combo[t] of data (nd * nd, N4 / 4, Kp / 8, 4, 8: nic_wino_data's groups of four tiles, N4 = N
 * rounded up to a multiple of 4) by weight rows t * cout + c (one per channel) and feeding the tile outputs (oy, ox)
 * whose bit oy * 2 + ox is set in mask[t]. Transform i of tile group g is at data + i * cstride + 4 g Kp: the groups
 * of a larger array (a band of tile rows) need no copy. W (terms * cout / 2, Kp / 8, 2, 8): each pair of rows (2 q,
 * 2 q + 1) interleaved by 8 channels, like the tiles. Channels go in pairs, tiles in fours (a 2 x 4 register tile of
 * int16 dot products: one 32-byte run of weights and one 64-byte run of inputs per 8 channels), int32 sums flushed
 * every chunk[t] blocks; a group's missing tiles are zeros, computed and not stored. Output
 * (c, oy, ox) of tile n of unit u is out[pix[n] + c * plane + (oy * s + py[u]) * row + ox * s + px[u]], which
 * the caller sizes to whole tiles, so every pixel is written exactly once. cout must be even. The flush interval of
 * term t comes from wmax[t] (its largest |weight|) and maxabs (nic_wino_data's); returns 1, out untouched, where
 * one block could overflow int32 (else 0). */
static inline void wino_store(double *out, const int32_t *pix, int n, int cnt, long off, const double *v) {
  for (int i = 0; i < cnt; i++) out[pix[n + i] + off] = v[i];
}

#define WINO_MAX_TERMS 1024 /* 441 for k13/s8 */

/* The body of nic_wino_convt and nic_wino_convt32: float64 outputs (out), or int32 ones (o32, non-null; out unused),
 * each sum checked below 2^30 in magnitude: 2 where one is not (o32 then partly written). Inlined into each, so the
 * store is a constant choice. */
static inline __attribute__((always_inline)) int wino_convt(const int16_t *W, int Kp, const int32_t *tstart,
                                                           const int32_t *py, const int32_t *px, int nunits,
                                                           const int32_t *combo, const int32_t *mask,
                                                           const int32_t *wmax, const int32_t *maxabs, int cout,
                                                           const int16_t *data, int N, long cstride,
                                                           const int32_t *pix, double *out, int32_t *o32, int s,
                                                           long plane, int row, int band) {
  /* Each term's int32 flush interval: blocks of 8 products, each adding at most 8 wmax maxabs to the four-lane
   * sum (conv.py _chunk). A bound past int32 for a single block: 1, nothing computed (the caller's other path). */
  int nterm = tstart[nunits], chunk[WINO_MAX_TERMS];
  if (nterm > WINO_MAX_TERMS) return 1;
  for (int t = 0; t < nterm; t++) {
    long long bound = 8LL * wmax[t] * maxabs[combo[t]];
    if (bound < 0 || bound > 2147483647LL) return 1; /* < 0: no transform (nic_wino_data failed) */
    chunk[t] = bound ? (int)(2147483647LL / bound < 4096 ? 2147483647LL / bound : 4096) : 4096;
  }
  v128_t f[4], big = wasm_f64x2_splat(0), magic = wasm_f64x2_splat(6755399441055744.0);
  for (int nb = 0; nb < N; nb += band) {
    int ne = nb + band < N ? nb + band : N;
    for (int u = 0; u < nunits; u++)
      for (int c = 0; c < cout; c += 2)
        for (int n0 = nb; n0 < ne; n0 += 4) {
          int cnt = ne - n0 < 4 ? ne - n0 : 4;
          v128_t acc[2][4][2];
          for (int a = 0; a < 2; a++)
            for (int o = 0; o < 4; o++) acc[a][o][0] = acc[a][o][1] = wasm_f64x2_splat(0);
          for (int t = tstart[u]; t < tstart[u + 1]; t++) {
            const int16_t *At = data + (long)combo[t] * cstride;
            int p0 = t * cout + c;
            tile2x4_grouped_sums(W + (long)p0 * Kp, At + (long)n0 * Kp, Kp, chunk[t], f);
            for (int o = 0; o < 4; o++)
              if (mask[t] >> o & 1) {
                acc[0][o][0] = wasm_f64x2_add(acc[0][o][0], f[0]);
                acc[0][o][1] = wasm_f64x2_add(acc[0][o][1], f[1]);
                acc[1][o][0] = wasm_f64x2_add(acc[1][o][0], f[2]);
                acc[1][o][1] = wasm_f64x2_add(acc[1][o][1], f[3]);
              }
          }
          for (int a = 0; a < 2; a++)
            for (int o = 0; o < 4; o++) {
              long off = (c + a) * plane + (long)((o >> 1) * s + py[u]) * row + (o & 1) * s + px[u];
              if (o32) {
                /* the largest |sum| so far (pmax: one instruction; the sums are integers, never NaN) */
                big = wasm_f64x2_pmax(big, wasm_f64x2_pmax(wasm_f64x2_abs(acc[a][o][0]), wasm_f64x2_abs(acc[a][o][1])));
                /* integers below 2^51 plus 1.5 * 2^52: the low 32 bits of each are the integer's, mod 2^32 (one add,
                 * where a saturating conversion is several instructions in V8) */
                v128_t v = wasm_i32x4_shuffle(wasm_f64x2_add(acc[a][o][0], magic), wasm_f64x2_add(acc[a][o][1], magic),
                                              0, 2, 4, 6);
                int32_t iv[4];
                wasm_v128_store(iv, v);
                for (int i = 0; i < cnt; i++) o32[pix[n0 + i] + off] = iv[i];
              } else {
                double v[4];
                wasm_v128_store(v, acc[a][o][0]);
                wasm_v128_store(v + 2, acc[a][o][1]);
                wino_store(out, pix, n0, cnt, off, v);
              }
            }
        }
  }
  if (o32 && !(wasm_f64x2_extract_lane(big, 0) < 1073741824.0 && wasm_f64x2_extract_lane(big, 1) < 1073741824.0))
    return 2;
  return 0;
}

int nic_wino_convt(const int16_t *W, int Kp, const int32_t *tstart, const int32_t *py, const int32_t *px,
                   int nunits, const int32_t *combo, const int32_t *mask, const int32_t *wmax, const int32_t *maxabs,
                   int cout, const int16_t *data, int N, long cstride, const int32_t *pix, double *out, int s,
                   long plane, int row, int band) {
  return wino_convt(W, Kp, tstart, py, px, nunits, combo, mask, wmax, maxabs, cout, data, N, cstride, pix, out, 0, s,
                    plane, row, band);
}

/* nic_wino_convt with int32 outputs (nic_upres_igdn16's input: half the bytes of float64 to write and read back):
 * 0; 1 as nic_wino_convt's; 2 where a sum reaches 2^30 in magnitude (out then partly written: the caller takes the
 * float64 path). */
int nic_wino_convt32(const int16_t *W, int Kp, const int32_t *tstart, const int32_t *py, const int32_t *px,
                     int nunits, const int32_t *combo, const int32_t *mask, const int32_t *wmax,
                     const int32_t *maxabs, int cout, const int16_t *data, int N, long cstride, const int32_t *pix,
                     int32_t *out, int s, long plane, int row, int band) {
  return wino_convt(W, Kp, tstart, py, px, nunits, combo, mask, wmax, maxabs, cout, data, N, cstride, pix, 0, out, s,
                    plane, row, band);
}

/* Scale indices of the hyper-decoder's log-scales (webdecoder/hyper.py): lut[clamp(t, lo, hi) - lo] for t, integers
 * carried in float64 (|t| <= 2^22: the activation clip). The table is tables.scale_index of lo .. hi, made by
 * NumPy (below lo every index is 0, above hi the last), so this loop decides nothing of its own. int32 out:
 * the type the rANS loop reads its table indices in. */
void nic_scale_index(const double *t, int32_t *out, int n, const int32_t *lut, int lo, int hi) {
  for (int i = 0; i < n; i++) {
    int v = (int)t[i]; /* exact: |t| <= 2^22 */
    out[i] = lut[(v < lo ? lo : (v > hi ? hi : v)) - lo];
  }
}

/* The synthesis input straight from the latent symbols (webdecoder/synthesis.py latent_input; the same integers as
 * dequantize_latent of decoder.decode_y's gained latent): y = q 2^frac + mean, exact in int32 (|q| <= 2^15, |mean|
 * <= 2^22), then nic_requantize's steps in the same order with channel c's inverse gain as multiplier and a zero
 * bias: clip(floor((y inv_c + 0 + 2^(shift-1)) 2^-shift), -lim, lim), for C channels of npx values. One pass instead
 * of NumPy's shift, add and cast and the requantization's. */
void nic_latent(const int32_t *q, const int32_t *means, const double *inv, int C, int npx, int frac, int shift,
                double lim, double *out) {
  double half = (double)(1LL << (shift - 1)), sc = 1.0 / (double)(1LL << shift);
  v128_t vh = wasm_f64x2_splat(half), vs = wasm_f64x2_splat(sc), vlo = wasm_f64x2_splat(-lim),
         vhi = wasm_f64x2_splat(lim), vz = wasm_f64x2_splat(0.0);
  for (int c = 0; c < C; c++) {
    const int32_t *qc = q + (long)c * npx, *mc = means + (long)c * npx;
    double *o = out + (long)c * npx, m = inv[c];
    v128_t vm = wasm_f64x2_splat(m);
    int j = 0;
    for (; j + 2 <= npx; j += 2) {
      v128_t y = wasm_f64x2_make((double)(qc[j] * (1 << frac) + mc[j]), (double)(qc[j + 1] * (1 << frac) + mc[j + 1]));
      v128_t v = wasm_f64x2_add(wasm_f64x2_add(wasm_f64x2_mul(y, vm), vz), vh);
      v = wasm_f64x2_floor(wasm_f64x2_mul(v, vs));
      wasm_v128_store(o + j, wasm_f64x2_pmax(vlo, wasm_f64x2_pmin(vhi, v)));
    }
    for (; j < npx; j++) {
      double v = __builtin_floor(((double)(qc[j] * (1 << frac) + mc[j]) * m + 0.0 + half) * sc);
      o[j] = v < -lim ? -lim : (v > lim ? lim : v);
    }
  }
}

/* nic_latent's values as int16, for the depth-2 synthesis's Winograd path, whose inputs are within +-lim16 (< 2^15):
 * returns 1 as soon as a value is outside that (out then incomplete: the caller makes the float64 latent), else 0.
 * The same arithmetic, so the same integers. */
int nic_latent16(const int32_t *q, const int32_t *means, const double *inv, int C, int npx, int frac, int shift,
                 double lim, int lim16, int16_t *out) {
  double half = (double)(1LL << (shift - 1)), sc = 1.0 / (double)(1LL << shift);
  v128_t vh = wasm_f64x2_splat(half), vs = wasm_f64x2_splat(sc), hi = wasm_i32x4_splat(lim16),
         lo = wasm_i32x4_splat(-lim16);
  for (int c = 0; c < C; c++) {
    const int32_t *qc = q + (long)c * npx, *mc = means + (long)c * npx;
    int16_t *o = out + (long)c * npx;
    double m = inv[c];
    v128_t vm = wasm_f64x2_splat(m), bad = wasm_i32x4_splat(0);
    int j = 0;
    /* Eight values a step: int32 sums (|q 2^frac| <= 2^23, |means| <= 2^22), products below 2^53 and a power-of-two
     * scale, exact as nic_latent's. No clip to +-lim: lim16 is below it, and a value past lim16 (int32 saturated
     * past 2^31) refuses the whole latent. */
    for (; j + 8 <= npx; j += 8) {
      v128_t y[2] = {wasm_i32x4_add(wasm_i32x4_shl(wasm_v128_load(qc + j), frac), wasm_v128_load(mc + j)),
                     wasm_i32x4_add(wasm_i32x4_shl(wasm_v128_load(qc + j + 4), frac), wasm_v128_load(mc + j + 4))};
      v128_t r[2];
      for (int h = 0; h < 2; h++) {
        v128_t i2[2];
        for (int k = 0; k < 2; k++) {
          v128_t d = wasm_f64x2_convert_low_i32x4(k ? wasm_i32x4_shuffle(y[h], y[h], 2, 3, 0, 1) : y[h]);
          i2[k] = wasm_i32x4_trunc_sat_f64x2_zero(
              wasm_f64x2_floor(wasm_f64x2_mul(wasm_f64x2_add(wasm_f64x2_mul(d, vm), vh), vs)));
        }
        r[h] = wasm_i32x4_shuffle(i2[0], i2[1], 0, 1, 4, 5);
        bad = wasm_v128_or(bad, wasm_v128_or(wasm_i32x4_gt(r[h], hi), wasm_i32x4_lt(r[h], lo)));
      }
      wasm_v128_store(o + j, wasm_i16x8_narrow_i32x4(r[0], r[1]));
    }
    if (wasm_v128_any_true(bad)) return 1;
    for (; j < npx; j++) {
      double v = __builtin_floor(((double)(qc[j] * (1 << frac) + mc[j]) * m + 0.0 + half) * sc);
      v = v < -lim ? -lim : (v > lim ? lim : v);
      if (v < -lim16 || v > lim16) return 1;
      o[j] = (int16_t)(int)v;
    }
  }
  return 0;
}

/* Winograd F(2x2, 3x3) for the hyper-decoder's last layer, a 3x3 stride-1 transposed conv cropped by 1, i.e. the
 * correlation out[y][x] = sum_ij g[i][j] a[y - 1 + i][x - 1 + j] with the flipped kernel: webdecoder/wino3.py
 * plans it and documents the algebra. Per axis, the two outputs of a tile read d0..d3 = a[2t - 1 .. 2t + 2]; the
 * transformed data are B^T d = (d0 - d2, d1 + d2, d2 - d1, d1 - d3), the products m = (G' g) * (B^T d) with
 * G' g = (2 g0, g0 + g1 + g2, g0 - g1 + g2, 2 g2), and 2 out = (m0 + m1 + m2, m1 - m2 - m3): in 2-D 16 products
 * for 36, every term an integer, so 4 out is the direct sum exactly.
 *
 * The channel sums are short (48), so the layout avoids horizontal sums: a vector holds one channel pair of four
 * tiles, V[combo][group][pair][tile % 4][2], and one i32x4.dot_i16x8_s against a splatted weight pair adds that
 * pair's two products to each of the four tiles' lanes (as nic_convt_direct_i16 does).
 *
 * nic_wino3_data: a (cin, h, w) float64 integers -> out (16, groups, Kp / 2, 4, 2) int16, groups = ceil(th tw /
 * 16) * 4 (whole blocks of W3_G groups; tiles past th * tw are zero), th = ceil(h / 2), tw = ceil(w / 2), tile n = ty * tw + tx; channels past
 * cin are zero. maxabs[16] = the largest |value| of each transform. Returns 1 (nothing usable) if some |a| exceeds
 * `limit` (<= 2^13 - 1: a transform adds 4 inputs within int16), else 0. scratch: (h + 3) * (w + 3) * Kp int16, the
 * input pixel-major with a zero border (1 before, 2 after). */
#define W3_R 2 /* rows per block */
#define W3_G 4 /* 4-tile groups per block: 8 int32 accumulators, 4 data vectors and a weight in 13 registers */

int nic_wino3_data(const double *a, int cin, int h, int w, int Kp, int limit, int16_t *scratch, int16_t *out,
                   int32_t *maxabs) {
  int wp = w + 3, th = (h + 1) / 2, tw = (w + 1) / 2, N = th * tw, groups = (N + 4 * W3_G - 1) / (4 * W3_G) * W3_G;
  long cstride = (long)groups * Kp * 4; /* int16 per transform */
  for (long i = 0; i < (long)(h + 3) * wp * Kp; i++) scratch[i] = 0;
  for (long i = 0; i < 16 * cstride; i++) out[i] = 0;
  for (int c = 0; c < cin; c++)
    for (int y = 0; y < h; y++) {
      const double *row = a + ((long)c * h + y) * w;
      int16_t *t = scratch + ((long)(y + 1) * wp + 1) * Kp + c;
      for (int x = 0; x < w; x++) {
        if (!(row[x] >= -limit && row[x] <= limit)) return 1; /* the caller takes another path */
        t[(long)x * Kp] = (int16_t)row[x];
      }
    }
  v128_t mx[16];
  for (int i = 0; i < 16; i++) mx[i] = wasm_i16x8_splat(0);
  for (int n = 0; n < N; n++) {
    int ty = n / tw, tx = n % tw;
    const int16_t *base = scratch + ((long)(2 * ty) * wp + 2 * tx) * Kp; /* padded row 2ty = image row 2ty - 1 */
    int16_t *o = out + ((long)(n / 4) * Kp * 4) + (n % 4) * 2; /* pair q of this tile at o + 8 q */
    for (int c = 0; c < Kp; c += 8) {
      v128_t r[4][4];
      for (int i = 0; i < 4; i++) {
        const int16_t *p = base + (long)i * wp * Kp + c;
        v128_t d0 = wasm_v128_load(p), d1 = wasm_v128_load(p + Kp), d2 = wasm_v128_load(p + 2 * Kp),
               d3 = wasm_v128_load(p + 3 * Kp);
        r[i][0] = wasm_i16x8_sub(d0, d2);
        r[i][1] = wasm_i16x8_add(d1, d2);
        r[i][2] = wasm_i16x8_sub(d2, d1);
        r[i][3] = wasm_i16x8_sub(d1, d3);
      }
      for (int j = 0; j < 4; j++) {
        v128_t v[4] = {wasm_i16x8_sub(r[0][j], r[2][j]), wasm_i16x8_add(r[1][j], r[2][j]),
                       wasm_i16x8_sub(r[2][j], r[1][j]), wasm_i16x8_sub(r[1][j], r[3][j])};
        for (int i = 0; i < 4; i++) {
          int16_t *d = o + (long)(i * 4 + j) * cstride + (long)(c / 2) * 8; /* the four pairs of these 8 channels */
          wasm_v128_store32_lane(d, v[i], 0);
          wasm_v128_store32_lane(d + 8, v[i], 1);
          wasm_v128_store32_lane(d + 16, v[i], 2);
          wasm_v128_store32_lane(d + 24, v[i], 3);
          mx[i * 4 + j] = wasm_i16x8_max(mx[i * 4 + j], wasm_i16x8_abs(v[i]));
        }
      }
    }
  }
  for (int i = 0; i < 16; i++) {
    int m = 0;
    for (int l = 0; l < 8; l++) {
      int v = (int)(uint16_t)wasm_i16x8_extract_lane(mx[i], 0);
      m = v > m ? v : m;
      mx[i] = wasm_i8x16_shuffle(mx[i], mx[i], 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1);
    }
    maxabs[i] = m;
  }
  return 0;
}

/* The products of nic_wino3_data's transforms with the transformed weights, the output transform and the
 * requantization, in one pass: out (rows, oh, ow) = clip(floor((4 conv + bias4_r + 2^(shift-1)) / 2^shift), lo,
 * hi), i.e. conv.py's requantize of the direct sum with bias4 = 4 bias and shift = its shift + 2 (exact: 4 conv is
 * what the transforms give), as float64, or as int32 where i32 is set (the means: half the bytes to hand over), or,
 * where lut is given (with i32), as int32 lut[clamp(v, llo, lhi) - llo]: nic_scale_index's table lookup in the same
 * pass (the scales' indices, without their float64 plane and its second pass). Term t multiplies the weight pairs Upk[t][r][q] (w[2q] | w[2q + 1] << 16, pairs
 * q < P) by transform combo[t] and adds tscale[t] times that to the product of its combo: a weight beyond int16 is
 * split into a high term (scale 256) and a low one, and skip[t * rows / W3_R + r / W3_R] (NULL: none) marks the
 * row blocks where a term is all zero. A lane's int32 sum takes seg[t] pairs (at most 2^31 - 1 in all, from the
 * operands' bounds) before it is flushed to float64, where every sum is an integer below 2^53. Blocks of W3_R rows x
 * W3_G tile groups: the accumulators in registers (more spill: V8 keeps 14 or so of x64's 16 for values), the
 * groups' transforms (16 x W3_G x P x 16 B) in cache while every row block reads them. Tile n covers output rows
 * 2 (n / tw) + {0, 1}, columns 2 (n % tw) + {0, 1}; outputs past oh, ow and tiles past N are dropped. rows is a
 * multiple of W3_R, groups of W3_G. Only rows r_lo .. r_hi - 1 (multiples of W3_R) are computed, into out's planes
 * 0 .. r_hi - r_lo - 1: the two threads each take a range of one plan's rows. The first flush of each transform
 * stores its sums (no zeroed block to add to), unit-scale terms skip their multiply, and two whole tiles side by
 * side store each output row as one vector: the output transform and its scalar stores had taken ~30 % of the
 * kernel (bench/kernel_speed.py). */
void nic_wino3_conv(const int32_t *Upk, int rows, int P, int nterm, const int32_t *combo, const double *tscale,
                    const int32_t *seg, const uint8_t *skip, const int16_t *V, int groups, int N, int tw,
                    const double *bias4, int shift, double lo, double hi, void *out, int i32, int oh, int ow,
                    const int32_t *lut, int llo, int lhi, int r_lo, int r_hi) {
  double half = (double)(1LL << (shift - 1)), inv = 1.0 / (double)(1LL << shift);
  v128_t vh = wasm_f64x2_splat(half), vi = wasm_f64x2_splat(inv), vlo = wasm_f64x2_splat(lo),
         vhi = wasm_f64x2_splat(hi);
  long plane = (long)oh * ow, cstride = (long)groups * P * 8;
  double *of = i32 ? 0 : (double *)out;
  int32_t *oi = i32 ? (int32_t *)out : 0;
  for (int g0 = 0; g0 < groups; g0 += W3_G)
    for (int r0 = r_lo; r0 < r_hi; r0 += W3_R) {
      v128_t m[16][W3_R][2 * W3_G]; /* [combo][row][tile pair]: float64 sums of 2 tiles */
      int seen = 0; /* bit c: m[c] holds a sum (the first flush of a combo stores instead of adding to zeros) */
      for (int t = 0; t < nterm; t++) {
        if (skip && skip[(long)t * (rows / W3_R) + r0 / W3_R]) continue;
        const int32_t *u = Upk + ((long)t * rows + r0) * P;
        const int16_t *v = V + combo[t] * cstride + (long)g0 * P * 8;
        v128_t sc = wasm_f64x2_splat(tscale[t]);
        int step = seg[t] > 0 ? seg[t] : 1; /* never 0: a loop that cannot end */
        for (int q0 = 0; q0 < P; q0 += step) {
          int q1 = q0 + step < P ? q0 + step : P;
          v128_t acc[W3_R][W3_G];
          for (int r = 0; r < W3_R; r++)
            for (int g = 0; g < W3_G; g++) acc[r][g] = wasm_i32x4_splat(0);
          for (int q = q0; q < q1; q++) {
            v128_t d[W3_G];
            for (int g = 0; g < W3_G; g++) d[g] = wasm_v128_load(v + (long)(g * P + q) * 8);
            for (int r = 0; r < W3_R; r++) {
              v128_t w = wasm_v128_load32_splat(u + r * P + q);
              for (int g = 0; g < W3_G; g++) acc[r][g] = wasm_i32x4_add(acc[r][g], wasm_i32x4_dot_i16x8(w, d[g]));
            }
          }
          v128_t(*mc)[2 * W3_G] = m[combo[t]];
          int first = !(seen >> combo[t] & 1), unit = tscale[t] == 1.0;
          seen |= 1 << combo[t];
          for (int r = 0; r < W3_R; r++)
            for (int g = 0; g < W3_G; g++) {
              v128_t x = acc[r][g];
              v128_t lo2 = wasm_f64x2_convert_low_i32x4(x),
                     hi2 = wasm_f64x2_convert_low_i32x4(wasm_i32x4_shuffle(x, x, 2, 3, 0, 1));
              if (!unit) {
                lo2 = wasm_f64x2_mul(sc, lo2);
                hi2 = wasm_f64x2_mul(sc, hi2);
              }
              mc[r][2 * g] = first ? lo2 : wasm_f64x2_add(mc[r][2 * g], lo2);
              mc[r][2 * g + 1] = first ? hi2 : wasm_f64x2_add(mc[r][2 * g + 1], hi2);
            }
        }
      }
      for (int c = 0; c < 16; c++) /* a transform no term multiplies (no plan has one): its sums are 0 */
        if (!(seen >> c & 1))
          for (int r = 0; r < W3_R; r++)
            for (int j = 0; j < 2 * W3_G; j++) m[c][r][j] = wasm_f64x2_splat(0);
      /* Where each tile's outputs go (an integer division per tile, not per row and output). */
      long off[4 * W3_G];
      int fits[4 * W3_G]; /* bit 0: column X + 1 inside, bit 1: row Y + 1 inside; -1: no such tile */
      for (int i = 0, n = 4 * g0; i < 4 * W3_G; i++, n++) {
        int Y = 2 * (n / tw), X = 2 * (n % tw);
        off[i] = (long)Y * ow + X;
        fits[i] = n < N ? (X + 1 < ow) | (Y + 1 < oh) << 1 : -1;
      }
      for (int r = 0; r < W3_R; r++) {
        v128_t vb = wasm_f64x2_splat(bias4[r0 + r]);
        long orow = (long)(r0 - r_lo + r) * plane;
        for (int j = 0; j < 2 * W3_G; j++) { /* tiles 4 g0 + 2 j + {0, 1} */
          v128_t T[4][2], O[2][2];
          for (int a = 0; a < 4; a++) {
            v128_t m0 = m[a * 4][r][j], m1 = m[a * 4 + 1][r][j], m2 = m[a * 4 + 2][r][j], m3 = m[a * 4 + 3][r][j];
            T[a][0] = wasm_f64x2_add(wasm_f64x2_add(m0, m1), m2);
            T[a][1] = wasm_f64x2_sub(wasm_f64x2_sub(m1, m2), m3);
          }
          for (int ox = 0; ox < 2; ox++) {
            O[0][ox] = wasm_f64x2_add(wasm_f64x2_add(T[0][ox], T[1][ox]), T[2][ox]);
            O[1][ox] = wasm_f64x2_sub(wasm_f64x2_sub(T[1][ox], T[2][ox]), T[3][ox]);
            for (int oy = 0; oy < 2; oy++) {
              v128_t x = wasm_f64x2_floor(wasm_f64x2_mul(wasm_f64x2_add(wasm_f64x2_add(O[oy][ox], vb), vh), vi));
              O[oy][ox] = wasm_f64x2_pmax(vlo, wasm_f64x2_pmin(vhi, x));
            }
          }
          if (fits[2 * j] == 3 && fits[2 * j + 1] == 3 && off[2 * j + 1] == off[2 * j] + 2) {
            /* Both tiles whole and side by side (every pair but at a right or bottom edge, or a tile row's wrap):
             * each output row is 4 adjacent values, stored as one vector. */
            long o = orow + off[2 * j];
            for (int oy = 0; oy < 2; oy++, o += ow) {
              if (of) {
                wasm_v128_store(of + o, wasm_i64x2_shuffle(O[oy][0], O[oy][1], 0, 2));
                wasm_v128_store(of + o + 2, wasm_i64x2_shuffle(O[oy][0], O[oy][1], 1, 3));
                continue;
              }
              /* exact: integers within +-2^31 (the caller's lo, hi) */
              v128_t q = wasm_i32x4_shuffle(wasm_i32x4_trunc_sat_f64x2_zero(O[oy][0]),
                                            wasm_i32x4_trunc_sat_f64x2_zero(O[oy][1]), 0, 4, 1, 5);
              if (lut) { /* as nic_scale_index: clamped into the table */
                q = wasm_i32x4_sub(wasm_i32x4_min(wasm_i32x4_max(q, wasm_i32x4_splat(llo)), wasm_i32x4_splat(lhi)),
                                   wasm_i32x4_splat(llo));
                q = wasm_i32x4_make(lut[wasm_i32x4_extract_lane(q, 0)], lut[wasm_i32x4_extract_lane(q, 1)],
                                    lut[wasm_i32x4_extract_lane(q, 2)], lut[wasm_i32x4_extract_lane(q, 3)]);
              }
              wasm_v128_store(oi + o, q);
            }
            continue;
          }
          double v[2][2][2]; /* [oy][ox][tile] */
          wasm_v128_store(v[0][0], O[0][0]);
          wasm_v128_store(v[0][1], O[0][1]);
          wasm_v128_store(v[1][0], O[1][0]);
          wasm_v128_store(v[1][1], O[1][1]);
          for (int l = 0; l < 2; l++) {
            int f = fits[2 * j + l];
            if (f < 0) break;
            long o = orow + off[2 * j + l];
            if (of) {
              if (f == 3) {
                of[o] = v[0][0][l]; of[o + 1] = v[0][1][l]; of[o + ow] = v[1][0][l]; of[o + ow + 1] = v[1][1][l];
              } else {
                of[o] = v[0][0][l];
                if (f & 1) of[o + 1] = v[0][1][l];
                if (f & 2) of[o + ow] = v[1][0][l];
              }
            } else if (lut) { /* as nic_scale_index: integers within +-2^31 (the caller's lo, hi), clamped */
              int a = (int)v[0][0][l], b = (int)v[0][1][l], c = (int)v[1][0][l], d = (int)v[1][1][l];
              oi[o] = lut[(a < llo ? llo : (a > lhi ? lhi : a)) - llo];
              if (f & 1) oi[o + 1] = lut[(b < llo ? llo : (b > lhi ? lhi : b)) - llo];
              if (f & 2) oi[o + ow] = lut[(c < llo ? llo : (c > lhi ? lhi : c)) - llo];
              if (f == 3) oi[o + ow + 1] = lut[(d < llo ? llo : (d > lhi ? lhi : d)) - llo];
            } else { /* exact: integers within +-2^31 (the caller's lo, hi) */
              oi[o] = (int32_t)v[0][0][l];
              if (f & 1) oi[o + 1] = (int32_t)v[0][1][l];
              if (f & 2) oi[o + ow] = (int32_t)v[1][0][l];
              if (f == 3) oi[o + ow + 1] = (int32_t)v[1][1][l];
            }
          }
        }
      }
    }
}

/* at (n x kp) int16: the transpose of a (k x n) float64, zero-padded to kp columns: the int16 operand of the
 * transposed convs' products (conv.py _int16_parts), in one pass instead of NumPy's four (abs, max, astype, and a
 * transposed copy: ~1.2 ms a band of a depth-1 Kodak decode). Returns the largest |a| (truncated, as NumPy's
 * int(abs(a).max()) is), or -1, at partly written, where some value lies beyond +-limit or is not a number (the
 * caller then takes NumPy's path, which splits wide values). The values are the decoder's integer activations; the
 * conversion truncates, as astype(int16) does. By blocks of TB columns: a row of a is read in runs of TB, and the
 * TB rows of at being written (TB kp int16) stay in L1 through all k channels. */
#define TB 64
static inline int to_i16t_one(double v, double lim, double *m, int16_t *dst) {
  double av = v < 0 ? -v : v;
  if (!(av <= lim)) return 1;
  *m = av > *m ? av : *m;
  *dst = (int16_t)v;
  return 0;
}

int nic_to_i16t(const double *a, int k, int n, int kp, int limit, int16_t *at) {
  double lim = (double)limit, m = 0;
  v128_t mx = wasm_f64x2_splat(0); /* max |a| so far; NaN once a NaN was read (f64x2.max propagates it) */
  int k4 = k - k % 4;
  for (int j0 = 0; j0 < n; j0 += TB) {
    int j1 = j0 + TB < n ? j0 + TB : n, j2 = j0 + (j1 - j0) / 2 * 2;
    for (int c = 0; c < k4; c += 4) { /* 4 channels x 2 columns a step: two 8-byte stores, one per row of at */
      const double *s0 = a + (long)c * n, *s1 = s0 + n, *s2 = s1 + n, *s3 = s2 + n;
      for (int j = j0; j < j2; j += 2) {
        v128_t v0 = wasm_v128_load(s0 + j), v1 = wasm_v128_load(s1 + j), v2 = wasm_v128_load(s2 + j),
               v3 = wasm_v128_load(s3 + j);
        mx = wasm_f64x2_max(mx, wasm_f64x2_max(wasm_f64x2_max(wasm_f64x2_abs(v0), wasm_f64x2_abs(v1)),
                                               wasm_f64x2_max(wasm_f64x2_abs(v2), wasm_f64x2_abs(v3))));
        v128_t i0 = wasm_i32x4_trunc_sat_f64x2_zero(v0), i1 = wasm_i32x4_trunc_sat_f64x2_zero(v1),
               i2 = wasm_i32x4_trunc_sat_f64x2_zero(v2), i3 = wasm_i32x4_trunc_sat_f64x2_zero(v3);
        v128_t t0 = wasm_i32x4_shuffle(i0, i1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(i2, i3, 0, 4, 1, 5);
        v128_t rows = wasm_i16x8_narrow_i32x4(wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5),
                                              wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
        wasm_v128_store64_lane(at + (long)j * kp + c, rows, 0);
        wasm_v128_store64_lane(at + (long)(j + 1) * kp + c, rows, 1);
      }
      for (int j = j2; j < j1; j++)
        for (int d = 0; d < 4; d++)
          if (to_i16t_one(a[(long)(c + d) * n + j], lim, &m, at + (long)j * kp + c + d)) return -1;
    }
    for (int c = k4; c < k; c++)
      for (int j = j0; j < j1; j++)
        if (to_i16t_one(a[(long)c * n + j], lim, &m, at + (long)j * kp + c)) return -1;
    for (int j = j0; j < j1; j++)
      for (int c = k; c < kp; c++) at[(long)j * kp + c] = 0;
  }
  double l0 = wasm_f64x2_extract_lane(mx, 0), l1 = wasm_f64x2_extract_lane(mx, 1);
  if (!(l0 <= lim && l1 <= lim)) return -1; /* beyond the bound, or NaN (the stores above then hold garbage) */
  m = l0 > m ? l0 : m;
  m = l1 > m ? l1 : m;
  return (int)m;
}

/* The Winograd plan's weights (webdecoder/winograd.py, whose NumPy _plan_weights is the reference, checked against
 * this on load): term t, the pair of axis terms (iy[t], ix[t]), holds for output channel c and input channel i
 *   sum over the taps (cy, ky) of axis term iy[t] and (cx, kx) of ix[t] of cy cx w[i][c][ky][kx],
 * each axis term being taps[4 j .. 4 j + 3] = (c0, k0, c1, k1) (c1 = 0 for a single tap). Written as int16 in row
 * t * cout + c of w16 (Kp columns, zeros past cin), each pair of rows interleaved by 8 channels as nic_wino_convt reads
 * them, and wmax[t] = the largest |value| of term t. w: (cin, cout, k, k) float64; wk: k * k * cout * cin int32 of
 * scratch, where w goes as (ky, kx, cout, cin) so that each tap's weights are one contiguous run of cin. One pass over
 * the terms instead of NumPy's dozen over whole arrays: the browser's first decode builds this plan (26-36 ms in
 * NumPy in Chromium). Returns 1, the outputs then undefined, where a weight is no integer or |w| >= 2^28 (the sums
 * then stay int32, as in the reference) or a value leaves int16; cout even. */
int nic_wino_plan(const double *w, int cin, int cout, int k, const int32_t *taps, const int32_t *iy,
                  const int32_t *ix, int nterms, int kp, int32_t *wk, int16_t *w16, int32_t *wmax) {
  const long kk = (long)k * k;
  for (int i = 0; i < cin; i++)
    for (int c = 0; c < cout; c++)
      for (long q = 0; q < kk; q++) {
        const double v = w[((long)i * cout + c) * kk + q];
        if (!(v > -268435456.0 && v < 268435456.0) || v != (double)(int32_t)v) return 1;
        wk[(q * cout + c) * cin + i] = (int32_t)v;
      }
  for (int t = 0; t < nterms; t++) {
    const int32_t *ty = taps + 4 * iy[t], *tx = taps + 4 * ix[t];
    const int32_t cy0 = ty[0], cy1 = ty[2], cx0 = tx[0], cx1 = tx[2];
    int32_t m = 0;
    for (int c = 0; c < cout; c++) {
      const int32_t *r00 = wk + (((long)ty[1] * k + tx[1]) * cout + c) * cin;
      const int32_t *r01 = wk + (((long)ty[1] * k + tx[3]) * cout + c) * cin;
      const int32_t *r10 = wk + (((long)ty[3] * k + tx[1]) * cout + c) * cin;
      const int32_t *r11 = wk + (((long)ty[3] * k + tx[3]) * cout + c) * cin;
      const long r = (long)t * cout + c;
      int16_t *row = w16 + (r >> 1) * 2 * kp + (r & 1) * 8; /* (rows / 2, Kp / 8, 2, 8) */
      for (int i = 0; i < cin; i++) {
        const int32_t v = cy0 * (cx0 * r00[i] + cx1 * r01[i]) + cy1 * (cx0 * r10[i] + cx1 * r11[i]);
        const int32_t a = v < 0 ? -v : v;
        if (a >= 32768) return 1;
        if (a > m) m = a;
        row[(i >> 3) * 16 + (i & 7)] = (int16_t)v;
      }
      for (int i = cin; i < kp; i++) row[(i >> 3) * 16 + (i & 7)] = 0;
    }
    wmax[t] = m;
  }
  return 0;
}

/* The F(2x2, 3x3) plan of output channels row0 .. row0 + nrows - 1 of w (cin, cout, 3, 3) float64 (webdecoder/wino3.py,
 * whose NumPy _plan_parts is the reference, checked against this on load). Transform a * 4 + b of a flipped kernel g
 * (g[i][j] = w[.][.][2 - i][2 - j]) is sum_ij G'[a][i] G'[b][j] g[i][j], G' = (2 0 0; 1 1 1; 1 -1 1; 0 0 2), into
 * u (16, nrows, cin) int32. A row (transform, output channel) with a value beyond int16 is split into a low part,
 * u - 256 high, and a high part, high = floor((u + 128) / 256), a term of its own after the 16 (split: the transforms
 * that have one, in order). Each term t goes to upk (t, nrows, Kp / 2) as pairs w[2q] | w[2q + 1] << 16 (zeros past
 * cin), skip (t, nrows / blk) 1 where a block of blk rows of a high term is all zero (0 for the 16 first), wmax[t] its
 * largest |value|. Returns the number of terms (16 + the split transforms), or -1 where a weight is no integer or
 * |w| >= 2^20 or a part leaves int16 (outputs undefined); upk, skip, wmax have room for 32 terms. */
int nic_wino3_plan(const double *w, int cin, int cout, int row0, int nrows, int kp, int blk, int32_t *u,
                   int32_t *split, int32_t *upk, uint8_t *skip, int64_t *wmax) {
  static const int32_t G[4][3] = {{2, 0, 0}, {1, 1, 1}, {1, -1, 1}, {0, 0, 2}};
  const long plane = (long)nrows * cin;
  for (int r = 0; r < nrows; r++)
    for (int c = 0; c < cin; c++) {
      const double *k = w + ((long)c * cout + row0 + r) * 9;
      int32_t g[3][3];
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
          const double v = k[(2 - i) * 3 + (2 - j)];
          if (!(v > -1048576.0 && v < 1048576.0) || v != (double)(int32_t)v) return -1;
          g[i][j] = (int32_t)v;
        }
      for (int a = 0; a < 4; a++) {
        int32_t t[3]; /* sum_i G'[a][i] g[i][j] */
        for (int j = 0; j < 3; j++) t[j] = G[a][0] * g[0][j] + G[a][1] * g[1][j] + G[a][2] * g[2][j];
        for (int b = 0; b < 4; b++)
          u[(a * 4 + b) * plane + (long)r * cin + c] = G[b][0] * t[0] + G[b][1] * t[1] + G[b][2] * t[2];
      }
    }
  int ns = 0;
  for (int a = 0; a < 16; a++) {
    int over = 0;
    for (long n = 0; n < plane && !over; n++) over = u[a * plane + n] > 32767 || u[a * plane + n] < -32767;
    if (over) split[ns++] = a;
  }
  const int nt = 16 + ns, hp = kp / 2, nb = nrows / blk;
  for (int t = 0; t < nt; t++) {
    const int a = t < 16 ? t : split[t - 16];
    int64_t m = 0;
    for (int q = 0; q < nb; q++) skip[t * nb + q] = t >= 16;
    for (int r = 0; r < nrows; r++) {
      const int32_t *ur = u + a * plane + (long)r * cin;
      int over = 0;
      for (int c = 0; c < cin; c++) over |= ur[c] > 32767 || ur[c] < -32767;
      int32_t *out = upk + ((long)t * nrows + r) * hp;
      for (int q = 0; q < hp; q++) out[q] = 0;
      for (int c = 0; c < cin; c++) {
        const int32_t high = over ? (ur[c] + 128) >> 8 : 0; /* floor: an arithmetic shift */
        const int32_t v = t < 16 ? ur[c] - 256 * high : high;
        if (v > 32767 || v < -32767) return -1;
        const int64_t av = v < 0 ? -v : v;
        if (av > m) m = av;
        if (v != 0 && t >= 16) skip[t * nb + r / blk] = 0;
        if (c & 1) out[c >> 1] = (int32_t)((uint32_t)(uint16_t)out[c >> 1] | ((uint32_t)v << 16));
        else out[c >> 1] = (int32_t)(uint16_t)v;
      }
    }
    wmax[t] = m;
  }
  return nt;
}
