/* sampling.c — the RNG, softmax / argmax / multinomial selection, and the transformers logits
 * processors and warpers, each on one row z[V] in place.
 *
 * Every filter equals the transformers class it names (generation/logits_process.py, v4.5x):
 * the same kept set, the same float32 values. Where transformers sorts, we select (see
 * sampling_select.c) and reproduce its float arithmetic: probabilities are float32 softmax
 * (e^(z−max)·(1/Σ)), cumulative sums are accumulated in double and compared in float32 as
 * torch's CPU cumsum does. Two things cannot be bit-identical and are documented instead:
 *  - torch's exp and summation order differ from ours by an ulp or two, so a cumulative sum
 *    within ~1e-7 of its threshold may fall on the other side;
 *  - torch.sort is not stable on CPU above ~100 entries, so which of several *equal* logits
 *    survives a top-p / min-p / typical cut is unspecified in transformers; we answer as a
 *    stable sort would and say so per filter.
 * Not here: the stateful llama.cpp samplers (samplers_llama.c), batching, Python.
 */
#include "sampling_internal.h"

#include <assert.h>
#include <float.h>
#include <stdlib.h>

/* ---------------------------------------------------------------------------------------------
 * RNG: xoshiro256** seeded through splitmix64 (both Vigna, public domain algorithms)
 * ------------------------------------------------------------------------------------------- */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tfm_rng_seed(tfm_rng *r, uint64_t seed, uint64_t stream) {
    /* mix seed and stream separately first, so (seed, stream) pairs never share a splitmix run */
    uint64_t a = seed, b = stream ^ 0x6a09e667f3bcc909ull;
    uint64_t x = splitmix64(&a) ^ (splitmix64(&b) * 0xd1342543de82ef95ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1; /* the all-zero state is a fixed point */
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tfm_rng_next(tfm_rng *r) {
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double tfm_rng_uniform(tfm_rng *r) { return (double)(tfm_rng_next(r) >> 11) * 0x1.0p-53; }

double tfm_rng_gumbel(tfm_rng *r) {
    double u = ((double)(tfm_rng_next(r) >> 11) + 0.5) * 0x1.0p-53; /* (0, 1): never 0 or 1 */
    return -log(-log(u));
}

/* ---------------------------------------------------------------------------------------------
 * Workspace
 * ------------------------------------------------------------------------------------------- */
tfm_status tfm_sampling_ws_init(tfm_sampling_ws *w, int64_t cap) {
    memset(w, 0, sizeof *w);
    if (cap < 1 || cap > INT32_MAX) return TFM_E_ARG;
    const size_t n = (size_t)cap;
    w->cap = cap;
    w->e = (float *)malloc(n * sizeof(float));
    w->val = (float *)malloc(n * sizeof(float));
    w->aux = (float *)malloc(n * sizeof(float));
    w->id = (int32_t *)malloc(n * sizeof(int32_t));
    w->keys = (uint64_t *)malloc(n * sizeof(uint64_t));
    w->top = (uint64_t *)malloc(n * sizeof(uint64_t));
    w->tmp = (uint64_t *)malloc(n * sizeof(uint64_t));
    w->count = (int32_t *)calloc(n, sizeof(int32_t));
    if (!w->e || !w->val || !w->aux || !w->id || !w->keys || !w->top || !w->tmp || !w->count) {
        tfm_sampling_ws_free(w);
        return TFM_E_NOMEM;
    }
    return TFM_OK;
}

void tfm_sampling_ws_free(tfm_sampling_ws *w) {
    free(w->e), free(w->val), free(w->aux), free(w->id), free(w->keys), free(w->top), free(w->tmp), free(w->count);
    memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------------------------------------
 * Filter bookkeeping for traces
 * ------------------------------------------------------------------------------------------- */
/* After a filter removed entries of row z: count the survivors of view v and their share of the
 * softmax numerators e computed *before* the filter (sum s). */
static void info_after(tfm_filter_info *info, const tfm__view *v, const float *z, const float *e, float s) {
    if (!info) return;
    int64_t kept = 0;
    double m0 = 0.0, m1 = 0.0;
    int64_t j = 0;
    for (; j + 2 <= v->n; j += 2) { /* branch-free: removed entries add 0 */
        const int k0 = z[tfm__tok(v, j)] != -INFINITY, k1 = z[tfm__tok(v, j + 1)] != -INFINITY;
        kept += k0 + k1;
        m0 += k0 ? e[j] : 0.0f;
        m1 += k1 ? e[j + 1] : 0.0f;
    }
    for (; j < v->n; j++) {
        const int k0 = z[tfm__tok(v, j)] != -INFINITY;
        kept += k0;
        m0 += k0 ? e[j] : 0.0f;
    }
    tfm__info_set(info, kept, (m0 + m1) / s);
}

/* ---------------------------------------------------------------------------------------------
 * Distributions and selection
 * ------------------------------------------------------------------------------------------- */
/* out[i] = e^(z[i] − mx) for a whole row (out may alias z; no allocation: chunks go through a stack
 * copy so the deep-tail fix-up can still read z). Returns Σ out. */
static double exp_row(float *out, const float *z, int64_t n, float mx) {
    float buf[1024];
    double s = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += 1024) {
        const int64_t len = n - i0 < 1024 ? n - i0 : 1024;
        memcpy(buf, z + i0, (size_t)len * sizeof(float));
        tfm__view v = {len, len, NULL, buf, mx};
        s += tfm__view_exp(&v, out + i0);
    }
    return s;
}

tfm_status tfm_softmax(float *p, const float *z, int64_t V) {
    if (V < 1 || !p || !z) return TFM_E_ARG;
    float mx;
    int64_t fin;
    tfm__scan(z, V, &mx, &fin);
    if (fin == 0) return TFM_E_ARG;
    const float inv = 1.0f / (float)exp_row(p, z, V, mx); /* torch multiplies by the reciprocal too */
    for (int64_t i = 0; i < V; i++) p[i] *= inv;
    return TFM_OK;
}

tfm_status tfm_log_softmax(float *out, const float *z, int64_t V) {
    if (V < 1 || !out || !z) return TFM_E_ARG;
    float mx;
    int64_t fin;
    tfm__scan(z, V, &mx, &fin);
    if (fin == 0) return TFM_E_ARG;
    float buf[1024];
    double s = 0.0;
    for (int64_t i0 = 0; i0 < V; i0 += 1024) {
        const int64_t len = V - i0 < 1024 ? V - i0 : 1024;
        s += exp_row(buf, z + i0, len, mx);
    }
    const float lse = logf((float)s);
    for (int64_t i = 0; i < V; i++) out[i] = z[i] - mx - lse; /* as torch: x − max − ln Σ */
    return TFM_OK;
}

int64_t tfm_argmax(const float *z, int64_t V) {
    float mx;
    int64_t fin;
    tfm__scan(z, V, &mx, &fin);
    for (int64_t i = 0; i < V; i++)
        if (z[i] == mx) return i;
    return 0;
}

tfm_status tfm_top_indices(int32_t *out, const float *z, int64_t V, int64_t k, tfm_sampling_ws *w) {
    if (!tfm__ws_ok(w, V) || k < 1 || k > V) return TFM_E_ARG;
    tfm__top_keys(w->top, z, V, k, 0, w);
    for (int64_t r = 0; r < k; r++) out[r] = (int32_t)tfm__pos_lo(w->top[r]);
    return TFM_OK;
}

/* The weights a draw uses: softmax numerators of the finite entries (compacted when sparse), or
 * the given non-negative weights. */
static tfm_status draw_weights(tfm__view *v, const float **wt, const float *z, int64_t V, int is_prob,
                               tfm_sampling_ws *w) {
    if (is_prob) {
        for (int64_t i = 0; i < V; i++)
            if (!(z[i] >= 0.0f) || z[i] == INFINITY) return TFM_E_ARG;
        *v = (tfm__view){V, V, NULL, z, 0.0f};
        *wt = z;
    } else {
        if (tfm__view_build(v, z, V, w) == 0) return TFM_E_ARG;
        tfm__view_exp(v, w->e);
        *wt = w->e;
    }
    return TFM_OK;
}

tfm_status tfm_sample(int64_t *token, const float *z, int64_t V, int is_prob, tfm_rng *r, tfm_sampling_ws *w) {
    return tfm_sample_n(token, 1, 1, z, V, is_prob, r, w);
}

tfm_status tfm_sample_n(int64_t *out, int64_t k, int replacement, const float *z, int64_t V, int is_prob,
                        tfm_rng *r, tfm_sampling_ws *w) {
    if (!tfm__ws_ok(w, V) || !out || !r || k < 0) return TFM_E_ARG;
    if (k == 0) return TFM_OK;
    tfm__view v;
    const float *wt;
    tfm_status st = draw_weights(&v, &wt, z, V, is_prob, w);
    if (st != TFM_OK) return st;
    if (replacement) {
        for (int64_t d = 0; d < k; d++) {
            const int64_t j = tfm__draw(wt, v.n, tfm_rng_uniform(r));
            if (j < 0) return TFM_E_ARG;
            out[d] = tfm__tok(&v, j);
        }
        return TFM_OK;
    }
    /* without replacement: zero the drawn weight and draw again from the rest */
    int64_t positive = 0;
    for (int64_t j = 0; j < v.n; j++) positive += wt[j] > 0.0f;
    if (k > positive) return TFM_E_ARG;
    float *mw = w->e; /* the weights are scratch already, or copied there (given probabilities) */
    if (wt != mw) memcpy(mw, wt, (size_t)v.n * sizeof(float));
    for (int64_t d = 0; d < k; d++) {
        const int64_t j = tfm__draw(mw, v.n, tfm_rng_uniform(r));
        out[d] = tfm__tok(&v, j);
        mw[j] = 0.0f;
    }
    return TFM_OK;
}

void tfm_gumbel_perturb(float *z, int64_t V, tfm_rng *r) {
    for (int64_t i = 0; i < V; i++)
        if (z[i] != -INFINITY) z[i] += (float)tfm_rng_gumbel(r);
}

/* ---------------------------------------------------------------------------------------------
 * transformers warpers
 * ------------------------------------------------------------------------------------------- */

/* TemperatureLogitsWarper: z / t (a true division, as torch's scores / t). t == 0 follows
 * llama.cpp's greedy temperature instead of HF's error: only the first maximum survives. */
tfm_status tfm_temperature_apply(float *z, int64_t V, float t) {
    if (V < 1 || !(t >= 0.0f) || t == INFINITY) return TFM_E_ARG;
    if (t == 0.0f) {
        int64_t a = tfm_argmax(z, V);
        for (int64_t i = 0; i < V; i++)
            if (i != a) z[i] = -INFINITY;
        return TFM_OK;
    }
    int overflow = 0;
    for (int64_t i = 0; i < V; i++) {
        const float q = z[i] / t;
        z[i] = q;
        overflow |= q == INFINITY;
    }
    return overflow ? TFM_E_ARG : TFM_OK; /* t so small that a logit overflowed */
}

/* TopKLogitsWarper: threshold = the max(k, min_keep)-th largest value; remove z < threshold. */
tfm_status tfm_top_k_apply(float *z, int64_t V, int64_t k, int64_t min_keep, tfm_sampling_ws *w,
                           tfm_filter_info *info) {
    if (!tfm__ws_ok(w, V) || k < 0 || min_keep < 1) return TFM_E_ARG;
    const int64_t kk = k > min_keep ? k : min_keep;
    tfm__view v = {V, V, NULL, z, 0.0f};
    float s = 0.0f;
    if (info) { /* the softmax of the row before it changes */
        tfm__scan(z, V, &v.max, &v.finite);
        if (v.finite) s = tfm__view_exp(&v, w->e);
    }
    if (k == 0 || kk >= V) { /* off, or everything is kept */
        if (info) tfm__info_set(info, v.finite, v.finite ? 1.0 : 0.0);
        return TFM_OK;
    }
    /* with fewer than kk finite entries the threshold is −inf and nothing is removed */
    const float thr = tfm__kth_largest(z, V, kk, w);
    for (int64_t i = 0; i < V; i++) z[i] = z[i] < thr ? -INFINITY : z[i];
    if (info && v.finite) info_after(info, &v, z, w->e, s);
    else if (info) tfm__info_set(info, 0, 0.0);
    return TFM_OK;
}

/* Removes every view entry whose key (tie rule tie_hi) is below `cut`: a branch-free pass on the
 * values, then the few entries equal to the cut value are settled by position. */
static void remove_below(float *z, const tfm__view *v, uint64_t cut, int tie_hi) {
    const float cv = tfm__u2f((uint32_t)(cut >> 32));
    int64_t equal = 0;
    if (!v->id) { /* dense view: v->z is z */
        for (int64_t j = 0; j < v->n; j++) {
            const float x = z[j];
            z[j] = x < cv ? -INFINITY : x;
            equal += x == cv;
        }
    } else {
        for (int64_t j = 0; j < v->n; j++) {
            if (v->z[j] < cv) z[v->id[j]] = -INFINITY;
            equal += v->z[j] == cv;
        }
    }
    if (equal < 2) return; /* only the cut entry itself holds the cut value: no tie to settle */
    for (int64_t j = 0; j < v->n; j++)
        if (v->z[j] == cv && tfm__below(v->z[j], j, cut, tie_hi)) z[tfm__tok(v, j)] = -INFINITY;
}

/* Top-p's cut when it lies below the selected head: the first entry, in ascending key order
 * (value, then position — torch's stable ascending sort), whose cumulative probability exceeds
 * thr. Mass selection instead of sorting: entries are bucketed by value (4096 buckets), the
 * bucket where the cumulative mass crosses thr is kept and refined the same way, and the last few
 * entries are sorted and walked. Returns 0 when no entry's cumulative exceeds thr. */
static int top_p_mass_cut(uint64_t *cut, const tfm__view *v, const float *e, float inv, float thr,
                          tfm_sampling_ws *w) {
    enum { NB = 4096, SMALL = 1024 };
    int32_t *pos = (int32_t *)w->aux; /* the entries still in play */
    int64_t cnt = v->n;
    for (int64_t j = 0; j < cnt; j++) pos[j] = (int32_t)j;
    double base = 0.0; /* mass of the entries below those in play (all removed) */
    float lo = v->max - 40.0f, hi = v->max;
    static_assert(sizeof(double) * NB <= 64 * 1024, "bucket table on the stack");
    double mass[NB];
    for (int depth = 0; cnt > SMALL && depth < 4 && hi > lo; depth++) {
        memset(mass, 0, sizeof mass);
        const float scale = (float)NB / (hi - lo);
#define BUCKET(x) ((x) <= lo ? 0 : (x) >= hi ? NB - 1 : ((int)(((x) - lo) * scale) < NB ? (int)(((x) - lo) * scale) : NB - 1))
        for (int64_t i = 0; i < cnt; i++) mass[BUCKET(v->z[pos[i]])] += e[pos[i]] * inv;
        int b = 0;
        for (; b < NB; b++) {
            if ((float)(base + mass[b]) > thr) break;
            base += mass[b];
        }
        if (b == NB) return 0;
        int64_t c = 0;
        float mn = INFINITY, mxv = -INFINITY;
        for (int64_t i = 0; i < cnt; i++) {
            const float x = v->z[pos[i]];
            if (BUCKET(x) != b) continue;
            pos[c++] = pos[i];
            if (x != -INFINITY && x < mn) mn = x;
            if (x > mxv) mxv = x;
        }
#undef BUCKET
        cnt = c;
        lo = mn, hi = mxv;
        if (!(mn < mxv)) break; /* one value left (ties): sort by position */
        lo = nextafterf(mn, -INFINITY); /* so the smallest value is strictly inside */
    }
    for (int64_t i = 0; i < cnt; i++) w->keys[i] = tfm__key_desc_hi(v->z[pos[i]], pos[i]);
    tfm__select_top(w->top, w->keys, cnt, cnt, w->tmp); /* descending; walk it backwards */
    double c = base;
    for (int64_t r = cnt - 1; r >= 0; r--) {
        c += e[tfm__pos_hi(w->top[r])] * inv;
        if ((float)c > thr) {
            *cut = w->top[r];
            return 1;
        }
    }
    /* rounding placed the crossing just above this bucket: the smallest key above it */
    const uint64_t top = w->top[0];
    uint64_t best = UINT64_MAX;
    for (int64_t j = 0; j < v->n; j++) {
        const uint64_t k = tfm__key_desc_hi(v->z[j], j);
        if (k > top && k < best) best = k;
    }
    if (best == UINT64_MAX) return 0;
    *cut = best;
    return 1;
}

/* TopPLogitsWarper. In descending order r = 0, 1, … (equal values: higher id first, i.e. a stable
 * ascending sort read backwards), c(r) = Σ_{r' ≥ r} p = torch's ascending cumsum at that entry;
 * entries with c ≤ 1 − p are removed, except the first min_keep. c only falls with r, so when the
 * nucleus is small the cut is found in a selected head of 64; otherwise by mass selection. */
tfm_status tfm_top_p_apply(float *z, int64_t V, double p, int64_t min_keep, tfm_sampling_ws *w,
                           tfm_filter_info *info) {
    if (!tfm__ws_ok(w, V) || !(p > 0.0 && p <= 1.0) || min_keep < 1) return TFM_E_ARG;
    tfm__view v;
    if (tfm__view_build(&v, z, V, w) == 0) return tfm__info_set(info, 0, 0.0), TFM_OK;
    float *e = w->e;
    const float s = tfm__view_exp(&v, e), inv = 1.0f / s;
    const int64_t n = v.n;
    double S = 0.0;
    int64_t npos = 0;
    for (int64_t j = 0; j < n; j++) {
        const float pj = e[j] * inv;
        S += pj;
        npos += pj > 0.0f;
    }
    const float thr = (float)(1.0 - p); /* torch compares float32 with float32(1 − p) */
    const int64_t keep_min = min_keep < n ? min_keep : n;
    const int64_t m = keep_min > (n < 64 ? n : 64) ? keep_min : (n < 64 ? n : 64);
    tfm__top_keys(w->top, v.z, n, m, 1, w);
    double head = 0.0;
    int64_t head_pos = 0;
    for (int64_t r = 0; r < m; r++) {
        const float pr = e[tfm__pos_hi(w->top[r])] * inv;
        head += pr;
        head_pos += pr > 0.0f;
    }
    /* mass below the head: exactly 0 when the head holds every positive entry */
    double rest = (m == n || head_pos == npos) ? 0.0 : S - head;
    if (rest < 0.0) rest = 0.0;
    double suf = rest;
    int64_t rstar = m;
    for (int64_t r = m - 1; r >= 0; r--) {
        suf += e[tfm__pos_hi(w->top[r])] * inv;
        if ((float)suf <= thr) rstar = r;
        else break;
    }
    if (rstar < m || m == n) { /* the cut lies inside the head (or nothing is cut) */
        const int64_t kept = rstar > keep_min ? rstar : keep_min;
        if (kept < n) remove_below(z, &v, w->top[kept - 1], 1);
    } else { /* every head entry stays; the cut is further down */
        const uint64_t head_cut = w->top[keep_min - 1]; /* the mass selection reuses w->top */
        uint64_t cut;
        if (top_p_mass_cut(&cut, &v, e, inv, thr, w)) remove_below(z, &v, cut, 1);
        else remove_below(z, &v, head_cut, 1); /* unreachable but for rounding */
    }
    info_after(info, &v, z, e, s);
    return TFM_OK;
}

/* MinPLogitsWarper: remove p < min_p·max p; if fewer than min_keep survive, the top min_keep by
 * value (equal values: lower id first, as a stable descending argsort) are kept as well. */
tfm_status tfm_min_p_apply(float *z, int64_t V, float mp, int64_t min_keep, tfm_sampling_ws *w,
                           tfm_filter_info *info) {
    if (!tfm__ws_ok(w, V) || !(mp >= 0.0f && mp <= 1.0f) || min_keep < 1) return TFM_E_ARG;
    tfm__view v;
    if (tfm__view_build(&v, z, V, w) == 0) return tfm__info_set(info, 0, 0.0), TFM_OK;
    float *e = w->e;
    const float s = tfm__view_exp(&v, e), inv = 1.0f / s;
    const float scaled = mp * (1.0f * inv); /* max p = e^0·(1/Σ) */
    const int64_t n = v.n;
    int64_t pass = 0;
    for (int64_t j = 0; j < n; j++) pass += !(e[j] * inv < scaled) && v.z[j] != -INFINITY;
    if (pass >= min_keep || pass >= v.finite) {
        for (int64_t j = 0; j < n; j++)
            if (e[j] * inv < scaled) z[tfm__tok(&v, j)] = -INFINITY;
    } else {
        const int64_t mk = min_keep < n ? min_keep : n;
        tfm__top_keys(w->top, v.z, n, mk, 0, w);
        const uint64_t cut = w->top[mk - 1];
        for (int64_t j = 0; j < n; j++)
            if (e[j] * inv < scaled && tfm__below(v.z[j], j, cut, 0)) z[tfm__tok(&v, j)] = -INFINITY;
    }
    info_after(info, &v, z, e, s);
    return TFM_OK;
}

/* Entropy H = −Σ p ln p of the view in nats, from ℓ = z − max − ln Σ (−inf terms are 0). */
static double entropy(const tfm__view *v, const float *e, float s) {
    const float lse = logf(s), inv = 1.0f / s;
    double h = 0.0;
    for (int64_t j = 0; j < v->n; j++)
        if (e[j] > 0.0f) h -= (double)(e[j] * inv) * (double)(v->z[j] - v->max - lse);
    return h;
}

/* TypicalLogitsWarper. d = |−ℓ − H|, ℓ = log_softmax(z); in ascending d (equal d: lower id
 * first, a stable sort) the cut is the first position whose cumulative p reaches `mass`; every
 * entry with d above the cut's d is removed, except the first min_keep positions. */
tfm_status tfm_typical_apply(float *z, int64_t V, float mass, int64_t min_keep, tfm_sampling_ws *w,
                             tfm_filter_info *info) {
    if (!tfm__ws_ok(w, V) || !(mass > 0.0f && mass <= 1.0f) || min_keep < 1) return TFM_E_ARG;
    tfm__view v;
    const int64_t fin = tfm__view_build(&v, z, V, w);
    if (fin == 0) return tfm__info_set(info, 0, 0.0), TFM_OK;
    if (mass == 1.0f) return tfm__info_set(info, fin, 1.0), TFM_OK; /* off (the HF class refuses 1.0) */
    float *e = w->e;
    const float s = tfm__view_exp(&v, e), inv = 1.0f / s, lse = logf(s);
    const float H = (float)entropy(&v, e, s);
    const int64_t n = v.n;
    /* nd = −d: ascending d with lower ids first is descending nd with lower ids first */
    float *nd = w->aux;
    for (int64_t j = 0; j < n; j++) nd[j] = -fabsf(-(v.z[j] - v.max - lse) - H); /* −inf → −inf */
    const int64_t keep_min = min_keep < n ? min_keep : n;
    int64_t m = n < 64 ? n : 64;
    if (m < keep_min) m = keep_min;
    int64_t last = -1;
    for (;;) {
        tfm__top_keys(w->top, nd, n, m, 0, w);
        double cum = 0.0;
        for (int64_t r = 0; r < m; r++) {
            cum += e[tfm__pos_lo(w->top[r])] * inv;
            if (!((float)cum < mass)) {
                last = r;
                break;
            }
        }
        if (last >= 0 || m == n) break;
        m = m * 8 < n ? m * 8 : n;
    }
    if (last >= 0) {
        /* remove keys below the cut's d (all entries tied with it in d survive), but keep the
         * first min_keep positions */
        const float dcut = tfm__u2f((uint32_t)(w->top[last] >> 32)); /* the cut's −d */
        const uint64_t mkcut = w->top[keep_min - 1];
        for (int64_t j = 0; j < n; j++)
            if (nd[j] < dcut && tfm__below(nd[j], j, mkcut, 0)) z[tfm__tok(&v, j)] = -INFINITY;
    }
    info_after(info, &v, z, e, s);
    return TFM_OK;
}

/* Epsilon / eta share the rule: remove p < cut unless z ≥ the min_keep-th largest value. */
static void cut_below_prob(float *z, const tfm__view *v, const float *e, float inv, float cut, int64_t min_keep,
                           tfm_sampling_ws *w) {
    float kth = -INFINITY;
    if (min_keep <= v->finite) kth = tfm__kth_largest(v->z, v->n, min_keep, w);
    for (int64_t j = 0; j < v->n; j++)
        if (e[j] * inv < cut && v->z[j] < kth) z[tfm__tok(v, j)] = -INFINITY;
}

/* EpsilonLogitsWarper (Hewitt et al. 2022, truncation sampling). */
tfm_status tfm_epsilon_apply(float *z, int64_t V, float eps, int64_t min_keep, tfm_sampling_ws *w,
                             tfm_filter_info *info) {
    if (!tfm__ws_ok(w, V) || !(eps >= 0.0f && eps < 1.0f) || min_keep < 1) return TFM_E_ARG;
    tfm__view v;
    const int64_t fin = tfm__view_build(&v, z, V, w);
    if (fin == 0) return tfm__info_set(info, 0, 0.0), TFM_OK;
    if (eps == 0.0f) return tfm__info_set(info, fin, 1.0), TFM_OK;
    const float s = tfm__view_exp(&v, w->e);
    cut_below_prob(z, &v, w->e, 1.0f / s, eps, min_keep, w);
    info_after(info, &v, z, w->e, s);
    return TFM_OK;
}

/* EtaLogitsWarper: eta = min(ε, √ε·e^−H) in float32 as torch computes it. */
tfm_status tfm_eta_apply(float *z, int64_t V, float eps, int64_t min_keep, tfm_sampling_ws *w,
                         tfm_filter_info *info) {
    if (!tfm__ws_ok(w, V) || !(eps >= 0.0f && eps < 1.0f) || min_keep < 1) return TFM_E_ARG;
    tfm__view v;
    const int64_t fin = tfm__view_build(&v, z, V, w);
    if (fin == 0) return tfm__info_set(info, 0, 0.0), TFM_OK;
    if (eps == 0.0f) return tfm__info_set(info, fin, 1.0), TFM_OK;
    const float s = tfm__view_exp(&v, w->e);
    const float H = (float)entropy(&v, w->e, s);
    const float eta = fminf(eps, sqrtf(eps) * expf(-H));
    cut_below_prob(z, &v, w->e, 1.0f / s, eta, min_keep, w);
    info_after(info, &v, z, w->e, s);
    return TFM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * transformers penalties and constraints
 * ------------------------------------------------------------------------------------------- */

/* RepetitionPenaltyLogitsProcessor: each distinct id once, from its original value. */
tfm_status tfm_repetition_penalty_apply(float *z, int64_t V, const int32_t *ids, int64_t n, float penalty,
                                        tfm_sampling_ws *w) {
    if (!tfm__ws_ok(w, V) || !(penalty > 0.0f) || penalty == INFINITY) return TFM_E_ARG;
    tfm_status st = tfm__check_ids(ids, n, V);
    if (st != TFM_OK) return st;
    for (int64_t i = 0; i < n; i++) {
        const int32_t t = ids[i];
        if (w->count[t]) continue;
        w->count[t] = 1;
        z[t] = z[t] < 0.0f ? z[t] * penalty : z[t] / penalty;
    }
    for (int64_t i = 0; i < n; i++) w->count[ids[i]] = 0;
    return TFM_OK;
}

/* NoRepeatNGramLogitsProcessor: the n-grams of ids are every window ids[i..i+N) inside the
 * history; the banned continuations are those whose first N−1 ids equal the last N−1 ids. */
tfm_status tfm_no_repeat_ngram_apply(float *z, int64_t V, const int32_t *ids, int64_t n, int64_t ngram) {
    if (V < 1 || ngram < 1) return TFM_E_ARG;
    tfm_status st = tfm__check_ids(ids, n, V);
    if (st != TFM_OK) return st;
    if (n + 1 < ngram) return TFM_OK;
    const int32_t *prefix = ids + n - (ngram - 1);
    for (int64_t i = 0; i + ngram <= n; i++) {
        if (memcmp(ids + i, prefix, (size_t)(ngram - 1) * sizeof(int32_t)) == 0) z[ids[i + ngram - 1]] = -INFINITY;
    }
    return TFM_OK;
}

/* SequenceBiasLogitsProcessor / NoBadWordsLogitsProcessor. The bias of each token is summed in
 * float from 0 (length-1 sequences first, then the rest in order), then added once, as HF builds
 * its bias tensor. Accumulators live in w->e, touched tokens in w->id, flags in w->count. */
tfm_status tfm_sequence_bias_apply(float *z, int64_t V, const int32_t *ids, int64_t n, const tfm_sequence_bias *sb,
                                   tfm_sampling_ws *w) {
    if (!tfm__ws_ok(w, V) || !sb || sb->count < 0 || (sb->count > 0 && (!sb->offsets || !sb->ids || !sb->bias)))
        return TFM_E_ARG;
    tfm_status st = tfm__check_ids(ids, n, V);
    if (st != TFM_OK) return st;
    if (sb->count == 0) return TFM_OK;
    if (sb->offsets[0] != 0) return TFM_E_ARG;
    for (int64_t k = 0; k < sb->count; k++) {
        if (sb->offsets[k + 1] <= sb->offsets[k] || isnan(sb->bias[k])) return TFM_E_ARG;
        for (int64_t i = sb->offsets[k]; i < sb->offsets[k + 1]; i++)
            if (sb->ids[i] < 0 || sb->ids[i] >= V) return TFM_E_RANGE;
    }
    int64_t touched = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t k = 0; k < sb->count; k++) {
            const int32_t *seq = sb->ids + sb->offsets[k];
            const int64_t m = sb->offsets[k + 1] - sb->offsets[k];
            if ((m == 1) != (pass == 0)) continue;
            if (m > 1 && m > n) continue; /* HF: a sequence longer than the context is ignored */
            if (m > 1 && memcmp(ids + n - (m - 1), seq, (size_t)(m - 1) * sizeof(int32_t)) != 0) continue;
            const int32_t t = seq[m - 1];
            if (!w->count[t]) {
                w->count[t] = 1;
                w->e[t] = 0.0f;
                w->id[touched++] = t;
            }
            w->e[t] += sb->bias[k];
        }
    }
    for (int64_t i = 0; i < touched; i++) {
        const int32_t t = w->id[i];
        z[t] += w->e[t];
        w->count[t] = 0;
    }
    return TFM_OK;
}

tfm_status tfm_tokens_suppress(float *z, int64_t V, const int32_t *tokens, int64_t count) {
    if (V < 1) return TFM_E_ARG;
    tfm_status st = tfm__check_ids(tokens, count, V);
    if (st != TFM_OK) return st;
    for (int64_t i = 0; i < count; i++) z[tokens[i]] = -INFINITY;
    return TFM_OK;
}

tfm_status tfm_min_length_apply(float *z, int64_t V, int64_t length, int64_t min_length, const int32_t *eos,
                                int64_t n_eos) {
    if (V < 1 || min_length < 0) return TFM_E_ARG; /* length < 0: still inside the prompt */
    tfm_status st = tfm__check_ids(eos, n_eos, V);
    if (st != TFM_OK) return st;
    if (length < min_length)
        for (int64_t i = 0; i < n_eos; i++) z[eos[i]] = -INFINITY;
    return TFM_OK;
}
