/* samplers_llama.c — the llama.cpp samplers that transformers lacks, on one dense row z[V]:
 * frequency/presence penalties, top-nσ, XTC, DRY, mirostat v1 and v2.
 *
 * Semantics follow llama.cpp's src/llama-sampling.cpp as restated in reference/decoding.md §4.3,
 * translated from its shrinking candidate array to our dense row: "the candidates" are the finite
 * entries, "removing" writes −inf. Deliberate differences, all documented in tfm.h:
 *  - our RNG is xoshiro256** with one double per draw (llama.cpp: mt19937 and
 *    std::discrete_distribution), so distributions match, sampled ids do not;
 *  - where llama.cpp's partial sort leaves the order of equal logits unspecified, ties are broken
 *    by token id;
 *  - sums (σ, entropy) are accumulated in double.
 * State (mirostat μ, the RNG, the token history) is owned by the caller, one per sequence.
 */
#include "sampling_internal.h"

#include <float.h>

/* ---------------------------------------------------------------------------------------------
 * Penalties (llama.cpp "penalties" minus its repeat part, which is the HF formula with ≤ 0)
 * ------------------------------------------------------------------------------------------- */
tfm_status tfm_frequency_presence_apply(float *z, int64_t V, const int32_t *ids, int64_t n, float freq,
                                        float presence, tfm_sampling_ws *w) {
    if (!tfm__ws_ok(w, V) || !isfinite(freq) || !isfinite(presence)) return TFM_E_ARG;
    tfm_status st = tfm__check_ids(ids, n, V);
    if (st != TFM_OK) return st;
    for (int64_t i = 0; i < n; i++) w->count[ids[i]]++;
    for (int64_t i = 0; i < n; i++) {
        const int32_t t = ids[i];
        const int32_t c = w->count[t];
        if (c == 0) continue; /* already applied */
        z[t] -= (float)c * freq + (float)(c > 0) * presence;
        w->count[t] = 0;
    }
    return TFM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Top-nσ (Tang et al. 2024, arXiv 2411.07641): keep z ≥ max − n·σ over the finite logits
 * ------------------------------------------------------------------------------------------- */
tfm_status tfm_top_n_sigma_apply(float *z, int64_t V, float nsig, tfm_filter_info *info) {
    if (V < 1 || !(nsig > 0.0f) || nsig == INFINITY) return TFM_E_ARG;
    float mx;
    int64_t fin;
    tfm__scan(z, V, &mx, &fin);
    if (fin <= 1) return tfm__info_set(info, fin, fin ? 1.0 : 0.0), TFM_OK;
    double sum = 0.0;
    for (int64_t i = 0; i < V; i++)
        if (z[i] != -INFINITY) sum += z[i];
    const double mean = sum / (double)fin;
    double acc = 0.0;
    for (int64_t i = 0; i < V; i++)
        if (z[i] != -INFINITY) acc += ((double)z[i] - mean) * ((double)z[i] - mean);
    const float sigma = (float)sqrt(acc / (double)fin);
    const float thr = mx - nsig * sigma;
    double total = 0.0, kept_mass = 0.0;
    int64_t kept = 0;
    for (int64_t i = 0; i < V; i++) {
        if (z[i] == -INFINITY) continue;
        const double p = info ? exp((double)z[i] - mx) : 0.0;
        total += p;
        if (z[i] < thr) {
            z[i] = -INFINITY;
        } else {
            kept++;
            kept_mass += p;
        }
    }
    tfm__info_set(info, kept, info ? kept_mass / total : 0.0);
    return TFM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * XTC, "exclude top choices" (p-e-w, llama.cpp PR #9742)
 * ------------------------------------------------------------------------------------------- */
tfm_status tfm_xtc_apply(float *z, int64_t V, float probability, float threshold, int64_t min_keep, tfm_rng *r,
                         tfm_sampling_ws *w, tfm_filter_info *info) {
    if (!tfm__ws_ok(w, V) || !r || !(probability >= 0.0f && probability <= 1.0f) ||
        !(threshold >= 0.0f && threshold <= 1.0f) || min_keep < 1)
        return TFM_E_ARG;
    tfm__view v;
    const int64_t fin = tfm__view_build(&v, z, V, w);
    tfm__info_set(info, fin, fin ? 1.0 : 0.0);
    if (probability <= 0.0f || threshold > 0.5f || fin < 2) return TFM_OK; /* off: no draw either */
    if (tfm_rng_uniform(r) > probability) return TFM_OK;
    const float s = tfm__view_exp(&v, w->e), inv = 1.0f / s;
    /* the above-threshold tokens form the head of the descending order; the last of them (lowest
     * key: smallest value, highest id on ties) is the one that stays */
    int64_t above = 0, last = -1;
    uint64_t last_key = UINT64_MAX;
    for (int64_t j = 0; j < v.n; j++) {
        if (w->e[j] * inv >= threshold && v.z[j] != -INFINITY) {
            const uint64_t k = tfm__key_desc_lo(v.z[j], j);
            above++;
            if (k < last_key) last_key = k, last = j;
        }
    }
    const int64_t pos_last = above > 0 ? above - 1 : 0;
    if (pos_last == 0 || fin - pos_last < min_keep) return TFM_OK;
    double removed = 0.0;
    for (int64_t j = 0; j < v.n; j++) {
        if (j != last && w->e[j] * inv >= threshold && v.z[j] != -INFINITY) {
            removed += w->e[j];
            z[tfm__tok(&v, j)] = -INFINITY;
        }
    }
    tfm__info_set(info, fin - pos_last, 1.0 - removed / s);
    return TFM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * DRY, "don't repeat yourself" (p-e-w; llama.cpp port of koboldcpp PR #982)
 * ------------------------------------------------------------------------------------------- */
tfm_status tfm_dry_apply(float *z, int64_t V, const int32_t *ids, int64_t n, const tfm_dry_params *p, int32_t *zbuf,
                         tfm_sampling_ws *w) {
    if (!tfm__ws_ok(w, V) || !p || !isfinite(p->multiplier) || p->multiplier < 0.0f || !(p->base >= 1.0f) ||
        p->base == INFINITY || p->allowed_length < 1 || p->n_breakers < 0 ||
        (p->n_breakers > 0 && (!p->breaker_offsets || !p->breaker_ids)))
        return TFM_E_ARG;
    tfm_status st = tfm__check_ids(ids, n, V);
    if (st != TFM_OK) return st;
    if (p->n_breakers > 0) {
        if (p->breaker_offsets[0] != 0) return TFM_E_ARG;
        for (int64_t b = 0; b < p->n_breakers; b++) {
            if (p->breaker_offsets[b + 1] <= p->breaker_offsets[b]) return TFM_E_ARG;
            st = tfm__check_ids(p->breaker_ids + p->breaker_offsets[b], p->breaker_offsets[b + 1] - p->breaker_offsets[b], V);
            if (st != TFM_OK) return st;
        }
    }
    if (p->multiplier == 0.0f || p->last_n == 0) return TFM_OK;
    const int64_t N = (p->last_n < 0 || p->last_n > n) ? n : p->last_n; /* window */
    if (N <= p->allowed_length) return TFM_OK;
    if (!zbuf) return TFM_E_ARG;
    const int32_t *t = ids + n - N;
#define RAT(i) t[N - 1 - (i)] /* i-th token from the end */

    /* 1. The most recent sequence breaker limits how far back a repeat may reach: head at distance
     *    i from the end, its tail on the i tokens after it; rep_limit = tokens after the breaker. */
    int64_t rep_limit = N;
    for (int64_t i = 0; i < N; i++) {
        int64_t longest = -1;
        for (int64_t b = 0; b < p->n_breakers; b++) {
            const int32_t *br = p->breaker_ids + p->breaker_offsets[b];
            const int64_t tail = p->breaker_offsets[b + 1] - p->breaker_offsets[b] - 1;
            if (br[0] != RAT(i) || tail <= longest || tail > i) continue;
            int64_t o = 0;
            while (o < tail && br[1 + o] == RAT(i - o - 1)) o++;
            if (o == tail) longest = tail;
        }
        if (longest >= 0) {
            rep_limit = i - longest;
            break;
        }
    }
    if (rep_limit < p->allowed_length) return TFM_OK;

    /* 2. Z-function of the reversed window r (r[j] = RAT(j)): zbuf[k] = longest common prefix of r
     *    and r[k..] = length of the repeat that ends at position N−1−k and also ends the context. */
    zbuf[0] = (int32_t)N;
    for (int64_t k = 1, l = 0, rt = 0; k < N; k++) {
        int64_t len = 0;
        if (k < rt) len = (rt - k < zbuf[k - l]) ? rt - k : zbuf[k - l];
        while (k + len < N && RAT(len) == RAT(k + len)) len++;
        zbuf[k] = (int32_t)len;
        if (k + len > rt) l = k, rt = k + len;
    }

    /* 3. The token after each long-enough repeat would extend it: remember the longest per token
     *    (in w->count, touched ids in w->id). */
    int64_t touched = 0;
    for (int64_t k = 1; k < N; k++) {
        const int64_t len = zbuf[k] < rep_limit ? zbuf[k] : rep_limit;
        if (len < p->allowed_length) continue;
        const int32_t y = t[N - k]; /* follows position N−1−k */
        if (w->count[y] == 0) w->id[touched++] = y;
        if (w->count[y] < len) w->count[y] = (int32_t)len;
    }

    /* 4. z_y −= multiplier·base^(len − allowed_length), exponent clamped so the power stays finite;
     *    single-token breakers are never penalised. */
    int64_t max_exp = 0;
    if (p->base > 1.000001f) max_exp = (int64_t)(88.7228391f / logf(p->base));
    for (int64_t i = 0; i < touched; i++) {
        const int32_t y = w->id[i];
        int breaker = 0;
        for (int64_t b = 0; b < p->n_breakers && !breaker; b++)
            breaker = p->breaker_ids[p->breaker_offsets[b]] == y && p->breaker_offsets[b + 1] - p->breaker_offsets[b] == 1;
        if (!breaker) {
            int64_t e = w->count[y] - p->allowed_length;
            if (max_exp > 0 && e > max_exp) e = max_exp;
            z[y] -= p->multiplier * powf(p->base, (float)e);
        }
        w->count[y] = 0;
    }
#undef RAT
    return TFM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Mirostat (Basu et al. 2020, arXiv 2007.14966)
 * ------------------------------------------------------------------------------------------- */

/* Keeps the kk top entries of view v (descending, lower id first on ties), draws one of them from
 * the softmax numerators e, returns its renormalised probability in *p_sel. */
static tfm_status truncate_and_draw(int64_t *token, double *p_sel, float *z, const tfm__view *v, int64_t kk,
                                    tfm_rng *r, tfm_sampling_ws *w) {
    const int64_t n = v->n;
    if (kk < n) {
        tfm__top_keys(w->top, v->z, n, kk, 0, w);
        const uint64_t cut = w->top[kk - 1];
        for (int64_t j = 0; j < n; j++)
            if (tfm__below(v->z[j], j, cut, 0)) {
                z[tfm__tok(v, j)] = -INFINITY;
                w->e[j] = 0.0f;
            }
    }
    const double total = tfm__sum_d(w->e, n);
    if (!(total > 0.0)) return TFM_E_ARG;
    const int64_t j = tfm__draw(w->e, n, tfm_rng_uniform(r));
    if (j < 0) return TFM_E_ARG;
    *token = tfm__tok(v, j);
    *p_sel = w->e[j] / total;
    return TFM_OK;
}

tfm_status tfm_mirostat_sample(int64_t *token, float *z, int64_t V, float tau, float eta, int32_t m, float *mu,
                               tfm_rng *r, tfm_sampling_ws *w) {
    if (!tfm__ws_ok(w, V) || !token || !mu || !r || !isfinite(tau) || !isfinite(eta) || !isfinite(*mu) || m < 2)
        return TFM_E_ARG;
    tfm__view v;
    const int64_t fin = tfm__view_build(&v, z, V, w);
    if (fin == 0) return TFM_E_ARG;
    const float s = tfm__view_exp(&v, w->e), inv = 1.0f / s;
    /* Zipf exponent from the top m probabilities: ŝ = Σ t_i b_i / Σ t_i², t_i = ln((i+2)/(i+1)),
     * b_i = ln(p_i / p_{i+1}) (float, as llama.cpp) */
    const int64_t top = fin < m ? fin : m;
    tfm__top_keys(w->top, v.z, v.n, top, 0, w);
    float tb = 0.0f, tt = 0.0f;
    for (int64_t i = 0; i + 1 < top; i++) {
        const float ti = logf((float)(i + 2) / (float)(i + 1));
        const float pi = w->e[tfm__pos_lo(w->top[i])] * inv, pn = w->e[tfm__pos_lo(w->top[i + 1])] * inv;
        tb += ti * logf(pi / pn);
        tt += ti * ti;
    }
    int64_t kk = 1;
    if (top >= 2) {
        const float s_hat = tb / tt, eps_hat = s_hat - 1.0f;
        const float k = powf((eps_hat * powf(2.0f, *mu)) / (1.0f - powf((float)V, -eps_hat)), 1.0f / s_hat);
        /* k is NaN or infinite when the top probabilities are flat or vanish: no truncation then
         * (inf) or keep one (NaN, < 1) — llama.cpp's int(k) is undefined there */
        if (k >= (float)fin) kk = fin;
        else if (k >= 1.0f) kk = (int64_t)k;
    }
    double p_sel;
    tfm_status st = truncate_and_draw(token, &p_sel, z, &v, kk, r, w);
    if (st != TFM_OK) return st;
    const float surprise = -log2f((float)p_sel);
    *mu = *mu - eta * (surprise - tau);
    return TFM_OK;
}

tfm_status tfm_mirostat_v2_sample(int64_t *token, float *z, int64_t V, float tau, float eta, float *mu,
                                  tfm_rng *r, tfm_sampling_ws *w) {
    if (!tfm__ws_ok(w, V) || !token || !mu || !r || !isfinite(tau) || !isfinite(eta) || !isfinite(*mu)) return TFM_E_ARG;
    tfm__view v;
    const int64_t fin = tfm__view_build(&v, z, V, w);
    if (fin == 0) return TFM_E_ARG;
    const float s = tfm__view_exp(&v, w->e), inv = 1.0f / s;
    /* the kept prefix of the descending order is exactly {−log2 p ≤ μ}; never empty */
    int64_t kept = 0;
    for (int64_t j = 0; j < v.n; j++) kept += v.z[j] != -INFINITY && !(-log2f(w->e[j] * inv) > *mu);
    int64_t kk = kept > 0 ? kept : 1;
    double p_sel;
    tfm_status st = truncate_and_draw(token, &p_sel, z, &v, kk, r, w);
    if (st != TFM_OK) return st;
    const float surprise = -log2f((float)p_sel);
    *mu = *mu - eta * (surprise - tau);
    return TFM_OK;
}
