/* encoder.c — the BERT-family encoder forward pass and its heads, as flat sequences of kernel calls.
 *
 * Mirrors transformers' modeling_{bert,roberta,albert,distilbert,electra}.py:
 *   e = LN_E(word[id] + token_type[tt] + position[pos])        embeddings, E wide
 *   h = E ≠ C ? e·Wprojᵀ + b : e                                ALBERT / ELECTRA projection to C
 *   for each application i: h = block[layer_map[i]](h)         post-LN, bidirectional, padding mask
 * then the heads the model was built with, all on the final h:
 *   pooled     = act_p(h[:, 0]·Wpᵀ + bp)                         BERT/ALBERT pooler; the dense of the
 *   seq_logits = pooled·Wsᵀ + bs                                 RoBERTa/ELECTRA/DistilBERT class heads
 *   mlm_logits = LN(act_m(h·Wdᵀ + bd))·Wordᵀ + bias              tied decoder = the packed embedding
 *   tok_logits = [act_t(h·Wtᵀ + bt)]·Wcᵀ + bc                     token classes; ELECTRA discriminator
 * Weights and their slots live in model.c; the block is tfm_layer_forward, shared with the decoders.
 * Nothing is allocated here. Not here: losses, softmax/argmax of logits, checkpoint key names.
 */
#include "tfm.h"

#include <math.h>
#include <string.h>

static int64_t n_applications(const tfm_config *c) { return c->n_apply > 0 ? c->n_apply : c->n_layer; }
static int64_t hidden_every(const tfm_config *c) { return c->hidden_every > 0 ? c->hidden_every : 1; }

/* Position of token t in row r = b·T + t. Given ids win; RoBERTa counts the non-pad tokens up to
 * and including t and offsets by pad (pads sit at pad, real tokens at pad+1, pad+2, ...: transformers'
 * create_position_ids_from_input_ids); the rest use t. `seen` = non-pad tokens in row b up to t. */
static int64_t position_of(const tfm_config *c, const tfm_encoder_args *a, int64_t r, int64_t t, int64_t seen) {
    if (a->position_ids) return a->position_ids[r];
    if (c->arch == TFM_ARCH_ROBERTA)
        return a->input_ids[r] == c->pad_token_id ? c->pad_token_id : c->pad_token_id + seen;
    return t;
}

static tfm_status check_encoder_forward(const tfm_model *m, const tfm_workspace *ws, const tfm_encoder_args *a) {
    const tfm_config *c = &m->cfg;
    if (!tfm_arch_is_encoder(c->arch)) return TFM_E_ARG;
    if (!a->input_ids || a->B <= 0 || a->T <= 0) return TFM_E_ARG;
    if (a->B * a->T > ws->max_rows || a->T > ws->max_ctx || !ws->aux) return TFM_E_ARG;
    if (a->token_type_ids && c->type_vocab_size == 0) return TFM_E_ARG;
    if ((a->pooled && c->pooler_act < 0) || (a->seq_logits && c->n_seq_labels == 0) ||
        (a->mlm_logits && c->mlm_size == 0) || (a->tok_logits && c->n_tok_labels == 0))
        return TFM_E_STATE;
    for (int64_t b = 0; b < a->B; b++) {
        int64_t seen = 0;
        for (int64_t t = 0; t < a->T; t++) {
            const int64_t r = b * a->T + t;
            const int32_t id = a->input_ids[r];
            if (id < 0 || id >= c->vocab) return TFM_E_RANGE;
            seen += id != c->pad_token_id;
            const int64_t pos = position_of(c, a, r, t, seen);
            if (pos < 0 || pos >= c->n_positions) return TFM_E_RANGE;
            if (a->token_type_ids && (a->token_type_ids[r] < 0 || a->token_type_ids[r] >= c->type_vocab_size))
                return TFM_E_RANGE;
        }
    }
    return TFM_OK;
}

/* e[B·T][E] = LN_E(word[id] + token_type[tt] + position[pos]), in transformers' order of addition. */
static void embed(const tfm_model *m, float *e, const tfm_encoder_args *a) {
    const tfm_config *c = &m->cfg;
    const int64_t E = tfm_embedding_width(c), T = a->T;
#pragma omp parallel for num_threads(tfm_max_threads()) schedule(static) if (a->B * T > 16)
    for (int64_t b = 0; b < a->B; b++) {
        int64_t seen = 0;
        for (int64_t t = 0; t < T; t++) {
            const int64_t r = b * T + t;
            float *er = e + r * E;
            seen += a->input_ids[r] != c->pad_token_id;
            tfm_linear_get_row(&m->wte, a->input_ids[r], er);
            if (c->type_vocab_size > 0) {
                const float *tr = m->enc.token_type + (a->token_type_ids ? a->token_type_ids[r] : 0) * E;
                for (int64_t i = 0; i < E; i++) er[i] += tr[i];
            }
            const float *pe = m->wpe + position_of(c, a, r, t, seen) * E;
            for (int64_t i = 0; i < E; i++) er[i] += pe[i];
        }
    }
    tfm_layernorm(e, e, m->enc.ln_w, m->enc.ln_b, a->B * T, E, c->ln_eps);
}

/* The heads on the final hidden state ws->x. Scratch: ws->ctx (pooled), ws->aux (transforms). */
static void run_heads(const tfm_model *m, tfm_workspace *ws, const tfm_encoder_args *a) {
    const tfm_config *c = &m->cfg;
    const tfm_encoder_weights *e = &m->enc;
    const int64_t B = a->B, T = a->T, rows = B * T, C = c->hidden;
    const float *h = ws->x;
    if (a->pooled || a->seq_logits) {
        /* the first token of each row: B rows of stride T·C */
        float *pooled = a->pooled ? a->pooled : ws->ctx;
        tfm_linear_forward(pooled, C, h, T * C, &e->pool, B);
        tfm_activation(pooled, B * C, (tfm_act)c->pooler_act);
        if (a->seq_logits) tfm_linear_forward(a->seq_logits, c->n_seq_labels, pooled, C, &e->seq, B);
    }
    if (a->mlm_logits) {
        const int64_t Em = c->mlm_size;
        tfm_linear_forward(ws->aux, Em, h, C, &e->mlm_dense, rows);
        tfm_activation(ws->aux, rows * Em, (tfm_act)c->mlm_act);
        tfm_layernorm(ws->aux, ws->aux, e->mlm_ln_w, e->mlm_ln_b, rows, Em, c->ln_eps);
        /* the decoder's bias is the MLM bias (packed with the tied embedding or the untied head) */
        tfm_linear_forward(a->mlm_logits, c->vocab, ws->aux, Em, c->tie_word_embeddings ? &m->wte : &m->lm_head,
                           rows);
    }
    if (a->tok_logits) {
        const float *in = h;
        if (c->tok_act >= 0) {
            tfm_linear_forward(ws->aux, C, h, C, &e->tok_dense, rows);
            tfm_activation(ws->aux, rows * C, (tfm_act)c->tok_act);
            in = ws->aux;
        }
        tfm_linear_forward(a->tok_logits, c->n_tok_labels, in, C, &e->tok, rows);
    }
}

tfm_status tfm_encoder_forward(const tfm_model *m, tfm_workspace *ws, const tfm_encoder_args *a) {
    tfm_status st = check_encoder_forward(m, ws, a);
    if (st != TFM_OK) return st;
    const tfm_config *c = &m->cfg;
    const int64_t B = a->B, T = a->T, rows = B * T;
    const int64_t C = c->hidden, NH = c->n_head, D = C / NH, E = tfm_embedding_width(c);
    const int64_t n_apply = n_applications(c), every = hidden_every(c);
    const size_t state_bytes = (size_t)(rows * C) * sizeof(float);
    float *x = ws->x;

    if (E == C) {
        embed(m, x, a);
    } else {
        embed(m, ws->aux, a);
        tfm_linear_forward(x, C, ws->aux, E, &m->enc.proj, rows);
    }
    if (a->hidden_states) memcpy(a->hidden_states, x, state_bytes);
    for (int64_t i = 0; i < n_apply; i++) {
        tfm_block_args ba = {
            .B = B, .T = T, .P = 0,
            .k = ws->k, .v = ws->v, .cap = T,
            .mask = a->attention_mask,
            .scale = 1.0f / sqrtf((float)D),
            .causal = 0,
            .window = 0,
            .pre_ln = 0,
            .probs = a->attentions ? a->attentions + i * B * NH * T * T : NULL,
        };
        tfm_layer_forward(&m->layers[m->enc.layer_map ? m->enc.layer_map[i] : i], c, ws, &ba);
        /* ALBERT reports one hidden state per group application, not per inner layer */
        if (a->hidden_states && (i + 1) % every == 0)
            memcpy(a->hidden_states + (i + 1) / every * rows * C, x, state_bytes);
    }
    if (a->last_hidden) memcpy(a->last_hidden, x, state_bytes);
    run_heads(m, ws, a);
    return TFM_OK;
}
