/* simd_impl.h — the fast kernels, written once with GCC vector extensions and compiled once per
 * instruction set (simd_avx512.c, simd_avx2.c, simd_generic.c include this file after choosing the
 * target, MR and VW).
 *
 * Contract: pure math on raw arrays; no allocation, no threads (callers split the work), no model
 * knowledge. Every function has a scalar twin in kernels.c that is the fallback and the test oracle.
 *
 * Before including, define:  SUFFIX (name suffix, e.g. _avx512), MR (rows of x per micro-tile),
 * VW (floats per native vector: 16 for AVX-512, 8 for AVX2, 4 for SSE2/NEON).
 *
 * Packed weight layout (see tfm.h, tfm_linear): W[N][K] is stored as panels of 32 output rows,
 * wp[nb][k][j] = W[32*nb + j][k], zero-padded to a multiple of 32 rows. One k step of a panel is two
 * contiguous 16-float vectors, so the micro-kernel streams the panel linearly.
 */
#include <stdint.h>
#include <string.h>
#include <math.h>

#define TFM_CAT_(a, b) a##b
#define TFM_CAT(a, b) TFM_CAT_(a, b)
#define FN(name) TFM_CAT(name, SUFFIX)

/* vf: the native vector of this build (VW floats: zmm, ymm or xmm), used by everything that
 * compares or converts — those lower to scalar code when a vector is wider than the ISA's. */
typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));
/* v16: two per 32-column panel row in the GEMM, which only loads, multiplies and adds. */
typedef float v16 __attribute__((vector_size(64)));
/* the upper lanes of the 4-lane shuffle step (they are never read) */
#if VW == 16
#define VW_TAIL8 , 8, 9, 10, 11, 12, 13, 14, 15
#else
#define VW_TAIL8
#endif

static inline __attribute__((always_inline)) vf ldv(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) void stv(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline __attribute__((always_inline)) vf splatv(float x) { return (vf){0} + x; }
/* Horizontal sum by halving (log2 VW vector adds instead of VW dependent scalar adds). */
static inline __attribute__((always_inline)) float hsumv(vf v) {
#if VW == 16
    v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
#endif
#if VW >= 8
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3 VW_TAIL8);
#endif
    float s = 0.0f;
    for (int i = 0; i < 4; i++) s += v[i];
    return s;
}
/* Vector ?: is C++-only in GCC, so selection is a bitwise blend on the comparison mask. */
static inline __attribute__((always_inline)) vf vsel(vi mask, vf a, vf b) {
    return (vf)(((vi)a & mask) | ((vi)b & ~mask));
}
static inline __attribute__((always_inline)) vf vmaxv(vf a, vf b) { return vsel(a > b, a, b); }
static inline __attribute__((always_inline)) vf vminv(vf a, vf b) { return vsel(a < b, a, b); }

/* e^x for |x| < 88, relative error ~2 ulp (Cephes expf polynomial; range reduction x = n·ln2 + r). */
static inline __attribute__((always_inline)) vf vexpv(vf x) {
    x = vminv(x, splatv(88.37626f));
    x = vmaxv(x, splatv(-87.33654f));
    vf fx = x * 1.44269504088896341f + 0.5f;
    vf tf = __builtin_convertvector(__builtin_convertvector(fx, vi), vf); /* truncation */
    vf n = vsel(tf > fx, tf - 1.0f, tf);                                   /* floor */
    vi ni = __builtin_convertvector(n, vi);
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf r2 = r * r;
    vf p = splatv(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    vi e = (ni + 127) << 23;
    vf scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

/* tanh(x) = sign(x)·(1 − 2/(e^{2|x|} + 1)); small |x| use the odd Taylor series to keep relative
 * precision near zero (the subtraction would cancel there). */
static inline __attribute__((always_inline)) vf vtanhv(vf x) {
    vf ax = vmaxv(x, -x);
    vf e = vexpv(vminv(ax * 2.0f, splatv(40.0f)));
    vf big = 1.0f - 2.0f / (e + 1.0f);
    vf x2 = x * x;
    vf small = ax * (1.0f + x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f))));
    vf t = vsel(ax < 0.0625f, small, big);
    return vsel(x < 0, -t, t);
}

/* erf(x), |error| < 1.2e-7 (Numerical Recipes erfc Chebyshev fit, exp-based; sign restored). */
static inline __attribute__((always_inline)) vf verfv(vf x) {
    vf z = vmaxv(x, -x);
    vf t = 1.0f / (1.0f + 0.5f * z);
    vf poly = splatv(0.17087277f);
    poly = poly * t + -0.82215223f;
    poly = poly * t + 1.48851587f;
    poly = poly * t + -1.13520398f;
    poly = poly * t + 0.27886807f;
    poly = poly * t + -0.18628806f;
    poly = poly * t + 0.09678418f;
    poly = poly * t + 0.37409196f;
    poly = poly * t + 1.00002368f;
    poly = poly * t + -1.26551223f;
    vf erfc = t * vexpv(-z * z + poly);
    vf r = 1.0f - erfc;
    return vsel(x < 0, -r, r);
}

/* x[i] = e^(x[i] - shift); returns the sum (softmax numerator and denominator in one pass). */
float FN(tfm_exp_shift_sum)(float *x, float shift, int64_t n) {
    vf acc = {0};
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        vf e = vexpv(ldv(x + i) - shift);
        stv(x + i, e);
        acc += e;
    }
    float s = hsumv(acc);
    for (; i < n; i++) {
        x[i] = expf(x[i] - shift);
        s += x[i];
    }
    return s;
}

/* Σ e^(x[i] − shift) without storing the exponentials, and max(x): the two reads of a
 * log-sum-exp (log-probabilities of chosen tokens, per step). The vector exp clamps its argument
 * at −87.3, so a −inf entry adds 1.2e-38: nothing next to the max entry's 1. */
float FN(tfm_exp_sum)(const float *x, float shift, int64_t n) {
    vf acc = {0};
    int64_t i = 0;
    for (; i + VW <= n; i += VW) acc += vexpv(ldv(x + i) - shift);
    float s = hsumv(acc);
    for (; i < n; i++) s += expf(x[i] - shift);
    return s;
}

float FN(tfm_max)(const float *x, int64_t n) {
    vf m = splatv(-INFINITY);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) m = vmaxv(m, ldv(x + i));
    float r = -INFINITY;
    for (int k = 0; k < VW; k++) r = m[k] > r ? m[k] : r;
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

/* Attention pieces for many queries at once (prefill, encoders):
 * sc[j] = scale · Σ_d q[d]·kt[d·ld + j] for j in [0, n), with the keys' transpose kt [D][ld]
 * packed by the caller: 4 vectors of keys per register block, no horizontal sums. */
void FN(tfm_scores_t)(float *sc, const float *q, const float *kt, int64_t ld, int64_t D, int64_t n, float scale) {
    int64_t j = 0;
    for (; j + 4 * VW <= n; j += 4 * VW) {
        vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        const float *p = kt + j;
        for (int64_t d = 0; d < D; d++, p += ld) {
            vf qd = splatv(q[d]);
            a0 += qd * ldv(p);
            a1 += qd * ldv(p + VW);
            a2 += qd * ldv(p + 2 * VW);
            a3 += qd * ldv(p + 3 * VW);
        }
        stv(sc + j, a0 * scale);
        stv(sc + j + VW, a1 * scale);
        stv(sc + j + 2 * VW, a2 * scale);
        stv(sc + j + 3 * VW, a3 * scale);
    }
    for (; j + VW <= n; j += VW) {
        vf a = {0};
        for (int64_t d = 0; d < D; d++) a += splatv(q[d]) * ldv(kt + d * ld + j);
        stv(sc + j, a * scale);
    }
    for (; j < n; j++) {
        float a = 0.0f;
        for (int64_t d = 0; d < D; d++) a += q[d] * kt[d * ld + j];
        sc[j] = a * scale;
    }
}

/* o[c] = Σ_j w[j]·v[j·D + c]: the weighted sum of n rows of width D (attention's probabilities ×
 * values). Blocks of 4 column vectors keep 4 independent FMA chains; narrower heads (D = 32 on
 * AVX-512) take two rows per step instead, so the chains stay independent there too. */
void FN(tfm_rows_weighted)(float *o, const float *w, const float *v, int64_t n, int64_t D) {
    int64_t c = 0;
    for (; c + 4 * VW <= D; c += 4 * VW) {
        vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int64_t j = 0; j < n; j++) {
            vf wj = splatv(w[j]);
            const float *r = v + j * D + c;
            a0 += wj * ldv(r);
            a1 += wj * ldv(r + VW);
            a2 += wj * ldv(r + 2 * VW);
            a3 += wj * ldv(r + 3 * VW);
        }
        stv(o + c, a0);
        stv(o + c + VW, a1);
        stv(o + c + 2 * VW, a2);
        stv(o + c + 3 * VW, a3);
    }
    for (; c + 2 * VW <= D; c += 2 * VW) {
        vf a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
        int64_t j = 0;
        for (; j + 2 <= n; j += 2) {
            vf w0 = splatv(w[j]), w1 = splatv(w[j + 1]);
            const float *r = v + j * D + c;
            a0 += w0 * ldv(r);
            a1 += w0 * ldv(r + VW);
            b0 += w1 * ldv(r + D);
            b1 += w1 * ldv(r + D + VW);
        }
        if (j < n) {
            vf wj = splatv(w[j]);
            a0 += wj * ldv(v + j * D + c);
            a1 += wj * ldv(v + j * D + c + VW);
        }
        stv(o + c, a0 + b0);
        stv(o + c + VW, a1 + b1);
    }
    for (; c + VW <= D; c += VW) {
        vf a = {0}, b = {0};
        int64_t j = 0;
        for (; j + 2 <= n; j += 2) {
            a += splatv(w[j]) * ldv(v + j * D + c);
            b += splatv(w[j + 1]) * ldv(v + (j + 1) * D + c);
        }
        if (j < n) a += splatv(w[j]) * ldv(v + j * D + c);
        stv(o + c, a + b);
    }
    for (; c < D; c++) {
        float a = 0.0f;
        for (int64_t j = 0; j < n; j++) a += w[j] * v[j * D + c];
        o[c] = a;
    }
}

/* sc[j] = scale · q·k[j·D ..] for n keys stored row-major (one query: the decode step). The dot
 * products are inlined and taken four keys at a time, so their horizontal sums overlap instead of
 * forming one call-and-reduce chain per key. */
static inline __attribute__((always_inline)) vf dot_partial(const float *q, const float *k, int64_t D) {
    vf s = {0};
    for (int64_t d = 0; d + VW <= D; d += VW) s += ldv(q + d) * ldv(k + d);
    return s;
}
void FN(tfm_scores_rows)(float *sc, const float *q, const float *k, int64_t D, int64_t n, float scale) {
    const int64_t Dv = D - D % VW; /* vector part; the rest is scalar */
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *k0 = k + j * D;
        vf p0 = dot_partial(q, k0, Dv), p1 = dot_partial(q, k0 + D, Dv);
        vf p2 = dot_partial(q, k0 + 2 * D, Dv), p3 = dot_partial(q, k0 + 3 * D, Dv);
        float s0 = hsumv(p0), s1 = hsumv(p1), s2 = hsumv(p2), s3 = hsumv(p3);
        for (int64_t d = Dv; d < D; d++) {
            s0 += q[d] * k0[d];
            s1 += q[d] * k0[D + d];
            s2 += q[d] * k0[2 * D + d];
            s3 += q[d] * k0[3 * D + d];
        }
        sc[j] = s0 * scale, sc[j + 1] = s1 * scale, sc[j + 2] = s2 * scale, sc[j + 3] = s3 * scale;
    }
    for (; j < n; j++) {
        const float *kj = k + j * D;
        float s = hsumv(dot_partial(q, kj, Dv));
        for (int64_t d = Dv; d < D; d++) s += q[d] * kj[d];
        sc[j] = s * scale;
    }
}

/* ---- activations, in place over n floats (act codes: tfm.h tfm_act) ------------------------ */
#define SQRT_2_OVER_PI 0.7978845608028654f
static inline __attribute__((always_inline)) vf actv(vf x, int act) {
    switch (act) {
    case 1: /* TFM_ACT_GELU_TANH */
        return 0.5f * x * (1.0f + vtanhv(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
    case 2: /* TFM_ACT_GELU_ERF */
        return 0.5f * x * (1.0f + verfv(x * 0.7071067811865476f));
    case 3: /* TFM_ACT_GELU_FAST */
        return 0.5f * x * (1.0f + vtanhv(0.7978845608f * x * (1.0f + 0.044715f * x * x)));
    case 4: /* TFM_ACT_QUICK_GELU */
        return x / (1.0f + vexpv(-1.702f * x));
    case 5: /* TFM_ACT_RELU */
        return vmaxv(x, splatv(0.0f));
    case 6: /* TFM_ACT_SILU */
        return x / (1.0f + vexpv(-x));
    case 7: /* TFM_ACT_TANH */
        return vtanhv(x);
    case 8: /* TFM_ACT_SIGMOID */
        return 1.0f / (1.0f + vexpv(-x));
    case 9: /* TFM_ACT_GELU_10: clip(exact gelu, -10, 10) */
        return vminv(vmaxv(0.5f * x * (1.0f + verfv(x * 0.7071067811865476f)), splatv(-10.0f)),
                      splatv(10.0f));
    default:
        return x;
    }
}

/* Returns the number of leading floats handled; the caller finishes the tail (and any act this
 * vector path does not cover) with the scalar twin. */
int64_t FN(tfm_act_vec)(float *x, int64_t n, int act) {
    if (act < 1 || act > 9) return 0;
    int64_t i = 0;
    for (; i + VW <= n; i += VW) stv(x + i, actv(ldv(x + i), act));
    return i;
}

/* ---- GEMM on packed weights ---------------------------------------------------------------- */
static inline __attribute__((always_inline)) v16 ld16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) void st16(float *p, v16 v) { memcpy(p, &v, sizeof v); }
static inline __attribute__((always_inline)) v16 splat16(float x) { return (v16){0} + x; }

/* One micro-tile: mr rows of x, packed as ap[k][MR] for k in [k0, k1), against one 32-row panel.
 * acc starts from y (accumulate) or from the bias / zero. mr is a compile-time constant at every
 * call site (see the switch below), so acc lives in registers. */
static inline __attribute__((always_inline)) void micro_tile(float *y, int64_t ldy, const float *ap,
                                                             const float *panel,
                                                             const float *bias32, int accumulate,
                                                             int64_t k0, int64_t k1, int64_t ncols,
                                                             const int mr) {
    v16 acc0[MR], acc1[MR];
    for (int r = 0; r < mr; r++) {
        if (accumulate) {
            if (ncols == 32) {
                acc0[r] = ld16(y + r * ldy);
                acc1[r] = ld16(y + r * ldy + 16);
            } else {
                float tmp[32] = {0};
                memcpy(tmp, y + r * ldy, (size_t)ncols * sizeof(float));
                acc0[r] = ld16(tmp);
                acc1[r] = ld16(tmp + 16);
            }
        } else if (bias32) {
            acc0[r] = ld16(bias32);
            acc1[r] = ld16(bias32 + 16);
        } else {
            acc0[r] = (v16){0};
            acc1[r] = (v16){0};
        }
    }
    const float *wk = panel + k0 * 32;
    for (int64_t k = k0; k < k1; k++, wk += 32, ap += MR) {
        v16 b0 = ld16(wk), b1 = ld16(wk + 16);
        for (int r = 0; r < mr; r++) {
            v16 a = splat16(ap[r]);
            acc0[r] += a * b0;
            acc1[r] += a * b1;
        }
    }
    for (int r = 0; r < mr; r++) {
        if (ncols == 32) {
            st16(y + r * ldy, acc0[r]);
            st16(y + r * ldy + 16, acc1[r]);
        } else {
            float tmp[32];
            st16(tmp, acc0[r]);
            st16(tmp + 16, acc1[r]);
            memcpy(y + r * ldy, tmp, (size_t)ncols * sizeof(float));
        }
    }
}

#define GEMM_KC 512 /* k block: a 32-row panel slice is 64 KB, x block MB×KC stays in L2 */
#define GEMM_MB (MR * 8)

/* y[M][N] = x[M][K]·Wᵀ (+ bias), W packed (see top), panels [nb0, nb1) only — the caller splits
 * panels across threads. bias32 points at a copy of the bias padded to 32·NB floats (or NULL).
 * Each MB×KC block of x is first copied into ap as micro-tiles [k][MR]: the broadcasts then read
 * one contiguous stream instead of MR rows whose stride (a multiple of 4 KB for K = 1024, 3072…)
 * would map them all to the same L1 sets. The block is reused by every panel. */
void FN(tfm_gemm_panels)(float *y, int64_t ldy, const float *x, int64_t ldx, const float *wp,
                         const float *bias_padded, int64_t M, int64_t N, int64_t K, int64_t nb0,
                         int64_t nb1) {
    float ap[GEMM_MB * GEMM_KC] __attribute__((aligned(64)));
    for (int64_t m0 = 0; m0 < M; m0 += GEMM_MB) {
        int64_t m1 = m0 + GEMM_MB < M ? m0 + GEMM_MB : M;
        for (int64_t k0 = 0; k0 < K; k0 += GEMM_KC) {
            int64_t k1 = k0 + GEMM_KC < K ? k0 + GEMM_KC : K, kc = k1 - k0;
            int accumulate = k0 > 0;
            for (int64_t m = m0; m < m1; m += MR) {
                int64_t mr = m1 - m < MR ? m1 - m : MR;
                float *tile = ap + (m - m0) * kc;
                for (int64_t r = 0; r < mr; r++) {
                    const float *xr = x + (m + r) * ldx + k0;
                    for (int64_t k = 0; k < kc; k++) tile[k * MR + r] = xr[k];
                }
            }
            for (int64_t nb = nb0; nb < nb1; nb++) {
                const float *panel = wp + nb * K * 32;
                int64_t ncols = N - nb * 32 < 32 ? N - nb * 32 : 32;
                const float *b32 = bias_padded ? bias_padded + nb * 32 : NULL;
                for (int64_t m = m0; m < m1; m += MR) {
                    int64_t mr = m1 - m < MR ? m1 - m : MR;
                    float *yt = y + m * ldy + nb * 32;
                    const float *xt = ap + (m - m0) * kc;
                    switch (mr) {
#define TILE_CASE(R)                                                                          \
    case R:                                                                                   \
        micro_tile(yt, ldy, xt, panel, b32, accumulate, k0, k1, ncols, R);                    \
        break;
                        TILE_CASE(1)
#if MR >= 2
                        TILE_CASE(2)
#endif
#if MR >= 3
                        TILE_CASE(3)
#endif
#if MR >= 4
                        TILE_CASE(4)
#endif
#if MR >= 6
                        TILE_CASE(5)
                        TILE_CASE(6)
#endif
#if MR >= 8
                        TILE_CASE(7)
                        TILE_CASE(8)
#endif
#if MR >= 12
                        TILE_CASE(9)
                        TILE_CASE(10)
                        TILE_CASE(11)
                        TILE_CASE(12)
#endif
#undef TILE_CASE
                    default:
                        break;
                    }
                }
            }
        }
    }
}
