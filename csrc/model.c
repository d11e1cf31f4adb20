/* model.c — weights of every architecture (decoders and encoders: slots, shapes, loading), the KV
 * cache, the workspace, the shared transformer block, and the decoder forward pass (GPT-2, OpenAI
 * GPT, GPT-Neo) as a flat sequence of kernel calls.
 *
 * The block reads like the PyTorch blocks it mirrors (transformers' modeling_gpt2.py,
 * modeling_openai.py, modeling_gpt_neo.py, modeling_bert.py):
 *   pre-LN  (gpt2, gpt-neo):              x += attn(ln_1(x));  x += mlp(ln_2(x));  ... ; ln_f(x)
 *   post-LN (openai-gpt, the BERT family): x = ln_1(x + attn(x)); x = ln_2(x + mlp(x))
 * Forward passes allocate nothing: every buffer lives in the caller's tfm_workspace or tfm_kv_cache.
 * Not here: the encoder forward and its heads (encoder.c), sampling, tokenisation, file formats.
 */
#include "tfm.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Each model gets a fresh id so a cache built for one model is refused by another. */
static atomic_uint_fast64_t next_uid = 1;

static int is_per_layer(tfm_param p) {
    return (p >= TFM_P_LN1_W && p <= TFM_P_FC_OUT_B) || (p >= TFM_P_Q_B && p <= TFM_P_V_B);
}

int tfm_arch_is_encoder(int32_t arch) { return arch >= TFM_ARCH_BERT && arch <= TFM_ARCH_ELECTRA; }

int64_t tfm_embedding_width(const tfm_config *c) {
    return tfm_arch_is_encoder(c->arch) && c->embedding_size > 0 ? c->embedding_size : c->hidden;
}

#define BIT(p) (UINT64_C(1) << (p))

static float *zalloc_floats(int64_t n) {
    if (n <= 0) return NULL;
    return (float *)calloc((size_t)n, sizeof(float));
}

/* Which slots an architecture needs (bit p set = required). */
static uint64_t required_global(const tfm_config *c) {
    uint64_t r = BIT(TFM_P_WTE) | BIT(TFM_P_WPE);
    if (!tfm_arch_is_encoder(c->arch)) {
        if (c->arch == TFM_ARCH_GPT2 || c->arch == TFM_ARCH_GPT_NEO) r |= BIT(TFM_P_LNF_W) | BIT(TFM_P_LNF_B);
        if (!c->tie_word_embeddings) r |= BIT(TFM_P_LM_HEAD);
        return r;
    }
    r |= BIT(TFM_P_EMB_LN_W) | BIT(TFM_P_EMB_LN_B);
    if (c->type_vocab_size > 0) r |= BIT(TFM_P_TOKEN_TYPE);
    if (tfm_embedding_width(c) != c->hidden) r |= BIT(TFM_P_EMB_PROJ_W) | BIT(TFM_P_EMB_PROJ_B);
    if (c->pooler_act >= 0) r |= BIT(TFM_P_POOL_W) | BIT(TFM_P_POOL_B);
    if (c->n_seq_labels > 0) r |= BIT(TFM_P_SEQ_W) | BIT(TFM_P_SEQ_B);
    if (c->mlm_size > 0) {
        r |= BIT(TFM_P_MLM_DENSE_W) | BIT(TFM_P_MLM_DENSE_B) | BIT(TFM_P_MLM_LN_W) | BIT(TFM_P_MLM_LN_B) |
             BIT(TFM_P_MLM_BIAS);
        if (!c->tie_word_embeddings) r |= BIT(TFM_P_LM_HEAD);
    }
    if (c->tok_act >= 0) r |= BIT(TFM_P_TOK_DENSE_W) | BIT(TFM_P_TOK_DENSE_B);
    if (c->n_tok_labels > 0) r |= BIT(TFM_P_TOK_W) | BIT(TFM_P_TOK_B);
    return r;
}

static uint64_t required_layer(const tfm_config *c) {
    uint64_t r = BIT(TFM_P_LN1_W) | BIT(TFM_P_LN1_B) | BIT(TFM_P_ATTN_OUT_W) | BIT(TFM_P_ATTN_OUT_B) |
                 BIT(TFM_P_LN2_W) | BIT(TFM_P_LN2_B) | BIT(TFM_P_FC_IN_W) | BIT(TFM_P_FC_IN_B) | BIT(TFM_P_FC_OUT_W) |
                 BIT(TFM_P_FC_OUT_B);
    if (tfm_arch_is_encoder(c->arch))
        r |= BIT(TFM_P_Q_W) | BIT(TFM_P_K_W) | BIT(TFM_P_V_W) | BIT(TFM_P_Q_B) | BIT(TFM_P_K_B) | BIT(TFM_P_V_B);
    else if (c->arch == TFM_ARCH_GPT_NEO)
        r |= BIT(TFM_P_Q_W) | BIT(TFM_P_K_W) | BIT(TFM_P_V_W);
    else
        r |= BIT(TFM_P_QKV_W) | BIT(TFM_P_QKV_B);
    return r;
}

/* Encoder fields: sizes positive where used, activation codes known, the layer map inside [0, L). */
static tfm_status check_encoder_config(const tfm_config *c) {
    const int32_t n_apply = c->n_apply > 0 ? c->n_apply : c->n_layer;
    const int32_t every = c->hidden_every > 0 ? c->hidden_every : 1;
    if (c->embedding_size < 0 || c->embedding_size > (1 << 16) || c->type_vocab_size < 0 ||
        c->type_vocab_size > (1 << 20) || c->n_apply < 0 || c->n_apply > 65536 || c->hidden_every < 0)
        return TFM_E_ARG;
    if (n_apply % every != 0 || (c->n_apply > 0 && c->n_apply != c->n_layer && !c->layer_map)) return TFM_E_ARG;
    if (c->layer_map)
        for (int32_t i = 0; i < n_apply; i++)
            if (c->layer_map[i] < 0 || c->layer_map[i] >= c->n_layer) return TFM_E_ARG;
    /* RoBERTa numbers real tokens from pad + 1: the table must hold at least that row */
    if (c->arch == TFM_ARCH_ROBERTA && (c->pad_token_id < 0 || c->pad_token_id + 1 >= c->n_positions))
        return TFM_E_ARG;
    if (c->pooler_act < -1 || c->pooler_act >= TFM_ACT_COUNT || c->tok_act < -1 || c->tok_act >= TFM_ACT_COUNT ||
        c->mlm_act < 0 || c->mlm_act >= TFM_ACT_COUNT)
        return TFM_E_ARG;
    if (c->n_seq_labels < 0 || c->n_seq_labels > (1 << 20) || c->n_tok_labels < 0 || c->n_tok_labels > (1 << 20) ||
        c->mlm_size < 0 || c->mlm_size > (1 << 16))
        return TFM_E_ARG;
    if (c->n_seq_labels > 0 && c->pooler_act < 0) return TFM_E_ARG;  /* classifies the pooled vector */
    if (c->tok_act >= 0 && c->n_tok_labels == 0) return TFM_E_ARG;   /* a dense with nothing after it */
    if (c->mlm_size > 0 && c->tie_word_embeddings && c->mlm_size != tfm_embedding_width(c)) return TFM_E_ARG;
    return TFM_OK;
}

static tfm_status check_config(const tfm_config *c) {
    if (c->arch != TFM_ARCH_GPT2 && c->arch != TFM_ARCH_OPENAI_GPT && c->arch != TFM_ARCH_GPT_NEO &&
        !tfm_arch_is_encoder(c->arch))
        return TFM_E_ARG;
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
    return tfm_arch_is_encoder(c->arch) ? check_encoder_config(c) : TFM_OK;
}

/* Allocates the encoder section (after the shared part of tfm_model_init); c is the caller's
 * config, whose layer_map is copied. */
static tfm_status encoder_init(tfm_model *m, const tfm_config *c) {
    const int64_t C = c->hidden, E = tfm_embedding_width(c), n_apply = c->n_apply > 0 ? c->n_apply : c->n_layer;
    tfm_encoder_weights *e = &m->enc;
    tfm_status st;
    if (c->layer_map) {
        if (!(e->layer_map = (int32_t *)malloc((size_t)n_apply * sizeof(int32_t)))) return TFM_E_NOMEM;
        memcpy(e->layer_map, c->layer_map, (size_t)n_apply * sizeof(int32_t));
    }
    if (c->type_vocab_size > 0 && !(e->token_type = zalloc_floats((int64_t)c->type_vocab_size * E))) return TFM_E_NOMEM;
    if (!(e->ln_w = zalloc_floats(E)) || !(e->ln_b = zalloc_floats(E))) return TFM_E_NOMEM;
    if (E != C && (st = tfm_linear_init(&e->proj, C, E, 1)) != TFM_OK) return st;
    if (c->pooler_act >= 0 && (st = tfm_linear_init(&e->pool, C, C, 1)) != TFM_OK) return st;
    if (c->n_seq_labels > 0 && (st = tfm_linear_init(&e->seq, c->n_seq_labels, C, 1)) != TFM_OK) return st;
    if (c->mlm_size > 0) {
        if ((st = tfm_linear_init(&e->mlm_dense, c->mlm_size, C, 1)) != TFM_OK) return st;
        if (!(e->mlm_ln_w = zalloc_floats(c->mlm_size)) || !(e->mlm_ln_b = zalloc_floats(c->mlm_size)))
            return TFM_E_NOMEM;
    }
    if (c->tok_act >= 0 && (st = tfm_linear_init(&e->tok_dense, C, C, 1)) != TFM_OK) return st;
    if (c->n_tok_labels > 0 && (st = tfm_linear_init(&e->tok, c->n_tok_labels, C, 1)) != TFM_OK) return st;
    return TFM_OK;
}

static void encoder_free(tfm_encoder_weights *e) {
    free(e->token_type), free(e->ln_w), free(e->ln_b), free(e->mlm_ln_w), free(e->mlm_ln_b), free(e->layer_map);
    tfm_linear_free(&e->proj);
    tfm_linear_free(&e->pool);
    tfm_linear_free(&e->seq);
    tfm_linear_free(&e->mlm_dense);
    tfm_linear_free(&e->tok_dense);
    tfm_linear_free(&e->tok);
}

tfm_status tfm_model_init(tfm_model *m, const tfm_config *cfg) {
    memset(m, 0, sizeof *m);
    tfm_status st = check_config(cfg);
    if (st != TFM_OK) return st;
    m->cfg = *cfg;
    m->cfg.layer_is_local = NULL;
    m->cfg.layer_map = NULL; /* the owned copy is m->enc.layer_map */
    m->uid = atomic_fetch_add(&next_uid, 1);
    const int64_t C = cfg->hidden, I = cfg->inner, L = cfg->n_layer, E = tfm_embedding_width(cfg);
    const int encoder = tfm_arch_is_encoder(cfg->arch);
    if (cfg->layer_is_local) {
        m->layer_is_local = (int32_t *)malloc((size_t)L * sizeof(int32_t));
        if (!m->layer_is_local) goto nomem;
        memcpy(m->layer_is_local, cfg->layer_is_local, (size_t)L * sizeof(int32_t));
    }
    /* a tied MLM decoder is the embedding table itself, so it carries the MLM output bias */
    const int mlm = encoder && cfg->mlm_size > 0;
    if ((st = tfm_linear_init(&m->wte, cfg->vocab, E, mlm && cfg->tie_word_embeddings)) != TFM_OK) goto fail;
    if (!(m->wpe = zalloc_floats((int64_t)cfg->n_positions * E))) goto nomem;
    if (!(m->lnf_w = zalloc_floats(C)) || !(m->lnf_b = zalloc_floats(C))) goto nomem;
    if (!cfg->tie_word_embeddings && (!encoder || mlm) &&
        (st = tfm_linear_init(&m->lm_head, cfg->vocab, mlm ? cfg->mlm_size : C, mlm)) != TFM_OK)
        goto fail;
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
    if (encoder && (st = encoder_init(m, cfg)) != TFM_OK) goto fail;
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
    encoder_free(&m->enc);
    memset(m, 0, sizeof *m);
}

tfm_status tfm_model_param_shape(const tfm_model *m, tfm_param p, int32_t *ndim, int64_t shape[2]) {
    const tfm_config *c = &m->cfg;
    const int64_t C = c->hidden, I = c->inner, V = c->vocab, E = tfm_embedding_width(c);
    if (p < 0 || p >= TFM_P_COUNT) return TFM_E_ARG;
    uint64_t needed = is_per_layer(p) ? required_layer(c) : required_global(c);
    /* the untied head may also be given when tied (ignored), every other slot must be used */
    const int head_ok = p == TFM_P_LM_HEAD && (!tfm_arch_is_encoder(c->arch) || c->mlm_size > 0);
    if (!(needed & BIT(p)) && !head_ok) return TFM_E_ARG;
    *ndim = 1;
    shape[1] = 0;
    switch (p) {
    case TFM_P_WTE: *ndim = 2; shape[0] = V; shape[1] = E; break;
    case TFM_P_LM_HEAD: *ndim = 2; shape[0] = V; shape[1] = tfm_arch_is_encoder(c->arch) ? c->mlm_size : C; break;
    case TFM_P_WPE: *ndim = 2; shape[0] = c->n_positions; shape[1] = E; break;
    case TFM_P_TOKEN_TYPE: *ndim = 2; shape[0] = c->type_vocab_size; shape[1] = E; break;
    case TFM_P_EMB_LN_W: case TFM_P_EMB_LN_B: shape[0] = E; break;
    case TFM_P_EMB_PROJ_W: *ndim = 2; shape[0] = C; shape[1] = E; break;
    case TFM_P_POOL_W: case TFM_P_TOK_DENSE_W: *ndim = 2; shape[0] = C; shape[1] = C; break;
    case TFM_P_SEQ_W: *ndim = 2; shape[0] = c->n_seq_labels; shape[1] = C; break;
    case TFM_P_SEQ_B: shape[0] = c->n_seq_labels; break;
    case TFM_P_MLM_DENSE_W: *ndim = 2; shape[0] = c->mlm_size; shape[1] = C; break;
    case TFM_P_MLM_DENSE_B: case TFM_P_MLM_LN_W: case TFM_P_MLM_LN_B: shape[0] = c->mlm_size; break;
    case TFM_P_MLM_BIAS: shape[0] = V; break;
    case TFM_P_TOK_W: *ndim = 2; shape[0] = c->n_tok_labels; shape[1] = C; break;
    case TFM_P_TOK_B: shape[0] = c->n_tok_labels; break;
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
    tfm_encoder_weights *e = &m->enc;
    const int64_t n = ndim == 2 ? es[0] * es[1] : es[0]; /* elements of the slot */
    /* plain float tables and vectors have no [in][out] variant */
    if (layout == 1 && (p == TFM_P_WPE || p == TFM_P_TOKEN_TYPE)) return TFM_E_ARG;
    switch (p) {
    case TFM_P_WTE: st = tfm_linear_set_rows(&m->wte, 0, src, dtype, es[0], layout); break;
    case TFM_P_LM_HEAD:
        if (m->cfg.tie_word_embeddings) return TFM_OK; /* tied: the embedding is the head */
        st = tfm_linear_set_rows(&m->lm_head, 0, src, dtype, es[0], layout);
        break;
    case TFM_P_WPE: tfm_convert_to_f32(m->wpe, src, dtype, n); break;
    case TFM_P_TOKEN_TYPE: tfm_convert_to_f32(e->token_type, src, dtype, n); break;
    case TFM_P_EMB_LN_W: tfm_convert_to_f32(e->ln_w, src, dtype, n); break;
    case TFM_P_EMB_LN_B: tfm_convert_to_f32(e->ln_b, src, dtype, n); break;
    case TFM_P_EMB_PROJ_W: st = tfm_linear_set_rows(&e->proj, 0, src, dtype, es[0], layout); break;
    case TFM_P_EMB_PROJ_B: st = tfm_linear_set_bias(&e->proj, 0, src, dtype, n); break;
    case TFM_P_POOL_W: st = tfm_linear_set_rows(&e->pool, 0, src, dtype, es[0], layout); break;
    case TFM_P_POOL_B: st = tfm_linear_set_bias(&e->pool, 0, src, dtype, n); break;
    case TFM_P_SEQ_W: st = tfm_linear_set_rows(&e->seq, 0, src, dtype, es[0], layout); break;
    case TFM_P_SEQ_B: st = tfm_linear_set_bias(&e->seq, 0, src, dtype, n); break;
    case TFM_P_MLM_DENSE_W: st = tfm_linear_set_rows(&e->mlm_dense, 0, src, dtype, es[0], layout); break;
    case TFM_P_MLM_DENSE_B: st = tfm_linear_set_bias(&e->mlm_dense, 0, src, dtype, n); break;
    case TFM_P_MLM_LN_W: tfm_convert_to_f32(e->mlm_ln_w, src, dtype, n); break;
    case TFM_P_MLM_LN_B: tfm_convert_to_f32(e->mlm_ln_b, src, dtype, n); break;
    case TFM_P_MLM_BIAS:
        st = tfm_linear_set_bias(m->cfg.tie_word_embeddings ? &m->wte : &m->lm_head, 0, src, dtype, n);
        break;
    case TFM_P_TOK_DENSE_W: st = tfm_linear_set_rows(&e->tok_dense, 0, src, dtype, es[0], layout); break;
    case TFM_P_TOK_DENSE_B: st = tfm_linear_set_bias(&e->tok_dense, 0, src, dtype, n); break;
    case TFM_P_TOK_W: st = tfm_linear_set_rows(&e->tok, 0, src, dtype, es[0], layout); break;
    case TFM_P_TOK_B: st = tfm_linear_set_bias(&e->tok, 0, src, dtype, n); break;
    case TFM_P_Q_B: st = tfm_linear_set_bias(&ly->qkv, 0, src, dtype, C); break;
    case TFM_P_K_B: st = tfm_linear_set_bias(&ly->qkv, C, src, dtype, C); break;
    case TFM_P_V_B: st = tfm_linear_set_bias(&ly->qkv, 2 * C, src, dtype, C); break;
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
        ly->loaded |= BIT(p);
    else
        m->loaded |= BIT(p);
    return TFM_OK;
}

tfm_status tfm_model_check_loaded(const tfm_model *m, tfm_param *missing, int32_t *layer) {
    uint64_t g = required_global(&m->cfg), lr = required_layer(&m->cfg);
    for (int p = 0; p < TFM_P_COUNT; p++)
        if ((g & BIT(p)) && !(m->loaded & BIT(p))) {
            *missing = (tfm_param)p;
            *layer = -1;
            return TFM_E_STATE;
        }
    for (int32_t l = 0; l < m->cfg.n_layer; l++)
        for (int p = 0; p < TFM_P_COUNT; p++)
            if ((lr & BIT(p)) && !(m->layers[l].loaded & BIT(p))) {
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
    if (tfm_arch_is_encoder(m->cfg.arch)) return TFM_E_ARG; /* encoders see the whole input at once */
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
    free(c->scratch);
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

/* Positions [p0, len) of one row (all layers, heads) of buf ↔ a packed row [L][NH][len][D]. */
static void cache_row_io(float *buf, int64_t batch, int64_t row, float *packed, int to_packed, const tfm_kv_cache *c,
                         int64_t p0, int64_t len) {
    const int64_t NH = c->n_head, D = c->head_dim;
    const size_t bytes = (size_t)((len - p0) * D) * sizeof(float);
    if (len <= p0) return;
    for (int64_t l = 0; l < c->n_layer; l++)
        for (int64_t h = 0; h < NH; h++) {
            float *cell = buf + (((l * batch + row) * NH + h) * c->capacity + p0) * D;
            float *p = packed + ((l * NH + h) * len + p0) * D;
            if (to_packed)
                memcpy(p, cell, bytes);
            else
                memcpy(cell, p, bytes);
        }
}

/* Row r ← row s for positions [p0, len), straight within the buffer. */
static void cache_row_move(float *buf, int64_t batch, int64_t r, int64_t s, const tfm_kv_cache *c, int64_t p0,
                           int64_t len) {
    const int64_t NH = c->n_head, D = c->head_dim;
    if (len <= p0) return;
    for (int64_t l = 0; l < c->n_layer; l++)
        for (int64_t h = 0; h < NH; h++)
            memcpy(buf + (((l * batch + r) * NH + h) * c->capacity + p0) * D,
                   buf + (((l * batch + s) * NH + h) * c->capacity + p0) * D, (size_t)((len - p0) * D) * sizeof(float));
}

/* Same batch size: move only the rows that change, in place, and of those only the positions
 * from first[r] on (the caller knows the rows agree before it: beams share their prefix, and
 * K/V of a position depend only on the tokens up to it). Rows that are overwritten while another
 * row still reads them are saved first. */
static tfm_status reorder_in_place(tfm_kv_cache *c, const int64_t *src, const int64_t *first) {
    const int64_t B = c->batch, len = c->length;
    const size_t row_floats = (size_t)c->n_layer * (size_t)c->n_head * (size_t)len * (size_t)c->head_dim;
    if (len == 0) return TFM_OK;
    int64_t *slot = (int64_t *)malloc((size_t)B * sizeof(int64_t)); /* saved copy index of a row, or −1 */
    if (!slot) return TFM_E_NOMEM;
    int64_t n_saved = 0;
    for (int64_t r = 0; r < B; r++) slot[r] = -1;
    for (int64_t r = 0; r < B; r++) {
        int64_t s = src[r];
        if (s == r || (first && first[r] >= len)) continue;
        /* s is read by r; if s itself will be overwritten, it must be saved */
        if (src[s] != s && !(first && first[s] >= len) && slot[s] < 0) slot[s] = n_saved++;
    }
    size_t need = (size_t)n_saved * 2 * row_floats;
    if (need > c->scratch_floats) {
        float *grown = (float *)realloc(c->scratch, need * sizeof(float));
        if (!grown) {
            free(slot);
            return TFM_E_NOMEM;
        }
        c->scratch = grown, c->scratch_floats = need;
    }
    float *saved = c->scratch;
    for (int64_t r = 0; r < B; r++)
        if (slot[r] >= 0) {
            cache_row_io(c->k, B, r, saved + (size_t)slot[r] * 2 * row_floats, 1, c, 0, len);
            cache_row_io(c->v, B, r, saved + ((size_t)slot[r] * 2 + 1) * row_floats, 1, c, 0, len);
        }
    /* rows that are read but not overwritten can be copied from directly; do those last so a
     * direct source is never a row changed earlier in this loop */
    for (int pass = 0; pass < 2; pass++)
        for (int64_t r = 0; r < B; r++) {
            int64_t s = src[r], p0 = first ? first[r] : 0;
            if (s == r || p0 >= len || (slot[s] >= 0) != (pass == 0)) continue;
            if (slot[s] >= 0) {
                cache_row_io(c->k, B, r, saved + (size_t)slot[s] * 2 * row_floats, 0, c, p0, len);
                cache_row_io(c->v, B, r, saved + ((size_t)slot[s] * 2 + 1) * row_floats, 0, c, p0, len);
            } else {
                cache_row_move(c->k, B, r, s, c, p0, len);
                cache_row_move(c->v, B, r, s, c, p0, len);
            }
        }
    free(slot);
    return TFM_OK;
}

tfm_status tfm_kv_cache_reorder_from(tfm_kv_cache *c, const int64_t *src, int64_t new_batch, const int64_t *first) {
    if (!c->k) return TFM_E_STATE;
    if (new_batch <= 0 || !src) return TFM_E_ARG;
    for (int64_t b = 0; b < new_batch; b++)
        if (src[b] < 0 || src[b] >= c->batch || (first && first[b] < 0)) return TFM_E_RANGE;
    if (new_batch == c->batch) return reorder_in_place(c, src, first);
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

tfm_status tfm_kv_cache_reorder(tfm_kv_cache *c, const int64_t *src, int64_t new_batch) {
    return tfm_kv_cache_reorder_from(c, src, new_batch, NULL);
}

tfm_status tfm_kv_cache_copy(tfm_kv_cache *dst, const tfm_kv_cache *src) {
    memset(dst, 0, sizeof *dst);
    if (!src->k) return TFM_E_STATE;
    *dst = *src;
    dst->scratch = NULL, dst->scratch_floats = 0;
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
    const int64_t D = C / m->cfg.n_head;
    w->scratch = zalloc_floats((int64_t)tfm_thread_capacity() * max_ctx * (D + 1)); /* scores + keysᵀ */
    w->k = zalloc_floats(max_rows * C);
    w->v = zalloc_floats(max_rows * C);
    int ok = w->x && w->xn && w->qkv && w->ctx && w->mlp && w->scratch && w->k && w->v;
    if (ok && tfm_arch_is_encoder(m->cfg.arch)) {
        int64_t width = tfm_embedding_width(&m->cfg) > C ? tfm_embedding_width(&m->cfg) : C;
        if (m->cfg.mlm_size > width) width = m->cfg.mlm_size;
        ok = (w->aux = zalloc_floats(max_rows * width)) != NULL;
    }
    if (!ok) {
        tfm_workspace_free(w);
        return TFM_E_NOMEM;
    }
    return TFM_OK;
}

void tfm_workspace_free(tfm_workspace *w) {
    free(w->x), free(w->xn), free(w->qkv), free(w->ctx), free(w->mlp), free(w->scratch), free(w->k), free(w->v);
    free(w->aux);
    memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------------------------------------
 * Forward pass
 * ------------------------------------------------------------------------------------------- */

/* x[B·T][C] = wte[ids] + wpe[pos] (+ wte[token_type]) — GPT-2 adds token types from the same table. */
static void embed(const tfm_model *m, float *x, const tfm_forward_args *a, int64_t P) {
    const int64_t C = m->cfg.hidden, T = a->T, rows = a->B * a->T;
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(static) if (rows > 16)
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
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(static) if (n > 65536)
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

/* One block, in place on ws->x. The ops and their order follow the PyTorch blocks exactly, so the
 * post-LN path serves OpenAI GPT and every BERT-family encoder. */
void tfm_layer_forward(const tfm_layer *ly, const tfm_config *cfg, tfm_workspace *ws, const tfm_block_args *a) {
    const int64_t rows = a->B * a->T, C = cfg->hidden, NH = cfg->n_head, D = C / NH, I = cfg->inner;
    float *x = ws->x, *xn = ws->xn;
    /* attention sub-block */
    const float *attn_in = x;
    if (a->pre_ln) {
        tfm_layernorm(xn, x, ly->ln1_w, ly->ln1_b, rows, C, cfg->ln_eps);
        attn_in = xn;
    }
    tfm_linear_forward(ws->qkv, 3 * C, attn_in, C, &ly->qkv, rows);
    store_kv(a->k, a->v, a->cap, ws->qkv, a->B, a->T, a->P, NH, D);
    tfm_attention(ws->ctx, a->probs, ws->qkv, 3 * C, a->k, a->v, a->cap, a->mask, a->B, a->T, a->P, NH, D, a->scale,
                  a->causal, a->window, ws->scratch);
    tfm_linear_forward(xn, C, ws->ctx, C, &ly->attn_out, rows);
    add_inplace(x, xn, rows * C);
    if (!a->pre_ln) tfm_layernorm(x, x, ly->ln1_w, ly->ln1_b, rows, C, cfg->ln_eps);
    /* MLP sub-block */
    const float *mlp_in = x;
    if (a->pre_ln) {
        tfm_layernorm(xn, x, ly->ln2_w, ly->ln2_b, rows, C, cfg->ln_eps);
        mlp_in = xn;
    }
    tfm_linear_forward(ws->mlp, I, mlp_in, C, &ly->fc_in, rows);
    tfm_activation(ws->mlp, rows * I, (tfm_act)cfg->act);
    tfm_linear_forward(xn, C, ws->mlp, I, &ly->fc_out, rows);
    add_inplace(x, xn, rows * C);
    if (!a->pre_ln) tfm_layernorm(x, x, ly->ln2_w, ly->ln2_b, rows, C, cfg->ln_eps);
}

tfm_status tfm_model_forward(const tfm_model *m, tfm_kv_cache *cache, tfm_workspace *ws, const tfm_forward_args *a) {
    if (tfm_arch_is_encoder(m->cfg.arch)) return TFM_E_ARG; /* tfm_encoder_forward */
    tfm_status st = check_forward(m, cache, ws, a);
    if (st != TFM_OK) return st;
    const tfm_config *cfg = &m->cfg;
    const int64_t B = a->B, T = a->T, rows = B * T;
    const int64_t C = cfg->hidden, NH = cfg->n_head, D = C / NH, V = cfg->vocab;
    const int64_t P = cache ? cache->length : 0, S = P + T;
    const int64_t layer_floats = cache ? B * NH * cache->capacity * D : 0;
    float *x = ws->x;

    embed(m, x, a, P);
    for (int64_t l = 0; l < cfg->n_layer; l++) {
        if (a->hidden_states) memcpy(a->hidden_states + l * rows * C, x, (size_t)(rows * C) * sizeof(float));
        float scale = 1.0f;
        if (cfg->arch != TFM_ARCH_GPT_NEO && (cfg->scale_attn_weights || cfg->arch == TFM_ARCH_OPENAI_GPT))
            scale /= sqrtf((float)D);
        if (cfg->scale_attn_by_inverse_layer_idx) scale /= (float)(l + 1);
        tfm_block_args ba = {
            .B = B, .T = T, .P = P,
            .k = cache ? cache->k + l * layer_floats : ws->k,
            .v = cache ? cache->v + l * layer_floats : ws->v,
            .cap = cache ? cache->capacity : T,
            .mask = a->attention_mask,
            .scale = scale,
            .causal = 1,
            .window = (m->layer_is_local && m->layer_is_local[l]) ? cfg->window_size : 0,
            .pre_ln = cfg->arch != TFM_ARCH_OPENAI_GPT,
            .probs = a->attentions ? a->attentions + l * B * NH * T * S : NULL,
        };
        tfm_layer_forward(&m->layers[l], cfg, ws, &ba);
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
