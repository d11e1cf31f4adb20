/* kernels.c — math on raw arrays: packing and GEMM dispatch, dtype conversion, layer norm,
 * activations, attention. No model knowledge.
 *
 * Each fast path (simd_impl.h compiled per ISA) has a scalar twin here, used when the ISA table
 * says "scalar" and by the tests as the oracle. Threads: OpenMP, one parallel region per kernel
 * call, work split statically (llm.c style; a region costs < 1 µs here while threads spin).
 */
#include "tfm.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

const char *tfm_status_str(tfm_status s) {
    switch (s) {
    case TFM_OK: return "ok";
    case TFM_E_NOMEM: return "out of memory";
    case TFM_E_ARG: return "invalid argument";
    case TFM_E_SHAPE: return "shape mismatch";
    case TFM_E_RANGE: return "index out of range";
    case TFM_E_STATE: return "invalid state";
    }
    return "unknown status";
}

/* Threads: at most the process's OpenMP thread count (OMP_NUM_THREADS or the cores), which also
 * sizes every per-thread scratch; tfm_set_num_threads can only lower it (0 = back to all). */
static atomic_int threads_limit;

int tfm_thread_capacity(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int tfm_max_threads(void) {
    int cap = tfm_thread_capacity(), lim = atomic_load(&threads_limit);
    return lim > 0 && lim < cap ? lim : cap;
}

void tfm_set_num_threads(int n) { atomic_store(&threads_limit, n > 0 ? n : 0); }

/* ---------------------------------------------------------------------------------------------
 * ISA dispatch: a table of function pointers chosen once at import.
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    void (*gemm_panels)(float *, int64_t, const float *, int64_t, const float *, const float *, int64_t,
                        int64_t, int64_t, int64_t, int64_t);
    float (*exp_shift_sum)(float *, float, int64_t);
    int64_t (*act_vec)(float *, int64_t, int);
    float (*exp_sum)(const float *, float, int64_t);
    float (*max)(const float *, int64_t);
    void (*scores_t)(float *, const float *, const float *, int64_t, int64_t, int64_t, float);
    void (*rows_weighted)(float *, const float *, const float *, int64_t, int64_t);
    void (*scores_rows)(float *, const float *, const float *, int64_t, int64_t, float);
} kernel_table;

#define DECLARE_ISA(S)                                                                                  \
    void tfm_gemm_panels##S(float *, int64_t, const float *, int64_t, const float *, const float *,    \
                            int64_t, int64_t, int64_t, int64_t, int64_t);                              \
    float tfm_exp_shift_sum##S(float *, float, int64_t);                                                \
    int64_t tfm_act_vec##S(float *, int64_t, int);                                                      \
    float tfm_exp_sum##S(const float *, float, int64_t);                                                \
    float tfm_max##S(const float *, int64_t);                                                           \
    void tfm_scores_t##S(float *, const float *, const float *, int64_t, int64_t, int64_t, float);      \
    void tfm_rows_weighted##S(float *, const float *, const float *, int64_t, int64_t);                  \
    void tfm_scores_rows##S(float *, const float *, const float *, int64_t, int64_t, float);
DECLARE_ISA(_generic)
#if defined(__x86_64__) && defined(__GNUC__)
DECLARE_ISA(_avx2)
DECLARE_ISA(_avx512)
#endif

/* Scalar twins. */
static void gemm_panels_scalar(float *y, int64_t ldy, const float *x, int64_t ldx, const float *wp,
                               const float *bias, int64_t M, int64_t N, int64_t K, int64_t nb0, int64_t nb1) {
    for (int64_t nb = nb0; nb < nb1; nb++) {
        const float *panel = wp + nb * K * 32;
        for (int64_t j = 0; j < 32 && nb * 32 + j < N; j++) {
            for (int64_t m = 0; m < M; m++) {
                double s = bias ? bias[nb * 32 + j] : 0.0;
                for (int64_t k = 0; k < K; k++) s += (double)x[m * ldx + k] * panel[k * 32 + j];
                y[m * ldy + nb * 32 + j] = (float)s;
            }
        }
    }
}

static float exp_shift_sum_scalar(float *x, float shift, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - shift);
        s += x[i];
    }
    return s;
}

static int64_t act_vec_none(float *x, int64_t n, int act) {
    (void)x, (void)n, (void)act;
    return 0;
}

static float exp_sum_scalar(const float *x, float shift, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += expf(x[i] - shift);
    return s;
}

static float max_scalar(const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static void scores_t_scalar(float *sc, const float *q, const float *kt, int64_t ld, int64_t D, int64_t n,
                            float scale) {
    for (int64_t j = 0; j < n; j++) {
        double a = 0.0;
        for (int64_t d = 0; d < D; d++) a += (double)q[d] * kt[d * ld + j];
        sc[j] = (float)a * scale;
    }
}

static void scores_rows_scalar(float *sc, const float *q, const float *k, int64_t D, int64_t n, float scale) {
    for (int64_t j = 0; j < n; j++) {
        double a = 0.0;
        for (int64_t d = 0; d < D; d++) a += (double)q[d] * k[j * D + d];
        sc[j] = (float)a * scale;
    }
}

static void rows_weighted_scalar(float *o, const float *w, const float *v, int64_t n, int64_t D) {
    for (int64_t c = 0; c < D; c++) {
        double a = 0.0;
        for (int64_t j = 0; j < n; j++) a += (double)w[j] * v[j * D + c];
        o[c] = (float)a;
    }
}

static const kernel_table table_scalar = {gemm_panels_scalar,   exp_shift_sum_scalar, act_vec_none,
                                          exp_sum_scalar,       max_scalar,           scores_t_scalar,
                                          rows_weighted_scalar, scores_rows_scalar};
#define ISA_TABLE(S)                                                                                    \
    {tfm_gemm_panels##S, tfm_exp_shift_sum##S, tfm_act_vec##S,       tfm_exp_sum##S,                   \
     tfm_max##S,         tfm_scores_t##S,      tfm_rows_weighted##S, tfm_scores_rows##S}
static const kernel_table table_generic = ISA_TABLE(_generic);
#if defined(__x86_64__) && defined(__GNUC__)
static const kernel_table table_avx2 = ISA_TABLE(_avx2);
static const kernel_table table_avx512 = ISA_TABLE(_avx512);
#endif

static const kernel_table *K_ = &table_generic;

const char *tfm_isa_name(tfm_isa isa) {
    switch (isa) {
    case TFM_ISA_SCALAR: return "scalar";
    case TFM_ISA_GENERIC: return "generic";
    case TFM_ISA_AVX2: return "avx2";
    case TFM_ISA_AVX512: return "avx512";
    default: return "auto";
    }
}

static tfm_isa best_isa(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    /* __builtin_cpu_supports also checks that the OS saves the wide registers (XGETBV). */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return TFM_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return TFM_ISA_AVX2;
#endif
    return TFM_ISA_GENERIC;
}

tfm_isa tfm_select_isa(tfm_isa wanted) {
    tfm_isa best = best_isa();
    tfm_isa isa = (wanted == TFM_ISA_AUTO || wanted > best) ? best : wanted;
    switch (isa) {
    case TFM_ISA_SCALAR: K_ = &table_scalar; break;
#if defined(__x86_64__) && defined(__GNUC__)
    case TFM_ISA_AVX2: K_ = &table_avx2; break;
    case TFM_ISA_AVX512: K_ = &table_avx512; break;
#endif
    default: K_ = &table_generic; isa = TFM_ISA_GENERIC; break;
    }
    return isa;
}

/* Public entry to the dispatched exponential (decoding's softmax passes use it). */
float tfm_exp_shift_sum(float *x, float shift, int64_t n) { return K_->exp_shift_sum(x, shift, n); }

float tfm_logsumexp(const float *x, int64_t n) {
    const kernel_table *kt = K_;
    float mx = kt->max(x, n);
    if (mx == -INFINITY) return -INFINITY;
    return mx + logf(kt->exp_sum(x, mx, n));
}

/* ---------------------------------------------------------------------------------------------
 * dtype conversion
 * ------------------------------------------------------------------------------------------- */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400u) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf / nan */
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void tfm_convert_to_f32(float *out, const void *src, tfm_dtype dtype, int64_t n) {
    if (dtype == TFM_F32) {
        memcpy(out, src, (size_t)n * sizeof(float));
    } else if (dtype == TFM_F16) {
        const uint16_t *s = (const uint16_t *)src;
        for (int64_t i = 0; i < n; i++) out[i] = half_to_float(s[i]);
    } else {
        const uint16_t *s = (const uint16_t *)src;
        for (int64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)s[i] << 16;
            memcpy(&out[i], &bits, sizeof bits);
        }
    }
}

static size_t dtype_size(tfm_dtype d) { return d == TFM_F32 ? 4 : 2; }

/* ---------------------------------------------------------------------------------------------
 * Packed linear layers
 * ------------------------------------------------------------------------------------------- */
static void *aligned_zalloc(size_t bytes) {
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p) memset(p, 0, rounded ? rounded : 64);
    return p;
}

tfm_status tfm_linear_init(tfm_linear *w, int64_t n, int64_t k, int has_bias) {
    memset(w, 0, sizeof *w);
    if (n <= 0 || k <= 0 || n > (INT64_C(1) << 31) || k > (INT64_C(1) << 31)) return TFM_E_ARG;
    int64_t nb = (n + 31) / 32;
    w->n = n;
    w->k = k;
    w->data = aligned_zalloc((size_t)nb * 32 * (size_t)k * sizeof(float));
    if (!w->data) return TFM_E_NOMEM;
    if (has_bias) {
        w->bias = aligned_zalloc((size_t)nb * 32 * sizeof(float));
        if (!w->bias) {
            tfm_linear_free(w);
            return TFM_E_NOMEM;
        }
    }
    return TFM_OK;
}

void tfm_linear_free(tfm_linear *w) {
    free(w->data);
    free(w->bias);
    memset(w, 0, sizeof *w);
}

tfm_status tfm_linear_set_rows(tfm_linear *w, int64_t row0, const void *src, tfm_dtype dtype, int64_t rows,
                               int layout) {
    if (!w->data || !src || row0 < 0 || rows < 0 || row0 + rows > w->n) return TFM_E_ARG;
    const int64_t K = w->k;
    const size_t es = dtype_size(dtype);
    const int64_t nb_first = row0 / 32, nb_last = (row0 + rows - 1) / 32;
    if (rows == 0) return TFM_OK;
    int failed = 0;
    /* One thread per panel: a panel's cache lines are written by one thread only (no false
     * sharing) and stay in its L2 while the 32 rows are scattered in. */
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(dynamic, 1) reduction(| : failed)
    for (int64_t nb = nb_first; nb <= nb_last; nb++) {
        int64_t r_lo = nb * 32 > row0 ? nb * 32 : row0;
        int64_t r_hi = (nb + 1) * 32 < row0 + rows ? (nb + 1) * 32 : row0 + rows;
        float *panel = w->data + nb * K * 32;
        float *tmp = (float *)malloc((size_t)K * sizeof(float));
        if (!tmp) {
            failed = 1;
            continue;
        }
        if (layout == 0) {
            /* src is [rows][K]: convert one source row, scatter it down the panel column */
            for (int64_t row = r_lo; row < r_hi; row++) {
                tfm_convert_to_f32(tmp, (const char *)src + (size_t)(row - row0) * (size_t)K * es, dtype, K);
                float *dst = panel + (row % 32);
                for (int64_t k = 0; k < K; k++) dst[k * 32] = tmp[k];
            }
        } else {
            /* src is [K][rows]: element (k, row) lies in source row k, contiguous across the panel */
            const int64_t n = r_hi - r_lo;
            for (int64_t k = 0; k < K; k++) {
                tfm_convert_to_f32(panel + k * 32 + (r_lo % 32),
                                   (const char *)src + ((size_t)k * (size_t)rows + (size_t)(r_lo - row0)) * es, dtype, n);
            }
        }
        free(tmp);
    }
    return failed ? TFM_E_NOMEM : TFM_OK;
}

tfm_status tfm_linear_set_bias(tfm_linear *w, int64_t row0, const void *src, tfm_dtype dtype, int64_t rows) {
    if (!w->bias || !src || row0 < 0 || rows < 0 || row0 + rows > w->n) return TFM_E_ARG;
    tfm_convert_to_f32(w->bias + row0, src, dtype, rows);
    return TFM_OK;
}

void tfm_linear_get_row(const tfm_linear *w, int64_t row, float *out) {
    const float *p = w->data + (row / 32) * w->k * 32 + (row % 32);
    for (int64_t k = 0; k < w->k; k++) out[k] = p[k * 32];
}

void tfm_linear_forward(float *y, int64_t ldy, const float *x, int64_t ldx, const tfm_linear *w, int64_t m) {
    const int64_t NB = (w->n + 31) / 32;
    const kernel_table *kt = K_;
    if (m <= 0) return;
    const int nt = tfm_max_threads();
    /* Work is handed out in units through a dynamic schedule, so a thread that the OS parks (another
     * process on the core) delays only its current unit: the others take the rest. Rows of x much
     * fewer than rows of W (decode, beams, the LM head) → units are groups of output panels: every
     * weight byte is streamed once, each unit re-packs the small x. Otherwise units are blocks of
     * rows: each packs only its own rows of x and re-reads W, which then sits in cache. */
    const int64_t row_unit = 24; /* a multiple of every MR */
    if (m < 2 * row_unit || 4 * m <= NB * 32) {
        const int64_t chunk = NB / (4 * nt) > 1 ? NB / (4 * nt) : 1;
        const int64_t units = (NB + chunk - 1) / chunk;
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(dynamic, 1) if (units > 1)
        for (int64_t u = 0; u < units; u++) {
            int64_t b0 = u * chunk, b1 = b0 + chunk < NB ? b0 + chunk : NB;
            kt->gemm_panels(y, ldy, x, ldx, w->data, w->bias, m, w->n, w->k, b0, b1);
        }
    } else {
        int64_t rows = m / (4 * nt) / row_unit * row_unit;
        if (rows < row_unit) rows = row_unit;
        const int64_t units = (m + rows - 1) / rows;
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(dynamic, 1) if (units > 1)
        for (int64_t u = 0; u < units; u++) {
            int64_t m0 = u * rows, m1 = m0 + rows < m ? m0 + rows : m;
            kt->gemm_panels(y + m0 * ldy, ldy, x + m0 * ldx, ldx, w->data, w->bias, m1 - m0, w->n, w->k, 0, NB);
        }
    }
}

void tfm_matmul_naive(float *y, const float *x, const float *w, const float *bias, int64_t m, int64_t n, int64_t k) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = bias ? bias[j] : 0.0;
            for (int64_t t = 0; t < k; t++) s += (double)x[i * k + t] * w[j * k + t];
            y[i * n + j] = (float)s;
        }
}

/* ---------------------------------------------------------------------------------------------
 * Layer norm and activations
 * ------------------------------------------------------------------------------------------- */
void tfm_layernorm(float *out, const float *x, const float *w, const float *b, int64_t rows, int64_t c, float eps) {
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(static) if (rows > 16)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        float *o = out + r * c;
        double s = 0.0, s2 = 0.0;
        for (int64_t i = 0; i < c; i++) s += xr[i];
        double mean = s / (double)c;
        for (int64_t i = 0; i < c; i++) {
            double d = xr[i] - mean;
            s2 += d * d;
        }
        float rstd = (float)(1.0 / sqrt(s2 / (double)c + (double)eps));
        float fm = (float)mean;
        for (int64_t i = 0; i < c; i++) o[i] = (xr[i] - fm) * rstd * w[i] + b[i];
    }
}

static float act_scalar(float x, tfm_act act) {
    switch (act) {
    case TFM_ACT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case TFM_ACT_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    case TFM_ACT_GELU_FAST: return 0.5f * x * (1.0f + tanhf(0.7978845608f * x * (1.0f + 0.044715f * x * x)));
    case TFM_ACT_QUICK_GELU: return x / (1.0f + expf(-1.702f * x));
    case TFM_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case TFM_ACT_SILU: return x / (1.0f + expf(-x));
    case TFM_ACT_TANH: return tanhf(x);
    case TFM_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case TFM_ACT_GELU_10: {
        float g = 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
        return g < -10.0f ? -10.0f : (g > 10.0f ? 10.0f : g);
    }
    case TFM_ACT_RELU6: return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
    case TFM_ACT_RELU2: return x > 0.0f ? x * x : 0.0f;
    case TFM_ACT_LEAKY_RELU: return x >= 0.0f ? x : 0.01f * x;
    case TFM_ACT_MISH: return x * tanhf(log1pf(expf(x)) > 20.0f ? x : log1pf(expf(x)));
    case TFM_ACT_LAPLACE: return 0.5f * (1.0f + erff((x - 0.707107f) / (0.282095f * 1.4142135623730951f)));
    default: return x;
    }
}

void tfm_activation_scalar(float *x, int64_t n, tfm_act act) {
    for (int64_t i = 0; i < n; i++) x[i] = act_scalar(x[i], act);
}

void tfm_activation(float *x, int64_t n, tfm_act act) {
    if (act == TFM_ACT_IDENTITY) return;
    const kernel_table *kt = K_;
    const int64_t chunk = 4096;
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(static) if (n > 4 * chunk)
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
        int64_t len = n - c0 < chunk ? n - c0 : chunk;
        int64_t done = kt->act_vec(x + c0, len, (int)act);
        tfm_activation_scalar(x + c0 + done, len - done, act);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Attention
 * ------------------------------------------------------------------------------------------- */
/* Softmax of sc[j0, j1) (masked keys already at −FLT_MAX), context o = Σ p_j v_j, probabilities out. */
static void attend_row(const kernel_table *kt, float *o, float *pr, float *sc, const float *vh, int64_t j0, int64_t j1,
                       int64_t S, int64_t D) {
    float mx = kt->max(sc + j0, j1 - j0);
    float inv = 1.0f / kt->exp_shift_sum(sc + j0, mx, j1 - j0);
    kt->rows_weighted(o, sc + j0, vh + j0 * D, j1 - j0, D);
    for (int64_t d = 0; d < D; d++) o[d] *= inv;
    if (pr) {
        memset(pr, 0, (size_t)S * sizeof(float));
        for (int64_t j = j0; j < j1; j++) pr[j] = sc[j] * inv;
    }
}

void tfm_attention(float *ctx, float *probs, const float *q, int64_t ldq, const float *k, const float *v,
                   int64_t cap, const int32_t *mask, int64_t B, int64_t T, int64_t P, int64_t NH, int64_t D,
                   float scale, int causal, int64_t window, float *scratch) {
    const int64_t S = P + T;
    const int64_t C = NH * D;
    const kernel_table *kt = K_;
    if (T >= 8) {
        /* many queries per (row, head): transpose the keys once, then every query's scores are a
         * register-blocked product instead of S dot products */
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(dynamic, 1)
        for (int64_t pair = 0; pair < B * NH; pair++) {
#ifdef _OPENMP
            float *sc = scratch + (int64_t)omp_get_thread_num() * S * (D + 1);
#else
            float *sc = scratch;
#endif
            float *kt_pack = sc + S; /* [D][S] */
            const int64_t b = pair / NH, h = pair % NH;
            const float *kh = k + ((b * NH + h) * cap) * D;
            const float *vh = v + ((b * NH + h) * cap) * D;
            const int32_t *mrow = mask ? mask + b * S : NULL;
            for (int64_t j = 0; j < S; j++)
                for (int64_t d = 0; d < D; d++) kt_pack[d * S + j] = kh[j * D + d];
            for (int64_t t = 0; t < T; t++) {
                int64_t j1 = causal ? P + t + 1 : S;
                int64_t j0 = (causal && window > 0 && j1 - window > 0) ? j1 - window : 0;
                kt->scores_t(sc + j0, q + (b * T + t) * ldq + h * D, kt_pack + j0, S, D, j1 - j0, scale);
                if (mrow)
                    for (int64_t j = j0; j < j1; j++)
                        if (mrow[j] == 0) sc[j] += -FLT_MAX;
                attend_row(kt, ctx + (b * T + t) * C + h * D, probs ? probs + ((b * NH + h) * T + t) * S : NULL, sc,
                           vh, j0, j1, S, D);
            }
        }
        return;
    }
    const int64_t n_items = B * NH * T;
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(static) if (n_items * S * D > 32768)
    for (int64_t item = 0; item < n_items; item++) {
#ifdef _OPENMP
        float *sc = scratch + (int64_t)omp_get_thread_num() * S * (D + 1);
#else
        float *sc = scratch;
#endif
        int64_t t = item % T, h = (item / T) % NH, b = item / (T * NH);
        const float *qv = q + (b * T + t) * ldq + h * D;
        const float *kh = k + ((b * NH + h) * cap) * D;
        const float *vh = v + ((b * NH + h) * cap) * D;
        const int32_t *mrow = mask ? mask + b * S : NULL;
        /* visible keys [j0, j1) */
        int64_t j1 = causal ? P + t + 1 : S;
        int64_t j0 = (causal && window > 0 && j1 - window > 0) ? j1 - window : 0;
        kt->scores_rows(sc + j0, qv, kh + j0 * D, D, j1 - j0, scale);
        if (mrow)
            for (int64_t j = j0; j < j1; j++)
                if (mrow[j] == 0) sc[j] += -FLT_MAX;
        attend_row(kt, ctx + (b * T + t) * C + h * D, probs ? probs + ((b * NH + h) * T + t) * S : NULL, sc, vh, j0,
                   j1, S, D);
    }
}
