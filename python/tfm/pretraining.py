"""Pre-training data recipes: BERT/RoBERTa masked-LM masking, NSP pairs (BERT) and SOP pairs (ALBERT).

Contract
  * `mlm_mask` masks token ids the way HF `DataCollatorForLanguageModeling` does (BERT's recipe):
    every eligible token (not special, not padding, attention_mask 1) is chosen independently with
    probability `mlm_probability` (0.15); a chosen token becomes the mask token with probability
    `mask_replace_prob` (0.8), else a random token with probability `random_replace_prob` (0.1; drawn
    as random_replace_prob / (1 - mask_replace_prob) among the rest, as HF does), else stays unchanged.
    Labels hold the original id at chosen positions and -100 elsewhere (the ignore index of the loss).
  * `StaticMasking` is BERT's original static masking (create_pretraining_data.py `dupe_factor`): a
    fixed number of masked copies of every text is made once; epoch e sees copy e % copies.
    `DynamicMasking` is RoBERTa's: a fresh mask every call.
  * `nsp_pairs` builds next-sentence-prediction pairs (50% IsNext / 50% NotNext with the second segment
    from another document), `sop_pairs` builds sentence-order-prediction pairs (two consecutive
    segments, swapped half the time).
  * Everything is NumPy (int64 out) and seeded: pass `seed` or a `numpy.random.Generator` as `rng`;
    with neither, a fresh unseeded generator is used (as HF uses torch's global RNG).

Not done here: tokenisation (pass ids), whole-word masking, span masking, batching/padding, and no
model code -- this module only makes the training examples.

The random replacement token is drawn uniformly from the whole vocabulary [0, vocab_size), special
ids included and without excluding the original token: that is what HF's collator does
(`torch.randint(len(tokenizer), ...)`) and what BERT's create_pretraining_data.py does (a random entry
of the vocab list). The bert-base-uncased model card's "a random token (different from the one they
replace)" is not what either code enforces.

Example
    >>> out = mlm_mask([[2, 10, 11, 12, 3]], mask_token_id=4, vocab_size=100, special_ids=[0, 2, 3], seed=0)
    >>> sorted(out)
    ['input_ids', 'labels', 'masked_positions', 'random_positions', 'replaced_positions']
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

IGNORE_INDEX = -100

__all__ = ["IGNORE_INDEX", "mlm_mask", "StaticMasking", "DynamicMasking", "SegmentPair", "nsp_pairs",
           "sop_pairs"]


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------

def _make_rng(seed, rng) -> np.random.Generator:
    if seed is not None and rng is not None:
        raise ValueError("pass either seed or rng, not both")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        return rng
    return np.random.default_rng(seed)


def _check_prob(name, p):
    if not isinstance(p, (int, float, np.floating)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def _tokenizer_info(tokenizer, mask_token_id, vocab_size, special_ids):
    """Duck-typed: anything with mask_token_id, vocab_size (or len()), all_special_ids, pad_token_id."""
    pad_id = None
    if tokenizer is not None:
        if mask_token_id is None:
            mask_token_id = getattr(tokenizer, "mask_token_id", None)
        if vocab_size is None:
            # len() counts added tokens too (HF draws random ids from len(tokenizer)), so prefer it
            try:
                vocab_size = len(tokenizer)
            except TypeError:
                vocab_size = getattr(tokenizer, "vocab_size", None)
        if special_ids is None:
            special_ids = list(getattr(tokenizer, "all_special_ids", []) or [])
        pad_id = getattr(tokenizer, "pad_token_id", None)
    if mask_token_id is None:
        raise ValueError("mlm_mask needs mask_token_id (or a tokenizer that has one)")
    if vocab_size is None:
        raise ValueError("mlm_mask needs vocab_size (or a tokenizer with vocab_size or len())")
    vocab_size = int(vocab_size)
    mask_token_id = int(mask_token_id)
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id {mask_token_id} is outside the vocabulary [0, {vocab_size})")
    specials = set(int(i) for i in (special_ids or []))
    if pad_id is not None:
        specials.add(int(pad_id))
    return mask_token_id, vocab_size, np.array(sorted(specials), dtype=np.int64)


def _as_ids(input_ids, vocab_size, name="input_ids") -> np.ndarray:
    try:
        ids = np.asarray(input_ids)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{name} must be rectangular (pad the batch first): {e}") from None
    if ids.dtype == object:
        raise ValueError(f"{name} must be rectangular (pad the batch first)")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
    if ids.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D [T] or 2-D [B, T], got shape {ids.shape}")
    ids = ids.astype(np.int64, copy=True)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{name} has ids outside [0, {vocab_size}): min {ids.min()}, max {ids.max()}")
    return ids


# ----------------------------------------------------------------------------------------------------
# masking
# ----------------------------------------------------------------------------------------------------

def mlm_mask(input_ids, tokenizer=None, *, mask_token_id=None, vocab_size=None, special_ids=None,
             attention_mask=None, mlm_probability=0.15, mask_replace_prob=0.8, random_replace_prob=0.1,
             seed=None, rng=None) -> dict:
    """Mask a batch [B, T] (or one sequence [T]) of token ids for masked-LM training.

    Returns a dict of int64/bool arrays shaped like `input_ids`:
      input_ids           the corrupted ids (a copy; the argument is not modified)
      labels              original id where chosen, IGNORE_INDEX (-100) elsewhere
      masked_positions    bool, chosen for prediction (the 15%)
      replaced_positions  bool, chosen and replaced by the mask token (80% of chosen)
      random_positions    bool, chosen and replaced by a uniformly random id (10% of chosen)
    Chosen positions in neither of the last two keep their token (the remaining 10%).

    Special ids (`special_ids`, or the tokenizer's `all_special_ids` and `pad_token_id`) and
    positions with attention_mask == 0 are never chosen.
    """
    mask_id, V, specials = _tokenizer_info(tokenizer, mask_token_id, vocab_size, special_ids)
    p = _check_prob("mlm_probability", mlm_probability)
    p_mask = _check_prob("mask_replace_prob", mask_replace_prob)
    p_rand = _check_prob("random_replace_prob", random_replace_prob)
    if p_mask + p_rand > 1.0 + 1e-12:
        raise ValueError(f"mask_replace_prob + random_replace_prob must be <= 1, got {p_mask} + {p_rand}")
    gen = _make_rng(seed, rng)
    ids = _as_ids(input_ids, V)

    eligible = ~np.isin(ids, specials)
    if attention_mask is not None:
        am = np.asarray(attention_mask)
        if am.shape != ids.shape:
            raise ValueError(f"attention_mask shape {am.shape} does not match input_ids shape {ids.shape}")
        eligible &= am.astype(bool)

    # Same draws, in the same order, as HF's collator: Bernoulli(p) choice, Bernoulli(0.8) -> [MASK],
    # then Bernoulli(0.1 / (1 - 0.8)) among the not-[MASK]ed -> random id.
    chosen = (gen.random(ids.shape) < p) & eligible
    replaced = (gen.random(ids.shape) < p_mask) & chosen
    if p_mask >= 1.0 or p_rand == 0.0:
        rand = np.zeros_like(chosen)
    else:
        rand = (gen.random(ids.shape) < p_rand / (1.0 - p_mask)) & chosen & ~replaced
    random_ids = gen.integers(0, V, size=ids.shape, dtype=np.int64)

    labels = np.where(chosen, ids, IGNORE_INDEX).astype(np.int64)
    out_ids = ids.copy()
    out_ids[replaced] = mask_id
    out_ids[rand] = random_ids[rand]
    return {"input_ids": out_ids, "labels": labels, "masked_positions": chosen,
            "replaced_positions": replaced, "random_positions": rand}


def _mask_kwargs(tokenizer, kw):
    allowed = {"mask_token_id", "vocab_size", "special_ids", "mlm_probability", "mask_replace_prob",
               "random_replace_prob"}
    bad = set(kw) - allowed
    if bad:
        raise TypeError(f"unexpected masking arguments: {sorted(bad)}")
    # validate once, up front, so a bad setting fails at construction and not in the middle of training
    _tokenizer_info(tokenizer, kw.get("mask_token_id"), kw.get("vocab_size"), kw.get("special_ids"))
    return dict(kw)


class StaticMasking:
    """BERT's original static masking: `copies` masked versions of every text, made once, up front.

    texts_ids: a list of 1-D id sequences (lengths may differ). Copy c of text i is masked with
    draws from one generator seeded by `seed`, in order (copy 0 of all texts, then copy 1, ...).
    Epoch e uses copy e % copies, so with RoBERTa's setup (copies=10, 40 epochs) each mask is seen 4x.

        >>> sm = StaticMasking([[5, 6, 7, 8]], copies=2, seed=0, mask_token_id=1, vocab_size=10, special_ids=[0])
        >>> len(sm), len(sm.epoch(0))
        (2, 1)
    """

    def __init__(self, texts_ids: Sequence[Sequence[int]], copies: int = 10, seed: Optional[int] = None,
                 tokenizer=None, *, rng: Optional[np.random.Generator] = None, **mask_kwargs):
        if not isinstance(copies, (int, np.integer)) or copies < 1:
            raise ValueError(f"copies must be a positive integer, got {copies!r}")
        kw = _mask_kwargs(tokenizer, mask_kwargs)
        gen = _make_rng(seed, rng)
        texts = [np.asarray(t) for t in texts_ids]
        for i, t in enumerate(texts):
            if t.ndim != 1:
                raise ValueError(f"texts_ids[{i}] must be a 1-D id sequence, got shape {t.shape}")
        self.copies = int(copies)
        self._copies = [[mlm_mask(t, tokenizer, rng=gen, **kw) for t in texts] for _ in range(self.copies)]

    def __len__(self) -> int:
        return self.copies

    def epoch(self, epoch: int) -> list:
        """The masked texts (one mlm_mask dict per text) used in `epoch`: copy epoch % copies."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        return self._copies[epoch % self.copies]

    def __iter__(self):
        return iter(self._copies)


class DynamicMasking:
    """RoBERTa's dynamic masking: every call draws a fresh mask from this object's own generator.

        >>> dm = DynamicMasking(seed=0, mask_token_id=1, vocab_size=10, special_ids=[0])
        >>> a, b = dm([[5, 6, 7, 8] * 8]), dm([[5, 6, 7, 8] * 8])   # differ (with high probability)
    """

    def __init__(self, seed: Optional[int] = None, tokenizer=None, *, rng: Optional[np.random.Generator] = None,
                 **mask_kwargs):
        self._kw = _mask_kwargs(tokenizer, mask_kwargs)
        self._tokenizer = tokenizer
        self._rng = _make_rng(seed, rng)

    def __call__(self, input_ids, attention_mask=None) -> dict:
        return mlm_mask(input_ids, self._tokenizer, attention_mask=attention_mask, rng=self._rng, **self._kw)


# ----------------------------------------------------------------------------------------------------
# sentence-pair tasks
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SegmentPair:
    """Two segments of token ids and a binary label.

    For NSP, `label` is True when b really follows a (IsNext); HF's BertForPreTraining wants
    next_sentence_label = 0 for IsNext and 1 for NotNext: use `pair.hf_label`.
    For SOP, `label` is True when the two segments were swapped; ALBERT's sentence_order_label is
    0 for the original order and 1 for swapped, again `pair.hf_label`.
    """
    a: tuple
    b: tuple
    label: bool
    kind: str  # "nsp" or "sop"

    @property
    def is_next(self) -> bool:
        if self.kind != "nsp":
            raise AttributeError("is_next is defined for NSP pairs only")
        return self.label

    @property
    def swapped(self) -> bool:
        if self.kind != "sop":
            raise AttributeError("swapped is defined for SOP pairs only")
        return self.label

    @property
    def hf_label(self) -> int:
        return int(not self.label) if self.kind == "nsp" else int(self.label)

    def __iter__(self):
        """Unpacks like a tuple: `a, b, is_next = pair` (NSP) or `a, b, swapped = pair` (SOP)."""
        return iter((self.a, self.b, self.label))


def _check_documents(documents) -> list:
    docs = []
    for i, d in enumerate(documents):
        segs = []
        for j, s in enumerate(d):
            arr = np.asarray(s)
            if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
                raise ValueError(f"documents[{i}][{j}] must be a 1-D sequence of integer ids")
            if arr.size:
                segs.append(tuple(int(x) for x in arr))
        docs.append(segs)
    return docs


def _truncate_pair(a: list, b: list, max_tokens: Optional[int], gen) -> tuple:
    """BERT's truncate_seq_pair: drop tokens from the longer segment, from its front or back at random,
    until len(a) + len(b) <= max_tokens (the [CLS]/[SEP]s are the caller's to reserve)."""
    if max_tokens is None:
        return tuple(a), tuple(b)
    a, b = list(a), list(b)
    while len(a) + len(b) > max_tokens:
        longer = a if len(a) > len(b) else b
        if gen.random() < 0.5:
            del longer[0]
        else:
            longer.pop()
    return tuple(a), tuple(b)


def nsp_pairs(documents: Iterable[Sequence[Sequence[int]]], seed: Optional[int] = None, *,
              max_tokens: Optional[int] = None, rng: Optional[np.random.Generator] = None) -> list:
    """Next-sentence-prediction pairs (BERT, Devlin et al. 2019, section 3.1).

    documents: a list of documents, each a list of segments (sentences or paragraphs as id lists).
    One pair per consecutive segment pair (a = segment j, candidate b = segment j+1) of every document.
    With probability 1/2 the pair is IsNext (b is the real next segment); otherwise b is replaced by a
    uniformly chosen segment of a uniformly chosen *different* document (NotNext).
    max_tokens: if given, the pair is truncated as BERT's truncate_seq_pair does.
    Returns a list of SegmentPair(kind="nsp"); `.is_next` / `.hf_label`.
    """
    gen = _make_rng(seed, rng)
    docs = _check_documents(documents)
    if max_tokens is not None and max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2, got {max_tokens}")
    donors = [i for i, d in enumerate(docs) if d]
    if len(donors) < 2:
        raise ValueError("nsp_pairs needs at least two non-empty documents (NotNext segments come from another one)")
    donor_pos = {d: k for k, d in enumerate(donors)}  # a document with >= 2 segments is a donor
    pairs = []
    for di, segs in enumerate(docs):
        for j in range(len(segs) - 1):
            a = segs[j]
            if gen.random() < 0.5:
                b, is_next = segs[j + 1], True
            else:
                # uniformly among the *other* non-empty documents: draw an index that skips this one
                k = int(gen.integers(len(donors) - 1))
                if k >= donor_pos[di]:
                    k += 1
                other = donors[k]
                osegs = docs[other]
                b, is_next = osegs[int(gen.integers(len(osegs)))], False
            a2, b2 = _truncate_pair(a, b, max_tokens, gen)
            pairs.append(SegmentPair(a2, b2, is_next, "nsp"))
    return pairs


def sop_pairs(documents: Iterable[Sequence[Sequence[int]]], seed: Optional[int] = None, *,
              max_tokens: Optional[int] = None, rng: Optional[np.random.Generator] = None) -> list:
    """Sentence-order-prediction pairs (ALBERT, Lan et al. 2020, section 3.1).

    One pair per consecutive segment pair (j, j+1) of every document; with probability 1/2 the two
    are swapped (label True). Both segments always come from the same document, so the task is
    about order (coherence), not topic.
    Returns a list of SegmentPair(kind="sop"); `.swapped` / `.hf_label`.
    """
    gen = _make_rng(seed, rng)
    docs = _check_documents(documents)
    if max_tokens is not None and max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2, got {max_tokens}")
    pairs = []
    for segs in docs:
        for j in range(len(segs) - 1):
            first, second = segs[j], segs[j + 1]
            swapped = bool(gen.random() < 0.5)
            if swapped:
                first, second = second, first
            a2, b2 = _truncate_pair(first, second, max_tokens, gen)
            pairs.append(SegmentPair(a2, b2, swapped, "sop"))
    return pairs
