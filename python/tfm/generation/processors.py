"""The processor chain of a generate() call, built in transformers' order (reference:
decoding.md §2.1, `_get_logits_processor`), as the tuples the C core's Generator takes.

Each entry: (kind, f0, f1, i0, i1, tokens | None, (ids, offsets, bias) | None, dry | None), kind
mirroring ``tfm_proc_kind`` in csrc/tfm.h. ``chain_names`` gives the readable name of every stage
(the trace labels its stages with them).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from .config import GenerationConfig, sequence_bias_items

# tfm_proc_kind (csrc/tfm.h)
SEQUENCE_BIAS, HAMMING, REPETITION, FREQ_PRESENCE, NO_REPEAT_NGRAM, MIN_LENGTH, MIN_NEW_TOKENS, SUPPRESS, \
    SUPPRESS_BEGIN, DRY, TEMPERATURE, TOP_K, TOP_P, MIN_P, TYPICAL, EPSILON, ETA, TOP_N_SIGMA, XTC, LOG_SOFTMAX = \
    range(1, 21)

NAMES = {SEQUENCE_BIAS: "sequence_bias", HAMMING: "diversity_penalty", REPETITION: "repetition_penalty",
         FREQ_PRESENCE: "frequency_presence_penalty", NO_REPEAT_NGRAM: "no_repeat_ngram", MIN_LENGTH: "min_length",
         MIN_NEW_TOKENS: "min_new_tokens", SUPPRESS: "suppress_tokens", SUPPRESS_BEGIN: "begin_suppress_tokens",
         DRY: "dry", TEMPERATURE: "temperature", TOP_K: "top_k", TOP_P: "top_p", MIN_P: "min_p", TYPICAL: "typical_p",
         EPSILON: "epsilon_cutoff", ETA: "eta_cutoff", TOP_N_SIGMA: "top_n_sigma", XTC: "xtc",
         LOG_SOFTMAX: "renormalize"}

Proc = Tuple


def _proc(kind: int, f0: float = 0.0, f1: float = 0.0, i0: int = 0, i1: int = 0, tokens=None, sb=None,
          dry=None) -> Proc:
    return (kind, float(f0), float(f1), int(i0), int(i1), tokens, sb, dry)


def pack_sequences(seqs: Sequence[Sequence[int]], biases: Sequence[float]) -> tuple:
    """[[ids...], ...] + biases → (concatenated ids int32, offsets int64, bias float32)."""
    ids = np.array([t for s in seqs for t in s], dtype=np.int32)
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    return ids, offsets, np.asarray(biases, dtype=np.float32)


def build_chain(cfg: GenerationConfig, mode: str, eos: List[int], prompt_len: int, max_length: int,
                min_length: int) -> List[Proc]:
    """transformers' processor order, then its warpers when the mode samples."""
    chain: List[Proc] = []
    if cfg.sequence_bias is not None:
        items = sequence_bias_items(cfg.sequence_bias)
        chain.append(_proc(SEQUENCE_BIAS, sb=pack_sequences([s for s, _ in items], [b for _, b in items])))
    if mode == "group_beam" and cfg.diversity_penalty > 0:
        chain.append(_proc(HAMMING, cfg.diversity_penalty))
    if cfg.repetition_penalty != 1.0:
        chain.append(_proc(REPETITION, cfg.repetition_penalty))
    if cfg.frequency_penalty != 0.0 or cfg.presence_penalty != 0.0:
        chain.append(_proc(FREQ_PRESENCE, cfg.frequency_penalty, cfg.presence_penalty,
                           int(cfg.extra.get("penalty_last_n", 0))))
    if cfg.no_repeat_ngram_size > 0:
        chain.append(_proc(NO_REPEAT_NGRAM, i0=cfg.no_repeat_ngram_size))
    if cfg.bad_words_ids is not None:
        # NoBadWordsLogitsProcessor drops sequences that are exactly [eos]
        seqs = [list(s) for s in cfg.bad_words_ids if not (len(s) == 1 and s[0] in eos)]
        if seqs:
            chain.append(_proc(SEQUENCE_BIAS, sb=pack_sequences(seqs, [-np.inf] * len(seqs))))
    if min_length > 0 and eos:
        chain.append(_proc(MIN_LENGTH, i0=min_length))
    if cfg.min_new_tokens and eos:
        chain.append(_proc(MIN_NEW_TOKENS, i0=cfg.min_new_tokens))
    if cfg.suppress_tokens is not None:
        chain.append(_proc(SUPPRESS, tokens=np.asarray(cfg.suppress_tokens, dtype=np.int32)))
    if cfg.begin_suppress_tokens is not None:
        chain.append(_proc(SUPPRESS_BEGIN, tokens=np.asarray(cfg.begin_suppress_tokens, dtype=np.int32)))
    dry = cfg.extra.get("dry")
    if dry is not None:
        chain.append(_proc(DRY, dry=dry))
    sampling = mode in ("sample", "beam_sample", "stochastic_beam")
    if sampling:
        beams = mode in ("beam_sample", "stochastic_beam")
        min_keep = (len(eos) + 1 if eos else 2) if beams else 1
        if cfg.temperature != 1.0:
            chain.append(_proc(TEMPERATURE, cfg.temperature))
        if cfg.top_n_sigma is not None:
            chain.append(_proc(TOP_N_SIGMA, cfg.top_n_sigma))
        if cfg.top_k is not None and cfg.top_k != 0:
            chain.append(_proc(TOP_K, i0=cfg.top_k, i1=min_keep))
        if cfg.top_p < 1.0:
            chain.append(_proc(TOP_P, cfg.top_p, i1=min_keep))
        if cfg.min_p is not None:
            chain.append(_proc(MIN_P, cfg.min_p, i1=min_keep))
        if cfg.typical_p < 1.0:
            chain.append(_proc(TYPICAL, cfg.typical_p, i1=min_keep))
        if 0.0 < cfg.epsilon_cutoff < 1.0:
            chain.append(_proc(EPSILON, cfg.epsilon_cutoff, i1=min_keep))
        if 0.0 < cfg.eta_cutoff < 1.0:
            chain.append(_proc(ETA, cfg.eta_cutoff, i1=min_keep))
        xtc = cfg.extra.get("xtc")
        if xtc is not None:
            chain.append(_proc(XTC, xtc[0], xtc[1], i1=min_keep))
    if cfg.extra.get("renormalize_logits"):
        chain.append(_proc(LOG_SOFTMAX))
    return chain


def chain_names(chain: List[Proc]) -> List[str]:
    return [NAMES[p[0]] for p in chain]
