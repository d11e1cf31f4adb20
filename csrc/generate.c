/* generate.c — the decoding loop: prefill, one step at a time, processors, selection, output.
 *
 * Modes here: greedy and multinomial sampling (transformers' _sample), contrastive search
 * (Su et al. 2022, transformers' _contrastive_search); the beam searches live in beam.c.
 * Everything a step needs was allocated by tfm_generator_init; a step allocates nothing.
 * Rows are processed in parallel (OpenMP), each thread with its own sampling workspace; every
 * running row owns its random stream, seeded from (seed, the prompt's tokens, sample index), so
 * a prompt's samples do not depend on what else is in the batch.
 * Not here: model internals (tfm_model_forward is the only call into the model).
 */
#include "generate_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Monotonic seconds: the generator reports where its time goes (forward vs everything else). */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

void tfm_gen_output_dims(const tfm_gen_config *cfg, int64_t B, int64_t *N, int64_t *R, int64_t *W) {
    int beam = cfg->mode == TFM_GEN_BEAM || cfg->mode == TFM_GEN_BEAM_SAMPLE || cfg->mode == TFM_GEN_GROUP_BEAM ||
               cfg->mode == TFM_GEN_STOCHASTIC_BEAM;
    int64_t nrs = cfg->num_return_sequences > 0 ? cfg->num_return_sequences : 1;
    *N = B * nrs;
    *R = beam ? B * cfg->num_beams : *N;
    int64_t per = (cfg->n_eos + 1 > 2 ? cfg->n_eos + 1 : 2);
    *W = beam ? (cfg->mode == TFM_GEN_STOCHASTIC_BEAM ? cfg->num_beams : per * cfg->num_beams) : 0;
}

int tfm__gen_is_eos(const tfm_generator *g, int32_t tok) {
    for (int32_t i = 0; i < g->cfg.n_eos; i++)
        if (g->cfg.eos[i] == tok) return 1;
    return 0;
}

void tfm__gen_append(tfm_generator *g, int64_t r, int32_t tok) {
    g->ids[r * g->max_len + g->cur_len] = tok;
    g->mask[r * g->max_len + g->cur_len] = 1;
    g->n_real[r]++;
}

/* FNV-1a over the prompt's real tokens: the random stream of a row depends on its prompt and
 * sample index only, never on its position in the batch. */
static uint64_t prompt_hash(const int32_t *ids, const int32_t *mask, int64_t P) {
    uint64_t h = 1469598103934665603ull;
    for (int64_t t = 0; t < P; t++) {
        if (mask && !mask[t]) continue;
        uint32_t v = (uint32_t)ids[t];
        for (int i = 0; i < 4; i++) {
            h ^= (v >> (8 * i)) & 0xffu;
            h *= 1099511628211ull;
        }
    }
    return h;
}

/* ---------------------------------------------------------------------------------------------
 * Forward passes
 * ------------------------------------------------------------------------------------------- */

/* One forward call: rows × T tokens; mask rows [rows][S] and positions [rows][T] already built. */
static tfm_status forward(tfm_generator *g, int64_t rows, int64_t T, int logits_mode, float *hidden) {
    tfm_forward_args a = {
        .input_ids = g->fwd_ids,
        .attention_mask = g->fwd_mask,
        .position_ids = g->fwd_pos,
        .B = rows,
        .T = T,
        .logits_mode = logits_mode,
        .logits = g->logits,
        .last_hidden = hidden,
    };
    double t0 = now();
    tfm_status st = tfm_model_forward(g->m, &g->cache, &g->ws, &a);
    double dt = now() - t0;
    if (T > 1)
        g->out->time_prefill += dt;
    else
        g->out->time_forward += dt;
    return st;
}

/* Runs the B prompts once (positions = cumsum(mask) − 1, as transformers' generate), then gives
 * every prompt `expand` running rows: the cache rows are copied, the last logits duplicated. */
tfm_status tfm__gen_prefill(tfm_generator *g, int64_t expand) {
    const int64_t B = g->B, P = g->P, V = g->V;
    tfm_status st = tfm_kv_cache_init(&g->cache, g->m, B, g->max_len);
    if (st != TFM_OK) return st;
    for (int64_t b = 0; b < B; b++) {
        int32_t run = 0;
        for (int64_t t = 0; t < P; t++) {
            int32_t mk = g->prompt_mask[b * P + t];
            run += mk;
            g->fwd_ids[b * P + t] = g->prompt[b * P + t];
            g->fwd_mask[b * P + t] = mk;
            g->fwd_pos[b * P + t] = mk ? run - 1 : 1;
        }
    }
    st = forward(g, B, P, TFM_LOGITS_LAST, g->hidden);
    if (st != TFM_OK) return st;
    /* spread: running row b·expand + j starts as prompt b */
    for (int64_t b = B - 1; b >= 0; b--)
        for (int64_t j = expand - 1; j >= 0; j--) {
            int64_t r = b * expand + j;
            if (r != b) memcpy(g->logits + r * V, g->logits + b * V, (size_t)V * sizeof(float));
        }
    for (int64_t r = 0; r < B * expand; r++) {
        int64_t b = r / expand;
        int32_t run = 0;
        for (int64_t t = 0; t < P; t++) {
            g->ids[r * g->max_len + t] = g->prompt[b * P + t];
            g->mask[r * g->max_len + t] = g->prompt_mask[b * P + t];
            run += g->prompt_mask[b * P + t];
        }
        g->n_real[r] = run;
    }
    if (expand > 1) {
        for (int64_t r = 0; r < B * expand; r++) g->reorder[r] = r / expand;
        st = tfm_kv_cache_reorder(&g->cache, g->reorder, B * expand);
    }
    return st;
}

/* One token per running row: the token appended last, at position n_real − 1. */
tfm_status tfm__gen_forward_running(tfm_generator *g, int64_t rows) {
    const int64_t S = g->cur_len;
    for (int64_t r = 0; r < rows; r++) {
        g->fwd_ids[r] = g->ids[r * g->max_len + S - 1];
        g->fwd_pos[r] = g->n_real[r] - 1;
        memcpy(g->fwd_mask + r * S, g->mask + r * g->max_len, (size_t)S * sizeof(int32_t));
    }
    return forward(g, rows, 1, TFM_LOGITS_LAST, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Processors
 * ------------------------------------------------------------------------------------------- */

/* p = softmax(z) for the trace (all −inf rows give zeros). */
static void trace_probs(float *p, const float *z, int64_t V) {
    if (tfm_softmax(p, z, V) != TFM_OK) memset(p, 0, (size_t)V * sizeof(float));
}

static void trace_record(tfm_generator *g, int64_t r, int64_t stage, const float *z, const float *p_prev,
                         float *p_now, tfm_sampling_ws *ws) {
    const int64_t V = g->V, S = g->cfg.n_procs + 1, N = g->cfg.trace_top_n;
    const int64_t base = (g->step * g->R + r) * S + stage;
    trace_probs(p_now, z, V);
    int64_t kept = 0;
    double mass = 0.0;
    for (int64_t i = 0; i < V; i++)
        if (z[i] != -INFINITY) {
            kept++;
            if (p_prev) mass += p_prev[i];
        }
    if (g->out->trace_kept) g->out->trace_kept[base] = (int32_t)kept;
    if (g->out->trace_mass) g->out->trace_mass[base] = p_prev ? (float)mass : 1.0f;
    if (g->out->trace_ids) {
        int32_t *ids = g->out->trace_ids + base * N;
        int64_t n = N < V ? N : V;
        if (tfm_top_indices(ids, z, V, n, ws) != TFM_OK) n = 0;
        for (int64_t i = n; i < N; i++) ids[i] = -1;
        if (g->out->trace_probs)
            for (int64_t i = 0; i < N; i++) g->out->trace_probs[base * N + i] = ids[i] >= 0 ? p_now[ids[i]] : 0.0f;
    }
}

static tfm_status apply_one(tfm_generator *g, const tfm_processor *p, float *z, int64_t r, tfm_sampling_ws *ws,
                            int32_t *zbuf) {
    const int64_t V = g->V, n = g->cur_len;
    const int32_t *hist = g->ids + r * g->max_len;
    switch (p->kind) {
    case TFM_PROC_SEQUENCE_BIAS: return tfm_sequence_bias_apply(z, V, hist, n, &p->sb, ws);
    case TFM_PROC_HAMMING:
        if (g->hamming) {
            const int32_t *cnt = g->hamming + (r / g->K) * V;
            for (int64_t v = 0; v < V; v++)
                if (cnt[v]) z[v] -= p->f0 * (float)cnt[v];
        }
        return TFM_OK;
    case TFM_PROC_REPETITION: return tfm_repetition_penalty_apply(z, V, hist, n, p->f0, ws);
    case TFM_PROC_FREQ_PRESENCE: {
        int64_t w = p->i0 > 0 && p->i0 < n ? p->i0 : n;
        return tfm_frequency_presence_apply(z, V, hist + (n - w), w, p->f0, p->f1, ws);
    }
    case TFM_PROC_NO_REPEAT_NGRAM: return tfm_no_repeat_ngram_apply(z, V, hist, n, p->i0);
    case TFM_PROC_MIN_LENGTH: return tfm_min_length_apply(z, V, n, p->i0, g->cfg.eos, g->cfg.n_eos);
    case TFM_PROC_MIN_NEW_TOKENS: return tfm_min_length_apply(z, V, n - g->P, p->i0, g->cfg.eos, g->cfg.n_eos);
    case TFM_PROC_SUPPRESS: return tfm_tokens_suppress(z, V, p->tokens, p->n_tokens);
    case TFM_PROC_SUPPRESS_BEGIN: return n == g->P ? tfm_tokens_suppress(z, V, p->tokens, p->n_tokens) : TFM_OK;
    case TFM_PROC_DRY: return tfm_dry_apply(z, V, hist, n, &p->dry, zbuf, ws);
    case TFM_PROC_TEMPERATURE: return tfm_temperature_apply(z, V, p->f0);
    case TFM_PROC_TOP_K: return tfm_top_k_apply(z, V, p->i0, p->i1, ws, NULL);
    case TFM_PROC_TOP_P: return tfm_top_p_apply(z, V, p->f0, p->i1, ws, NULL);
    case TFM_PROC_MIN_P: return tfm_min_p_apply(z, V, p->f0, p->i1, ws, NULL);
    case TFM_PROC_TYPICAL: return tfm_typical_apply(z, V, p->f0, p->i1, ws, NULL);
    case TFM_PROC_EPSILON: return tfm_epsilon_apply(z, V, p->f0, p->i1, ws, NULL);
    case TFM_PROC_ETA: return tfm_eta_apply(z, V, p->f0, p->i1, ws, NULL);
    case TFM_PROC_TOP_N_SIGMA: return tfm_top_n_sigma_apply(z, V, p->f0, NULL);
    case TFM_PROC_XTC: return tfm_xtc_apply(z, V, p->f0, p->f1, p->i1, &g->rng[r], ws, NULL);
    case TFM_PROC_LOG_SOFTMAX:
        (void)tfm_log_softmax(z, z, V); /* an all −inf row stays as it is */
        return TFM_OK;
    default: return TFM_E_ARG;
    }
}

/* proc[r] = processors(logits[r]) (after log-softmax in beam modes) for the listed rows; stores
 * transformers' `scores` and the trace when asked. */
tfm_status tfm__gen_process_rows(tfm_generator *g, const int64_t *rows, int64_t n_rows, int log_softmax_first) {
    const int64_t V = g->V;
    const int tracing = g->cfg.trace_top_n > 0 && !log_softmax_first;
    int failed = 0;
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(dynamic, 1) reduction(| : failed) if (n_rows > 1)
    for (int64_t i = 0; i < n_rows; i++) {
        int64_t r = rows ? rows[i] : i;
        int tid = thread_id();
        tfm_sampling_ws *ws = &g->sws[tid];
        float *pa = g->tbuf + (int64_t)tid * 2 * V, *pb = pa + V;
        int32_t *zbuf = g->zbuf + (int64_t)tid * g->max_len;
        float *z = g->proc + r * V;
        const float *raw = g->logits + r * V;
        if (log_softmax_first) {
            if (tfm_log_softmax(z, raw, V) != TFM_OK) {
                failed = 1;
                continue;
            }
            if (g->row_lse) /* z = raw − lse: keep lse for the raw log-probs of chosen tokens */
                for (int64_t v = 0; v < V; v++)
                    if (z[v] != -INFINITY) {
                        g->row_lse[r] = raw[v] - z[v];
                        break;
                    }
        } else {
            memcpy(z, raw, (size_t)V * sizeof(float));
        }
        if (tracing) trace_record(g, r, 0, z, NULL, pa, ws);
        for (int32_t j = 0; j < g->cfg.n_procs; j++) {
            if (apply_one(g, &g->cfg.procs[j], z, r, ws, zbuf) != TFM_OK) {
                failed = 1;
                break;
            }
            if (tracing) {
                trace_record(g, r, j + 1, z, pa, pb, ws);
                float *t = pa;
                pa = pb, pb = t;
            }
        }
        if (g->out->scores) memcpy(g->out->scores + (g->step * g->R + r) * V, z, (size_t)V * sizeof(float));
    }
    return failed ? TFM_E_ARG : TFM_OK;
}

/* log softmax(z)[tok] */
static float logprob_of(const float *z, int64_t V, int64_t tok) { return z[tok] - tfm_logsumexp(z, V); }

/* ---------------------------------------------------------------------------------------------
 * Greedy and sampling (transformers' _sample)
 * ------------------------------------------------------------------------------------------- */
static void write_row_outputs(tfm_generator *g, int64_t r, int32_t tok, float lp, float raw) {
    tfm_gen_output *o = g->out;
    o->sequences[r * g->max_len + g->cur_len] = tok;
    if (o->token_logprobs) o->token_logprobs[r * g->M + g->step] = lp;
    if (o->raw_logprobs) o->raw_logprobs[r * g->M + g->step] = raw;
    if (o->seq_scores) o->seq_scores[r] += lp;
}

static tfm_status step_sample(tfm_generator *g) {
    const int64_t R = g->R, V = g->V;
    tfm_status st = g->started ? tfm__gen_forward_running(g, R) : tfm__gen_prefill(g, g->K);
    if (st != TFM_OK) return st;
    g->started = 1;
    if ((st = tfm__gen_process_rows(g, NULL, R, 0)) != TFM_OK) return st;
    const int sample = g->cfg.mode == TFM_GEN_SAMPLE;
    int failed = 0;
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(dynamic, 1) reduction(| : failed) if (R > 1)
    for (int64_t r = 0; r < R; r++) {
        int tid = thread_id();
        const float *z = g->proc + r * V;
        int64_t tok;
        float lp = 0.0f, raw = 0.0f;
        if (!g->unfinished[r]) {
            tok = g->cfg.pad_id; /* transformers: finished rows receive the pad token */
        } else {
            if (sample) {
                if (tfm_sample(&tok, z, V, 0, &g->rng[r], &g->sws[tid]) != TFM_OK) {
                    failed = 1; /* every token removed: no distribution to sample from */
                    continue;
                }
            } else {
                tok = tfm_argmax(z, V);
            }
            if (g->out->token_logprobs || g->out->seq_scores) lp = logprob_of(z, V, tok);
            if (g->out->raw_logprobs) raw = logprob_of(g->logits + r * V, V, tok);
        }
        write_row_outputs(g, r, (int32_t)tok, lp, raw);
    }
    if (failed) return TFM_E_STATE;
    int any = 0;
    for (int64_t r = 0; r < R; r++) {
        int32_t tok = g->out->sequences[r * g->max_len + g->cur_len];
        tfm__gen_append(g, r, tok);
        if (g->unfinished[r] && tfm__gen_is_eos(g, tok)) g->unfinished[r] = 0;
        any |= g->unfinished[r];
    }
    g->cur_len++;
    g->step++;
    if (!any || g->cur_len >= g->max_len) g->done = 1;
    return TFM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Contrastive search (Su et al. 2022; transformers' _contrastive_search / _ranking_fast)
 * ------------------------------------------------------------------------------------------- */
static double cosine(const float *a, const float *b, int64_t C, double na, double nb) {
    double s = 0.0;
    for (int64_t i = 0; i < C; i++) s += (double)a[i] * b[i];
    return s / (na * nb);
}

static double norm(const float *a, int64_t C) {
    double s = 0.0;
    for (int64_t i = 0; i < C; i++) s += (double)a[i] * a[i];
    return sqrt(s);
}

static tfm_status step_contrastive(tfm_generator *g) {
    const int64_t B = g->B, V = g->V, C = g->C, k = g->cfg.top_k, L = g->max_len;
    tfm_status st;
    if (!g->started) {
        /* the prompt's hidden states are the first context of the degeneration penalty */
        if ((st = tfm__gen_prefill(g, 1)) != TFM_OK) return st;
        for (int64_t b = 0; b < B; b++)
            memcpy(g->ctx_hidden + b * L * C, g->hidden + b * g->P * C, (size_t)(g->P * C) * sizeof(float));
        for (int64_t r = 0; r < B * k; r++) g->reorder[r] = r / k;
        if ((st = tfm_kv_cache_reorder(&g->cache, g->reorder, B * k)) != TFM_OK) return st;
        g->started = 1;
    }
    if ((st = tfm__gen_process_rows(g, NULL, B, 0)) != TFM_OK) return st;
    /* top-k candidates of softmax(processed scores) */
    for (int64_t b = 0; b < B; b++) {
        float *p = g->tbuf; /* serial part: thread 0's scratch */
        if (tfm_softmax(p, g->proc + b * V, V) != TFM_OK) return TFM_E_STATE;
        if ((st = tfm_top_indices(g->cand_tok + b * k, g->proc + b * V, V, k, &g->sws[0])) != TFM_OK) return st;
        for (int64_t j = 0; j < k; j++) g->cand_probs[b * k + j] = p[g->cand_tok[b * k + j]];
    }
    /* one forward for the B·k candidates: each sees its prompt's context plus itself */
    const int64_t S = g->cur_len + 1;
    for (int64_t b = 0; b < B; b++) g->mask[b * L + g->cur_len] = 1;
    for (int64_t r = 0; r < B * k; r++) {
        int64_t b = r / k;
        g->fwd_ids[r] = g->cand_tok[r];
        g->fwd_pos[r] = g->n_real[b];
        memcpy(g->fwd_mask + r * S, g->mask + b * L, (size_t)S * sizeof(int32_t));
    }
    if ((st = forward(g, B * k, 1, TFM_LOGITS_LAST, g->hidden)) != TFM_OK) return st;
    int any = 0;
    for (int64_t b = 0; b < B; b++) {
        const float *ctx = g->ctx_hidden + b * L * C;
        int64_t best = 0;
        float best_score = -INFINITY;
        for (int64_t j = 0; j < k; j++) {
            const float *h = g->hidden + (b * k + j) * C;
            double nh = norm(h, C), penalty = -INFINITY;
            for (int64_t t = 0; t < g->cur_len; t++) {
                /* masked positions get finfo.min added, so they never win the max */
                double c = g->mask[b * L + t] ? cosine(ctx + t * C, h, C, norm(ctx + t * C, C), nh) : -FLT_MAX;
                if (c > penalty) penalty = c;
            }
            float score = (1.0f - g->cfg.penalty_alpha) * g->cand_probs[b * k + j] -
                          g->cfg.penalty_alpha * (float)penalty;
            if (score > best_score) {
                best_score = score;
                best = j;
            }
        }
        int64_t sel = b * k + best;
        memcpy(g->ctx_hidden + (b * L + g->cur_len) * C, g->hidden + sel * C, (size_t)C * sizeof(float));
        int32_t tok = g->cand_tok[sel];
        float lp = 0.0f, raw = 0.0f;
        if (!g->unfinished[b]) {
            tok = g->cfg.pad_id;
        } else {
            if (g->out->token_logprobs || g->out->seq_scores) lp = logprob_of(g->proc + b * V, V, tok);
            if (g->out->raw_logprobs) raw = logprob_of(g->logits + b * V, V, tok); /* this step's logits */
        }
        write_row_outputs(g, b, tok, lp, raw);
        for (int64_t j = 0; j < k; j++) g->reorder[b * k + j] = sel;
    }
    /* the chosen candidates' logits are the next step's (row b ≤ b·k + j, so no overwrite) */
    for (int64_t b = 0; b < B; b++) {
        int64_t sel = g->reorder[b * k];
        if (sel != b) memcpy(g->logits + b * V, g->logits + sel * V, (size_t)V * sizeof(float));
    }
    /* the candidates of a prompt differ only in their last position */
    for (int64_t r = 0; r < B * k; r++) g->first[r] = g->reorder[r] == r ? S : g->cur_len;
    if ((st = tfm_kv_cache_reorder_from(&g->cache, g->reorder, B * k, g->first)) != TFM_OK) return st;
    for (int64_t b = 0; b < B; b++) {
        int32_t tok = g->out->sequences[b * L + g->cur_len];
        g->n_real[b]++;
        g->ids[b * L + g->cur_len] = tok;
        if (g->unfinished[b] && tfm__gen_is_eos(g, tok)) g->unfinished[b] = 0;
        any |= g->unfinished[b];
    }
    g->cur_len++;
    g->step++;
    if (!any || g->cur_len >= g->max_len) g->done = 1;
    return TFM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Generator lifetime
 * ------------------------------------------------------------------------------------------- */
static int is_beam_mode(int32_t mode) {
    return mode == TFM_GEN_BEAM || mode == TFM_GEN_BEAM_SAMPLE || mode == TFM_GEN_GROUP_BEAM ||
           mode == TFM_GEN_STOCHASTIC_BEAM;
}

static tfm_status check_config(const tfm_model *m, const tfm_gen_config *c, int64_t B, int64_t P) {
    if (B <= 0 || P <= 0 || c->max_length <= P || c->max_length > m->cfg.n_positions) return TFM_E_ARG;
    if (c->mode < TFM_GEN_GREEDY || c->mode > TFM_GEN_STOCHASTIC_BEAM) return TFM_E_ARG;
    if (c->num_return_sequences < 1 || (c->n_eos > 0 && !c->eos) || c->n_eos < 0) return TFM_E_ARG;
    if (c->n_procs < 0 || (c->n_procs > 0 && !c->procs) || c->trace_top_n < 0) return TFM_E_ARG;
    for (int32_t i = 0; i < c->n_eos; i++)
        if (c->eos[i] < 0 || c->eos[i] >= m->cfg.vocab) return TFM_E_RANGE;
    if (is_beam_mode(c->mode)) {
        if (c->num_beams < 2 || c->num_return_sequences > c->num_beams) return TFM_E_ARG;
        if (c->num_beam_groups < 1 || c->num_beams % c->num_beam_groups) return TFM_E_ARG;
        if ((int64_t)c->num_beams * m->cfg.vocab > (INT64_C(1) << 40)) return TFM_E_ARG;
    }
    if (c->mode == TFM_GEN_CONTRASTIVE && (c->top_k < 2 || c->top_k > m->cfg.vocab || c->num_return_sequences != 1))
        return TFM_E_ARG;
    if ((c->mode == TFM_GEN_GREEDY) && c->num_return_sequences != 1) return TFM_E_ARG;
    if (c->pad_id >= m->cfg.vocab) return TFM_E_RANGE;
    return TFM_OK;
}

#define ALLOC(ptr, n)                                                  \
    do {                                                               \
        size_t n_ = (size_t)(n) > 0 ? (size_t)(n) : 1;                 \
        (ptr) = calloc(n_, sizeof(*(ptr)));                            \
        if (!(ptr)) goto nomem;                                        \
    } while (0)

tfm_status tfm_generator_init(tfm_generator **gp, const tfm_model *m, const tfm_gen_config *cfg,
                              const int32_t *prompt, const int32_t *mask, int64_t B, int64_t P, tfm_gen_output *out) {
    *gp = NULL;
    if (!m || !cfg || !prompt || !out || !out->sequences) return TFM_E_ARG;
    tfm_status st = check_config(m, cfg, B, P);
    if (st != TFM_OK) return st;
    for (int64_t i = 0; i < B * P; i++) {
        if (prompt[i] < 0 || prompt[i] >= m->cfg.vocab) return TFM_E_RANGE;
        if (mask && mask[i] != 0 && mask[i] != 1) return TFM_E_ARG;
    }
    tfm_generator *g = calloc(1, sizeof *g);
    if (!g) return TFM_E_NOMEM;
    g->m = m;
    g->cfg = *cfg;
    g->out = out;
    g->B = B, g->P = P, g->V = m->cfg.vocab, g->C = m->cfg.hidden;
    g->max_len = cfg->max_length;
    g->cur_len = P;
    g->M = cfg->max_length - P;
    tfm_gen_output_dims(cfg, B, &g->N, &g->R, &g->W);
    const int beam = is_beam_mode(cfg->mode);
    g->K = beam ? cfg->num_beams : cfg->num_return_sequences;
    const int64_t R = g->R, V = g->V, L = g->max_len, topk = cfg->top_k;
    const int contrastive = cfg->mode == TFM_GEN_CONTRASTIVE;
    g->F = contrastive ? B * topk : R;
    if (g->F < B) g->F = B;
    g->prompt = prompt;
    ALLOC(g->prompt_mask, B * P);
    for (int64_t i = 0; i < B * P; i++) g->prompt_mask[i] = mask ? mask[i] : 1;
    ALLOC(g->ids, R * L);
    ALLOC(g->mask, R * L);
    ALLOC(g->n_real, R);
    ALLOC(g->unfinished, R);
    memset(g->unfinished, 1, (size_t)R);
    ALLOC(g->fwd_ids, g->F * P);
    ALLOC(g->fwd_pos, g->F * P);
    ALLOC(g->fwd_mask, g->F * L);
    ALLOC(g->logits, g->F * V);
    ALLOC(g->proc, R * V);
    ALLOC(g->reorder, g->F);
    ALLOC(g->first, g->F);
    ALLOC(g->rng, R);
    g->nthreads = tfm_thread_capacity(); /* thread ids index the scratch */
    ALLOC(g->sws, g->nthreads);
    ALLOC(g->tbuf, (int64_t)g->nthreads * 2 * V);
    ALLOC(g->zbuf, (int64_t)g->nthreads * L);
    for (int i = 0; i < g->nthreads; i++)
        if ((st = tfm_sampling_ws_init(&g->sws[i], beam ? g->K * V : V)) != TFM_OK) goto fail;
    if ((st = tfm_workspace_init(&g->ws, m, B * P > g->F ? B * P : g->F, L)) != TFM_OK) goto fail;
    if (contrastive) {
        int64_t rows = B * P > B * topk ? B * P : B * topk;
        ALLOC(g->hidden, rows * g->C);
        ALLOC(g->ctx_hidden, B * L * g->C);
        ALLOC(g->cand_probs, B * topk);
        ALLOC(g->cand_tok, B * topk);
    }
    /* random streams: row r of prompt b is stream (prompt hash, r mod K) */
    for (int64_t r = 0; r < R; r++) {
        int64_t b = r / g->K;
        uint64_t h = prompt_hash(prompt + b * P, mask ? mask + b * P : NULL, P);
        tfm_rng_seed(&g->rng[r], cfg->seed ^ h, beam ? 0 : (uint64_t)(r % g->K));
    }
    /* outputs start as "pad everywhere" */
    for (int64_t i = 0; i < g->N * L; i++) out->sequences[i] = cfg->pad_id;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t t = 0; t < P; t++) out->sequences[n * L + t] = prompt[(n / (g->N / B)) * P + t];
    if (out->seq_scores) memset(out->seq_scores, 0, (size_t)g->N * sizeof(float));
    if (out->token_logprobs) memset(out->token_logprobs, 0, (size_t)(g->N * g->M) * sizeof(float));
    if (out->raw_logprobs) memset(out->raw_logprobs, 0, (size_t)(g->N * g->M) * sizeof(float));
    if (out->beam_indices)
        for (int64_t i = 0; i < g->N * g->M; i++) out->beam_indices[i] = -1;
    out->length = P;
    out->steps = 0;
    out->time_prefill = out->time_forward = out->time_total = 0.0;
    if (beam && (st = tfm__beam_init(g)) != TFM_OK) goto fail;
    *gp = g;
    return TFM_OK;
nomem:
    st = TFM_E_NOMEM;
fail:
    tfm_generator_free(g);
    return st;
}

tfm_status tfm_generator_step(tfm_generator *g, int *done) {
    tfm_status st = TFM_OK;
    if (!g->done) {
        double t0 = now();
        switch (g->cfg.mode) {
        case TFM_GEN_GREEDY:
        case TFM_GEN_SAMPLE: st = step_sample(g); break;
        case TFM_GEN_CONTRASTIVE: st = step_contrastive(g); break;
        case TFM_GEN_BEAM:
        case TFM_GEN_BEAM_SAMPLE: st = tfm__beam_step(g); break;
        case TFM_GEN_GROUP_BEAM: st = tfm__group_beam_step(g); break;
        case TFM_GEN_STOCHASTIC_BEAM: st = tfm__stochastic_beam_step(g); break;
        default: st = TFM_E_ARG;
        }
        if (st != TFM_OK) g->done = 1;
        if (g->done && st == TFM_OK && is_beam_mode(g->cfg.mode)) tfm__beam_finish(g);
        if (!is_beam_mode(g->cfg.mode)) g->out->length = g->cur_len;
        g->out->steps = g->step;
        g->out->time_total += now() - t0;
    }
    *done = g->done;
    return st;
}

int64_t tfm_generator_length(const tfm_generator *g) { return g->out->length; }

void tfm_generator_free(tfm_generator *g) {
    if (!g) return;
    tfm_kv_cache_free(&g->cache);
    tfm_workspace_free(&g->ws);
    if (g->sws)
        for (int i = 0; i < g->nthreads; i++) tfm_sampling_ws_free(&g->sws[i]);
    void *bufs[] = {g->prompt_mask, g->ids, g->mask, g->n_real, g->unfinished, g->fwd_ids, g->fwd_pos,
                    g->fwd_mask, g->logits, g->hidden, g->proc, g->rng, g->sws, g->tbuf, g->zbuf,
                    g->hamming, g->row_lse, g->hyp_seq, g->hyp_len, g->hyp_lp, g->run_lp, g->run_raw, g->run_score, g->run_gumbel, g->run_bidx, g->acc,
                    g->cand_idx, g->cand_score, g->cand_hit, g->cand_aux, g->fin_seq, g->fin_score, g->fin_bidx,
                    g->fin_lp, g->fin_raw, g->fin_len, g->fin_flag, g->improvable, g->reorder, g->first, g->tmp_seq,
                    g->tmp_f, g->tmp_bidx, g->hyp_score, g->hyp_count, g->hyp_worst, g->group_done,
                    g->ctx_hidden, g->cand_probs, g->cand_tok};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(g);
}

tfm_status tfm_generate(const tfm_model *m, const tfm_gen_config *cfg, const int32_t *prompt, const int32_t *mask,
                        int64_t B, int64_t P, tfm_gen_output *out) {
    tfm_generator *g;
    tfm_status st = tfm_generator_init(&g, m, cfg, prompt, mask, B, P, out);
    if (st != TFM_OK) return st;
    int done = 0;
    while (!done && st == TFM_OK) st = tfm_generator_step(g, &done);
    tfm_generator_free(g);
    return st;
}
