/* generate_internal.h — the generator state shared by generate.c and beam.c (not public API). */
#ifndef TFM_GENERATE_INTERNAL_H
#define TFM_GENERATE_INTERNAL_H

#include "tfm.h"

struct tfm_generator {
    const tfm_model *m;
    tfm_gen_config cfg;
    tfm_gen_output *out;
    int64_t B, P, V, C;   /* prompts, prompt width, vocabulary, hidden width */
    int64_t R, N, W, M;   /* running rows, output rows, beam candidates per prompt, max new tokens */
    int64_t K;            /* beams per prompt (beam modes), rows per prompt otherwise */
    int64_t max_len, cur_len, step;
    int started, done;

    const int32_t *prompt; /* [B][P] */
    int32_t *prompt_mask;  /* [B][P] */
    int32_t *ids;          /* [R][max_len] running sequences (what processors see as history) */
    int32_t *mask;         /* [R][max_len] attention mask of the running rows */
    int32_t *n_real;       /* [R] ones in mask so far (the next position id) */
    uint8_t *unfinished;   /* [R] */

    /* forward scratch, sized for F rows (R, or B·top_k for contrastive) */
    int64_t F;
    int32_t *fwd_ids, *fwd_mask, *fwd_pos; /* [F][P] / [F][max_len] / [F][P] */
    float *logits;                          /* [F][V] */
    float *hidden;                          /* [F][P][C] last hidden states (contrastive), or NULL */
    tfm_kv_cache cache;
    tfm_workspace ws;

    float *proc;           /* [R][V] processed scores of this step */
    tfm_rng *rng;          /* [R] one stream per running row (beam modes: per prompt, row b·K) */
    int nthreads;
    tfm_sampling_ws *sws;  /* [nthreads], capacity V (K·V in beam modes) */
    float *tbuf;           /* [nthreads][V] trace / log-softmax scratch */
    int32_t *zbuf;         /* [nthreads][max_len] DRY scratch */
    int32_t *hamming;      /* [B][V] group beam: counts of tokens chosen this step by earlier groups */
    float *row_lse;        /* [R] log Σ exp of each row's raw logits (raw log-probs in beam modes) */

    /* per running row: log-probs of its tokens (processed, raw), gathered with the sequences */
    float *run_lp, *run_raw; /* [R][M] */

    /* beam modes */
    float *run_score;      /* [R] accumulated scores of the running beams (stochastic: φ) */
    float *run_gumbel;     /* [R] stochastic beam: perturbed score G of each running beam */
    int32_t *run_bidx;     /* [R][M] beam indices of the running beams */
    float *acc;            /* [B][K·V] accumulated candidate scores */
    int64_t *cand_idx;     /* [B][W] */
    float *cand_score;     /* [B][W] */
    uint8_t *cand_hit;     /* [B][W] */
    float *cand_aux;       /* [B][W] stochastic beam: φ of each new beam */
    int32_t *fin_seq;      /* [B·K][max_len] finished hypotheses */
    float *fin_score;      /* [B·K] */
    int32_t *fin_bidx;     /* [B·K][M] */
    float *fin_lp, *fin_raw; /* [B·K][M] */
    int64_t *fin_len;      /* [B·K] generated tokens of each finished hypothesis */
    uint8_t *fin_flag;     /* [B·K] */
    uint8_t *improvable;   /* [B] */
    int64_t *reorder;      /* [F] cache reorder map */
    int64_t *first;        /* [F] first cache position that differs from the reorder source */
    int32_t *tmp_seq;      /* [R][max_len] */
    float *tmp_f;          /* [2][R][M] */
    int32_t *tmp_bidx;     /* [R][M] */
    /* group beam: transformers' BeamHypotheses per (prompt, group), scores in double */
    double *hyp_score;     /* [B·G][K/G + 1], insertion order as transformers' list */
    int32_t *hyp_seq;      /* [B·G][K/G + 1][max_len] */
    int64_t *hyp_len;      /* [B·G][K/G + 1] sequence length incl. the prompt */
    float *hyp_lp;         /* [B·G][K/G + 1][2][M] processed and raw token log-probs */
    int64_t *hyp_count;    /* [B·G] */
    double *hyp_worst;     /* [B·G] */
    uint8_t *group_done;   /* [B·G] */

    /* contrastive */
    float *ctx_hidden;     /* [B][max_len][C] last hidden state of every position so far */
    float *cand_probs;     /* [B][top_k] */
    int32_t *cand_tok;     /* [B][top_k] */
};

/* generate.c helpers used by beam.c */
tfm_status tfm__gen_prefill(tfm_generator *g, int64_t expand);
tfm_status tfm__gen_forward_running(tfm_generator *g, int64_t rows);
tfm_status tfm__gen_process_rows(tfm_generator *g, const int64_t *rows, int64_t n_rows, int log_softmax_first);
int tfm__gen_is_eos(const tfm_generator *g, int32_t tok);
void tfm__gen_append(tfm_generator *g, int64_t r, int32_t tok);

/* beam.c */
tfm_status tfm__beam_init(tfm_generator *g);
tfm_status tfm__beam_step(tfm_generator *g);
tfm_status tfm__group_beam_step(tfm_generator *g);
tfm_status tfm__stochastic_beam_step(tfm_generator *g);
void tfm__beam_finish(tfm_generator *g);

#endif
