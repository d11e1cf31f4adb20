"""Task pipelines over the BERT-family models: text in, labelled and scored results out.

    fill = tfm.pipeline("fill-mask", model=d)                   # d: a folder written by save_pretrained
    fill("The capital of France is [MASK].", top_k=5)            # [{"score", "token", "token_str", "sequence"}, ...]
    fill("The capital of France is [MASK].", do_sample=True, temperature=0.8, top_p=0.9, seed=0)
    tfm.pipeline("text-classification", model=d)("a text")      # [{"label": ..., "score": ...}]
    tfm.pipeline("token-classification", model=d, aggregation_strategy="first")("a text")
    tfm.pipeline("next-sentence", model=d)("first sentence", "second sentence")
    tfm.pipeline("sentence-order", model=d)("first sentence", "second sentence")

Tasks and the models they need (a folder is loaded with the Auto class in brackets; a model object must be
one of the classes named):
    fill-mask             masked-LM head (AutoModelForMaskedLM; EncoderForPreTraining of bert/albert also works)
    text-classification   sequence classifier (AutoModelForSequenceClassification); alias "sentiment-analysis"
    token-classification  token classifier (AutoModelForTokenClassification); alias "ner"
    next-sentence         BERT's NSP head (AutoModelForNextSentencePrediction, or a BERT EncoderForPreTraining)
    sentence-order        ALBERT's SOP head (AutoModelForPreTraining on an ALBERT checkpoint)

Outputs are the ones of transformers 4.55's FillMaskPipeline, TextClassificationPipeline and
TokenClassificationPipeline (pipelines/{fill_mask,text_classification,token_classification}.py): the same
keys in the same order, the same nesting for one text, a list of texts and several masks, the same
defaults (fill-mask top_k=5; text-classification's function_to_apply from problem_type / num_labels and its
"legacy" single-dict result when top_k is not passed; token-classification aggregation "none" and
ignore_labels ["O"]), and the same quirks (a one-element list given to fill-mask returns the inner result;
a dict given to text-classification without top_k returns a bare dict). Scores are Python floats
(transformers' token-classification returns NumPy float32 scalars). next-sentence and sentence-order have
no transformers pipeline; their output is {"label", "score", "scores"} (see those classes).

Inputs of a list are run in right-padded batches of ``batch_size`` (transformers runs them one at a time
by default; the non-pad positions get the same values either way, up to float rounding).

Not here: pre-tokenised input (is_split_into_words), long-text windows (stride), question answering,
zero-shot classification, generation pipelines, devices.
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import sampling
from .classification import FUNCTIONS, scores_from_logits
from .configuration import read_config_file
from .models.auto import (AutoModelForMaskedLM, AutoModelForNextSentencePrediction, AutoModelForPreTraining,
                          AutoModelForSequenceClassification, AutoModelForTokenClassification)
from .models.bert import (EncoderForMaskedLM, EncoderForNextSentencePrediction, EncoderForPreTraining,
                          EncoderForSequenceClassification, EncoderForTokenClassification)
from .tokenization import LARGE_INTEGER, AutoTokenizer, Tokenizer

__all__ = ["pipeline", "Pipeline", "FillMaskPipeline", "TextClassificationPipeline", "TokenClassificationPipeline",
           "NextSentencePipeline", "SentenceOrderPipeline", "TASKS"]

# Tokenizer options the pipelines set themselves (padding is done here, per batch).
_RESERVED_TOKENIZER_KWARGS = {"padding", "padding_side", "return_tensors", "return_offsets_mapping",
                              "return_special_tokens_mask", "text_pair", "pad_to_multiple_of"}


class _Encoded:
    """One tokenised input: ids and, when asked for, token types, character offsets, special-token flags."""

    __slots__ = ("ids", "type_ids", "offsets", "special")

    def __init__(self, ids, type_ids=None, offsets=None, special=None):
        self.ids: List[int] = ids
        self.type_ids: Optional[List[int]] = type_ids
        self.offsets: Optional[List[Tuple[int, int]]] = offsets
        self.special: Optional[List[int]] = special


class Pipeline:
    """Tokenise → run the model in padded batches → post-process. Subclasses define ``_run``.

    Options given to :func:`pipeline` (or the constructor) become defaults of every call; a call's own
    options override them. Unknown options raise TypeError listing the known ones.
    """

    task: ClassVar[str] = ""
    model_classes: ClassVar[Tuple[type, ...]] = ()
    needs: ClassVar[str] = ""  # what the model must have, for error messages

    def __init__(self, model: Any, tokenizer: Tokenizer, batch_size: int = 8, **defaults: Any):
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be a tfm Tokenizer (tfm.AutoTokenizer.from_pretrained(dir)), "
                            f"got {type(tokenizer).__name__}")
        self.check_model(model)
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = _count("batch_size", batch_size)
        self._check_options(defaults)
        self.defaults = dict(defaults)

    @classmethod
    def check_model(cls, model: Any) -> None:
        """ValueError when the model lacks this task's head."""
        if not isinstance(model, cls.model_classes):
            raise ValueError(f"the {cls.task} pipeline needs {cls.needs}; got {type(model).__name__}"
                             + (f" ({model.config.model_type})" if hasattr(model, "config") else ""))

    def _options(self) -> List[str]:
        params = list(inspect.signature(self._run).parameters.values())
        return [p.name for p in params if p.kind == p.KEYWORD_ONLY and not p.name.startswith("_")]

    def _check_options(self, options: Dict[str, Any]) -> None:
        unknown = sorted(set(options) - set(self._options()))
        if unknown:
            raise TypeError(f"the {self.task} pipeline has no option(s) {unknown}; "
                            f"options: {', '.join(self._options())}")

    def __call__(self, inputs: Any, *args: Any, **options: Any) -> Any:
        self._check_options(options)
        return self._run(inputs, *args, **{**self.defaults, **options})

    def _run(self, inputs: Any, *args: Any) -> Any:  # pragma: no cover - every task defines it
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={self.model!r}, batch_size={self.batch_size})"

    # -- shared steps ------------------------------------------------------------------------------------
    def _encode(self, texts: List[str], pairs: Optional[List[str]] = None, offsets: bool = False,
                special: bool = False, tokenizer_kwargs: Optional[Dict[str, Any]] = None) -> List[_Encoded]:
        kw = dict(tokenizer_kwargs or {})
        reserved = sorted(set(kw) & _RESERVED_TOKENIZER_KWARGS)
        if reserved:
            raise ValueError(f"tokenizer_kwargs must not set {reserved}: the pipeline pads and batches itself")
        enc = self.tokenizer(texts, pairs, return_attention_mask=False, return_offsets_mapping=offsets,
                             return_special_tokens_mask=special, **kw)
        types = enc.get("token_type_ids")
        out = []
        for i, ids in enumerate(enc["input_ids"]):
            if not ids:
                raise ValueError(f"input {i} ({texts[i]!r}) has no tokens after tokenisation")
            out.append(_Encoded(ids, types[i] if types is not None else None,
                                enc["offset_mapping"][i] if offsets else None,
                                enc["special_tokens_mask"][i] if special else None))
        return out

    @property
    def _pad_id(self) -> int:
        # The model's pad id first: RoBERTa numbers positions by counting ids that differ from it.
        pad = getattr(self.model.config, "pad_token_id", None)
        if pad is None:
            pad = self.tokenizer.pad_token_id
        return 0 if pad is None else int(pad)

    def _forward(self, encoded: List[_Encoded], per_token: bool) -> List[np.ndarray]:
        """The head's logits of every input: [T_i, ...] rows when per_token, else one [...] row each."""
        use_types = getattr(self.model.config, "type_vocab_size", 0) > 0
        out: List[np.ndarray] = []
        for start in range(0, len(encoded), self.batch_size):
            chunk = encoded[start:start + self.batch_size]
            B, T = len(chunk), max(len(e.ids) for e in chunk)
            ids = np.full((B, T), self._pad_id, dtype=np.int64)
            mask = np.zeros((B, T), dtype=np.int64)
            types = np.zeros((B, T), dtype=np.int64) if use_types else None
            for b, e in enumerate(chunk):  # right padding keeps absolute positions of real tokens unchanged
                n = len(e.ids)
                ids[b, :n] = e.ids
                mask[b, :n] = 1
                if types is not None and e.type_ids is not None:
                    types[b, :n] = e.type_ids
            logits = self._logits(ids, mask, types)
            for b, e in enumerate(chunk):
                out.append(logits[b, :len(e.ids)] if per_token else logits[b])
        return out

    def _logits(self, ids: np.ndarray, mask: np.ndarray, types: Optional[np.ndarray]) -> np.ndarray:
        return np.asarray(self.model(ids, attention_mask=mask, token_type_ids=types).logits)


def _count(name: str, value: Any) -> int:
    """A positive integer option (top_k, num_samples), refused by name otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _texts(inputs: Any, what: str = "inputs") -> Tuple[List[str], bool]:
    """(texts, whether a list was given); TypeError for anything but a string or a non-empty list of them."""
    if isinstance(inputs, str):
        return [inputs], False
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise ValueError(f"{what} is an empty list; nothing to run")
        for i, t in enumerate(inputs):
            if not isinstance(t, str):
                raise TypeError(f"{what}[{i}] must be a string, got {type(t).__name__}")
        return list(inputs), True
    raise TypeError(f"{what} must be a string or a list of strings, got {type(inputs).__name__}")


# ------------------------------------------------------------------------------------------------------------
# fill-mask
# ------------------------------------------------------------------------------------------------------------
class FillMaskPipeline(Pipeline):
    """Predicts the token behind each mask token of a text.

    ``fill(text, top_k=5, targets=None)`` ranks candidates by the MLM probability (softmax over the whole
    vocabulary) and returns, as transformers' FillMaskPipeline, a list of ``{"score", "token",
    "token_str", "sequence"}`` for a text with one mask, one such list per mask for several masks (each
    mask's scores are its own marginal distribution; "sequence" then keeps the special tokens and the
    other masks), and one result per text for a list of texts. ``targets`` (a string or a list) restricts
    the candidates to those tokens, scored by their probability under the full softmax; a target that is
    not a vocabulary token is replaced by the first token of its tokenisation, with a warning.

    Sampling mode, ``do_sample=True``: each mask's distribution goes through the decoding filters of
    :mod:`tfm.sampling` in the order generate() applies them (temperature, top_n_sigma, top_k, top_p,
    min_p, typical_p, epsilon_cutoff, eta_cutoff), restricted to ``targets`` first when given, and
    ``num_samples`` tokens (default 1) are drawn independently (with replacement) from the result. Each
    draw comes back in the same dict format, in draw order; its **"score" is the token's probability
    under the filtered, renormalised distribution** it was drawn from, not the raw MLM probability. In
    this mode ``top_k`` is the top-k filter and is off unless given (generate's default of 50 does not
    apply). ``seed``: an int makes a text's draws reproducible (mask m of a text uses the stream (seed, m),
    wherever the text sits in a batch); None draws fresh entropy.

    Raises ValueError for a text without the mask token (naming it) and for sampling options given
    without ``do_sample=True``.
    """

    task = "fill-mask"
    model_classes = (EncoderForMaskedLM, EncoderForPreTraining)
    needs = ("a masked-LM head (EncoderForMaskedLM from tfm.AutoModelForMaskedLM, or a BERT/ALBERT "
             "EncoderForPreTraining)")

    def __init__(self, model: Any, tokenizer: Tokenizer, batch_size: int = 8, **defaults: Any):
        super().__init__(model, tokenizer, batch_size, **defaults)
        if tokenizer.mask_token is None or tokenizer.mask_token_id is None:
            raise ValueError("the fill-mask pipeline needs a tokenizer with a mask token; this one has none")

    @classmethod
    def check_model(cls, model: Any) -> None:
        super().check_model(model)
        if isinstance(model, EncoderForPreTraining) and model.config.model_type == "electra":
            raise ValueError(f"the fill-mask pipeline needs {cls.needs}; an ELECTRA EncoderForPreTraining is the "
                             "discriminator (load the generator with tfm.AutoModelForMaskedLM)")

    def _logits(self, ids, mask, types):
        out = self.model(ids, attention_mask=mask, token_type_ids=types)
        return np.asarray(out.prediction_logits if isinstance(self.model, EncoderForPreTraining) else out.logits)

    def target_ids(self, targets: Union[str, Sequence[str]]) -> np.ndarray:
        """Vocabulary ids of the targets, sorted and without repeats (transformers' get_target_ids: a string
        outside the vocabulary becomes its first token, with a warning; one with no tokens is dropped)."""
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise TypeError(f"targets must be a string or a list of strings, got {targets!r}")
        vocab = self.tokenizer.get_vocab()
        ids = set()
        for target in targets:
            index = vocab.get(target)
            if index is None:
                pieces = self.tokenizer.encode(target, add_special_tokens=False)
                if not pieces:
                    warnings.warn(f"fill-mask target {target!r} is not in the vocabulary and has no tokens; "
                                  "ignoring it", stacklevel=4)
                    continue
                index = pieces[0]
                warnings.warn(f"fill-mask target {target!r} is not in the vocabulary; using its first token "
                              f"{self.tokenizer.convert_ids_to_tokens(index)!r}", stacklevel=4)
            ids.add(int(index))
        if not ids:
            raise ValueError("targets: at least one target must map to a token")
        V = self.model.config.vocab_size
        if max(ids) >= V:
            raise ValueError(f"targets: token id {max(ids)} is outside the model's vocabulary of {V}")
        return np.array(sorted(ids), dtype=np.int64)

    def _run(self, inputs: Union[str, List[str]], *, top_k: Optional[int] = None,
             targets: Union[str, Sequence[str], None] = None, tokenizer_kwargs: Optional[Dict[str, Any]] = None,
             do_sample: bool = False, num_samples: Optional[int] = None, temperature: Optional[float] = None,
             top_p: Optional[float] = None, min_p: Optional[float] = None, typical_p: Optional[float] = None,
             epsilon_cutoff: Optional[float] = None, eta_cutoff: Optional[float] = None,
             top_n_sigma: Optional[float] = None, seed: Union[int, None] = None) -> Any:
        given = {k: v for k, v in dict(num_samples=num_samples, temperature=temperature, top_p=top_p, min_p=min_p,
                                       typical_p=typical_p, epsilon_cutoff=epsilon_cutoff, eta_cutoff=eta_cutoff,
                                       top_n_sigma=top_n_sigma, seed=seed).items() if v is not None}
        if not do_sample and given:
            raise ValueError(f"{', '.join(sorted(given))} only apply when sampling; pass do_sample=True "
                             f"(top_k alone ranks the candidates)")
        texts, batched = _texts(inputs)
        cand = None if targets is None else self.target_ids(targets)
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        if do_sample:
            chain = _filter_chain(top_k=top_k, **{k: v for k, v in given.items() if k not in ("num_samples", "seed")})
            n = _count("num_samples", 1 if num_samples is None else num_samples)
        else:
            k = _count("top_k", 5 if top_k is None else top_k)
        encoded = self._encode(texts, tokenizer_kwargs=tokenizer_kwargs)
        mask_id = self.tokenizer.mask_token_id
        positions = []
        for i, e in enumerate(encoded):  # check every input before running any
            where = [t for t, tok in enumerate(e.ids) if tok == mask_id]
            if not where:
                raise ValueError(f"no mask token ({self.tokenizer.mask_token}) found in fill-mask input {i}: "
                                 f"{texts[i]!r}")
            positions.append(where)
        results = []
        for e, where, logits in zip(encoded, positions, self._forward(encoded, per_token=True)):
            z = np.ascontiguousarray(logits[where], dtype=np.float32)  # [M, V]
            if do_sample:
                picks, scores = self._sample(z, cand, chain, n, seed)
            else:
                picks, scores = self._rank(z, cand, k)
            results.append(self._format(e.ids, where, picks, scores))
        if batched and len(results) > 1:
            return results
        return results[0]  # transformers returns the inner result for a one-element list too

    @staticmethod
    def _rank(z: np.ndarray, cand: Optional[np.ndarray], k: int) -> Tuple[np.ndarray, np.ndarray]:
        probs = sampling.softmax(z)  # over the whole vocabulary, also with targets (as transformers)
        if cand is not None:
            z, probs = np.ascontiguousarray(z[:, cand]), probs[:, cand]
        k = min(k, z.shape[1])  # capped to the candidates, as transformers caps top_k to the targets
        order = sampling.top_indices(z, k)  # by logit: the same order as by probability, no float32 ties
        picks = order if cand is None else cand[order]
        return picks, np.take_along_axis(probs, order, axis=1)

    @staticmethod
    def _sample(z: np.ndarray, cand: Optional[np.ndarray], chain: sampling.Chain, n: int,
                seed: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
        if cand is not None:
            only = np.full_like(z, -np.inf)
            only[:, cand] = z[:, cand]
            z = only
        filtered = chain(z)
        probs = sampling.softmax(filtered)
        picks = sampling.sample(filtered, generator=sampling.Generator(seed, z.shape[0]), num_samples=n)  # [M, n]
        return picks, np.take_along_axis(probs, picks, axis=1)

    def _format(self, ids: List[int], where: List[int], picks: np.ndarray, scores: np.ndarray) -> list:
        tok = self.tokenizer
        single = len(where) == 1
        pad = tok.pad_token_id
        rows = []
        for m, pos in enumerate(where):
            row = []
            for p, s in zip(picks[m].tolist(), scores[m].tolist()):
                filled = list(ids)
                filled[pos] = p
                if pad is not None:
                    filled = [t for t in filled if t != pad]
                # one mask: the readable sentence; several: keep specials so the other masks stay visible
                row.append({"score": float(s), "token": int(p), "token_str": tok.decode([p]),
                            "sequence": tok.decode(filled, skip_special_tokens=single)})
            rows.append(row)
        return rows[0] if single else rows


def _filter_chain(top_k: Optional[int] = None, temperature: Optional[float] = None, top_p: Optional[float] = None,
                  min_p: Optional[float] = None, typical_p: Optional[float] = None,
                  epsilon_cutoff: Optional[float] = None, eta_cutoff: Optional[float] = None,
                  top_n_sigma: Optional[float] = None) -> sampling.Chain:
    """The sampling warpers in generate()'s order (generation/processors.py build_chain); each object
    validates its parameter and names it in the ValueError."""
    S = sampling
    steps: List[S.LogitsProcessor] = []
    if temperature is not None and temperature != 1.0:
        steps.append(S.Temperature(temperature))
    if top_n_sigma is not None:
        steps.append(S.TopNSigma(top_n_sigma))
    if top_k is not None and top_k != 0:
        steps.append(S.TopK(top_k))
    if top_p is not None and top_p != 1.0:
        steps.append(S.TopP(top_p))
    if min_p is not None:
        steps.append(S.MinP(min_p))
    if typical_p is not None and typical_p != 1.0:
        steps.append(S.Typical(typical_p))
    if epsilon_cutoff is not None and epsilon_cutoff != 0.0:
        steps.append(S.Epsilon(epsilon_cutoff))
    if eta_cutoff is not None and eta_cutoff != 0.0:
        steps.append(S.Eta(eta_cutoff))
    return S.Chain(steps)


# ------------------------------------------------------------------------------------------------------------
# text-classification
# ------------------------------------------------------------------------------------------------------------
_NO_TOP_K = object()  # transformers' "" sentinel: top_k not passed at all (legacy single-label output)


class TextClassificationPipeline(Pipeline):
    """Classifies texts or text pairs, as transformers' TextClassificationPipeline.

    Inputs: a string, a dict ``{"text": ..., "text_pair": ...}``, or a list of either.
    ``function_to_apply``: None / "default" (regression → none; multi-label or one label → sigmoid; else
    softmax), "softmax", "sigmoid" or "none".
    Without ``top_k``: one ``{"label", "score"}`` (the best label) per input — a string gives a list of
    one dict, a dict gives the bare dict, a list gives a list of dicts. With ``top_k=k`` (or None for
    all labels): per input, the k best ``{"label", "score"}`` in descending order; a list gives a list
    of such lists. As in transformers, a string's result is wrapped in one more list whenever the call
    itself does not pass ``top_k`` — also when ``top_k`` was set as a pipeline default.
    """

    def __call__(self, inputs: Any, *args: Any, **options: Any) -> Any:
        self._check_options(options)
        return self._run(inputs, *args, **{**self.defaults, **options}, _wrap_string="top_k" not in options)

    task = "text-classification"
    model_classes = (EncoderForSequenceClassification,)
    needs = "a sequence-classification head (tfm.AutoModelForSequenceClassification)"

    def _run(self, inputs: Any, *, top_k: Any = _NO_TOP_K, function_to_apply: Optional[str] = None,
             tokenizer_kwargs: Optional[Dict[str, Any]] = None, _wrap_string: bool = True) -> Any:
        legacy = top_k is _NO_TOP_K
        if not legacy and top_k is not None:
            top_k = _count("top_k", top_k)
        fn = None if function_to_apply in (None, "default") else str(function_to_apply).lower()
        if fn is not None and fn not in FUNCTIONS:
            raise ValueError(f"function_to_apply must be one of default, {', '.join(FUNCTIONS)}; "
                             f"got {function_to_apply!r}")
        items = inputs if isinstance(inputs, list) else [inputs]
        if not items:
            raise ValueError("inputs is an empty list; nothing to classify")
        texts, pairs = [], []
        for i, item in enumerate(items):
            text, pair = _text_and_pair(item, i)
            texts.append(text)
            pairs.append(pair)
        encoded = self._encode(texts, pairs if any(p is not None for p in pairs) else None,
                               tokenizer_kwargs=tokenizer_kwargs)
        id2label = self.model.id2label
        results = []
        for logits in self._forward(encoded, per_token=False):
            scores = scores_from_logits(logits, self.model.config, fn)
            if legacy:
                best = int(np.argmax(scores))
                results.append({"label": id2label[best], "score": float(scores[best])})
                continue
            ranked = [{"label": id2label[i], "score": float(s)} for i, s in enumerate(scores)]
            ranked.sort(key=lambda d: d["score"], reverse=True)  # stable: equal scores keep label order
            results.append(ranked if top_k is None else ranked[:top_k])
        if isinstance(inputs, list):
            return results
        return [results[0]] if _wrap_string and isinstance(inputs, str) else results[0]


def _text_and_pair(item: Any, i: int) -> Tuple[str, Optional[str]]:
    if isinstance(item, str):
        return item, None
    if isinstance(item, dict):
        extra = set(item) - {"text", "text_pair"}
        if "text" not in item or extra:
            raise ValueError(f"input {i}: a dict input must have the key 'text' (and optionally 'text_pair'), "
                             f"got keys {sorted(item)}")
        text, pair = item["text"], item.get("text_pair")
        if not isinstance(text, str) or not (pair is None or isinstance(pair, str)):
            raise TypeError(f"input {i}: 'text' and 'text_pair' must be strings")
        # transformers tokenises each input alone, and its encode_plus drops a falsy pair: "" is no pair
        return text, pair or None
    raise TypeError(f"input {i} must be a string or a dict {{'text': ..., 'text_pair': ...}}, "
                    f"got {type(item).__name__}")


# ------------------------------------------------------------------------------------------------------------
# token-classification
# ------------------------------------------------------------------------------------------------------------
STRATEGIES = ("none", "simple", "first", "average", "max")


class TokenClassificationPipeline(Pipeline):
    """Labels every token, or groups tokens into entity spans, as transformers' TokenClassificationPipeline.

    ``aggregation_strategy``:
      "none"    one ``{"entity", "score", "index", "word", "start", "end"}`` per non-special token
      "simple"  adjacent tokens with the same tag (B-X then I-X, or equal plain labels) merged into
                ``{"entity_group", "score" (mean), "word", "start", "end"}``
      "first" / "average" / "max"  first make the word pieces of a word agree (the first piece's label;
                the label of the averaged scores; the label of the piece with the highest score), then
                group as "simple". A piece continues a word when its text in the sentence is longer than
                the token minus its "##"-style prefix (WordPiece); tokenizers without such a prefix fall
                back to "no space before it" (with a warning, as transformers).
    ``start``/``end`` are character offsets into the input string (from the tokenizer's offset mapping);
    labels in ``ignore_labels`` (default ["O"]) are left out. Texts are truncated to the tokenizer's
    model_max_length when it has one (as transformers).
    """

    task = "token-classification"
    model_classes = (EncoderForTokenClassification,)
    needs = "a token-classification head (tfm.AutoModelForTokenClassification)"

    def _run(self, inputs: Union[str, List[str]], *, aggregation_strategy: str = "none",
             ignore_labels: Optional[Sequence[str]] = None,
             tokenizer_kwargs: Optional[Dict[str, Any]] = None) -> Any:
        strategy = str(aggregation_strategy).lower()
        if strategy not in STRATEGIES:
            raise ValueError(f"aggregation_strategy must be one of {', '.join(STRATEGIES)}; "
                             f"got {aggregation_strategy!r}")
        ignore = ["O"] if ignore_labels is None else list(ignore_labels)
        texts, batched = _texts(inputs)
        kw = dict(tokenizer_kwargs or {})
        if self.tokenizer.model_max_length < LARGE_INTEGER:
            kw.setdefault("truncation", True)
        encoded = self._encode(texts, offsets=True, special=True, tokenizer_kwargs=kw)
        word_aware = bool(getattr(self.tokenizer.backend_tokenizer.model, "continuing_subword_prefix", None))
        if not word_aware and strategy in ("first", "average", "max"):
            warnings.warn("the tokenizer does not mark word pieces; word boundaries are guessed from spaces",
                          UserWarning, stacklevel=3)
        results = []
        for text, e, logits in zip(texts, encoded, self._forward(encoded, per_token=True)):
            logits = np.asarray(logits, dtype=np.float32)
            shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
            scores = shifted / shifted.sum(axis=-1, keepdims=True)  # [T, num_labels]
            tokens = self._pre_entities(text, e, scores, word_aware)
            entities = self._aggregate(tokens, strategy)
            results.append([x for x in entities if x.get("entity") not in ignore
                            and x.get("entity_group") not in ignore])
        return results if batched else results[0]

    def _pre_entities(self, text: str, e: _Encoded, scores: np.ndarray, word_aware: bool) -> List[dict]:
        tok = self.tokenizer
        unk = tok.unk_token_id
        out = []
        for idx, token_id in enumerate(e.ids):
            if e.special[idx]:
                continue
            word = tok.convert_ids_to_tokens(int(token_id))
            start, end = (int(x) for x in e.offsets[idx])
            in_text = text[start:end]
            if word_aware:
                subword = len(word) != len(in_text)  # "##ing" is longer than "ing" in the text
            else:
                subword = start > 0 and " " not in text[start - 1:start + 1]
            if unk is not None and token_id == unk:
                word, subword = in_text, False
            out.append({"word": word, "scores": scores[idx], "start": start, "end": end, "index": idx,
                        "is_subword": subword})
        return out

    def _aggregate(self, tokens: List[dict], strategy: str) -> List[dict]:
        labels = self.model.id2label
        if strategy in ("none", "simple"):
            entities = []
            for t in tokens:
                best = int(t["scores"].argmax())
                entities.append({"entity": labels[best], "score": float(t["scores"][best]), "index": t["index"],
                                 "word": t["word"], "start": t["start"], "end": t["end"]})
            if strategy == "none":
                return entities
        else:
            words, group = [], []
            for t in tokens:
                if group and not t["is_subword"]:
                    words.append(self._word(group, strategy))
                    group = []
                group.append(t)
            if group:
                words.append(self._word(group, strategy))
            entities = words
        return self._group(entities)

    def _word(self, pieces: List[dict], strategy: str) -> dict:
        """One word from its pieces: the label chosen by the strategy, the word text, the span."""
        if strategy == "first":
            scores = pieces[0]["scores"]
        elif strategy == "max":
            scores = max(pieces, key=lambda p: p["scores"].max())["scores"]  # the first piece on ties
        else:
            scores = np.nanmean(np.stack([p["scores"] for p in pieces]), axis=0)
        best = int(scores.argmax())
        return {"entity": self.model.id2label[best], "score": float(scores[best]),
                "word": self.tokenizer.convert_tokens_to_string([p["word"] for p in pieces]),
                "start": pieces[0]["start"], "end": pieces[-1]["end"]}

    def _group(self, entities: List[dict]) -> List[dict]:
        """Merge runs of adjacent entities with the same tag; a B- tag always starts a new group."""
        groups, run = [], []
        for ent in entities:
            if run:
                bi, tag = _bio(ent["entity"])
                if not (tag == _bio(run[-1]["entity"])[1] and bi != "B"):
                    groups.append(self._group_one(run))
                    run = []
            run.append(ent)
        if run:
            groups.append(self._group_one(run))
        return groups

    def _group_one(self, run: List[dict]) -> dict:
        return {"entity_group": run[0]["entity"].split("-", 1)[-1],
                "score": float(np.nanmean([e["score"] for e in run])),
                "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in run]),
                "start": run[0]["start"], "end": run[-1]["end"]}


def _bio(label: str) -> Tuple[str, str]:
    """("B" | "I", tag); a label without a B-/I- prefix counts as a continuation of itself."""
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


# ------------------------------------------------------------------------------------------------------------
# sentence pairs: next-sentence (BERT NSP) and sentence-order (ALBERT SOP)
# ------------------------------------------------------------------------------------------------------------
class _PairPipeline(Pipeline):
    labels: ClassVar[Tuple[str, str]] = ("", "")

    def _run(self, text: Any, text_pair: Any = None, *,
             tokenizer_kwargs: Optional[Dict[str, Any]] = None) -> Any:
        if text_pair is None:
            if isinstance(text, (list, tuple)) and text and all(isinstance(p, (list, tuple)) and len(p) == 2
                                                               for p in text):
                firsts, seconds = [p[0] for p in text], [p[1] for p in text]
                batched = True
            else:
                raise TypeError(f"the {self.task} pipeline takes two texts, pipe(text_a, text_b), or a list of "
                                f"(text_a, text_b) pairs")
        else:
            firsts, batched = _texts(text, "text")
            seconds, batched_b = _texts(text_pair, "text_pair")
            if batched != batched_b or len(firsts) != len(seconds):
                raise ValueError("text and text_pair must both be strings or lists of the same length")
        _texts(firsts, "first texts")
        _texts(seconds, "second texts")
        for i, (a, b) in enumerate(zip(firsts, seconds)):
            if not a.strip() or not b.strip():
                raise ValueError(f"the {self.task} pipeline scores two sentences; pair {i} has an empty one: "
                                 f"({a!r}, {b!r})")
        encoded = self._encode(firsts, seconds, tokenizer_kwargs=tokenizer_kwargs)
        results = []
        for logits in self._forward(encoded, per_token=False):
            p = sampling.softmax(np.asarray(logits, dtype=np.float32)).astype(np.float64)
            best = int(np.argmax(p))
            results.append({"label": self.labels[best], "score": float(p[best]),
                            "scores": {self.labels[0]: float(p[0]), self.labels[1]: float(p[1])}})
        return results if batched else results[0]


class NextSentencePipeline(_PairPipeline):
    """BERT next-sentence prediction: ``pipe(text_a, text_b)`` →
    ``{"label": "IsNext" | "NotNext", "score": p(label), "scores": {"IsNext": p0, "NotNext": p1}}``
    (softmax of the NSP logits). Index 0 = B continues A, as transformers' BertForNextSentencePrediction
    documents for ``next_sentence_label`` (0: continuation, 1: random sentence). Lists of the same length,
    or a list of (a, b) pairs, give a list of results."""

    task = "next-sentence"
    labels = ("IsNext", "NotNext")
    model_classes = (EncoderForNextSentencePrediction, EncoderForPreTraining)
    needs = "BERT's next-sentence head (tfm.AutoModelForNextSentencePrediction)"

    @classmethod
    def check_model(cls, model: Any) -> None:
        super().check_model(model)
        if isinstance(model, EncoderForPreTraining) and model.config.model_type != "bert":
            raise ValueError(f"the next-sentence pipeline needs {cls.needs}; a {model.config.model_type} "
                             f"pre-training model has no NSP head")

    def _logits(self, ids, mask, types):
        out = self.model(ids, attention_mask=mask, token_type_ids=types)
        return np.asarray(out.seq_relationship_logits if isinstance(self.model, EncoderForPreTraining)
                          else out.logits)


class SentenceOrderPipeline(_PairPipeline):
    """ALBERT sentence-order prediction: ``pipe(text_a, text_b)`` →
    ``{"label": "in order" | "swapped", "score": p(label), "scores": {"in order": p0, "swapped": p1}}``
    (softmax of ``sop_logits``). Index 0 = original order, as transformers' AlbertForPreTraining documents
    for ``sentence_order_label`` (0: A then B as in the text, 1: switched)."""

    task = "sentence-order"
    labels = ("in order", "swapped")
    model_classes = (EncoderForPreTraining,)
    needs = "ALBERT's sentence-order head (tfm.AutoModelForPreTraining on an ALBERT checkpoint)"

    @classmethod
    def check_model(cls, model: Any) -> None:
        super().check_model(model)
        if model.config.model_type != "albert":
            raise ValueError(f"the sentence-order pipeline needs {cls.needs}; a {model.config.model_type} "
                             f"pre-training model has no SOP head")

    def _logits(self, ids, mask, types):
        return np.asarray(self.model(ids, attention_mask=mask, token_type_ids=types).sop_logits)


# ------------------------------------------------------------------------------------------------------------
# the factory
# ------------------------------------------------------------------------------------------------------------
TASKS: Dict[str, Tuple[type, Any]] = {
    "fill-mask": (FillMaskPipeline, AutoModelForMaskedLM),
    "text-classification": (TextClassificationPipeline, AutoModelForSequenceClassification),
    "token-classification": (TokenClassificationPipeline, AutoModelForTokenClassification),
    "next-sentence": (NextSentencePipeline, AutoModelForNextSentencePrediction),
    "sentence-order": (SentenceOrderPipeline, AutoModelForPreTraining),
}
ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}  # transformers' names


def pipeline(task: str, model: Any, tokenizer: Any = None, *, batch_size: int = 8,
             model_kwargs: Optional[Dict[str, Any]] = None, **options: Any) -> Pipeline:
    """A pipeline for ``task`` (see the module docstring for the tasks).

    model: a checkpoint folder (loaded with the task's Auto class, ``model_kwargs`` passed to its
    from_pretrained, e.g. ``{"allow_random_head": True}``) or a loaded tfm model with the task's head.
    tokenizer: a tfm Tokenizer or a folder; by default the model's folder (for a model object: its
    ``tokenizer`` attribute if set, else the folder it was loaded from).
    options: defaults for every call (``top_k=3``, ``aggregation_strategy="first"``, ...).

    >>> fill = pipeline("fill-mask", model="path/to/bert")
    >>> fill("Paris is the [MASK] of France.", top_k=2)
    """
    if not isinstance(task, str):
        raise TypeError(f"task must be a string, one of {', '.join(TASKS)}")
    name = ALIASES.get(task, task)
    if name not in TASKS:
        raise ValueError(f"unknown task {task!r}; tfm pipelines: {', '.join(TASKS)} "
                         f"(aliases: {', '.join(f'{a} = {t}' for a, t in ALIASES.items())})")
    cls, auto = TASKS[name]
    folder: Optional[Path] = None
    if isinstance(model, (str, Path)):
        folder = Path(model)
        model_type = read_config_file(folder).get("model_type")  # FileNotFoundError for a wrong path
        if name == "sentence-order" and model_type != "albert":
            raise ValueError(f"{folder}: the sentence-order pipeline needs an ALBERT checkpoint with its SOP head; "
                             f"model_type is {model_type!r}")
        try:
            model = auto.from_pretrained(folder, **(model_kwargs or {}))
        except ValueError as e:
            raise ValueError(f"{name} pipeline: {e}") from None
    elif model_kwargs:
        raise ValueError("model_kwargs apply only when model is a folder to load")
    elif model is None:
        raise TypeError(f"pipeline({task!r}) needs model=: a checkpoint folder or a loaded tfm model")
    cls.check_model(model)
    return cls(model, _resolve_tokenizer(tokenizer, model, folder), batch_size=batch_size, **options)


def _resolve_tokenizer(tokenizer: Any, model: Any, folder: Optional[Path]) -> Tokenizer:
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if isinstance(tokenizer, (str, Path)):
        return AutoTokenizer.from_pretrained(tokenizer)
    if tokenizer is not None:
        raise TypeError(f"tokenizer must be a tfm Tokenizer or a folder, got {type(tokenizer).__name__}")
    if folder is not None:
        return AutoTokenizer.from_pretrained(folder)
    attached = getattr(model, "tokenizer", None)
    if isinstance(attached, Tokenizer):
        return attached
    source = getattr(model, "name_or_path", None)
    if source:
        try:
            return AutoTokenizer.from_pretrained(source)
        except FileNotFoundError as e:
            raise ValueError(f"no tokenizer given, and none could be loaded from the model's folder: {e}. "
                             f"Pass tokenizer=tfm.AutoTokenizer.from_pretrained(dir)") from None
    raise ValueError("a model object needs a tokenizer: pass tokenizer=tfm.AutoTokenizer.from_pretrained(dir) "
                     "(or set model.tokenizer)")
