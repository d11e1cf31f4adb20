/* tfm.h — the whole public API of the tfm C core.
 *
 * Dimension legend (used in every shape comment of the core):
 *   B batch rows, T tokens given in this call, P positions already in the KV cache, S = P + T,
 *   C hidden width, NH attention heads, D = C / NH head width, I MLP width, V vocabulary,
 *   L layer applications, NP max positions.
 *   Encoders add: E embedding width, TV token-type rows, E' MLM transform width, NS sequence labels,
 *   NT token labels.
 *
 * Layers of the house (arrows point one way):
 *   kernels (kernels.c, simd_*.c: math on raw arrays) → models (model.c: weights, KV cache, decoder
 *   forward; encoder.c: encoder forward and its heads; both sequences of kernel calls)
 *   → decoding (sampling.c, generate.c) → binding (module.c,
 *   the only file that includes Python.h / NumPy) → Python package.
 *
 * What the core does not do: read files, print, exit, or keep global mutable state — except two
 * process-wide settings: the kernel dispatch table (tfm_select_isa(), chosen at import) and the
 * thread cap (tfm_set_num_threads()), both plain values read at every kernel call. Every
 * function that can fail returns a tfm_status; the binding turns it into a Python exception.
 * Ownership: every *_init allocates and the matching *_free releases; a struct whose init failed
 * is safe to free.
 */
#ifndef TFM_H
#define TFM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Status codes
 * ------------------------------------------------------------------------------------------- */
typedef enum {
    TFM_OK = 0,
    TFM_E_NOMEM = 1, /* an allocation failed */
    TFM_E_ARG = 2,   /* a size, count or value is invalid */
    TFM_E_SHAPE = 3, /* a tensor shape does not match what the configuration expects */
    TFM_E_RANGE = 4, /* an index (token id, position, layer) is out of range */
    TFM_E_STATE = 5, /* an object is in the wrong state (cache of another model, missing weight) */
} tfm_status;

const char *tfm_status_str(tfm_status s);

/* ---------------------------------------------------------------------------------------------
 * Kernels (kernels.c; fast paths in simd_*.c)
 * ------------------------------------------------------------------------------------------- */

/* Element types of tensors handed to the core (checkpoints store f32, f16 or bf16). */
typedef enum { TFM_F32 = 0, TFM_F16 = 1, TFM_BF16 = 2 } tfm_dtype;

/* MLP activations: every ACT2FN name a supported config can carry maps to one of these. */
typedef enum {
    TFM_ACT_IDENTITY = 0,
    TFM_ACT_GELU_TANH = 1,  /* gelu_new, gelu_pytorch_tanh, gelu_accurate, openai-gpt "gelu" */
    TFM_ACT_GELU_ERF = 2,   /* gelu, gelu_python: 0.5·x·(1+erf(x/√2)) */
    TFM_ACT_GELU_FAST = 3,  /* gelu_fast */
    TFM_ACT_QUICK_GELU = 4, /* x·sigmoid(1.702x) */
    TFM_ACT_RELU = 5,
    TFM_ACT_SILU = 6, /* silu, swish */
    TFM_ACT_TANH = 7,
    TFM_ACT_SIGMOID = 8,
    TFM_ACT_GELU_10 = 9, /* clip(gelu, −10, 10) */
    TFM_ACT_RELU6 = 10,
    TFM_ACT_RELU2 = 11,      /* relu(x)² */
    TFM_ACT_LEAKY_RELU = 12, /* slope 0.01 (torch default) */
    TFM_ACT_MISH = 13,       /* x·tanh(softplus(x)) */
    TFM_ACT_LAPLACE = 14,    /* 0.5·(1+erf((x−μ)/(σ√2))), μ=0.707107, σ=0.282095 */
    TFM_ACT_COUNT = 15
} tfm_act;

/* Instruction-set paths. tfm_select_isa picks the best the CPU and OS support, or a weaker one
 * when asked (tests force each path); returns the chosen one. */
typedef enum { TFM_ISA_AUTO = -1, TFM_ISA_SCALAR = 0, TFM_ISA_GENERIC = 1, TFM_ISA_AVX2 = 2, TFM_ISA_AVX512 = 3 } tfm_isa;
tfm_isa tfm_select_isa(tfm_isa wanted);
const char *tfm_isa_name(tfm_isa isa);

/* A weight matrix W[N][K] (y = x·Wᵀ + b) packed for the GEMM: panels of 32 rows,
 * data[nb][k][j] = W[32·nb + j][k], rows zero-padded up to a multiple of 32. Owned, 64-byte aligned. */
typedef struct {
    float *data;    /* [ceil(N/32)][K][32] */
    float *bias;    /* [ceil(N/32)·32] zero-padded, or NULL when the layer has no bias */
    int64_t n, k;   /* N outputs, K inputs */
} tfm_linear;

tfm_status tfm_linear_init(tfm_linear *w, int64_t n, int64_t k, int has_bias);
void tfm_linear_free(tfm_linear *w);
/* Copies rows [row0, row0+rows) of W from src. layout 0: src is [rows][K] (nn.Linear, [out][in]);
 * layout 1: src is [K][rows] (GPT Conv1D, [in][out]). */
tfm_status tfm_linear_set_rows(tfm_linear *w, int64_t row0, const void *src, tfm_dtype dtype,
                               int64_t rows, int layout);
tfm_status tfm_linear_set_bias(tfm_linear *w, int64_t row0, const void *src, tfm_dtype dtype, int64_t rows);
/* out[K] = W[row] (the embedding lookup of a packed table). */
void tfm_linear_get_row(const tfm_linear *w, int64_t row, float *out);
/* y[M][N] (row stride ldy) = x[M][K] (row stride ldx)·Wᵀ + b. Threads: OpenMP over panels/rows. */
void tfm_linear_forward(float *y, int64_t ldy, const float *x, int64_t ldx, const tfm_linear *w, int64_t m);
/* The scalar twin on an unpacked W[N][K] (double accumulation): fallback and test oracle. */
void tfm_matmul_naive(float *y, const float *x, const float *w, const float *bias, int64_t m, int64_t n, int64_t k);

/* out[n] = f32(src[n]) for the given dtype (f16 incl. subnormals/inf/nan; bf16 = bits << 16). */
void tfm_convert_to_f32(float *out, const void *src, tfm_dtype dtype, int64_t n);

/* In place over rows × C: y = (x − mean)/sqrt(var + eps)·w + b (biased variance, double sums). */
void tfm_layernorm(float *out, const float *x, const float *w, const float *b, int64_t rows, int64_t c, float eps);
/* In place over n floats. */
void tfm_activation(float *x, int64_t n, tfm_act act);
/* Scalar twins (test oracles). */
void tfm_activation_scalar(float *x, int64_t n, tfm_act act);

/* Multi-head attention of T new queries over S = P + T keys, per batch row b and head h:
 *   scores_j = scale · q·k_j   for visible j (causal: j ≤ P+t; window > 0 also j > P+t−window),
 *   masked keys (mask[b][j] == 0) get −FLT_MAX added (as transformers' finfo.min), softmax, Σ p_j v_j.
 * q:     [B·T] rows of stride ldq, head h at columns h·D
 * k, v:  [B][NH][cap][D] (a KV-cache layer)
 * mask:  [B][S] 0/1 or NULL;  probs: NULL or [B][NH][T][S] (zeros where not visible)
 * ctx:   [B·T][NH·D];  scratch: [tfm_thread_capacity()][S·(D + 1)] floats. */
void tfm_attention(float *ctx, float *probs, const float *q, int64_t ldq, const float *k, const float *v,
                   int64_t cap, const int32_t *mask, int64_t B, int64_t T, int64_t P, int64_t NH, int64_t D,
                   float scale, int causal, int64_t window, float *scratch);
/* Threads a kernel call uses; tfm_set_num_threads(n) lowers it for the whole process (0 = all).
 * Per-thread scratch is sized by tfm_thread_capacity(), the upper bound. */
int tfm_max_threads(void);
int tfm_thread_capacity(void);
void tfm_set_num_threads(int n);

/* ---------------------------------------------------------------------------------------------
 * Models (model.c)
 * ------------------------------------------------------------------------------------------- */
typedef enum {
    TFM_ARCH_GPT2 = 1,       /* pre-LN, final ln_f, learned positions */
    TFM_ARCH_OPENAI_GPT = 2, /* post-LN, no final norm */
    TFM_ARCH_GPT_NEO = 3,    /* pre-LN, unscaled attention, global/local layers, q/k/v without bias */
    /* Encoders (encoder.c): bidirectional post-LN blocks, embeddings LayerNorm, optional heads. The
     * family members differ only in config fields, except RoBERTa's default position ids. */
    TFM_ARCH_BERT = 4,
    TFM_ARCH_ROBERTA = 5,    /* positions count from pad_token_id + 1 over non-pad tokens */
    TFM_ARCH_ALBERT = 6,     /* E → C projection; shared layers applied through layer_map */
    TFM_ARCH_DISTILBERT = 7, /* no token types (type_vocab_size 0) */
    TFM_ARCH_ELECTRA = 8,    /* E → C projection when E ≠ C */
} tfm_arch;

/* 1 for the encoder architectures (TFM_ARCH_BERT .. TFM_ARCH_ELECTRA). */
int tfm_arch_is_encoder(int32_t arch);

/* The blueprint. Filled by Python from config.json; validated by tfm_model_init. */
typedef struct {
    int32_t arch;                            /* tfm_arch */
    int32_t n_layer;                         /* L */
    int32_t n_head;                          /* NH */
    int32_t hidden;                          /* C, divisible by NH */
    int32_t inner;                           /* I */
    int32_t vocab;                           /* V */
    int32_t n_positions;                     /* NP */
    int32_t act;                             /* tfm_act of the MLP */
    float ln_eps;                            /* layer-norm epsilon */
    int32_t scale_attn_weights;              /* divide scores by √D */
    int32_t scale_attn_by_inverse_layer_idx; /* also divide by layer index + 1 */
    int32_t tie_word_embeddings;             /* LM head = token embedding */
    int32_t window_size;                     /* GPT-Neo local attention window */
    const int32_t *layer_is_local;           /* [L] GPT-Neo: 1 = local layer; copied at init; may be NULL */

    /* ---- encoder section (zero / −1 for decoders) ---------------------------------------------
     * n_layer counts the physical blocks; an encoder may apply them more than once (ALBERT). */
    int32_t embedding_size;  /* E: width of the embedding tables (0 = C); E ≠ C adds a projection E → C */
    int32_t type_vocab_size; /* TV: token-type rows (0 = no token types, DistilBERT) */
    int32_t pad_token_id;    /* RoBERTa: id whose positions are pad_token_id; others count from it + 1 */
    int32_t n_apply;         /* block applications (0 = n_layer) */
    const int32_t *layer_map;/* [n_apply] physical block of each application; copied; NULL = identity */
    int32_t hidden_every;    /* hidden_states recorded after every k-th application (0 = 1; ALBERT: inner groups) */
    /* heads, each optional; all read the final hidden state h [B·T][C] */
    int32_t pooler_act;      /* tfm_act of the CLS dense (pooler / classification-head dense), −1 = none */
    int32_t n_seq_labels;    /* NS: classifier on the pooled CLS vector (NSP, SOP, sequence classes), 0 = none */
    int32_t mlm_size;        /* E': MLM transform width (0 = no MLM head); tied decoder needs E' = E */
    int32_t mlm_act;         /* tfm_act of the MLM transform */
    int32_t n_tok_labels;    /* NT: per-token classifier (token classes, ELECTRA discriminator), 0 = none */
    int32_t tok_act;         /* tfm_act of a per-token dense before that classifier, −1 = none */
} tfm_config;

/* Width of the embedding tables: E for an encoder that sets embedding_size, else C. */
int64_t tfm_embedding_width(const tfm_config *c);

/* Parameter slots; `layer` selects the block for per-layer slots. Shapes are [out][in] for
 * matrices (layout 1 in tfm_model_set_param means the source is [in][out], GPT Conv1D). */
typedef enum {
    TFM_P_WTE = 0,     /* [V][C] token embedding (and LM head when tied) */
    TFM_P_WPE,         /* [NP][C] position embedding */
    TFM_P_LNF_W,       /* [C] final norm (gpt2, gpt-neo) */
    TFM_P_LNF_B,       /* [C] */
    TFM_P_LM_HEAD,     /* [V][C] untied output projection */
    TFM_P_LN1_W,       /* [C] per layer: first norm (pre-LN: before attention; post-LN: after) */
    TFM_P_LN1_B,       /* [C] */
    TFM_P_QKV_W,       /* [3C][C] fused q|k|v */
    TFM_P_QKV_B,       /* [3C] */
    TFM_P_Q_W,         /* [C][C] rows 0..C of the fused matrix */
    TFM_P_K_W,         /* [C][C] rows C..2C */
    TFM_P_V_W,         /* [C][C] rows 2C..3C */
    TFM_P_ATTN_OUT_W,  /* [C][C] */
    TFM_P_ATTN_OUT_B,  /* [C] */
    TFM_P_LN2_W,       /* [C] second norm */
    TFM_P_LN2_B,       /* [C] */
    TFM_P_FC_IN_W,     /* [I][C] */
    TFM_P_FC_IN_B,     /* [I] */
    TFM_P_FC_OUT_W,    /* [C][I] */
    TFM_P_FC_OUT_B,    /* [C] */
    /* encoder slots (per layer) */
    TFM_P_Q_B,         /* [C] bias rows 0..C of the fused q|k|v */
    TFM_P_K_B,         /* [C] */
    TFM_P_V_B,         /* [C] */
    /* encoder slots (global). The MLM decoder, when untied, uses TFM_P_LM_HEAD with shape [V][E']. */
    TFM_P_TOKEN_TYPE,  /* [TV][E] token-type embedding */
    TFM_P_EMB_LN_W,    /* [E] embeddings LayerNorm */
    TFM_P_EMB_LN_B,    /* [E] */
    TFM_P_EMB_PROJ_W,  /* [C][E] ALBERT embedding_hidden_mapping_in, ELECTRA embeddings_project */
    TFM_P_EMB_PROJ_B,  /* [C] */
    TFM_P_POOL_W,      /* [C][C] CLS dense: pooler, or the dense of a classification head */
    TFM_P_POOL_B,      /* [C] */
    TFM_P_SEQ_W,       /* [NS][C] classifier on the pooled vector */
    TFM_P_SEQ_B,       /* [NS] */
    TFM_P_MLM_DENSE_W, /* [E'][C] MLM transform */
    TFM_P_MLM_DENSE_B, /* [E'] */
    TFM_P_MLM_LN_W,    /* [E'] */
    TFM_P_MLM_LN_B,    /* [E'] */
    TFM_P_MLM_BIAS,    /* [V] output bias of the MLM decoder (tied or not) */
    TFM_P_TOK_DENSE_W, /* [C][C] per-token dense (ELECTRA discriminator) */
    TFM_P_TOK_DENSE_B, /* [C] */
    TFM_P_TOK_W,       /* [NT][C] per-token classifier */
    TFM_P_TOK_B,       /* [NT] */
    TFM_P_COUNT
} tfm_param;

typedef struct {
    float *ln1_w, *ln1_b;     /* [C] */
    tfm_linear qkv;           /* [3C][C] */
    tfm_linear attn_out;      /* [C][C] */
    float *ln2_w, *ln2_b;     /* [C] */
    tfm_linear fc_in;         /* [I][C] */
    tfm_linear fc_out;        /* [C][I] */
    uint64_t loaded;          /* bit per per-layer tfm_param that was set */
} tfm_layer;

/* Encoder-only weights (encoder section); unused pointers stay NULL. */
typedef struct {
    float *token_type;         /* [TV][E] */
    float *ln_w, *ln_b;        /* [E] embeddings LayerNorm */
    tfm_linear proj;           /* [C][E] when E ≠ C */
    tfm_linear pool;           /* [C][C] */
    tfm_linear seq;            /* [NS][C] */
    tfm_linear mlm_dense;      /* [E'][C] */
    float *mlm_ln_w, *mlm_ln_b;/* [E'] */
    tfm_linear tok_dense;      /* [C][C] */
    tfm_linear tok;            /* [NT][C] */
    int32_t *layer_map;        /* [n_apply] owned copy, or NULL (identity) */
} tfm_encoder_weights;

/* Weights: owned, converted to f32 and packed at load. Immutable after loading, so any number of
 * threads may run forward passes on one model at once (each with its own workspace and cache). */
typedef struct {
    tfm_config cfg;
    int32_t *layer_is_local; /* [L] owned copy, or NULL */
    tfm_linear wte;          /* [V][C] (encoders [V][E]; with a bias = the MLM bias when the decoder is tied) */
    float *wpe;              /* [NP][C] (encoders [NP][E]) */
    float *lnf_w, *lnf_b;    /* [C] */
    tfm_linear lm_head;      /* [V][C], only when untied (encoders: MLM decoder [V][E'] with bias) */
    tfm_layer *layers;       /* [L] */
    tfm_encoder_weights enc; /* encoder section */
    uint64_t loaded;         /* bit per global tfm_param that was set */
    uint64_t uid;            /* identifies the model to the caches made for it */
} tfm_model;

tfm_status tfm_model_init(tfm_model *m, const tfm_config *cfg);
void tfm_model_free(tfm_model *m);
/* Copies one parameter (converted to f32). shape/ndim must match the slot exactly. */
tfm_status tfm_model_set_param(tfm_model *m, tfm_param p, int32_t layer, const void *src, tfm_dtype dtype,
                               int32_t ndim, const int64_t *shape, int layout);
/* Expected shape of a slot: writes ndim and shape[0..1]; TFM_E_ARG if the slot is unused by the arch. */
tfm_status tfm_model_param_shape(const tfm_model *m, tfm_param p, int32_t *ndim, int64_t shape[2]);
/* TFM_OK when every parameter the architecture needs was set; else TFM_E_STATE with the first
 * missing slot and layer (−1 for global slots) written out. */
tfm_status tfm_model_check_loaded(const tfm_model *m, tfm_param *missing, int32_t *layer);

/* KV cache: K and V of every layer for B rows, grown on demand, reordered for beams. */
typedef struct {
    int32_t n_layer, n_head, head_dim;
    int64_t batch;     /* B */
    int64_t capacity;  /* positions allocated per row */
    int64_t length;    /* P: positions filled (the same for every row; pads are masked, not skipped) */
    float *k, *v;      /* [L][B][NH][capacity][D] */
    uint64_t model_uid;
    float *scratch;    /* reorder scratch, grown on demand and kept (beam search reorders every step) */
    size_t scratch_floats;
} tfm_kv_cache;

tfm_status tfm_kv_cache_init(tfm_kv_cache *c, const tfm_model *m, int64_t batch, int64_t capacity);
void tfm_kv_cache_free(tfm_kv_cache *c);
/* Grows capacity (contents kept). */
tfm_status tfm_kv_cache_reserve(tfm_kv_cache *c, int64_t capacity);
/* Row r of the result = row src[r] of the current cache, r < new_batch (beam reorder / expansion). */
tfm_status tfm_kv_cache_reorder(tfm_kv_cache *c, const int64_t *src, int64_t new_batch);
/* The same, when the caller knows that row r and its source agree on positions before first[r]
 * (e.g. beams with a common prefix): only positions from first[r] on are copied. */
tfm_status tfm_kv_cache_reorder_from(tfm_kv_cache *c, const int64_t *src, int64_t new_batch, const int64_t *first);
/* Deep copy. */
tfm_status tfm_kv_cache_copy(tfm_kv_cache *dst, const tfm_kv_cache *src);

/* Scratch of one forward call: sized once for up to max_rows = B·T rows and max_ctx = S keys. */
typedef struct {
    int64_t max_rows, max_ctx;
    float *x;       /* [rows][C] residual stream */
    float *xn;      /* [rows][C] normed input of a sub-block */
    float *qkv;     /* [rows][3C] */
    float *ctx;     /* [rows][C] attention output before projection */
    float *mlp;     /* [rows][I] */
    float *scratch; /* [threads][max_ctx·(D + 1)] attention scores and transposed keys */
    float *k, *v;   /* [rows][C] K/V of one layer when no cache is used */
    float *aux;     /* encoders: [rows][max(E, E', C)] embeddings before projection, head transforms */
} tfm_workspace;

tfm_status tfm_workspace_init(tfm_workspace *w, const tfm_model *m, int64_t max_rows, int64_t max_ctx);
void tfm_workspace_free(tfm_workspace *w);

typedef enum { TFM_LOGITS_NONE = 0, TFM_LOGITS_LAST = 1, TFM_LOGITS_ALL = 2 } tfm_logits_mode;

/* One forward call. Inputs are read-only; outputs that are NULL are not computed. */
typedef struct {
    const int32_t *input_ids;      /* [B][T] */
    const int32_t *attention_mask; /* [B][S] 0/1, or NULL (all ones) */
    const int32_t *position_ids;   /* [B][T], or NULL (P + t) */
    const int32_t *token_type_ids; /* [B][T], or NULL */
    int64_t B, T;
    int32_t logits_mode;   /* tfm_logits_mode */
    float *logits;         /* [B][T][V] (ALL) or [B][V] (LAST) */
    float *last_hidden;    /* [B][T][C] final hidden state (after the final norm, if any) */
    float *hidden_states;  /* [L+1][B][T][C] as transformers' output_hidden_states */
    float *attentions;     /* [L][B][NH][T][S] as transformers' output_attentions */
} tfm_forward_args;

/* Runs the model on T new tokens per row. With a cache, K/V of the new positions are appended
 * (cache->length += T) and attention covers the P cached positions; cache may be NULL (P = 0).
 * Checks ids < V, positions < NP, sizes against the workspace and the cache's model. */
tfm_status tfm_model_forward(const tfm_model *m, tfm_kv_cache *cache, tfm_workspace *ws,
                             const tfm_forward_args *a);

/* One block call, shared by the decoder and the encoder forward passes. */
typedef struct {
    int64_t B, T, P;     /* batch rows, new tokens per row, positions already cached */
    float *k, *v;        /* destination of this call's K/V: [B][NH][cap][D] (a cache layer or workspace) */
    int64_t cap;         /* positions per (row, head) in k and v */
    const int32_t *mask; /* [B][P+T] 0/1 or NULL */
    float scale;         /* multiplies q·k */
    int32_t causal;      /* 1: query t sees keys ≤ P+t */
    int64_t window;      /* > 0 with causal: only the last `window` keys (GPT-Neo local layers) */
    int32_t pre_ln;      /* 1: x += f(LN(x)) (GPT-2); 0: x = LN(x + f(x)) (BERT, OpenAI GPT) */
    float *probs;        /* NULL or [B][NH][T][P+T] attention probabilities */
} tfm_block_args;

/* Attention sub-block then MLP sub-block, in place on ws->x [B·T][C]; buffers from ws (sizes are
 * the caller's responsibility, checked by the forward functions). */
void tfm_layer_forward(const tfm_layer *ly, const tfm_config *cfg, tfm_workspace *ws, const tfm_block_args *a);

/* ---------------------------------------------------------------------------------------------
 * Encoders (encoder.c): BERT, RoBERTa, ALBERT, DistilBERT, ELECTRA and their heads
 * ------------------------------------------------------------------------------------------- */

/* One encoder call on B rows of T tokens (no cache). Inputs are read-only; NULL outputs are not
 * computed; asking for a head the model was not built with is TFM_E_STATE. */
typedef struct {
    const int32_t *input_ids;      /* [B][T] */
    const int32_t *attention_mask; /* [B][T] 0/1, or NULL (all ones) */
    const int32_t *position_ids;   /* [B][T], or NULL (t; RoBERTa: counted over non-pad tokens) */
    const int32_t *token_type_ids; /* [B][T], or NULL (zeros); must be NULL when TV = 0 */
    int64_t B, T;
    float *last_hidden;   /* [B][T][C] */
    float *hidden_states; /* [n_apply / hidden_every + 1][B][T][C] (index 0: encoder input, after projection) */
    float *attentions;    /* [n_apply][B][NH][T][T] */
    float *pooled;        /* [B][C] act(CLS·Wpᵀ + b) */
    float *seq_logits;    /* [B][NS] */
    float *mlm_logits;    /* [B][T][V] */
    float *tok_logits;    /* [B][T][NT] */
} tfm_encoder_args;

/* Checks ids < V, token types < TV, positions < NP, sizes against the workspace. */
tfm_status tfm_encoder_forward(const tfm_model *m, tfm_workspace *ws, const tfm_encoder_args *a);

/* ---------------------------------------------------------------------------------------------
 * Decoding: processors and samplers (sampling.c, sampling_select.c, samplers_llama.c)
 *
 * Every function works on ONE row of scores z[V] in place; the batch loop is the caller's (rows
 * are independent, so rows may run on different threads, each with its own workspace).
 * "Removed" means set to −INFINITY. Rows must hold no NaN and no +inf (the binding refuses them
 * with a ValueError; a model forward pass never produces them); −inf is allowed anywhere.
 * A row whose entries are all −inf has no distribution: filters leave it unchanged, the samplers
 * return TFM_E_ARG.
 * History: ids[n] = every token of the sequence so far (prompt + generated, oldest first), as
 * transformers' input_ids row; ids outside [0, V) give TFM_E_RANGE (the row is left unchanged).
 * Ties: exact ties at a cut are resolved as transformers would with a *stable* sort (its
 * torch.sort is unstable above ~100 entries, so HF itself leaves them unspecified); each filter
 * states its rule.
 * Nothing here allocates: scratch comes from a tfm_sampling_ws sized once for V.
 * ------------------------------------------------------------------------------------------- */

/* x[i] = e^(x[i] − shift) in place over n floats through the chosen ISA path; returns Σ (float
 * accumulation). Arguments below −87.3 are clamped (results ≥ 1.2e-38, never 0). */
float tfm_exp_shift_sum(float *x, float shift, int64_t n);
/* log Σ e^x[i] over n floats, reading x twice and writing nothing (−inf when all are −inf). */
float tfm_logsumexp(const float *x, int64_t n);

/* RNG: xoshiro256** (Blackman & Vigna 2018), state seeded by splitmix64 from (seed, stream), so
 * each batch row / beam owns a generator whose draws depend on nothing else. Copy the struct to
 * fork a stream (beams). */
typedef struct {
    uint64_t s[4];
} tfm_rng;

void tfm_rng_seed(tfm_rng *r, uint64_t seed, uint64_t stream);
uint64_t tfm_rng_next(tfm_rng *r);
/* u in [0, 1): the top 53 bits of one draw. */
double tfm_rng_uniform(tfm_rng *r);
/* Standard Gumbel −ln(−ln u), u in (0, 1) (one draw). */
double tfm_rng_gumbel(tfm_rng *r);

/* Scratch of the selecting/sorting functions for rows of up to cap entries. One per thread. */
typedef struct {
    int64_t cap;     /* V it was sized for */
    float *e;        /* [cap] exponentials / probabilities */
    float *val;      /* [cap] compacted finite values */
    float *aux;      /* [cap] a second float row (typical's distances) */
    int32_t *id;     /* [cap] compacted token ids */
    uint64_t *keys;  /* [cap] sort keys */
    uint64_t *top;   /* [cap] selected keys */
    uint64_t *tmp;   /* [cap] radix-sort buffer */
    int32_t *count;  /* [cap] per-token counters, all zero between calls */
} tfm_sampling_ws;

tfm_status tfm_sampling_ws_init(tfm_sampling_ws *w, int64_t cap);
void tfm_sampling_ws_free(tfm_sampling_ws *w);

/* What one filter did, for tracing: kept = finite entries after it; mass = probability, under
 * softmax of the row *before* the filter, of the entries it kept (1 for no-ops). Pass NULL when
 * not wanted (then nothing extra is computed). */
typedef struct {
    int64_t kept;
    double mass;
} tfm_filter_info;

/* ---- distributions and selection --------------------------------------------------------- */
/* p[V] = softmax(z) (max-subtracted; p may alias z). TFM_E_ARG when every entry is −inf. */
tfm_status tfm_softmax(float *p, const float *z, int64_t V);
/* out[V] = z − max − ln Σ e^(z − max) (may alias z). TFM_E_ARG when every entry is −inf. */
tfm_status tfm_log_softmax(float *out, const float *z, int64_t V);
/* Index of the largest entry, the first one on ties (torch.argmax); 0 when all are −inf. */
int64_t tfm_argmax(const float *z, int64_t V);
/* out[k] = indices of the k largest z, descending, lower index first on ties (k ≤ V). */
tfm_status tfm_top_indices(int32_t *out, const float *z, int64_t V, int64_t k, tfm_sampling_ws *w);

/* Multinomial draw from softmax(z) (or from weights w ≥ 0 when is_prob): one uniform double u
 * per draw; returns the first index of positive weight whose running sum (double, in index
 * order, advanced 256 entries at a time) reaches u·total. *token receives it. TFM_E_ARG when the
 * total weight is 0. Rows that are mostly −inf (after top-k) only visit their finite entries. */
tfm_status tfm_sample(int64_t *token, const float *z, int64_t V, int is_prob, tfm_rng *r, tfm_sampling_ws *w);
/* k draws into out[k]; replacement = 0 removes each drawn index before the next draw (as
 * torch.multinomial(replacement=False)); then k must not exceed the number of positive weights. */
tfm_status tfm_sample_n(int64_t *out, int64_t k, int replacement, const float *z, int64_t V, int is_prob,
                        tfm_rng *r, tfm_sampling_ws *w);
/* z_i += Gumbel noise for every finite z_i (Gumbel-max: argmax(z + G) ~ softmax(z); the top-k of
 * z + G are k draws without replacement — Kool et al. 2019). One draw per finite entry. */
void tfm_gumbel_perturb(float *z, int64_t V, tfm_rng *r);

/* ---- transformers warpers (HF parity; min_keep = min_tokens_to_keep ≥ 1) ----------------- */
/* t > 0: z /= t. t == 0: greedy, every entry but the first maximum becomes −inf. */
tfm_status tfm_temperature_apply(float *z, int64_t V, float t);
/* k ≥ 0 (0 = off): keep z ≥ the max(k, min_keep)-th largest value (all ties kept). */
tfm_status tfm_top_k_apply(float *z, int64_t V, int64_t k, int64_t min_keep, tfm_sampling_ws *w,
                           tfm_filter_info *info);
/* 0 < p ≤ 1: sort ascending (stable), c = cumulative softmax; remove c ≤ float32(1 − p) except the
 * last min_keep (p is a double because transformers forms 1 − p in double before rounding). Among
 * equal values at the cut the higher ids survive (stable ascending order). */
tfm_status tfm_top_p_apply(float *z, int64_t V, double p, int64_t min_keep, tfm_sampling_ws *w,
                           tfm_filter_info *info);
/* 0 ≤ m ≤ 1: remove p_i < m·max p, then force-keep the top min_keep (lower ids first on ties). */
tfm_status tfm_min_p_apply(float *z, int64_t V, float m, int64_t min_keep, tfm_sampling_ws *w,
                           tfm_filter_info *info);
/* 0 < mass ≤ 1 (1 = off): locally typical sampling (Meister et al. 2022) as TypicalLogitsWarper;
 * sort by |−ln p − H| ascending (stable). */
tfm_status tfm_typical_apply(float *z, int64_t V, float mass, int64_t min_keep, tfm_sampling_ws *w,
                             tfm_filter_info *info);
/* 0 ≤ eps < 1 (0 = off): remove p_i < eps unless z_i ≥ the min_keep-th largest value. */
tfm_status tfm_epsilon_apply(float *z, int64_t V, float eps, int64_t min_keep, tfm_sampling_ws *w,
                             tfm_filter_info *info);
/* 0 ≤ eps < 1 (0 = off): eta = min(eps, √eps·e^−H(p)) (Hewitt et al. 2022), then as epsilon. */
tfm_status tfm_eta_apply(float *z, int64_t V, float eps, int64_t min_keep, tfm_sampling_ws *w,
                         tfm_filter_info *info);

/* ---- transformers penalties and constraints ---------------------------------------------- */
/* CTRL repetition penalty over the distinct ids: z < 0 ? z·θ : z/θ (θ > 0). */
tfm_status tfm_repetition_penalty_apply(float *z, int64_t V, const int32_t *ids, int64_t n, float penalty,
                                        tfm_sampling_ws *w);
/* Ban every y such that (last ngram−1 ids, y) already occurs in ids (ngram ≥ 1). */
tfm_status tfm_no_repeat_ngram_apply(float *z, int64_t V, const int32_t *ids, int64_t n, int64_t ngram);
/* Sequences s_k = ids[offsets[k] .. offsets[k+1]) with bias[k] (−inf for bad words). Length 1:
 * z[s] += b always; length m ≥ 2 with m ≤ n: z[s_m] += b when the history ends with s_1..s_{m−1}.
 * Biases of one token accumulate in float, length-1 first, then in list order (as HF). */
typedef struct {
    const int32_t *ids;     /* [offsets[count]] concatenated sequences */
    const int64_t *offsets; /* [count + 1], offsets[0] = 0, strictly increasing */
    const float *bias;      /* [count] */
    int64_t count;
} tfm_sequence_bias;
tfm_status tfm_sequence_bias_apply(float *z, int64_t V, const int32_t *ids, int64_t n, const tfm_sequence_bias *sb,
                                   tfm_sampling_ws *w);
/* z[tokens[i]] = −inf. */
tfm_status tfm_tokens_suppress(float *z, int64_t V, const int32_t *tokens, int64_t count);
/* EOS ban while length < min_length: MinLength with length = n, MinNewTokens with length = n − P. */
tfm_status tfm_min_length_apply(float *z, int64_t V, int64_t length, int64_t min_length, const int32_t *eos,
                                int64_t n_eos);

/* ---- llama.cpp samplers (samplers_llama.c); formulas in reference/decoding.md §4.3 -------- */
/* OpenAI/llama.cpp penalties over the last window ids: z_v −= c_v·freq + [c_v > 0]·presence,
 * c_v = count of v. (llama.cpp's multiplicative part is tfm_repetition_penalty_apply.) */
tfm_status tfm_frequency_presence_apply(float *z, int64_t V, const int32_t *ids, int64_t n, float freq,
                                        float presence, tfm_sampling_ws *w);
/* Top-nσ (Tang et al. 2024): over finite entries, remove z < max − n·σ (population σ), n > 0. */
tfm_status tfm_top_n_sigma_apply(float *z, int64_t V, float n, tfm_filter_info *info);
/* XTC: with probability `probability` (one uniform draw, only when ≥ 2 finite entries, probability
 * > 0 and threshold ≤ 0.5), remove every token with p ≥ threshold except the least likely of them,
 * provided ≥ min_keep remain. Ties among the above-threshold: the highest id is the one kept. */
tfm_status tfm_xtc_apply(float *z, int64_t V, float probability, float threshold, int64_t min_keep, tfm_rng *r,
                         tfm_sampling_ws *w, tfm_filter_info *info);
/* DRY (p-e-w, as llama.cpp/koboldcpp). The window is the last min(n, last_n) ids (last_n < 0 =
 * all). Breakers: sequences of ids, head = first id, tail = the rest. Scratch zbuf: [window]. */
typedef struct {
    float multiplier, base;  /* penalty = multiplier · base^(len − allowed_length) */
    int64_t allowed_length;  /* repeats shorter than this are free */
    int64_t last_n;          /* window; < 0 = the whole history; 0 = off */
    const int32_t *breaker_ids;     /* concatenated breaker sequences */
    const int64_t *breaker_offsets; /* [n_breakers + 1] */
    int64_t n_breakers;
} tfm_dry_params;
tfm_status tfm_dry_apply(float *z, int64_t V, const int32_t *ids, int64_t n, const tfm_dry_params *p,
                         int32_t *zbuf, tfm_sampling_ws *w);
/* Mirostat (Basu et al. 2020), one step: truncate z (removed = −inf), draw *token from the rest,
 * update *mu ← mu − eta·(−log2 p_token − tau), p renormalised over the kept tokens (llama.cpp
 * updates mu in apply; there is no separate accept). v1: the top min(m, finite) probabilities
 * estimate the Zipf exponent ŝ, vocabulary = V, keep the top ⌊k⌋ (k NaN or < 1: one token; k ≥
 * finite: all). v2: keep −log2 p ≤ mu (at least the top token). Ties: lower ids first. */
tfm_status tfm_mirostat_sample(int64_t *token, float *z, int64_t V, float tau, float eta, int32_t m, float *mu,
                               tfm_rng *r, tfm_sampling_ws *w);
tfm_status tfm_mirostat_v2_sample(int64_t *token, float *z, int64_t V, float tau, float eta, float *mu,
                                  tfm_rng *r, tfm_sampling_ws *w);


/* ---------------------------------------------------------------------------------------------
 * Generation (generate.c: the step loop, greedy, sampling, contrastive; beam.c: the beam
 * searches). A tfm_generator owns the KV cache, the running sequences and the per-row random
 * streams of one generate() call; outputs go to caller-owned arrays sized by tfm_gen_output_dims.
 *
 * Semantics follow transformers' generate() (v4.55: _sample, _beam_search, _group_beam_search with
 * the legacy BeamSearchScorer, _contrastive_search) step for step, incl. float32 score arithmetic
 * and the -1e9 sentinels, so greedy / beam / group-beam / contrastive outputs are token-identical.
 * Stochastic beam search is Kool et al. 2019 (Gumbel-top-k), which transformers does not ship.
 * ------------------------------------------------------------------------------------------- */
typedef enum {
    TFM_GEN_GREEDY = 0,
    TFM_GEN_SAMPLE = 1,
    TFM_GEN_BEAM = 2,
    TFM_GEN_BEAM_SAMPLE = 3,
    TFM_GEN_GROUP_BEAM = 4,
    TFM_GEN_CONTRASTIVE = 5,
    TFM_GEN_STOCHASTIC_BEAM = 6,
} tfm_gen_mode;

/* One logits processor of the chain, applied in array order to every row at every step. */
typedef enum {
    TFM_PROC_SEQUENCE_BIAS = 1,  /* sb (bad words are biases of −inf) */
    TFM_PROC_HAMMING = 2,        /* group beam: f0 = diversity penalty (tokens chosen by earlier groups) */
    TFM_PROC_REPETITION = 3,     /* f0 = penalty θ */
    TFM_PROC_FREQ_PRESENCE = 4,  /* f0 = frequency, f1 = presence, i0 = window of last ids (0 = all) */
    TFM_PROC_NO_REPEAT_NGRAM = 5,/* i0 = n */
    TFM_PROC_MIN_LENGTH = 6,     /* i0 = min_length, counted with the prompt */
    TFM_PROC_MIN_NEW_TOKENS = 7, /* i0 = min_new_tokens */
    TFM_PROC_SUPPRESS = 8,       /* tokens */
    TFM_PROC_SUPPRESS_BEGIN = 9, /* tokens, only when the length equals the prompt width */
    TFM_PROC_DRY = 10,           /* dry */
    TFM_PROC_TEMPERATURE = 11,   /* f0 = T */
    TFM_PROC_TOP_K = 12,         /* i0 = k, i1 = min_keep */
    TFM_PROC_TOP_P = 13,         /* f0 = p, i1 = min_keep */
    TFM_PROC_MIN_P = 14,         /* f0, i1 */
    TFM_PROC_TYPICAL = 15,       /* f0 = mass, i1 */
    TFM_PROC_EPSILON = 16,       /* f0, i1 */
    TFM_PROC_ETA = 17,           /* f0, i1 */
    TFM_PROC_TOP_N_SIGMA = 18,   /* f0 = n */
    TFM_PROC_XTC = 19,           /* f0 = probability, f1 = threshold, i1 = min_keep */
    TFM_PROC_LOG_SOFTMAX = 20,   /* renormalise */
} tfm_proc_kind;

typedef struct {
    int32_t kind;           /* tfm_proc_kind */
    float f0, f1;
    int64_t i0, i1;
    const int32_t *tokens;  /* [n_tokens] */
    int64_t n_tokens;
    tfm_sequence_bias sb;
    tfm_dry_params dry;
} tfm_processor;

typedef struct {
    int32_t mode;                 /* tfm_gen_mode */
    int64_t max_length;           /* total length incl. the prompt width P; > P */
    int32_t num_beams;            /* K in beam modes (≥ 2) */
    int32_t num_beam_groups;      /* G, K % G == 0 */
    int32_t num_return_sequences; /* per prompt; ≤ K in beam modes */
    int32_t top_k;                /* contrastive: candidates per step (≥ 2) */
    float penalty_alpha;          /* contrastive: degeneration penalty weight */
    float length_penalty;         /* beam: score = Σ log p / generated_len^length_penalty */
    int32_t early_stopping;       /* 0 = False (heuristic), 1 = True, 2 = "never" */
    const int32_t *eos;           /* [n_eos] */
    int32_t n_eos;
    int32_t pad_id;               /* written after a row finished, and as filler */
    uint64_t seed;                /* stream r of prompt b is seeded by (seed, r): batch-independent */
    const tfm_processor *procs;   /* [n_procs] */
    int32_t n_procs;
    int32_t trace_top_n;          /* > 0: record the top-N per processor stage (sampling modes) */
} tfm_gen_config;

/* Output arrays, caller-owned; NULL = not recorded. Sizes (tfm_gen_output_dims):
 *   N = B·num_return_sequences output rows, R = running rows (B·K in beam modes, else N),
 *   M = max_length − P new-token steps, W = candidates per beam step, S = n_procs + 1 stages. */
typedef struct {
    int32_t *sequences;       /* [N][max_length] prompt + generated, pad-filled (required) */
    float *seq_scores;        /* [N] beam: final length-normalised score; others: Σ token_logprobs */
    float *token_logprobs;    /* [N][M] log p of each generated token under the distribution it was
                                 drawn/picked from (after processors); 0 after a row finished */
    float *raw_logprobs;      /* [N][M] the same token under the model's own distribution */
    int32_t *beam_indices;    /* [N][M] beam modes: running row that produced each token, −1 after */
    float *scores;            /* [M][R][V] processed scores of every step (transformers' `scores`) */
    /* trace, sampling modes: stage 0 = the model's distribution, stage j = after processor j−1 */
    int32_t *trace_ids;       /* [M][R][S][top_n] */
    float *trace_probs;       /* [M][R][S][top_n] softmax of the scores at that stage */
    int32_t *trace_kept;      /* [M][R][S] finite entries */
    float *trace_mass;        /* [M][R][S] mass, under the previous stage, of the entries still kept */
    /* trace, beam modes: the tree */
    int32_t *tree_parent;     /* [M][B][W] running slot (0..K−1) the candidate extends */
    int32_t *tree_token;      /* [M][B][W] */
    float *tree_score;        /* [M][B][W] accumulated log-prob (stochastic: perturbed G) */
    float *tree_final;        /* [M][B][W] length-normalised score when it finished, else NaN */
    int32_t *tree_flags;      /* [M][B][W] bit 0 finished (EOS / max length), bit 1 kept as running
                                 beam (its slot is bit 8.. : flags >> 8), bit 2 entered the finished set */
    int64_t length;           /* written: columns of `sequences` in use */
    int64_t steps;            /* written: steps run */
    double time_prefill;      /* written: seconds in the prompt's forward pass */
    double time_forward;      /* written: seconds in the per-step forward passes */
    double time_total;        /* written: seconds in tfm_generator_step altogether */
} tfm_gen_output;

/* N, R, W for a configuration and batch B (other sizes follow from the config). */
void tfm_gen_output_dims(const tfm_gen_config *cfg, int64_t B, int64_t *N, int64_t *R, int64_t *W);

typedef struct tfm_generator tfm_generator;

/* prompt: [B][P] token ids, left-padded; mask: [B][P] 0/1 or NULL (all ones). The model and the
 * arrays in cfg and out must outlive the generator. */
tfm_status tfm_generator_init(tfm_generator **g, const tfm_model *m, const tfm_gen_config *cfg,
                              const int32_t *prompt, const int32_t *mask, int64_t B, int64_t P, tfm_gen_output *out);
/* One decoding step for every row; *done = 1 when generation is over (then out->length is final). */
tfm_status tfm_generator_step(tfm_generator *g, int *done);
/* Columns of `sequences` filled so far (streaming reads the newest column). */
int64_t tfm_generator_length(const tfm_generator *g);
void tfm_generator_free(tfm_generator *g);
/* init + steps until done + free. */
tfm_status tfm_generate(const tfm_model *m, const tfm_gen_config *cfg, const int32_t *prompt, const int32_t *mask,
                        int64_t B, int64_t P, tfm_gen_output *out);


#ifdef __cplusplus
}
#endif
#endif /* TFM_H */
