/* beam.c — beam searches: beam search and beam sampling (transformers' vectorised _beam_search,
 * v4.50+), diverse group beam search (_group_beam_search with the legacy BeamSearchScorer and
 * BeamHypotheses), and stochastic beam search (Kool, van Hoof & Welling 2019, Gumbel-top-k).
 *
 * Score arithmetic mirrors transformers: float32 accumulation, −1e9 sentinels added in float32,
 * length normalisation Σ log p / generated_len^length_penalty (generated_len counts the EOS);
 * the legacy scorer keeps its hypothesis scores in double, as Python floats. Ties in top-k
 * selections go to the lower index (torch leaves them unspecified).
 * All K beams of all prompts run as one batched forward pass; the cache is reordered by parent.
 */
#include "generate_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define NEG_SENTINEL (-1.0e9f)

#define ALLOC(ptr, n)                                                  \
    do {                                                               \
        size_t n_ = (size_t)(n) > 0 ? (size_t)(n) : 1;                 \
        (ptr) = calloc(n_, sizeof(*(ptr)));                            \
        if (!(ptr)) return TFM_E_NOMEM;                                \
    } while (0)

tfm_status tfm__beam_init(tfm_generator *g) {
    const int64_t B = g->B, K = g->K, R = g->R, V = g->V, W = g->W, L = g->max_len, M = g->M;
    ALLOC(g->run_score, R);
    ALLOC(g->run_gumbel, R);
    ALLOC(g->run_bidx, R * M);
    ALLOC(g->run_lp, R * M);
    ALLOC(g->run_raw, R * M);
    ALLOC(g->row_lse, R);
    ALLOC(g->acc, B * K * V);
    ALLOC(g->cand_idx, B * (W > K ? W : K));
    ALLOC(g->cand_score, B * (W > K ? W : K));
    ALLOC(g->cand_hit, B * (W > K ? W : K));
    ALLOC(g->cand_aux, B * (W > K ? W : K));
    ALLOC(g->fin_seq, B * K * L);
    ALLOC(g->fin_score, B * K);
    ALLOC(g->fin_bidx, B * K * M);
    ALLOC(g->fin_lp, B * K * M);
    ALLOC(g->fin_raw, B * K * M);
    ALLOC(g->fin_len, B * K);
    ALLOC(g->fin_flag, B * K);
    ALLOC(g->improvable, B);
    ALLOC(g->tmp_seq, R * L);
    ALLOC(g->tmp_f, 2 * R * M);
    ALLOC(g->tmp_bidx, R * M);
    for (int64_t i = 0; i < R * M; i++) g->run_bidx[i] = -1;
    for (int64_t i = 0; i < B * K * M; i++) g->fin_bidx[i] = -1;
    for (int64_t i = 0; i < B * K * L; i++) g->fin_seq[i] = g->cfg.pad_id;
    for (int64_t i = 0; i < B * K; i++) g->fin_score[i] = NEG_SENTINEL;
    memset(g->improvable, 1, (size_t)B);
    const int64_t G = g->cfg.num_beam_groups, gs = K / G;
    for (int64_t r = 0; r < R; r++) {
        int64_t k = r % K;
        if (g->cfg.mode == TFM_GEN_GROUP_BEAM)
            g->run_score[r] = (k % gs == 0) ? 0.0f : NEG_SENTINEL; /* first beam of each group */
        else if (g->cfg.mode == TFM_GEN_STOCHASTIC_BEAM)
            g->run_score[r] = k == 0 ? 0.0f : -INFINITY, g->run_gumbel[r] = k == 0 ? 0.0f : -INFINITY;
        else
            g->run_score[r] = k == 0 ? 0.0f : NEG_SENTINEL; /* only beam 0 expands at step 1 */
    }
    if (g->cfg.mode == TFM_GEN_GROUP_BEAM) {
        ALLOC(g->hamming, B * V);
        ALLOC(g->hyp_score, B * G * (gs + 1));
        ALLOC(g->hyp_seq, B * G * (gs + 1) * L);
        ALLOC(g->hyp_len, B * G * (gs + 1));
        ALLOC(g->hyp_lp, B * G * (gs + 1) * 2 * M);
        ALLOC(g->hyp_count, B * G);
        ALLOC(g->hyp_worst, B * G);
        ALLOC(g->group_done, B * G);
        for (int64_t i = 0; i < B * G; i++) g->hyp_worst[i] = 1e9;
    }
    return TFM_OK;
}

/* Forward pass for the running beams (the prefill expands each prompt to K rows). */
static tfm_status beam_forward(tfm_generator *g) {
    tfm_status st = g->started ? tfm__gen_forward_running(g, g->R) : tfm__gen_prefill(g, g->K);
    g->started = 1;
    return st;
}

/* Indices of the k largest of x[n], descending, lower index first on ties (small k, small n). */
static void top_small(int64_t *out, const float *x, int64_t n, int64_t k) {
    for (int64_t i = 0; i < k; i++) {
        int64_t best = -1;
        for (int64_t j = 0; j < n; j++) {
            int taken = 0;
            for (int64_t t = 0; t < i; t++)
                if (out[t] == j) taken = 1;
            if (taken) continue;
            if (best < 0 || x[j] > x[best]) best = j;
        }
        out[i] = best;
    }
}

static int cand_hits(const tfm_generator *g, int32_t tok) {
    return tfm__gen_is_eos(g, tok) || g->cur_len + 1 >= g->max_len;
}

/* Copies running row `src` (sequence, beam indices, token log-probs) into the tmp buffers as row
 * `dst` and extends it with tok. */
static void extend_row(tfm_generator *g, int64_t dst, int64_t src, int32_t tok, int32_t bidx, float lp, float raw) {
    const int64_t L = g->max_len, M = g->M, R = g->R;
    memcpy(g->tmp_seq + dst * L, g->ids + src * L, (size_t)g->cur_len * sizeof(int32_t));
    for (int64_t t = g->cur_len; t < L; t++) g->tmp_seq[dst * L + t] = g->cfg.pad_id;
    g->tmp_seq[dst * L + g->cur_len] = tok;
    memcpy(g->tmp_bidx + dst * M, g->run_bidx + src * M, (size_t)M * sizeof(int32_t));
    g->tmp_bidx[dst * M + g->step] = bidx;
    memcpy(g->tmp_f + dst * M, g->run_lp + src * M, (size_t)M * sizeof(float));
    memcpy(g->tmp_f + (R + dst) * M, g->run_raw + src * M, (size_t)M * sizeof(float));
    g->tmp_f[dst * M + g->step] = lp;
    g->tmp_f[(R + dst) * M + g->step] = raw;
}

/* The tmp rows become the running rows; the cache follows the parents. */
static tfm_status commit_running(tfm_generator *g) {
    const int64_t R = g->R, L = g->max_len, M = g->M;
    /* a new row and its parent share the tokens of their common prefix, and with them the keys and
     * values of those positions: only the rest of the cache row is copied */
    for (int64_t r = 0; r < R; r++) {
        int64_t p = g->reorder[r], n = 0;
        if (p != r)
            while (n < g->cur_len && g->ids[r * L + n] == g->ids[p * L + n]) n++;
        g->first[r] = p == r ? g->cur_len : n;
    }
    memcpy(g->ids, g->tmp_seq, (size_t)(R * L) * sizeof(int32_t));
    memcpy(g->run_bidx, g->tmp_bidx, (size_t)(R * M) * sizeof(int32_t));
    memcpy(g->run_lp, g->tmp_f, (size_t)(R * M) * sizeof(float));
    memcpy(g->run_raw, g->tmp_f + R * M, (size_t)(R * M) * sizeof(float));
    for (int64_t r = 0; r < R; r++) {
        g->mask[r * L + g->cur_len] = 1; /* every running row of a prompt shares its mask */
        g->n_real[r]++;
    }
    tfm_status st = tfm_kv_cache_reorder_from(&g->cache, g->reorder, R, g->first);
    g->cur_len++;
    g->step++;
    return st;
}

static float raw_lp(const tfm_generator *g, int64_t row, int32_t tok) {
    return g->out->raw_logprobs ? g->logits[row * g->V + tok] - g->row_lse[row] : 0.0f;
}

static void tree_record(tfm_generator *g, int64_t b, int64_t c, int32_t parent, int32_t tok, float score, int32_t flags) {
    tfm_gen_output *o = g->out;
    int64_t i = (g->step * g->B + b) * g->W + c;
    if (o->tree_parent) o->tree_parent[i] = parent;
    if (o->tree_token) o->tree_token[i] = tok;
    if (o->tree_score) o->tree_score[i] = score;
    if (o->tree_flags) o->tree_flags[i] = flags;
    if (o->tree_final) o->tree_final[i] = NAN;
}

/* ---------------------------------------------------------------------------------------------
 * Beam search and beam sampling
 * ------------------------------------------------------------------------------------------- */
tfm_status tfm__beam_step(tfm_generator *g) {
    const int64_t B = g->B, K = g->K, V = g->V, W = g->W, L = g->max_len, M = g->M, P = g->P;
    tfm_status st;
    if ((st = beam_forward(g)) != TFM_OK) return st;
    if ((st = tfm__gen_process_rows(g, NULL, g->R, 1)) != TFM_OK) return st;
    const int sample = g->cfg.mode == TFM_GEN_BEAM_SAMPLE;
    int failed = 0;
    /* 1. candidates: top (or sampled) W of the K·V accumulated scores of each prompt */
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(dynamic, 1) reduction(| : failed) if (B > 1)
    for (int64_t b = 0; b < B; b++) {
        float *acc = g->acc + b * K * V;
        for (int64_t k = 0; k < K; k++) {
            const float *s = g->proc + (b * K + k) * V;
            float rs = g->run_score[b * K + k];
            for (int64_t v = 0; v < V; v++) acc[k * V + v] = s[v] + rs;
        }
        tfm_sampling_ws *ws = &g->sws[0];
#ifdef _OPENMP
        ws = &g->sws[omp_get_thread_num()];
#endif
        int64_t *idx = g->cand_idx + b * W;
        if (sample) {
            /* transformers: multinomial(softmax(acc), W) without replacement, in draw order */
            if (tfm_sample_n(idx, W, 0, acc, K * V, 0, &g->rng[b * K], ws) != TFM_OK) failed = 1;
        } else {
            int32_t tmp[W];
            if (tfm_top_indices(tmp, acc, K * V, W, ws) != TFM_OK) failed = 1;
            for (int64_t c = 0; c < W; c++) idx[c] = tmp[c];
        }
        for (int64_t c = 0; c < W; c++) {
            g->cand_score[b * W + c] = acc[idx[c]];
            g->cand_hit[b * W + c] = (uint8_t)cand_hits(g, (int32_t)(idx[c] % V));
        }
    }
    if (failed) return TFM_E_STATE;
    const float lpden = (float)pow((double)(g->cur_len + 1 - P), (double)g->cfg.length_penalty);
    int all_hit = 1;
    for (int64_t b = 0; b < B; b++) {
        const int64_t *idx = g->cand_idx + b * W;
        const float *score = g->cand_score + b * W;
        const uint8_t *hit = g->cand_hit + b * W;
        float masked[W];
        int64_t sel[K];
        for (int64_t c = 0; c < W; c++) {
            masked[c] = score[c] + (hit[c] ? NEG_SENTINEL : 0.0f);
            all_hit &= hit[c];
            tree_record(g, b, c, (int32_t)(idx[c] / V), (int32_t)(idx[c] % V), score[c], hit[c] ? 1 : 0);
        }
        /* 2. next running beams: the K best candidates that did not just finish */
        top_small(sel, masked, W, K);
        for (int64_t k = 0; k < K; k++) {
            int64_t c = sel[k], parent = b * K + idx[c] / V;
            int32_t tok = (int32_t)(idx[c] % V);
            extend_row(g, b * K + k, parent, tok, (int32_t)parent, g->proc[parent * V + tok], raw_lp(g, parent, tok));
            g->reorder[b * K + k] = parent;
            if (g->out->tree_flags) g->out->tree_flags[(g->step * B + b) * W + c] |= 2 | (int32_t)(k << 8);
        }
        /* 3. finished hypotheses: candidates among the first K that hit a stopping criterion */
        int full = 1;
        for (int64_t j = 0; j < K; j++) full &= g->fin_flag[b * K + j];
        float merged[K + W];
        uint8_t did[W];
        for (int64_t j = 0; j < K; j++) merged[j] = g->fin_score[b * K + j];
        for (int64_t c = 0; c < W; c++) {
            did[c] = hit[c] && c < K;
            float f = score[c] / lpden;
            if (full && g->cfg.early_stopping == 1) f += NEG_SENTINEL;
            if (!g->improvable[b]) f += NEG_SENTINEL;
            if (!did[c]) f += NEG_SENTINEL;
            merged[K + c] = f;
        }
        int64_t keep[K];
        top_small(keep, merged, K + W, K);
        /* build the new finished set in the tmp area of this prompt's rows is unsafe (tmp holds the
         * running rows), so stage it in place: old entries that stay move first */
        int32_t new_seq[K][L];
        int32_t new_bidx[K][M];
        float new_lp[K][M], new_raw[K][M], new_score[K];
        int64_t new_len[K];
        uint8_t new_flag[K];
        for (int64_t j = 0; j < K; j++) {
            int64_t e = keep[j];
            new_score[j] = merged[e];
            if (e < K) {
                int64_t o = b * K + e;
                memcpy(new_seq[j], g->fin_seq + o * L, (size_t)L * sizeof(int32_t));
                memcpy(new_bidx[j], g->fin_bidx + o * M, (size_t)M * sizeof(int32_t));
                memcpy(new_lp[j], g->fin_lp + o * M, (size_t)M * sizeof(float));
                memcpy(new_raw[j], g->fin_raw + o * M, (size_t)M * sizeof(float));
                new_len[j] = g->fin_len[o];
                new_flag[j] = g->fin_flag[o];
            } else {
                int64_t c = e - K, parent = b * K + idx[c] / V;
                int32_t tok = (int32_t)(idx[c] % V);
                memcpy(new_seq[j], g->ids + parent * L, (size_t)g->cur_len * sizeof(int32_t));
                for (int64_t t = g->cur_len; t < L; t++) new_seq[j][t] = g->cfg.pad_id;
                new_seq[j][g->cur_len] = tok;
                memcpy(new_bidx[j], g->run_bidx + parent * M, (size_t)M * sizeof(int32_t));
                new_bidx[j][g->step] = (int32_t)parent;
                memcpy(new_lp[j], g->run_lp + parent * M, (size_t)M * sizeof(float));
                memcpy(new_raw[j], g->run_raw + parent * M, (size_t)M * sizeof(float));
                new_lp[j][g->step] = g->proc[parent * V + tok];
                new_raw[j][g->step] = raw_lp(g, parent, tok);
                new_len[j] = g->cur_len + 1 - P;
                new_flag[j] = did[c];
                if (did[c] && g->out->tree_flags) {
                    int64_t ti = (g->step * B + b) * W + c;
                    g->out->tree_flags[ti] |= 4;
                    if (g->out->tree_final) g->out->tree_final[ti] = merged[e];
                }
            }
        }
        for (int64_t j = 0; j < K; j++) {
            int64_t o = b * K + j;
            memcpy(g->fin_seq + o * L, new_seq[j], (size_t)L * sizeof(int32_t));
            memcpy(g->fin_bidx + o * M, new_bidx[j], (size_t)M * sizeof(int32_t));
            memcpy(g->fin_lp + o * M, new_lp[j], (size_t)M * sizeof(float));
            memcpy(g->fin_raw + o * M, new_raw[j], (size_t)M * sizeof(float));
            g->fin_score[o] = new_score[j];
            g->fin_len[o] = new_len[j];
            g->fin_flag[o] = new_flag[j];
        }
        for (int64_t k = 0; k < K; k++) g->run_score[b * K + k] = masked[sel[k]];
    }
    if ((st = commit_running(g)) != TFM_OK) return st;
    /* 4. can any prompt still improve? (transformers' _check_early_stop_heuristic) */
    int any_improvable = 0, all_full = 1;
    for (int64_t b = 0; b < B; b++) {
        int64_t len = (g->cfg.early_stopping == 2 && g->cfg.length_penalty > 0.0f) ? g->max_len - P : g->cur_len - P;
        float best = g->run_score[b * K] / (float)pow((double)len, (double)g->cfg.length_penalty);
        float worst = INFINITY;
        int full = 1;
        for (int64_t j = 0; j < K; j++) {
            worst = g->fin_score[b * K + j] < worst ? g->fin_score[b * K + j] : worst;
            full &= g->fin_flag[b * K + j];
        }
        int any = 0;
        for (int64_t j = 0; j < K; j++) any |= best > (g->fin_flag[b * K + j] ? worst : NEG_SENTINEL);
        g->improvable[b] &= (uint8_t)any;
        any_improvable |= g->improvable[b];
        all_full &= full;
    }
    if (!any_improvable || (g->cfg.early_stopping == 1 && all_full) || all_hit) g->done = 1;
    return TFM_OK;
}

/* Copies the best num_return_sequences finished hypotheses of each prompt to the outputs. */
void tfm__beam_finish(tfm_generator *g) {
    if (g->cfg.mode == TFM_GEN_GROUP_BEAM) return; /* group beam finalises in its own step */
    const int64_t B = g->B, K = g->K, L = g->max_len, M = g->M, nrs = g->cfg.num_return_sequences;
    tfm_gen_output *o = g->out;
    int64_t longest = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < nrs; j++) {
            int64_t src = b * K + j, dst = b * nrs + j;
            memcpy(o->sequences + dst * L, g->fin_seq + src * L, (size_t)L * sizeof(int32_t));
            if (o->seq_scores) o->seq_scores[dst] = g->fin_score[src];
            if (o->beam_indices) memcpy(o->beam_indices + dst * M, g->fin_bidx + src * M, (size_t)M * sizeof(int32_t));
            if (o->token_logprobs) memcpy(o->token_logprobs + dst * M, g->fin_lp + src * M, (size_t)M * sizeof(float));
            if (o->raw_logprobs) memcpy(o->raw_logprobs + dst * M, g->fin_raw + src * M, (size_t)M * sizeof(float));
            longest = g->fin_len[src] > longest ? g->fin_len[src] : longest;
        }
    o->length = g->P + longest;
}

/* ---------------------------------------------------------------------------------------------
 * Diverse (group) beam search: transformers' _group_beam_search + BeamSearchScorer
 * ------------------------------------------------------------------------------------------- */

/* BeamHypotheses.add: keep the num_beams best by score = Σ log p / generated_len^length_penalty. */
static void hyp_add(tfm_generator *g, int64_t bg, const int32_t *seq, int64_t len, double sum_logprobs,
                    int64_t generated_len, const float *lp, const float *raw) {
    const int64_t gs = g->K / g->cfg.num_beam_groups, L = g->max_len, M = g->M;
    double score = sum_logprobs / pow((double)generated_len, (double)g->cfg.length_penalty);
    int64_t n = g->hyp_count[bg];
    if (!(n < gs || score > g->hyp_worst[bg])) return;
    int64_t at = bg * (gs + 1) + n;
    g->hyp_score[at] = score;
    g->hyp_len[at] = len;
    memcpy(g->hyp_seq + at * L, seq, (size_t)len * sizeof(int32_t));
    memcpy(g->hyp_lp + at * 2 * M, lp, (size_t)M * sizeof(float));
    memcpy(g->hyp_lp + (at * 2 + 1) * M, raw, (size_t)M * sizeof(float));
    n++;
    if (n > gs) {
        /* drop the worst (first of equal scores, as sorted((s, idx))), worst := the next one */
        int64_t w0 = 0, w1 = -1;
        for (int64_t i = 1; i < n; i++)
            if (g->hyp_score[bg * (gs + 1) + i] < g->hyp_score[bg * (gs + 1) + w0]) w0 = i;
        for (int64_t i = 0; i < n; i++) {
            if (i == w0) continue;
            if (w1 < 0 || g->hyp_score[bg * (gs + 1) + i] < g->hyp_score[bg * (gs + 1) + w1]) w1 = i;
        }
        g->hyp_worst[bg] = g->hyp_score[bg * (gs + 1) + w1];
        for (int64_t i = w0; i + 1 < n; i++) {
            int64_t a = bg * (gs + 1) + i;
            g->hyp_score[a] = g->hyp_score[a + 1];
            g->hyp_len[a] = g->hyp_len[a + 1];
            memcpy(g->hyp_seq + a * L, g->hyp_seq + (a + 1) * L, (size_t)L * sizeof(int32_t));
            memcpy(g->hyp_lp + a * 2 * M, g->hyp_lp + (a + 1) * 2 * M, (size_t)(2 * M) * sizeof(float));
        }
        n--;
    } else {
        g->hyp_worst[bg] = score < g->hyp_worst[bg] ? score : g->hyp_worst[bg];
    }
    g->hyp_count[bg] = n;
}

/* BeamHypotheses.is_done */
static int hyp_done(const tfm_generator *g, int64_t bg, double best_sum_logprobs, int64_t cur_len) {
    const int64_t gs = g->K / g->cfg.num_beam_groups;
    if (g->hyp_count[bg] < gs) return 0;
    if (g->cfg.early_stopping == 1) return 1;
    double lp = g->cfg.length_penalty;
    int64_t len = (g->cfg.early_stopping == 2 && lp > 0.0) ? g->max_len - g->P : cur_len - g->P;
    return g->hyp_worst[bg] >= best_sum_logprobs / pow((double)len, lp);
}

static void group_finalize(tfm_generator *g);

tfm_status tfm__group_beam_step(tfm_generator *g) {
    const int64_t B = g->B, K = g->K, V = g->V, L = g->max_len, M = g->M, P = g->P;
    const int64_t G = g->cfg.num_beam_groups, gs = K / G;
    const int64_t Wg = (g->cfg.n_eos + 1 > 2 ? g->cfg.n_eos + 1 : 2) * gs;
    tfm_status st;
    if ((st = beam_forward(g)) != TFM_OK) return st;
    memset(g->hamming, 0, (size_t)(B * V) * sizeof(int32_t));
    int64_t rows[B * gs];
    for (int64_t gi = 0; gi < G; gi++) {
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < gs; j++) rows[b * gs + j] = b * K + gi * gs + j;
        if ((st = tfm__gen_process_rows(g, rows, B * gs, 1)) != TFM_OK) return st;
        for (int64_t b = 0; b < B; b++) {
            int64_t bg = b * G + gi;
            int32_t new_tok[gs];
            int64_t new_parent[gs];
            float new_score[gs];
            if (g->group_done[bg]) {
                /* transformers: a finished group continues with pad tokens and zero scores */
                for (int64_t j = 0; j < gs; j++) new_tok[j] = g->cfg.pad_id, new_parent[j] = 0, new_score[j] = 0.0f;
            } else {
                float *acc = g->acc + b * K * V; /* this group's gs rows */
                for (int64_t j = 0; j < gs; j++) {
                    int64_t r = b * K + gi * gs + j;
                    for (int64_t v = 0; v < V; v++) acc[j * V + v] = g->proc[r * V + v] + g->run_score[r];
                }
                int32_t top[Wg];
                if ((st = tfm_top_indices(top, acc, gs * V, Wg, &g->sws[0])) != TFM_OK) return st;
                int64_t n_new = 0;
                for (int64_t rank = 0; rank < Wg; rank++) {
                    int64_t parent = top[rank] / V, pr = b * K + gi * gs + parent;
                    int32_t tok = (int32_t)(top[rank] % V);
                    float sc = acc[top[rank]];
                    int64_t c = gi * Wg + rank;
                    tree_record(g, b, c, (int32_t)(gi * gs + parent), tok, sc, 0);
                    if (tfm__gen_is_eos(g, tok)) {
                        if (rank >= gs) continue; /* only the top group-size candidates may finish */
                        float lp[M], raw[M];
                        memcpy(lp, g->run_lp + pr * M, (size_t)M * sizeof(float));
                        memcpy(raw, g->run_raw + pr * M, (size_t)M * sizeof(float));
                        lp[g->step] = g->proc[pr * V + tok];
                        raw[g->step] = raw_lp(g, pr, tok);
                        /* stored without its EOS (as transformers); finalize writes eos[0] after it */
                        hyp_add(g, bg, g->ids + pr * L, g->cur_len, sc, g->cur_len + 1 - P, lp, raw);
                        if (g->out->tree_flags) g->out->tree_flags[(g->step * B + b) * g->W + c] |= 5;
                    } else {
                        new_tok[n_new] = tok, new_parent[n_new] = parent, new_score[n_new] = sc;
                        if (g->out->tree_flags)
                            g->out->tree_flags[(g->step * B + b) * g->W + c] |= 2 | (int32_t)((gi * gs + n_new) << 8);
                        n_new++;
                    }
                    if (n_new == gs) break;
                }
                if (n_new < gs) return TFM_E_STATE; /* more EOS candidates than 2·group size: cannot continue */
                g->group_done[bg] = (uint8_t)hyp_done(g, bg, acc[top[0]], g->cur_len + 1);
            }
            for (int64_t j = 0; j < gs; j++) {
                int64_t r = b * K + gi * gs + j, pr = b * K + gi * gs + new_parent[j];
                extend_row(g, r, pr, new_tok[j], (int32_t)pr, g->proc[pr * V + new_tok[j]], raw_lp(g, pr, new_tok[j]));
                g->reorder[r] = pr;
                g->run_score[r] = new_score[j];
                g->hamming[b * V + new_tok[j]]++;
            }
        }
    }
    if ((st = commit_running(g)) != TFM_OK) return st;
    int all_done = 1;
    for (int64_t i = 0; i < B * G; i++) all_done &= g->group_done[i];
    if (all_done || g->cur_len >= g->max_len) {
        g->done = 1;
        group_finalize(g);
    }
    return TFM_OK;
}

/* BeamSearchScorer.finalize: unfinished groups add their running beams, then each prompt's
 * hypotheses of all groups are pooled and the best num_return_sequences returned. */
static void group_finalize(tfm_generator *g) {
    const int64_t B = g->B, K = g->K, L = g->max_len, M = g->M, P = g->P;
    const int64_t G = g->cfg.num_beam_groups, gs = K / G, nrs = g->cfg.num_return_sequences;
    tfm_gen_output *o = g->out;
    for (int64_t b = 0; b < B; b++)
        for (int64_t gi = 0; gi < G; gi++) {
            int64_t bg = b * G + gi;
            if (g->group_done[bg]) continue;
            for (int64_t j = 0; j < gs; j++) {
                int64_t r = b * K + gi * gs + j;
                hyp_add(g, bg, g->ids + r * L, g->cur_len, g->run_score[r], g->cur_len - P, g->run_lp + r * M,
                        g->run_raw + r * M);
            }
        }
    int64_t sent_max = 0;
    int64_t chosen[nrs > 0 ? B * nrs : 1];
    for (int64_t b = 0; b < B; b++) {
        /* sorted(ascending, stable) then pop(): among equal scores the later entry comes first */
        int64_t n = G * gs, order[G * (gs + 1)];
        int64_t cnt = 0;
        for (int64_t gi = 0; gi < G; gi++)
            for (int64_t i = 0; i < g->hyp_count[b * G + gi]; i++) order[cnt++] = (b * G + gi) * (gs + 1) + i;
        (void)n;
        uint8_t used[G * (gs + 1)];
        memset(used, 0, sizeof used);
        for (int64_t j = 0; j < nrs && j < cnt; j++) {
            int64_t best = -1;
            for (int64_t i = 0; i < cnt; i++) {
                if (used[i]) continue;
                if (best < 0 || g->hyp_score[order[i]] >= g->hyp_score[order[best]]) best = i;
            }
            used[best] = 1;
            chosen[b * nrs + j] = order[best];
            sent_max = g->hyp_len[order[best]] > sent_max ? g->hyp_len[order[best]] : sent_max;
        }
    }
    int64_t width = sent_max + 1 < g->max_len ? sent_max + 1 : g->max_len;
    for (int64_t n = 0; n < B * nrs; n++) {
        int64_t h = chosen[n], len = g->hyp_len[h];
        int32_t *dst = o->sequences + n * L;
        for (int64_t t = 0; t < L; t++) dst[t] = g->cfg.pad_id;
        memcpy(dst, g->hyp_seq + h * L, (size_t)len * sizeof(int32_t));
        if (len < width && g->cfg.n_eos > 0) dst[len] = g->cfg.eos[0];
        if (o->seq_scores) o->seq_scores[n] = (float)g->hyp_score[h];
        if (o->token_logprobs) memcpy(o->token_logprobs + n * M, g->hyp_lp + h * 2 * M, (size_t)M * sizeof(float));
        if (o->raw_logprobs) memcpy(o->raw_logprobs + n * M, g->hyp_lp + (h * 2 + 1) * M, (size_t)M * sizeof(float));
    }
    o->length = width;
}

/* ---------------------------------------------------------------------------------------------
 * Stochastic beam search (Kool et al. 2019): top-K by conditioned Gumbel perturbations
 * ------------------------------------------------------------------------------------------- */

/* log(1 − e^x) for x ≤ 0, accurate near 0 (Mächler 2012). */
static double log1mexp(double x) { return x > -0.6931471805599453 ? log(-expm1(x)) : log1p(-exp(x)); }

tfm_status tfm__stochastic_beam_step(tfm_generator *g) {
    const int64_t B = g->B, K = g->K, V = g->V, L = g->max_len, M = g->M, P = g->P;
    tfm_status st;
    if ((st = beam_forward(g)) != TFM_OK) return st;
    if ((st = tfm__gen_process_rows(g, NULL, g->R, 1)) != TFM_OK) return st;
    int all_finished = 1;
    for (int64_t b = 0; b < B; b++) {
        float *gp = g->acc + b * K * V; /* conditioned perturbed scores G' of every child */
        tfm_rng *rng = &g->rng[b * K];
        for (int64_t k = 0; k < K; k++) {
            int64_t r = b * K + k;
            float *row = gp + k * V;
            double Gk = g->run_gumbel[r];
            if (Gk == -INFINITY) { /* an empty beam slot (before K beams exist) */
                for (int64_t v = 0; v < V; v++) row[v] = -INFINITY;
                continue;
            }
            if (!g->unfinished[r]) {
                /* a finished sequence is a leaf: its only child is itself, with its own G */
                for (int64_t v = 0; v < V; v++) row[v] = -INFINITY;
                row[g->cfg.pad_id >= 0 ? g->cfg.pad_id : 0] = (float)Gk;
                continue;
            }
            const float *s = g->proc + r * V;
            double zmax = -INFINITY;
            for (int64_t v = 0; v < V; v++) {
                if (s[v] == -INFINITY) {
                    row[v] = -INFINITY;
                    continue;
                }
                row[v] = (float)((double)g->run_score[r] + s[v] + tfm_rng_gumbel(rng));
                zmax = row[v] > zmax ? row[v] : zmax; /* max of the stored (rounded) values */
            }
            /* G' = −log(e^−G_k − e^−Z + e^−G̃), in the stable form of Kool et al. (appendix B) */
            for (int64_t v = 0; v < V; v++) {
                if (row[v] == -INFINITY) continue;
                double gt = row[v];
                double u = Gk - gt + log1mexp(gt < zmax ? gt - zmax : 0.0); /* log1mexp(0) = −inf: the max keeps Gk */
                row[v] = (float)(Gk - (u > 0 ? u : 0) - log1p(exp(-fabs(u))));
            }
        }
        int32_t top[K];
        int64_t new_len[K];
        if ((st = tfm_top_indices(top, gp, K * V, K, &g->sws[0])) != TFM_OK) return st;
        for (int64_t j = 0; j < K; j++) {
            int64_t parent = b * K + top[j] / V, r = b * K + j;
            int32_t tok = (int32_t)(top[j] % V);
            int was_finished = !g->unfinished[parent];
            float lp = was_finished ? 0.0f : g->proc[parent * V + tok];
            if (was_finished) tok = g->cfg.pad_id;
            extend_row(g, r, parent, tok, was_finished ? -1 : (int32_t)parent, lp,
                       was_finished ? 0.0f : raw_lp(g, parent, tok));
            g->reorder[r] = parent;
            g->cand_score[r] = gp[top[j]];                        /* G' */
            g->cand_aux[r] = g->run_score[parent] + lp;           /* φ: log-prob of the sequence */
            g->cand_hit[r] = (uint8_t)(was_finished || cand_hits(g, tok));
            new_len[j] = was_finished ? g->fin_len[parent] : g->cur_len + 1 - P;
            int32_t flags = 2 | (int32_t)(j << 8) | (g->cand_hit[r] ? 1 : 0) | (!was_finished && g->cand_hit[r] ? 4 : 0);
            tree_record(g, b, j, (int32_t)(top[j] / V), tok, gp[top[j]], flags);
        }
        for (int64_t j = 0; j < K; j++) g->fin_len[b * K + j] = new_len[j];
    }
    if ((st = commit_running(g)) != TFM_OK) return st;
    for (int64_t r = 0; r < g->R; r++) {
        g->run_gumbel[r] = g->cand_score[r];
        g->run_score[r] = g->cand_aux[r];
        g->unfinished[r] = !g->cand_hit[r];
        all_finished &= g->cand_hit[r];
    }
    if (all_finished || g->cur_len >= g->max_len) {
        g->done = 1;
        /* the beams, sorted by G, are K samples without replacement: move them to the finished set */
        for (int64_t r = 0; r < g->R; r++) {
            memcpy(g->fin_seq + r * L, g->ids + r * L, (size_t)L * sizeof(int32_t));
            memcpy(g->fin_bidx + r * M, g->run_bidx + r * M, (size_t)M * sizeof(int32_t));
            memcpy(g->fin_lp + r * M, g->run_lp + r * M, (size_t)M * sizeof(float));
            memcpy(g->fin_raw + r * M, g->run_raw + r * M, (size_t)M * sizeof(float));
            g->fin_score[r] = g->run_score[r];
        }
    }
    return TFM_OK;
}
