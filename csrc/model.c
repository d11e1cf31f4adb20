/* model.c — decoder-only transformers (GPT-2, OpenAI GPT, GPT-Neo): weights, KV cache, workspace,
 * and the forward pass as a flat sequence of kernel calls.
 *
 * The forward pass reads like the PyTorch blocks it mirrors (transformers' modeling_gpt2.py,
 * modeling_openai.py, modeling_gpt_neo.py):
 *   pre-LN  (gpt2, gpt-neo):  x += attn(ln_1(x));  x += mlp(ln_2(x));  ... ; ln_f(x)
 *   post-LN (openai-gpt):     x = ln_1(x + attn(x)); x = ln_2(x + mlp(x))
 * It allocates nothing: every buffer lives in the caller's tfm_workspace or tfm_kv_cache.
 * Not here: heads other than the LM head, sampling, tokenisation, file formats.
 */
#include "tfm.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Each model gets a fresh id so a cache built for one model is refused by another. */
static atomic_uint_fast64_t next_uid = 1;

static int is_per_layer(tfm_param p) { return p >= TFM_P_LN1_W && p < TFM_P_COUNT; }

static float *zalloc_floats(int64_t n) {
    if (n <= 0) return NULL;
    return (float *)calloc((size_t)n, sizeof(float));
}

/* Which slots an architecture needs (bit p set = required). */
static uint32_t required_global(const tfm_config *c) {
    uint32_t r = (1u << TFM_P_WTE) | (1u << TFM_P_WPE);
    if (c->arch == TFM_ARCH_GPT2 || c->arch == TFM_ARCH_GPT_NEO) r |= (1u << TFM_P_LNF_W) | (1u << TFM_P_LNF_B);
    if (!c->tie_word_embeddings) r |= 1u << TFM_P_LM_HEAD;
    return r;
}

static uint32_t required_layer(const tfm_config *c) {
    uint32_t r = (1u << TFM_P_LN1_W) | (1u << TFM_P_LN1_B) | (1u << TFM_P_ATTN_OUT_W) | (1u << TFM_P_ATTN_OUT_B) |
                 (1u << TFM_P_LN2_W) | (1u << TFM_P_LN2_B) | (1u << TFM_P_FC_IN_W) | (1u << TFM_P_FC_IN_B) |
                 (1u << TFM_P_FC_OUT_W) | (1u << TFM_P_FC_OUT_B);
    if (c->arch == TFM_ARCH_GPT_NEO)
        r |= (1u << TFM_P_Q_W) | (1u << TFM_P_K_W) | (1u << TFM_P_V_W);
    else
        r |= (1u << TFM_P_QKV_W) | (1u << TFM_P_QKV_B);
    return r;
}

static tfm_status check_config(const tfm_config *c) {
    if (c->arch != TFM_ARCH_GPT2 && c->arch != TFM_ARCH_OPENAI_GPT && c->arch != TFM_ARCH_GPT_NEO) return TFM_E_ARG;
    if (c->n_layer <= 0 || c->n_head <= 0 || c->hidden <= 0 || c->inner <= 0 || c->vocab <= 0 ||
        c->n_positions <= 0)
        return TFM_E_ARG;
    if (c->hidden % c->n_head != 0) return TFM_E_ARG;
    if (c->act < 0 || c->act >= TFM_ACT_COUNT) return TFM_E_ARG;
    if (!(c->ln_eps >= 0.0f) || c->window_size < 0) return TFM_E_ARG;
    /* keep every buffer index comfortably inside int64 and every count inside int32 */
    if (c->hidden > (1 << 16) || c->inner > (1 << 18) || c->vocab > (1 << 24) || c->n_positions > (1 << 20) ||
        c->n_layer > 4096)
        return TFM_E_ARG;
    return TFM_OK;
}

tfm_status tfm_model_init(tfm_model *m, const tfm_config *cfg) {
    memset(m, 0, sizeof *m);
    tfm_status st = check_config(cfg);
    if (st != TFM_OK) return st;
    m->cfg = *cfg;
    m->cfg.layer_is_local = NULL;
    m->uid = atomic_fetch_add(&next_uid, 1);
    const int64_t C = cfg->hidden, I = cfg->inner, L = cfg->n_layer;
    if (cfg->layer_is_local) {
        m->layer_is_local = (int32_t *)malloc((size_t)L * sizeof(int32_t));
        if (!m->layer_is_local) goto nomem;
        memcpy(m->layer_is_local, cfg->layer_is_local, (size_t)L * sizeof(int32_t));
    }
    if ((st = tfm_linear_init(&m->wte, cfg->vocab, C, 0)) != TFM_OK) goto fail;
    if (!(m->wpe = zalloc_floats((int64_t)cfg->n_positions * C))) goto nomem;
    if (!(m->lnf_w = zalloc_floats(C)) || !(m->lnf_b = zalloc_floats(C))) goto nomem;
    if (!cfg->tie_word_embeddings && (st = tfm_linear_init(&m->lm_head, cfg->vocab, C, 0)) != TFM_OK) goto fail;
    if (!(m->layers = (tfm_layer *)calloc((size_t)L, sizeof(tfm_layer)))) goto nomem;
    for (int64_t l = 0; l < L; l++) {
        tfm_layer *ly = &m->layers[l];
        if (!(ly->ln1_w = zalloc_floats(C)) || !(ly->ln1_b = zalloc_floats(C)) || !(ly->ln2_w = zalloc_floats(C)) ||
            !(ly->ln2_b = zalloc_floats(C)))
            goto nomem;
        /* GPT-Neo has no q/k/v bias: the bias vector stays zero (cheaper than a second GEMM variant) */
        if ((st = tfm_linear_init(&ly->qkv, 3 * C, C, 1)) != TFM_OK) goto fail;
        if ((st = tfm_linear_init(&ly->attn_out, C, C, 1)) != TFM_OK) goto fail;
        if ((st = tfm_linear_init(&ly->fc_in, I, C, 1)) != TFM_OK) goto fail;
        if ((st = tfm_linear_init(&ly->fc_out, C, I, 1)) != TFM_OK) goto fail;
    }
    return TFM_OK;
nomem:
    st = TFM_E_NOMEM;
fail:
    tfm_model_free(m);
    return st;
}

void tfm_model_free(tfm_model *m) {
    if (m->layers) {
        for (int64_t l = 0; l < m->cfg.n_layer; l++) {
            tfm_layer *ly = &m->layers[l];
            free(ly->ln1_w), free(ly->ln1_b), free(ly->ln2_w), free(ly->ln2_b);
            tfm_linear_free(&ly->qkv);
            tfm_linear_free(&ly->attn_out);
            tfm_linear_free(&ly->fc_in);
            tfm_linear_free(&ly->fc_out);
        }
        free(m->layers);
    }
    tfm_linear_free(&m->wte);
    tfm_linear_free(&m->lm_head);
    free(m->wpe), free(m->lnf_w), free(m->lnf_b), free(m->layer_is_local);
    memset(m, 0, sizeof *m);
}

tfm_status tfm_model_param_shape(const tfm_model *m, tfm_param p, int32_t *ndim, int64_t shape[2]) {
    const tfm_config *c = &m->cfg;
    const int64_t C = c->hidden, I = c->inner, V = c->vocab;
    uint32_t needed = is_per_layer(p) ? required_layer(c) : required_global(c);
    if (p < 0 || p >= TFM_P_COUNT) return TFM_E_ARG;
    /* the untied head may also be given when tied (ignored), every other slot must be used */
    if (!(needed & (1u << p)) && p != TFM_P_LM_HEAD) return TFM_E_ARG;
    *ndim = 1;
    shape[1] = 0;
    switch (p) {
    case TFM_P_WTE: case TFM_P_LM_HEAD: *ndim = 2; shape[0] = V; shape[1] = C; break;
    case TFM_P_WPE: *ndim = 2; shape[0] = c->n_positions; shape[1] = C; break;
    case TFM_P_QKV_W: *ndim = 2; shape[0] = 3 * C; shape[1] = C; break;
    case TFM_P_QKV_B: shape[0] = 3 * C; break;
    case TFM_P_Q_W: case TFM_P_K_W: case TFM_P_V_W: case TFM_P_ATTN_OUT_W:
        *ndim = 2; shape[0] = C; shape[1] = C; break;
    case TFM_P_FC_IN_W: *ndim = 2; shape[0] = I; shape[1] = C; break;
    case TFM_P_FC_IN_B: shape[0] = I; break;
    case TFM_P_FC_OUT_W: *ndim = 2; shape[0] = C; shape[1] = I; break;
    default: shape[0] = C; break; /* norms and C-sized biases */
    }
    return TFM_OK;
}

tfm_status tfm_model_set_param(tfm_model *m, tfm_param p, int32_t layer, const void *src, tfm_dtype dtype,
                               int32_t ndim, const int64_t *shape, int layout) {
    int32_t endim;
    int64_t es[2];
    tfm_status st = tfm_model_param_shape(m, p, &endim, es);
    if (st != TFM_OK) return st;
    if (!src || !shape || (dtype != TFM_F32 && dtype != TFM_F16 && dtype != TFM_BF16)) return TFM_E_ARG;
    if (is_per_layer(p) && (layer < 0 || layer >= m->cfg.n_layer)) return TFM_E_RANGE;
    if (ndim != endim) return TFM_E_SHAPE;
    /* layout 1 = source stored [in][out]: its shape is the transpose of the slot's */
    int64_t s0 = (ndim == 2 && layout == 1) ? shape[1] : shape[0];
    int64_t s1 = (ndim == 2 && layout == 1) ? shape[0] : (ndim == 2 ? shape[1] : 0);
    if (s0 != es[0] || (ndim == 2 && s1 != es[1])) return TFM_E_SHAPE;
    if (layout != 0 && layout != 1) return TFM_E_ARG;
    const int64_t C = m->cfg.hidden;
    tfm_layer *ly = is_per_layer(p) ? &m->layers[layer] : NULL;
    switch (p) {
    case TFM_P_WTE: st = tfm_linear_set_rows(&m->wte, 0, src, dtype, es[0], layout); break;
    case TFM_P_LM_HEAD:
        if (m->cfg.tie_word_embeddings) return TFM_OK; /* tied: the embedding is the head */
        st = tfm_linear_set_rows(&m->lm_head, 0, src, dtype, es[0], layout);
        break;
    case TFM_P_WPE:
        if (layout == 1) return TFM_E_ARG;
        tfm_convert_to_f32(m->wpe, src, dtype, es[0] * es[1]);
        break;
    case TFM_P_LNF_W: tfm_convert_to_f32(m->lnf_w, src, dtype, C); break;
    case TFM_P_LNF_B: tfm_convert_to_f32(m->lnf_b, src, dtype, C); break;
    case TFM_P_LN1_W: tfm_convert_to_f32(ly->ln1_w, src, dtype, C); break;
    case TFM_P_LN1_B: tfm_convert_to_f32(ly->ln1_b, src, dtype, C); break;
    case TFM_P_LN2_W: tfm_convert_to_f32(ly->ln2_w, src, dtype, C); break;
    case TFM_P_LN2_B: tfm_convert_to_f32(ly->ln2_b, src, dtype, C); break;
    case TFM_P_QKV_W: st = tfm_linear_set_rows(&ly->qkv, 0, src, dtype, 3 * C, layout); break;
    case TFM_P_QKV_B: st = tfm_linear_set_bias(&ly->qkv, 0, src, dtype, 3 * C); break;
    case TFM_P_Q_W: st = tfm_linear_set_rows(&ly->qkv, 0, src, dtype, C, layout); break;
    case TFM_P_K_W: st = tfm_linear_set_rows(&ly->qkv, C, src, dtype, C, layout); break;
    case TFM_P_V_W: st = tfm_linear_set_rows(&ly->qkv, 2 * C, src, dtype, C, layout); break;
    case TFM_P_ATTN_OUT_W: st = tfm_linear_set_rows(&ly->attn_out, 0, src, dtype, C, layout); break;
    case TFM_P_ATTN_OUT_B: st = tfm_linear_set_bias(&ly->attn_out, 0, src, dtype, C); break;
    case TFM_P_FC_IN_W: st = tfm_linear_set_rows(&ly->fc_in, 0, src, dtype, m->cfg.inner, layout); break;
    case TFM_P_FC_IN_B: st = tfm_linear_set_bias(&ly->fc_in, 0, src, dtype, m->cfg.inner); break;
    case TFM_P_FC_OUT_W: st = tfm_linear_set_rows(&ly->fc_out, 0, src, dtype, C, layout); break;
    case TFM_P_FC_OUT_B: st = tfm_linear_set_bias(&ly->fc_out, 0, src, dtype, C); break;
    default: return TFM_E_ARG;
    }
    if (st != TFM_OK) return st;
    if (ly)
        ly->loaded |= 1u << p;
    else
        m->loaded |= 1u << p;
    return TFM_OK;
}

tfm_status tfm_model_check_loaded(const tfm_model *m, tfm_param *missing, int32_t *layer) {
    uint32_t g = required_global(&m->cfg), lr = required_layer(&m->cfg);
    for (int p = 0; p < TFM_P_COUNT; p++)
        if ((g & (1u << p)) && !(m->loaded & (1u << p))) {
            *missing = (tfm_param)p;
            *layer = -1;
            return TFM_E_STATE;
        }
    for (int32_t l = 0; l < m->cfg.n_layer; l++)
        for (int p = 0; p < TFM_P_COUNT; p++)
            if ((lr & (1u << p)) && !(m->layers[l].loaded & (1u << p))) {
                *missing = (tfm_param)p;
                *layer = l;
                return TFM_E_STATE;
            }
    return TFM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * KV cache
 * ------------------------------------------------------------------------------------------- */
static size_t cache_floats(const tfm_kv_cache *c, int64_t batch, int64_t cap) {
    return (size_t)c->n_layer * (size_t)batch * (size_t)c->n_head * (size_t)cap * (size_t)c->head_dim;
}

tfm_status tfm_kv_cache_init(tfm_kv_cache *c, const tfm_model *m, int64_t batch, int64_t capacity) {
    memset(c, 0, sizeof *c);
    if (batch <= 0 || capacity <= 0 || capacity > m->cfg.n_positions) return TFM_E_ARG;
    c->n_layer = m->cfg.n_layer;
    c->n_head = m->cfg.n_head;
    c->head_dim = m->cfg.hidden / m->cfg.n_head;
    c->batch = batch;
    c->capacity = capacity;
    c->model_uid = m->uid;
    size_t n = cache_floats(c, batch, capacity);
    c->k = (float *)malloc(n * sizeof(float));
    c->v = (float *)malloc(n * sizeof(float));
    if (!c->k || !c->v) {
        tfm_kv_cache_free(c);
        return TFM_E_NOMEM;
    }
    return TFM_OK;
}

void tfm_kv_cache_free(tfm_kv_cache *c) {
    free(c->k);
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* Copies rows of one [L][B][NH][cap][D] buffer into another of a different batch/capacity. */
static void cache_copy_rows(float *dst, int64_t dcap, int64_t dbatch, const float *src, int64_t scap,
                            int64_t sbatch, const int64_t *rows, const tfm_kv_cache *c, int64_t len) {
    const int64_t NH = c->n_head, D = c->head_dim;
    for (int64_t l = 0; l < c->n_layer; l++)
        for (int64_t b = 0; b < dbatch; b++) {
            int64_t sb = rows ? rows[b] : b;
            for (int64_t h = 0; h < NH; h++)
                memcpy(dst + ((l * dbatch + b) * NH + h) * dcap * D, src + ((l * sbatch + sb) * NH + h) * scap * D,
                       (size_t)(len * D) * sizeof(float));
        }
}

tfm_status tfm_kv_cache_reserve(tfm_kv_cache *c, int64_t capacity) {
    if (!c->k) return TFM_E_STATE;
    if (capacity <= c->capacity) return TFM_OK;
    size_t n = cache_floats(c, c->batch, capacity);
    float *k = (float *)malloc(n * sizeof(float)), *v = (float *)malloc(n * sizeof(float));
    if (!k || !v) {
        free(k), free(v);
        return TFM_E_NOMEM;
    }
    cache_copy_rows(k, capacity, c->batch, c->k, c->capacity, c->batch, NULL, c, c->length);
    cache_copy_rows(v, capacity, c->batch, c->v, c->capacity, c->batch, NULL, c, c->length);
    free(c->k), free(c->v);
    c->k = k, c->v = v, c->capacity = capacity;
    return TFM_OK;
}

tfm_status tfm_kv_cache_reorder(tfm_kv_cache *c, const int64_t *src, int64_t new_batch) {
    if (!c->k) return TFM_E_STATE;
    if (new_batch <= 0 || !src) return TFM_E_ARG;
    for (int64_t b = 0; b < new_batch; b++)
        if (src[b] < 0 || src[b] >= c->batch) return TFM_E_RANGE;
    size_t n = cache_floats(c, new_batch, c->capacity);
    float *k = (float *)malloc(n * sizeof(float)), *v = (float *)malloc(n * sizeof(float));
    if (!k || !v) {
        free(k), free(v);
        return TFM_E_NOMEM;
    }
    cache_copy_rows(k, c->capacity, new_batch, c->k, c->capacity, c->batch, src, c, c->length);
    cache_copy_rows(v, c->capacity, new_batch, c->v, c->capacity, c->batch, src, c, c->length);
    free(c->k), free(c->v);
    c->k = k, c->v = v, c->batch = new_batch;
    return TFM_OK;
}

tfm_status tfm_kv_cache_copy(tfm_kv_cache *dst, const tfm_kv_cache *src) {
    memset(dst, 0, sizeof *dst);
    if (!src->k) return TFM_E_STATE;
    *dst = *src;
    size_t n = cache_floats(src, src->batch, src->capacity);
    dst->k = (float *)malloc(n * sizeof(float));
    dst->v = (float *)malloc(n * sizeof(float));
    if (!dst->k || !dst->v) {
        tfm_kv_cache_free(dst);
        return TFM_E_NOMEM;
    }
    memcpy(dst->k, src->k, n * sizeof(float));
    memcpy(dst->v, src->v, n * sizeof(float));
    return TFM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Workspace
 * ------------------------------------------------------------------------------------------- */
tfm_status tfm_workspace_init(tfm_workspace *w, const tfm_model *m, int64_t max_rows, int64_t max_ctx) {
    memset(w, 0, sizeof *w);
    if (max_rows <= 0 || max_ctx <= 0) return TFM_E_ARG;
    const int64_t C = m->cfg.hidden, I = m->cfg.inner;
    w->max_rows = max_rows;
    w->max_ctx = max_ctx;
    w->x = zalloc_floats(max_rows * C);
    w->xn = zalloc_floats(max_rows * C);
    w->qkv = zalloc_floats(max_rows * 3 * C);
    w->ctx = zalloc_floats(max_rows * C);
    w->mlp = zalloc_floats(max_rows * I);
    w->scratch = zalloc_floats((int64_t)tfm_max_threads() * max_ctx);
    w->k = zalloc_floats(max_rows * C);
    w->v = zalloc_floats(max_rows * C);
    if (!w->x || !w->xn || !w->qkv || !w->ctx || !w->mlp || !w->scratch || !w->k || !w->v) {
        tfm_workspace_free(w);
        return TFM_E_NOMEM;
    }
    return TFM_OK;
}

void tfm_workspace_free(tfm_workspace *w) {
    free(w->x), free(w->xn), free(w->qkv), free(w->ctx), free(w->mlp), free(w->scratch), free(w->k), free(w->v);
    memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------------------------------------
 * Forward pass
 * ------------------------------------------------------------------------------------------- */

/* x[B·T][C] = wte[ids] + wpe[pos] (+ wte[token_type]) — GPT-2 adds token types from the same table. */
static void embed(const tfm_model *m, float *x, const tfm_forward_args *a, int64_t P) {
    const int64_t C = m->cfg.hidden, T = a->T, rows = a->B * a->T;
#pragma omp parallel for schedule(static) if (rows > 16)
    for (int64_t r = 0; r < rows; r++) {
        float *xr = x + r * C;
        tfm_linear_get_row(&m->wte, a->input_ids[r], xr);
        int64_t pos = a->position_ids ? a->position_ids[r] : P + r % T;
        const float *pe = m->wpe + pos * C;
        for (int64_t i = 0; i < C; i++) xr[i] += pe[i];
        if (a->token_type_ids) {
            int64_t tt = a->token_type_ids[r];
            const float *row = m->wte.data + (tt / 32) * C * 32 + (tt % 32); /* packed row, stride 32 */
            for (int64_t i = 0; i < C; i++) xr[i] += row[i * 32];
        }
    }
}

/* Writes this call's K and V (columns C..3C of qkv) into the cache layer at positions P..P+T. */
static void store_kv(float *kc, float *vc, int64_t cap, const float *qkv, int64_t B, int64_t T, int64_t P,
                     int64_t NH, int64_t D) {
    const int64_t C = NH * D;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            const float *row = qkv + (b * T + t) * 3 * C;
            for (int64_t h = 0; h < NH; h++) {
                memcpy(kc + ((b * NH + h) * cap + P + t) * D, row + C + h * D, (size_t)D * sizeof(float));
                memcpy(vc + ((b * NH + h) * cap + P + t) * D, row + 2 * C + h * D, (size_t)D * sizeof(float));
            }
        }
}

static void add_inplace(float *x, const float *y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

static tfm_status check_forward(const tfm_model *m, const tfm_kv_cache *cache, const tfm_workspace *ws,
                                const tfm_forward_args *a) {
    const tfm_config *c = &m->cfg;
    if (!a->input_ids || a->B <= 0 || a->T <= 0) return TFM_E_ARG;
    int64_t P = cache ? cache->length : 0, S = P + a->T;
    if (cache) {
        if (cache->model_uid != m->uid || !cache->k) return TFM_E_STATE;
        if (cache->batch != a->B || S > cache->capacity) return TFM_E_ARG;
    }
    if (a->B * a->T > ws->max_rows || S > ws->max_ctx) return TFM_E_ARG;
    for (int64_t r = 0; r < a->B * a->T; r++) {
        if (a->input_ids[r] < 0 || a->input_ids[r] >= c->vocab) return TFM_E_RANGE;
        int64_t pos = a->position_ids ? a->position_ids[r] : P + r % a->T;
        if (pos < 0 || pos >= c->n_positions) return TFM_E_RANGE;
        if (a->token_type_ids && (a->token_type_ids[r] < 0 || a->token_type_ids[r] >= c->vocab)) return TFM_E_RANGE;
    }
    return TFM_OK;
}

tfm_status tfm_model_forward(const tfm_model *m, tfm_kv_cache *cache, tfm_workspace *ws, const tfm_forward_args *a) {
    tfm_status st = check_forward(m, cache, ws, a);
    if (st != TFM_OK) return st;
    const tfm_config *cfg = &m->cfg;
    const int64_t B = a->B, T = a->T, rows = B * T;
    const int64_t C = cfg->hidden, NH = cfg->n_head, D = C / NH, I = cfg->inner, V = cfg->vocab;
    const int64_t P = cache ? cache->length : 0, S = P + T;
    const int pre_ln = cfg->arch != TFM_ARCH_OPENAI_GPT;
    const int64_t layer_floats = cache ? B * NH * cache->capacity * D : 0;
    float *x = ws->x, *xn = ws->xn;

    embed(m, x, a, P);
    for (int64_t l = 0; l < cfg->n_layer; l++) {
        const tfm_layer *ly = &m->layers[l];
        if (a->hidden_states) memcpy(a->hidden_states + l * rows * C, x, (size_t)(rows * C) * sizeof(float));
        /* attention sub-block */
        const float *attn_in = x;
        if (pre_ln) {
            tfm_layernorm(xn, x, ly->ln1_w, ly->ln1_b, rows, C, cfg->ln_eps);
            attn_in = xn;
        }
        tfm_linear_forward(ws->qkv, 3 * C, attn_in, C, &ly->qkv, rows);
        float *kc = cache ? cache->k + l * layer_floats : ws->k;
        float *vc = cache ? cache->v + l * layer_floats : ws->v;
        int64_t cap = cache ? cache->capacity : T;
        store_kv(kc, vc, cap, ws->qkv, B, T, P, NH, D);
        float scale = 1.0f;
        if (cfg->arch != TFM_ARCH_GPT_NEO && (cfg->scale_attn_weights || cfg->arch == TFM_ARCH_OPENAI_GPT))
            scale /= sqrtf((float)D);
        if (cfg->scale_attn_by_inverse_layer_idx) scale /= (float)(l + 1);
        int64_t window = (m->layer_is_local && m->layer_is_local[l]) ? cfg->window_size : 0;
        float *probs = a->attentions ? a->attentions + l * B * NH * T * S : NULL;
        tfm_attention(ws->ctx, probs, ws->qkv, 3 * C, kc, vc, cap, a->attention_mask, B, T, P, NH, D, scale, 1,
                      window, ws->scratch);
        tfm_linear_forward(xn, C, ws->ctx, C, &ly->attn_out, rows);
        add_inplace(x, xn, rows * C);
        if (!pre_ln) tfm_layernorm(x, x, ly->ln1_w, ly->ln1_b, rows, C, cfg->ln_eps);
        /* MLP sub-block */
        const float *mlp_in = x;
        if (pre_ln) {
            tfm_layernorm(xn, x, ly->ln2_w, ly->ln2_b, rows, C, cfg->ln_eps);
            mlp_in = xn;
        }
        tfm_linear_forward(ws->mlp, I, mlp_in, C, &ly->fc_in, rows);
        tfm_activation(ws->mlp, rows * I, (tfm_act)cfg->act);
        tfm_linear_forward(xn, C, ws->mlp, I, &ly->fc_out, rows);
        add_inplace(x, xn, rows * C);
        if (!pre_ln) tfm_layernorm(x, x, ly->ln2_w, ly->ln2_b, rows, C, cfg->ln_eps);
    }
    if (cfg->arch == TFM_ARCH_GPT2 || cfg->arch == TFM_ARCH_GPT_NEO)
        tfm_layernorm(x, x, m->lnf_w, m->lnf_b, rows, C, cfg->ln_eps);
    if (a->hidden_states)
        memcpy(a->hidden_states + cfg->n_layer * rows * C, x, (size_t)(rows * C) * sizeof(float));
    if (a->last_hidden) memcpy(a->last_hidden, x, (size_t)(rows * C) * sizeof(float));

    const tfm_linear *head = cfg->tie_word_embeddings ? &m->wte : &m->lm_head;
    if (a->logits_mode == TFM_LOGITS_ALL && a->logits) {
        tfm_linear_forward(a->logits, V, x, C, head, rows);
    } else if (a->logits_mode == TFM_LOGITS_LAST && a->logits) {
        /* only the last position of each row: B rows of stride T·C */
        tfm_linear_forward(a->logits, V, x + (T - 1) * C, T * C, head, B);
    }
    if (cache) cache->length = S;
    return TFM_OK;
}
