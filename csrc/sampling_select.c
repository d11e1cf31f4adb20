/* sampling_select.c — the partial-selection machinery under the decoding filters: candidate views
 * of a row, the row softmax numerators, order keys, top-m selection, k-th largest, and the
 * multinomial draw.
 *
 * Why: top-k / top-p / typical / min-p must equal transformers' sort-based code, ties included,
 * without sorting 50k entries per step. Selection is a bounded heap (one cheap comparison per
 * entry when m ≪ n) or, for large m, an LSD radix sort of 64-bit keys; the k-th largest value is
 * a heap or a three-round radix select. All results are exact (no approximation of the order).
 * Not here: any filter's semantics (sampling.c, samplers_llama.c).
 */
#include "sampling_internal.h"

#include <stdlib.h>

/* 16-byte vectors: native on every x86-64 (SSE2) without a target pragma; wider GCC vectors
 * would be split and scalarised in this baseline-compiled file. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f ld4(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline int any4(v4i m) {
    uint64_t q[2];
    memcpy(q, &m, sizeof q);
    return (q[0] | q[1]) != 0;
}
static inline v4f vmax4(v4f a, v4f b) {
    v4i gt = a > b;
    return (v4f)(((v4i)a & gt) | ((v4i)b & ~gt));
}

void tfm__scan(const float *x, int64_t n, float *max, int64_t *finite) {
    const v4f ninf = (v4f){0} - INFINITY;
    v4f m0 = ninf, m1 = ninf;
    v4i c0 = {0}, c1 = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v4f a = ld4(x + i), b = ld4(x + i + 4);
        m0 = vmax4(a, m0);
        m1 = vmax4(b, m1);
        c0 -= (v4i)(a != ninf); /* true lanes are −1 */
        c1 -= (v4i)(b != ninf);
    }
    m0 = vmax4(m0, m1);
    c0 += c1;
    float m = -INFINITY;
    int64_t c = 0;
    for (int l = 0; l < 4; l++) {
        if (m0[l] > m) m = m0[l];
        c += c0[l];
    }
    for (; i < n; i++) {
        if (x[i] > m) m = x[i];
        c += x[i] != -INFINITY;
    }
    *max = m;
    *finite = c;
}

double tfm__sum_d(const float *x, int64_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
    }
    for (; i < n; i++) s0 += x[i];
    return (s0 + s1) + (s2 + s3);
}

int64_t tfm__view_build(tfm__view *v, const float *z, int64_t V, tfm_sampling_ws *w) {
    float mx;
    int64_t fin;
    tfm__scan(z, V, &mx, &fin);
    v->max = mx;
    v->finite = fin;
    if (fin * 4 >= V || fin == 0) {
        v->n = V;
        v->id = NULL;
        v->z = z;
        return fin;
    }
    /* sparse: compact the finite entries, skipping all-(−inf) blocks of 8 with one test */
    const v4f ninf = (v4f){0} - INFINITY;
    int64_t c = 0, i = 0;
    for (; i + 8 <= V; i += 8) {
        if (!any4((v4i)(ld4(z + i) != ninf) | (v4i)(ld4(z + i + 4) != ninf))) continue;
        for (int64_t k = i; k < i + 8; k++)
            if (z[k] != -INFINITY) {
                w->val[c] = z[k];
                w->id[c++] = (int32_t)k;
            }
    }
    for (; i < V; i++)
        if (z[i] != -INFINITY) {
            w->val[c] = z[i];
            w->id[c++] = (int32_t)i;
        }
    v->n = c;
    v->id = w->id;
    v->z = w->val;
    return fin;
}

float tfm__view_exp(const tfm__view *v, float *e) {
    const int64_t n = v->n;
    const float mx = v->max;
    memcpy(e, v->z, (size_t)n * sizeof(float));
    float s = tfm_exp_shift_sum(e, mx, n);
    /* The vector exp clamps below −87.3 (≈1.2e-38 instead of 0 or a subnormal): redo those with
     * expf so −inf gives exactly 0 and the deep tail matches torch. Their share of s (≥ 1) is
     * below float resolution, so s stays as is. */
    const float lo = mx - 87.0f;
    const v4f vlo = (v4f){0} + lo;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        if (!any4((v4i)(ld4(v->z + i) < vlo) | (v4i)(ld4(v->z + i + 4) < vlo))) continue;
        for (int64_t k = i; k < i + 8; k++)
            if (v->z[k] < lo) e[k] = v->z[k] == -INFINITY ? 0.0f : expf(v->z[k] - mx);
    }
    for (; i < n; i++)
        if (v->z[i] < lo) e[i] = v->z[i] == -INFINITY ? 0.0f : expf(v->z[i] - mx);
    return s;
}

/* ---- top-m keys -------------------------------------------------------------------------- */
static void sift_down_min(uint64_t *h, int64_t i, int64_t n) {
    uint64_t x = h[i];
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h[c + 1] < h[c]) c++;
        if (h[c] >= x) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Sorts a[0..n) descending (LSD radix on bytes, constant bytes skipped); tmp: [n]. */
static void radix_sort_desc(uint64_t *a, int64_t n, uint64_t *tmp) {
    if (n < 2) return;
    if (n <= 32) { /* insertion sort */
        for (int64_t i = 1; i < n; i++) {
            uint64_t x = a[i];
            int64_t j = i;
            while (j > 0 && a[j - 1] < x) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
        return;
    }
    int64_t hist[8][256];
    memset(hist, 0, sizeof hist);
    for (int64_t i = 0; i < n; i++) {
        uint64_t k = ~a[i]; /* ascending in ~key = descending in key */
        for (int d = 0; d < 8; d++) hist[d][(k >> (8 * d)) & 0xff]++;
    }
    uint64_t *src = a, *dst = tmp;
    for (int d = 0; d < 8; d++) {
        int64_t *h = hist[d];
        int constant = 0;
        for (int b = 0; b < 256; b++)
            if (h[b] == n) constant = 1;
        if (constant) continue;
        int64_t off = 0;
        for (int b = 0; b < 256; b++) {
            int64_t c = h[b];
            h[b] = off;
            off += c;
        }
        for (int64_t i = 0; i < n; i++) {
            uint64_t k = src[i];
            dst[h[((~k) >> (8 * d)) & 0xff]++] = k;
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, (size_t)n * sizeof(uint64_t));
}

void tfm__select_top(uint64_t *out, const uint64_t *keys, int64_t n, int64_t m, uint64_t *tmp) {
    if (m > n) m = n;
    if (m <= 0) return;
    if (n <= 64 || m * 8 > n) {
        memcpy(out, keys, (size_t)n * sizeof(uint64_t));
        radix_sort_desc(out, n, tmp);
        return;
    }
    /* bounded min-heap of the m largest; the root is the current m-th largest */
    memcpy(out, keys, (size_t)m * sizeof(uint64_t));
    for (int64_t i = m / 2 - 1; i >= 0; i--) sift_down_min(out, i, m);
    for (int64_t i = m; i < n; i++) {
        if (keys[i] > out[0]) {
            out[0] = keys[i];
            sift_down_min(out, 0, m);
        }
    }
    /* heap-sort: repeatedly move the minimum to the end → descending order */
    for (int64_t end = m - 1; end > 0; end--) {
        uint64_t t = out[0];
        out[0] = out[end];
        out[end] = t;
        sift_down_min(out, 0, end);
    }
}

/* ---- k-th largest value ------------------------------------------------------------------ */
static void fsift_down_min(float *h, int64_t i, int64_t n) {
    float x = h[i];
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h[c + 1] < h[c]) c++;
        if (h[c] >= x) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

float tfm__kth_largest(const float *x, int64_t n, int64_t k, tfm_sampling_ws *w) {
    if (k <= 1) {
        float m;
        int64_t f;
        tfm__scan(x, n, &m, &f);
        return m;
    }
    if (k <= 1024 && k * 16 <= n) {
        /* min-heap of the k largest seen; blocks of 8 with nothing above the root are skipped */
        float *h = (float *)w->tmp;
        memcpy(h, x, (size_t)k * sizeof(float));
        for (int64_t i = k / 2 - 1; i >= 0; i--) fsift_down_min(h, i, k);
        int64_t i = k;
        for (; i < n && (i & 7); i++)
            if (x[i] > h[0]) h[0] = x[i], fsift_down_min(h, 0, k);
        for (; i + 8 <= n; i += 8) {
            const v4f root = (v4f){0} + h[0];
            if (!any4((v4i)(ld4(x + i) > root) | (v4i)(ld4(x + i + 4) > root))) continue;
            for (int64_t j = i; j < i + 8; j++)
                if (x[j] > h[0]) h[0] = x[j], fsift_down_min(h, 0, k);
        }
        for (; i < n; i++)
            if (x[i] > h[0]) h[0] = x[i], fsift_down_min(h, 0, k);
        return h[0];
    }
    /* radix select on the order-preserving 32-bit keys: rounds of 11, 11 and 10 bits, each
     * keeping only the bucket that holds the k-th largest */
    uint32_t *a = (uint32_t *)w->keys, *b = (uint32_t *)w->tmp;
    for (int64_t i = 0; i < n; i++) a[i] = tfm__f2u(x[i]);
    static const int shift[3] = {21, 10, 0};
    static const uint32_t width[3] = {2048, 2048, 1024};
    uint32_t prefix = 0, pmask = 0;
    int64_t cnt = n;
    for (int r = 0; r < 3; r++) {
        int64_t hist[2048];
        memset(hist, 0, sizeof hist);
        for (int64_t i = 0; i < cnt; i++) hist[(a[i] >> shift[r]) & (width[r] - 1)]++;
        int64_t bucket = (int64_t)width[r] - 1;
        for (; bucket > 0; bucket--) {
            if (hist[bucket] >= k) break;
            k -= hist[bucket];
        }
        prefix |= (uint32_t)bucket << shift[r];
        pmask |= (width[r] - 1) << shift[r];
        int64_t c = 0;
        for (int64_t i = 0; i < cnt; i++)
            if ((a[i] & pmask) == prefix) b[c++] = a[i];
        uint32_t *t = a;
        a = b;
        b = t;
        cnt = c;
    }
    return tfm__u2f(prefix);
}

void tfm__top_keys(uint64_t *out, const float *x, int64_t n, int64_t m, int tie_hi, tfm_sampling_ws *w) {
    if (m > n) m = n;
    if (m <= 0) return;
    /* only entries at or above the m-th largest value can be in the head: key just those */
    const float T = (m * 8 <= n && n > 64) ? tfm__kth_largest(x, n, m, w) : -INFINITY;
    int64_t c = 0;
    if (tie_hi) {
        for (int64_t j = 0; j < n; j++)
            if (x[j] >= T) w->keys[c++] = tfm__key_desc_hi(x[j], j);
    } else {
        for (int64_t j = 0; j < n; j++)
            if (x[j] >= T) w->keys[c++] = tfm__key_desc_lo(x[j], j);
    }
    tfm__select_top(out, w->keys, c, m, w->tmp);
}

/* Σ of a block of up to 256 weights, four partial sums (the same grouping in both passes). */
static double block_sum(const float *x, int64_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) s0 += x[i], s1 += x[i + 1], s2 += x[i + 2], s3 += x[i + 3];
    for (; i < n; i++) s0 += x[i];
    return (s0 + s1) + (s2 + s3);
}

int64_t tfm__draw(const float *wt, int64_t n, double u) {
    enum { BLK = 256 };
    double total = 0.0;
    for (int64_t b = 0; b < n; b += BLK) total += block_sum(wt + b, n - b < BLK ? n - b : BLK);
    if (!(total > 0.0)) return -1;
    /* the running sum advances a block at a time until the block that reaches u·total, then
     * entry by entry inside it */
    const double target = u * total;
    double acc = 0.0;
    int64_t last = -1;
    for (int64_t b = 0; b < n; b += BLK) {
        const int64_t len = n - b < BLK ? n - b : BLK;
        const double bs = block_sum(wt + b, len);
        if (bs > 0.0 && acc + bs >= target) {
            double a = acc;
            for (int64_t j = b; j < b + len; j++) {
                if (wt[j] <= 0.0f) continue;
                a += wt[j];
                last = j;
                if (a >= target) return j;
            }
        } else if (bs > 0.0) {
            for (int64_t j = b + len - 1; j >= b; j--)
                if (wt[j] > 0.0f) {
                    last = j;
                    break;
                }
        }
        acc += bs;
    }
    return last; /* rounding left the running sum a hair below u·total: the last positive entry */
}
