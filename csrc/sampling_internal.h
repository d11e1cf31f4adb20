/* sampling_internal.h — helpers shared by the decoding files (sampling.c, sampling_select.c,
 * samplers_llama.c). Not public API: nothing outside csrc/ includes it.
 *
 * Two ideas carry the partial selection:
 *  - a row is seen through a *view* of its candidates: the whole row when most entries are
 *    finite, or its finite entries compacted in index order when a previous filter (top-k) left
 *    few of them, so later filters and the sampler touch only those;
 *  - orders with tie rules are encoded as uint64 keys (32 order-preserving bits of the float,
 *    then 32 bits of position), so "top m under this order" is an integer selection and ties are
 *    broken exactly as the matching stable sort would.
 */
#ifndef TFM_SAMPLING_INTERNAL_H
#define TFM_SAMPLING_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tfm.h"

/* Argument checks shared by the processors: the workspace holds a row of V entries; ids are in [0, V). */
static inline int tfm__ws_ok(const tfm_sampling_ws *w, int64_t V) { return w && w->e && V >= 1 && V <= w->cap; }
static inline tfm_status tfm__check_ids(const int32_t *ids, int64_t n, int64_t V) {
    if (n < 0 || (n > 0 && !ids)) return TFM_E_ARG;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) return TFM_E_RANGE;
    return TFM_OK;
}
/* Filter bookkeeping for traces: what a filter kept (count and probability mass). */
static inline void tfm__info_set(tfm_filter_info *info, int64_t kept, double mass) {
    if (info) info->kept = kept, info->mass = mass;
}

typedef struct {
    int64_t n;         /* entries in the view */
    int64_t finite;    /* finite entries among them (== n for a compacted view) */
    const int32_t *id; /* [n] token ids, ascending; NULL when the view is the whole row (id = j) */
    const float *z;    /* [n] values */
    float max;         /* largest value; −inf when finite == 0 */
} tfm__view;

static inline int64_t tfm__tok(const tfm__view *v, int64_t j) { return v->id ? v->id[j] : j; }

/* Fills v for row z[V]; compacts into w->val/w->id when fewer than a quarter of the entries are
 * finite. Returns v->finite. */
int64_t tfm__view_build(tfm__view *v, const float *z, int64_t V, tfm_sampling_ws *w);
/* e[j] = e^(z_j − max) for j < v->n, exactly 0 for −inf; returns Σ e (float, ≥ 1 when finite > 0). */
float tfm__view_exp(const tfm__view *v, float *e);
/* Largest value and count of finite entries of x[n]. */
void tfm__scan(const float *x, int64_t n, float *max, int64_t *finite);
/* Σ x[n] in double (four running sums; order differs from a sequential loop by rounding only). */
double tfm__sum_d(const float *x, int64_t n);

/* Order-preserving map float → uint32 (−0 and +0 equal; −inf lowest). */
static inline uint32_t tfm__f2u(float x) {
    x += 0.0f; /* −0 → +0: torch compares them equal */
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
static inline float tfm__u2f(uint32_t u) {
    uint32_t b = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}
/* Descending by value; on ties the higher position first (stable *ascending* sort read backwards). */
static inline uint64_t tfm__key_desc_hi(float x, int64_t j) { return ((uint64_t)tfm__f2u(x) << 32) | (uint32_t)j; }
/* Descending by value; on ties the lower position first (stable descending sort). */
static inline uint64_t tfm__key_desc_lo(float x, int64_t j) {
    return ((uint64_t)tfm__f2u(x) << 32) | (uint32_t)(0xffffffffu - (uint32_t)j);
}
/* Ascending by value; on ties the lower position first (stable ascending sort). */
static inline uint64_t tfm__key_asc_lo(float x, int64_t j) {
    return ((uint64_t)(~tfm__f2u(x)) << 32) | (uint32_t)(0xffffffffu - (uint32_t)j);
}
static inline int64_t tfm__pos_hi(uint64_t k) { return (int64_t)(uint32_t)k; }
static inline int64_t tfm__pos_lo(uint64_t k) { return (int64_t)(0xffffffffu - (uint32_t)k); }

/* out[0..m) = the m largest of keys[0..n), in descending order (1 ≤ m ≤ n). keys is not changed;
 * tmp: [n] scratch. A bounded heap when m is small against n, else a radix sort of everything. */
void tfm__select_top(uint64_t *out, const uint64_t *keys, int64_t n, int64_t m, uint64_t *tmp);
/* The k-th largest of x[0..n) counting repeats (1 ≤ k ≤ n); no NaN in x. Uses w->keys, w->tmp. */
float tfm__kth_largest(const float *x, int64_t n, int64_t k, tfm_sampling_ws *w);

/* out[0..m) = the m largest entries of x[0..n) as keys, descending (tie_hi: equal values put the
 * higher position first, else the lower). Keys only the entries ≥ the m-th largest value. out must
 * be w->top (uses w->keys and w->tmp). */
void tfm__top_keys(uint64_t *out, const float *x, int64_t n, int64_t m, int tie_hi, tfm_sampling_ws *w);
/* key(x, j) < cut for the same tie rule, without building the key (for removal passes). */
static inline int tfm__below(float x, int64_t j, uint64_t cut, int tie_hi) {
    const float cv = tfm__u2f((uint32_t)(cut >> 32));
    const int64_t cj = tie_hi ? tfm__pos_hi(cut) : tfm__pos_lo(cut);
    return x < cv || (x == cv && (tie_hi ? j < cj : j > cj));
}

/* Multinomial draw from weights wt[n] ≥ 0: the first position of positive weight whose running sum
 * (double, advanced blockwise) reaches u·total; −1 when the total is 0. */
int64_t tfm__draw(const float *wt, int64_t n, double u);

#endif /* TFM_SAMPLING_INTERNAL_H */
