"""Tokenizers for tfm checkpoints, built on the `tokenizers` library (Rust core).

Contract
--------
`AutoTokenizer.from_pretrained(folder)` reads a folder written by HF transformers' `save_pretrained` (or a hub
snapshot) and returns a `Tokenizer` whose ids, special tokens, padding, truncation and decoding match
transformers' *fast* tokenizer loaded from the same folder. Supported file sets:

* `tokenizer.json` (any model the `tokenizers` library can serialise), plus the optional
  `tokenizer_config.json`, `special_tokens_map.json`, `added_tokens.json`;
* without `tokenizer.json`, the backend is built here the way transformers' slow->fast converters build it:
  `vocab.json` + `merges.txt` (GPT-2 / GPT-Neo / RoBERTa / DeBERTa byte-level BPE, or openai-gpt BPE with `</w>`),
  `vocab.txt` (BERT / DistilBERT / ELECTRA WordPiece), `spiece.model` (ALBERT) and `spm.model` (DeBERTa-v2/v3)
  SentencePiece unigram models -- the protobuf is parsed here, so neither `sentencepiece` nor `protobuf` is needed.

The tokenizer family is chosen from `tokenizer_config.json`'s `tokenizer_class`, else `config.json`'s
`tokenizer_class` / `model_type`, else from which vocabulary files are present.

Where transformers would only log a warning and silently not pad / not truncate (padding="max_length" or
truncation=True with no max_length and no model_max_length), this raises ValueError instead.

What it deliberately does not do: no hand-written tokenisation algorithm (all splitting, merging, normalising and
decoding is the `tokenizers` library's), no slow (pure-Python / sentencepiece) tokenizers, no downloads, no chat
templates, no pre-tokenised (`is_split_into_words`) input, no overflow windows (`stride`), no adding new tokens,
and no tensors other than NumPy. transformers is never imported here.

Example
-------
>>> tok = AutoTokenizer.from_pretrained("tests/data/gpt2-tokenizer")
>>> tok.encode("Hello world")
[15496, 995]
>>> tok.pad_token = tok.eos_token                   # GPT-2 ships no pad token
>>> tok(["a", "b c"], padding=True, padding_side="left", return_tensors="np").input_ids
array([[50256,    64],
       [   65,   269]])
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
from tokenizers import AddedToken, Regex
from tokenizers import Tokenizer as _Backend
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

__all__ = ["AutoTokenizer", "Tokenizer", "BatchEncoding", "IncrementalDecoder"]

# transformers' sentinels: a model_max_length above LARGE_INTEGER means "no limit known".
VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)

# Order matters: transformers walks special tokens in this order when it registers them with the backend.
SPECIAL_TOKEN_ATTRIBUTES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

Token = Union[str, AddedToken]


# ----------------------------------------------------------------------------------------------------------------
# Per-class knowledge: the defaults each transformers tokenizer class applies when the folder does not say.

def _mask_lstrip(content: str) -> AddedToken:
    # RoBERTa/ALBERT's mask token swallows the space before it, so "a <mask>" gives one token for " <mask>".
    return AddedToken(content, lstrip=True, rstrip=False, normalized=False)


def _plain(content: str) -> AddedToken:
    return AddedToken(content, lstrip=False, rstrip=False)


def _special(content: str) -> AddedToken:
    return AddedToken(content, special=True)


@dataclass(frozen=True)
class _ClassSpec:
    builder: str                                    # how to build the backend without tokenizer.json
    specials: dict = field(default_factory=dict)    # attribute -> default token string
    input_names: tuple = ("input_ids", "token_type_ids", "attention_mask")
    slow_clean_up: bool = False     # clean_up_tokenization_spaces default of the slow class (conversion path)
    defaults: dict = field(default_factory=dict)    # other init defaults (do_lower_case, ...)
    # How the class turns special-token *strings* into AddedTokens (their flags decide how the token matches):
    # `fast_wrap` is applied by the fast class to any folder; `slow_wrap` by the slow class, whose settings win
    # when transformers converts it (folders without tokenizer.json).
    fast_wrap: dict = field(default_factory=dict)
    slow_wrap: dict = field(default_factory=dict)


_BERT_SPECIALS = dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
                      mask_token="[MASK]")
_BERT_DEFAULTS = dict(do_lower_case=True, strip_accents=None, tokenize_chinese_chars=True)
_CLS_SEP_SPECIALS = dict(bos_token="[CLS]", eos_token="[SEP]", sep_token="[SEP]", cls_token="[CLS]",
                         unk_token="[UNK]", pad_token="[PAD]", mask_token="[MASK]")

_CLASSES: dict[str, _ClassSpec] = {
    "GPT2Tokenizer": _ClassSpec(
        "byte_bpe", dict(unk_token="<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>"),
        ("input_ids", "attention_mask"),
        slow_wrap=dict(bos_token=_plain, eos_token=_plain, unk_token=_plain, pad_token=_plain)),
    "OpenAIGPTTokenizer": _ClassSpec("openai_bpe", dict(unk_token="<unk>"), ("input_ids", "attention_mask")),
    "BertTokenizer": _ClassSpec("wordpiece", _BERT_SPECIALS, slow_clean_up=True, defaults=_BERT_DEFAULTS),
    "DistilBertTokenizer": _ClassSpec("wordpiece", _BERT_SPECIALS, ("input_ids", "attention_mask"),
                                      slow_clean_up=True, defaults=_BERT_DEFAULTS),
    "ElectraTokenizer": _ClassSpec("wordpiece", _BERT_SPECIALS, slow_clean_up=True, defaults=_BERT_DEFAULTS),
    "RobertaTokenizer": _ClassSpec(
        "roberta_bpe", dict(bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                            unk_token="<unk>", pad_token="<pad>", mask_token="<mask>"),
        ("input_ids", "attention_mask"), defaults=dict(add_prefix_space=False, trim_offsets=True),
        fast_wrap=dict(mask_token=_mask_lstrip),
        slow_wrap=dict(bos_token=_plain, pad_token=_plain, eos_token=_plain, unk_token=_plain, sep_token=_plain,
                       cls_token=_plain, mask_token=_mask_lstrip)),
    "DebertaTokenizer": _ClassSpec(
        "deberta_bpe", _CLS_SEP_SPECIALS, ("input_ids", "attention_mask", "token_type_ids"),
        slow_wrap=dict(bos_token=_special, eos_token=_special, sep_token=_special, cls_token=_special,
                       unk_token=_special, pad_token=_special,
                       mask_token=lambda c: AddedToken(c, lstrip=True, rstrip=False))),
    "AlbertTokenizer": _ClassSpec(
        "albert_spm", dict(bos_token="[CLS]", eos_token="[SEP]", unk_token="<unk>", sep_token="[SEP]",
                           pad_token="<pad>", cls_token="[CLS]", mask_token="[MASK]"),
        defaults=dict(do_lower_case=True, keep_accents=False),
        fast_wrap=dict(mask_token=_mask_lstrip), slow_wrap=dict(mask_token=_mask_lstrip)),
    "DebertaV2Tokenizer": _ClassSpec(
        "deberta_v2_spm", _CLS_SEP_SPECIALS, defaults=dict(do_lower_case=False, split_by_punct=False),
        slow_wrap=dict(unk_token=lambda c: AddedToken(c, normalized=True, special=True))),
}
# A tokenizer.json of a class we do not know still loads, with no class defaults.
_GENERIC = _ClassSpec("none")

# config.json model_type -> tokenizer class (as transformers' AutoTokenizer maps them).
_MODEL_TYPES = {
    "gpt2": "GPT2Tokenizer", "gpt_neo": "GPT2Tokenizer", "openai-gpt": "OpenAIGPTTokenizer",
    "bert": "BertTokenizer", "distilbert": "DistilBertTokenizer", "electra": "ElectraTokenizer",
    "roberta": "RobertaTokenizer", "albert": "AlbertTokenizer", "deberta": "DebertaTokenizer",
    "deberta-v2": "DebertaV2Tokenizer",
}


# ----------------------------------------------------------------------------------------------------------------
# SentencePiece ModelProto reader (protobuf wire format, just the fields the converters need).

_SPM_NORMAL, _SPM_UNKNOWN, _SPM_CONTROL, _SPM_USER_DEFINED, _SPM_UNUSED, _SPM_BYTE = 1, 2, 3, 4, 5, 6


@dataclass
class SentencePieceModel:
    """The parts of a sentencepiece `ModelProto` (sentencepiece_model.proto) that tokenizer conversion uses."""
    pieces: list            # [(piece: str, score: float, type: int)], index = id
    model_type: int = 1     # 1 unigram, 2 bpe, 3 word, 4 char
    unk_id: int = 0
    byte_fallback: bool = False
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "SentencePieceModel":
        return cls.from_bytes(Path(path).read_bytes(), name=str(path))

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> "SentencePieceModel":
        try:
            return cls._parse(data)
        except (IndexError, struct.error, UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"{name}: not a valid sentencepiece model ({e})") from None

    @classmethod
    def _parse(cls, data: bytes) -> "SentencePieceModel":
        m = cls(pieces=[])
        for num, _, val in _proto_fields(data):
            if num == 1:                                    # repeated SentencePiece pieces
                piece, score, ptype = "", 0.0, _SPM_NORMAL
                for n, wt, v in _proto_fields(val):
                    if n == 1:
                        piece = v.decode("utf-8")
                    elif n == 2 and wt == 5:
                        score = struct.unpack("<f", v)[0]
                    elif n == 3:
                        ptype = v
                m.pieces.append((piece, score, ptype))
            elif num == 2:                                  # TrainerSpec
                for n, _, v in _proto_fields(val):
                    if n == 3:
                        m.model_type = v
                    elif n == 35:
                        m.byte_fallback = bool(v)
                    elif n == 40:
                        m.unk_id = _signed(v)
            elif num == 3:                                  # NormalizerSpec
                for n, _, v in _proto_fields(val):
                    if n == 2:
                        m.precompiled_charsmap = bytes(v)
                    elif n == 3:
                        m.add_dummy_prefix = bool(v)
        if not m.pieces:
            raise ValueError("no pieces")
        if not 0 <= m.unk_id < len(m.pieces):
            raise ValueError(f"unk_id {m.unk_id} outside the {len(m.pieces)} pieces")
        return m

    
def _signed(v: int) -> int:
    # int32 fields are varint-encoded as 64-bit two's complement when negative.
    return v - (1 << 64) if v >= 1 << 63 else v


def _proto_fields(buf: bytes):
    """Yield (field number, wire type, value) of one protobuf message: ints for varints, bytes otherwise."""
    buf = memoryview(buf)
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1 or wt == 5:
            size = 8 if wt == 1 else 4
            if pos + size > end:
                raise ValueError("truncated fixed-size field")
            val, pos = bytes(buf[pos:pos + size]), pos + size
        elif wt == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ValueError(f"field {num} runs past the end of its message")
            val, pos = bytes(buf[pos:pos + size]), pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        yield num, wt, val


def _varint(buf, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


# ----------------------------------------------------------------------------------------------------------------
# Backends built from vocabulary files, mirroring transformers' slow->fast converters (convert_slow_tokenizer.py).

def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from None


def _read_bpe_files(folder: Path) -> tuple[dict, list]:
    vocab = _read_json(folder / "vocab.json")
    if not isinstance(vocab, dict):
        raise ValueError(f"{folder / 'vocab.json'}: expected a JSON object token -> id")
    merges = []
    with open(folder / "merges.txt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if lineno == 1 and line.startswith("#version"):
                continue
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{folder / 'merges.txt'}:{lineno}: expected two tokens, got {line!r}")
            merges.append((parts[0], parts[1]))
    return vocab, merges


def _read_vocab_txt(path: Path) -> dict:
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for index, line in enumerate(f):
            vocab[line.rstrip("\n")] = index       # id = line number; a repeated token keeps its last line
    return vocab


def _template(cls_tok: str, sep_tok: str, unk: Optional[str]):
    """`[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]` with type ids 0/1; the ids are looked up once added tokens exist."""
    def make(backend: _Backend) -> processors.TemplateProcessing:
        return processors.TemplateProcessing(
            single=f"{cls_tok}:0 $A:0 {sep_tok}:0", pair=f"{cls_tok}:0 $A:0 {sep_tok}:0 $B:1 {sep_tok}:1",
            special_tokens=[(cls_tok, _backend_id(backend, cls_tok, unk)),
                            (sep_tok, _backend_id(backend, sep_tok, unk))])
    return make


def _backend_id(backend: _Backend, token: Optional[str], unk: Optional[str]) -> int:
    for t in (token, unk):
        if t is not None and backend.token_to_id(t) is not None:
            return backend.token_to_id(t)
    raise ValueError(f"special token {token!r} is neither in the vocabulary nor replaceable by an unk token")


def _build_backend(spec: _ClassSpec, folder: Path, opts: dict, token_str):
    """Build the backend the way transformers' converter for this class does. `token_str(attr)` is the resolved
    special token string (or None); `opts` the merged init options (do_lower_case, add_prefix_space, ...).

    Returns (backend, post) where `post(backend)` makes the post-processor once the special tokens are registered
    (a special token missing from the vocabulary gets its id only then, as transformers' slow tokenizer gives it)."""
    b = spec.builder
    needed = {"wordpiece": ["vocab.txt"], "albert_spm": ["spiece.model"], "deberta_v2_spm": ["spm.model"]}.get(
        b, ["vocab.json", "merges.txt"])
    if b.endswith("_spm"):      # either sentencepiece file name is accepted (see below)
        missing = not any((folder / n).exists() for n in ("spiece.model", "spm.model"))
    else:
        missing = not all((folder / n).exists() for n in needed)
    if missing:
        raise FileNotFoundError(f"{folder}: a {b} tokenizer without tokenizer.json needs {' + '.join(needed)}")
    unk = token_str("unk_token")
    if b in ("byte_bpe", "roberta_bpe", "deberta_bpe"):
        vocab, merges = _read_bpe_files(folder)
        tok = _Backend(models.BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                                  end_of_word_suffix="", fuse_unk=False))
        add_prefix_space = bool(opts.get("add_prefix_space", False))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
        tok.decoder = decoders.ByteLevel()
        if b == "roberta_bpe":
            sep, cls = token_str("sep_token"), token_str("cls_token")
            return tok, lambda t: processors.RobertaProcessing(
                sep=(sep, _backend_id(t, sep, unk)), cls=(cls, _backend_id(t, cls, unk)),
                add_prefix_space=add_prefix_space, trim_offsets=True)
        if b == "deberta_bpe":
            return tok, _template("[CLS]", "[SEP]", unk)
        bos = token_str("bos_token")
        if opts.get("add_bos_token", False) and bos is not None:
            return tok, lambda t: processors.TemplateProcessing(
                single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 $B:1", special_tokens=[(bos, _backend_id(t, bos, unk))])
        return tok, lambda t: processors.ByteLevel(trim_offsets=False)

    if b == "openai_bpe":
        vocab, merges = _read_bpe_files(folder)
        tok = _Backend(models.BPE(vocab=vocab, merges=merges, dropout=None, unk_token=unk,
                                  end_of_word_suffix="</w>", fuse_unk=False))
        if unk is not None and tok.token_to_id(unk) is not None:
            tok.add_special_tokens([unk])
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.BPEDecoder(suffix="</w>")
        return tok, None

    if b == "wordpiece":
        vocab = _read_vocab_txt(folder / "vocab.txt")
        tok = _Backend(models.WordPiece(vocab, unk_token=str(unk)))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=bool(opts["tokenize_chinese_chars"]),
            strip_accents=opts["strip_accents"], lowercase=bool(opts["do_lower_case"]))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        return tok, _template(token_str("cls_token"), token_str("sep_token"), unk)

    if b in ("albert_spm", "deberta_v2_spm"):
        path = folder / ("spiece.model" if b == "albert_spm" else "spm.model")
        if not path.exists():      # a DeBERTa-v2 folder may name its model spiece.model and vice versa
            path = folder / ("spm.model" if b == "albert_spm" else "spiece.model")
        spm = SentencePieceModel.from_file(path)
        tok = _spm_backend(spm, b, opts, str(path))
        # The converters take [CLS]/[SEP] ids from the slow tokenizer, which knows the pieces and its added tokens.
        return tok, _template("[CLS]", "[SEP]", spm.pieces[spm.unk_id][0])

    raise ValueError(f"no vocabulary builder for tokenizer kind {b!r}")


def _spm_backend(spm: SentencePieceModel, kind: str, opts: dict, name: str) -> _Backend:
    """ALBERT / DeBERTa-v2 unigram backend from a sentencepiece model (transformers' AlbertConverter /
    DebertaV2Converter: same pieces and scores, their normalizer sequence, Metaspace pre-tokenizer)."""
    if spm.model_type != 1:
        raise ValueError(f"{name}: sentencepiece model_type {spm.model_type} is not unigram (1); only unigram "
                         "models (ALBERT, DeBERTa-v2/v3) are supported")
    if kind == "albert_spm":
        # The slow ALBERT tokenizer re-splits pieces like "9," into "9" + ","; the converter mimics that by making
        # such pieces 100 nats less likely.
        vocab = [(p, s if not _number_comma(p) else s - 100.0) for p, s, _ in spm.pieces]
    else:
        vocab = [(p, s) for p, s, _ in spm.pieces]
    tok = _Backend(models.Unigram(vocab, spm.unk_id, False))
    # Control and user-defined pieces match as whole strings before the model runs (SpmConverter).
    tok.add_tokens([AddedToken(p, normalized=False, special=(t == _SPM_CONTROL))
                    for p, _, t in spm.pieces if t in (_SPM_CONTROL, _SPM_USER_DEFINED)])

    steps = []
    if kind == "albert_spm":
        steps += [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
        if not opts["keep_accents"]:
            steps += [normalizers.NFKD(), normalizers.StripAccents()]
        if opts["do_lower_case"]:
            steps.append(normalizers.Lowercase())
    else:
        if opts["do_lower_case"]:
            steps.append(normalizers.Lowercase())
        steps.append(normalizers.Strip())
    if spm.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spm.precompiled_charsmap))
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    tok.normalizer = normalizers.Sequence(steps)

    # Both converters keep add_prefix_space=True -> prepend "always" (these slow classes have no `legacy` flag).
    metaspace = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    if kind == "deberta_v2_spm":
        split = [pre_tokenizers.Punctuation(behavior="isolated")] if opts.get("split_by_punct") else []
        tok.pre_tokenizer = pre_tokenizers.Sequence(split + [metaspace])
    else:
        tok.pre_tokenizer = metaspace
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    return tok


def _number_comma(piece: str) -> bool:
    return len(piece) >= 2 and piece[-1] == "," and piece[-2].isdigit()


# ----------------------------------------------------------------------------------------------------------------
# Reading the folder.

def _as_token(value: Any, where: str) -> Optional[Token]:
    """A special-token entry of a config file: a string, null, or a serialised AddedToken."""
    if value is None or isinstance(value, (str, AddedToken)):
        return value
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "__type"}
        try:
            return AddedToken(**value)
        except TypeError as e:
            raise ValueError(f"{where}: cannot read token {value!r} ({e})") from None
    raise ValueError(f"{where}: a special token must be a string or a token object, got {value!r}")


def _resolve_class(folder: Path, config: dict, files: set) -> tuple[str, _ClassSpec]:
    name = config.get("tokenizer_class")
    if name is None and "config.json" in files:
        model_config = _read_json(folder / "config.json")
        name = model_config.get("tokenizer_class")
        if name is None and model_config.get("model_type") in _MODEL_TYPES:
            name = _MODEL_TYPES[model_config["model_type"]]
    if name is not None:
        name = name[:-4] if name.endswith("Fast") else name
        if name in _CLASSES:
            return name, _CLASSES[name]
        if "tokenizer.json" in files:
            return name, _GENERIC
        raise ValueError(f"{folder}: tokenizer class {name!r} is not supported without a tokenizer.json "
                         f"(supported: {', '.join(sorted(_CLASSES))})")
    if "tokenizer.json" in files:
        return "PreTrainedTokenizer", _GENERIC
    if "vocab.txt" in files:
        return "BertTokenizer", _CLASSES["BertTokenizer"]
    if "spiece.model" in files:
        return "AlbertTokenizer", _CLASSES["AlbertTokenizer"]
    if "spm.model" in files:
        return "DebertaV2Tokenizer", _CLASSES["DebertaV2Tokenizer"]
    if {"vocab.json", "merges.txt"} <= files:
        vocab = _read_json(folder / "vocab.json")
        # openai-gpt marks word ends with "</w>"; byte-level BPE vocabularies have no such pieces.
        if isinstance(vocab, dict) and any(k.endswith("</w>") for k in vocab):
            return "OpenAIGPTTokenizer", _CLASSES["OpenAIGPTTokenizer"]
        return "GPT2Tokenizer", _CLASSES["GPT2Tokenizer"]
    raise FileNotFoundError(_missing_message(folder, files))


def _missing_message(folder: Path, files: set) -> str:
    return (f"no tokenizer files in {folder}: looked for tokenizer.json, vocab.json + merges.txt (byte-level or "
            f"openai-gpt BPE), vocab.txt (WordPiece), spiece.model or spm.model (SentencePiece); found "
            f"{sorted(files) or 'nothing'}")


# ----------------------------------------------------------------------------------------------------------------
# The tokenizer.

class BatchEncoding(dict):
    """A dict of model inputs (`input_ids`, `attention_mask`, maybe `token_type_ids`, `offset_mapping`) that also
    allows attribute access: `enc.input_ids is enc["input_ids"]`."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no field {name!r} (fields: {list(self)})") from None


_PADDING = {False: None, "do_not_pad": None, True: "longest", "longest": "longest", "max_length": "max_length"}
_TRUNCATION = {None: None, False: None, "do_not_truncate": None, True: "longest_first",
               "longest_first": "longest_first", "only_first": "only_first", "only_second": "only_second"}


def _special_token(attr: str) -> property:
    return property(lambda self: self._token(attr), lambda self, value: self._set_token(attr, value),
                    doc=f"The {attr.replace('_', ' ')} string, or None. Settable to any token of the vocabulary.")


def _special_token_id(attr: str) -> property:
    return property(lambda self: self._token_id(attr), doc=f"Id of the {attr.replace('_', ' ')}, or None.")


class Tokenizer:
    """A `tokenizers` backend plus the special tokens, defaults and call conventions of transformers' fast
    tokenizers. Build it with `AutoTokenizer.from_pretrained(folder)`.

    >>> tok = AutoTokenizer.from_pretrained(folder)
    >>> ids = tok.encode("Hello there")
    >>> tok.decode(ids) == "Hello there"
    True
    >>> tok.pad_token = tok.eos_token                 # GPT-2 has no pad token
    >>> enc = tok(["hi", "hello there"], padding=True, padding_side="left", return_tensors="np")
    >>> enc.input_ids.shape, enc.attention_mask.shape
    ((2, 2), (2, 2))
    """

    def __init__(self, backend: _Backend, *, tokenizer_class: str = "PreTrainedTokenizer",
                 special_tokens: Optional[dict] = None, additional_special_tokens: Sequence[Token] = (),
                 model_input_names: Sequence[str] = ("input_ids", "token_type_ids", "attention_mask"),
                 model_max_length: Optional[int] = None, padding_side: str = "right",
                 truncation_side: str = "right", clean_up_tokenization_spaces: bool = False,
                 pad_token_type_id: int = 0, name_or_path: str = ""):
        for what, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("left", "right"):
                raise ValueError(f"{what} must be 'left' or 'right', got {side!r}")
        self._backend = backend
        self.tokenizer_class = tokenizer_class
        self.name_or_path = name_or_path
        self._special: dict[str, Optional[Token]] = {a: None for a in SPECIAL_TOKEN_ATTRIBUTES}
        self._special.update(special_tokens or {})
        self._additional: list[Token] = list(additional_special_tokens)
        self.model_input_names = list(model_input_names)
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.pad_token_type_id = int(pad_token_type_id)
        self._state: tuple = ("unset",)   # the padding/truncation currently configured on the backend

    @classmethod
    def from_pretrained(cls, path: Union[str, Path], **overrides) -> "Tokenizer":
        return AutoTokenizer.from_pretrained(path, **overrides)

    @property
    def backend_tokenizer(self) -> _Backend:
        """The underlying `tokenizers.Tokenizer` (shared, not a copy)."""
        return self._backend

    # -- special tokens --------------------------------------------------------------------------------------
    def _token(self, attr: str) -> Optional[str]:
        value = self._special[attr]
        return None if value is None else str(value)

    def _token_id(self, attr: str) -> Optional[int]:
        token = self._token(attr)
        return None if token is None else self.convert_tokens_to_ids(token)

    def _set_token(self, attr: str, value: Optional[str]) -> None:
        if value is not None:
            if not isinstance(value, str):
                raise TypeError(f"{attr} must be a string or None, got {type(value).__name__}")
            if self._backend.token_to_id(value) is None:
                raise ValueError(f"{attr} {value!r} is not in the vocabulary; use one of its tokens "
                                 f"(e.g. tok.{attr} = tok.eos_token)")
        self._special[attr] = value
        self._state = ("unset",)

    bos_token = _special_token("bos_token")
    eos_token = _special_token("eos_token")
    unk_token = _special_token("unk_token")
    sep_token = _special_token("sep_token")
    pad_token = _special_token("pad_token")
    cls_token = _special_token("cls_token")
    mask_token = _special_token("mask_token")
    bos_token_id = _special_token_id("bos_token")
    eos_token_id = _special_token_id("eos_token")
    unk_token_id = _special_token_id("unk_token")
    sep_token_id = _special_token_id("sep_token")
    pad_token_id = _special_token_id("pad_token")
    cls_token_id = _special_token_id("cls_token")
    mask_token_id = _special_token_id("mask_token")

    @property
    def additional_special_tokens(self) -> list[str]:
        return [str(t) for t in self._additional]

    @property
    def special_tokens_map(self) -> dict:
        out: dict[str, Any] = {a: str(v) for a, v in self._special.items() if v is not None}
        if self._additional:
            out["additional_special_tokens"] = self.additional_special_tokens
        return out

    def _special_tokens_extended(self) -> list[Token]:
        # Unique by content, in attribute order, then the additional ones (transformers' all_special_tokens_extended).
        out, seen = [], set()
        for value in [self._special[a] for a in SPECIAL_TOKEN_ATTRIBUTES] + self._additional:
            if value is not None and str(value) not in seen:
                seen.add(str(value))
                out.append(value)
        return out

    @property
    def all_special_tokens(self) -> list[str]:
        return [str(t) for t in self._special_tokens_extended()]

    @property
    def all_special_ids(self) -> list[int]:
        return [self.convert_tokens_to_ids(t) for t in self.all_special_tokens]

    # -- vocabulary ------------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens."""
        return self._backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    def convert_tokens_to_ids(self, tokens: Union[str, Iterable[str]]) -> Union[int, list[int]]:
        """Token string(s) -> id(s); unknown tokens map to the unk id (None when there is no unk token)."""
        if isinstance(tokens, str):
            index = self._backend.token_to_id(tokens)
            return index if index is not None else self.unk_token_id
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: Union[int, Iterable[int]], skip_special_tokens: bool = False):
        """Id(s) -> token string(s); an id outside the vocabulary gives None."""
        if isinstance(ids, (int, np.integer)):
            return self._backend.id_to_token(_check_id(ids))
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        return [self._backend.id_to_token(i) for i in map(_check_id, ids) if i not in skip]

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Token strings -> text through the backend's decoder (WordPiece joins "##" pieces, byte-level BPE maps
        bytes back), or joined by spaces when the backend has no decoder -- as transformers' fast tokenizers."""
        tokens = list(tokens)
        if not all(isinstance(t, str) for t in tokens):
            raise TypeError("convert_tokens_to_string takes a list of token strings")
        decoder = self._backend.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)

    def tokenize(self, text: str, pair: Optional[str] = None, add_special_tokens: bool = False) -> list[str]:
        """The token strings of `text` (and `pair`)."""
        self._configure(None, None, None, None, None)
        return self._encode_batch([_pair(text, pair)], add_special_tokens)[0].tokens

    # -- encoding --------------------------------------------------------------------------------------------
    def encode(self, text: str, text_pair: Optional[str] = None, add_special_tokens: bool = True,
               truncation: Union[bool, str, None] = None, max_length: Optional[int] = None) -> list[int]:
        """Ids of one text (or pair). `max_length` alone truncates, as in transformers."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes one string (use tok(list_of_texts) for a batch), "
                            f"got {type(text).__name__}")
        return self(text, text_pair, add_special_tokens=add_special_tokens, truncation=truncation,
                    max_length=max_length, return_attention_mask=False, return_token_type_ids=False)["input_ids"]

    def __call__(self, text: Union[str, Sequence[str]], text_pair: Union[str, Sequence[str], None] = None, *,
                 padding: Union[bool, str] = False, truncation: Union[bool, str, None] = None,
                 max_length: Optional[int] = None, padding_side: Optional[str] = None,
                 pad_to_multiple_of: Optional[int] = None, return_tensors: Optional[str] = None,
                 add_special_tokens: bool = True, return_token_type_ids: Optional[bool] = None,
                 return_attention_mask: Optional[bool] = None, return_offsets_mapping: bool = False,
                 return_special_tokens_mask: bool = False, return_length: bool = False) -> BatchEncoding:
        """Encode one text or a batch (a list of texts; `text_pair` a text or list of the same length).

        padding: False | True/"longest" (to the longest in the batch) | "max_length" (to `max_length`, default
        `model_max_length`). truncation: None (truncate only if `max_length` is given and padding is off, like
        transformers) | False | True/"longest_first" | "only_first" | "only_second". padding_side: "left" |
        "right" | None (`self.padding_side`). return_tensors: None (lists; a single text gives flat lists) or "np"
        (int64 arrays [batch, length]; offsets [batch, length, 2]).
        """
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors must be None or 'np' (tfm has no torch/tf tensors), "
                             f"got {return_tensors!r}")
        batch, batched = _as_batch(text, text_pair)
        pad_mode, trunc_mode, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of)
        side = self.padding_side if padding_side is None else padding_side
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
        self._configure(pad_mode, trunc_mode, max_length, side, pad_to_multiple_of)
        encodings = self._encode_batch(batch, add_special_tokens)

        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        out = BatchEncoding(input_ids=[e.ids for e in encodings])
        if return_token_type_ids:
            out["token_type_ids"] = [e.type_ids for e in encodings]
        if return_attention_mask:
            out["attention_mask"] = [e.attention_mask for e in encodings]
        if return_special_tokens_mask:
            out["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encodings]
        if return_length:
            out["length"] = [len(e.ids) for e in encodings]

        if return_tensors == "np":
            lengths = {len(e.ids) for e in encodings}
            if len(lengths) > 1:
                raise ValueError(f"cannot stack sequences of different lengths {sorted(lengths)} into an array; "
                                 "pass padding=True (or padding='max_length')")
            for key, value in out.items():
                if key == "offset_mapping":
                    out[key] = np.array(value, dtype=np.int64).reshape(len(encodings), -1, 2)
                else:
                    out[key] = np.array(value, dtype=np.int64)
        elif not batched:
            for key in out:
                out[key] = out[key][0]
        return out

    def _strategies(self, padding, truncation, max_length, pad_to_multiple_of):
        """Resolve padding / truncation the way transformers' _get_padding_truncation_strategies does, but fail
        loudly where it would silently fall back to no padding / no truncation."""
        if max_length is not None and (not isinstance(max_length, (int, np.integer)) or max_length < 0):
            raise ValueError(f"max_length must be a non-negative integer, got {max_length!r}")
        if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1):
            raise ValueError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of!r}")
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"      # transformers: max_length alone activates truncation
        try:
            pad_mode = _PADDING[padding]
        except (KeyError, TypeError):
            raise ValueError(f"padding must be False, True, 'longest', 'max_length' or 'do_not_pad', "
                             f"got {padding!r}") from None
        try:
            trunc_mode = _TRUNCATION[truncation]
        except (KeyError, TypeError):
            raise ValueError(f"truncation must be None, False, True, 'longest_first', 'only_first', 'only_second' "
                             f"or 'do_not_truncate', got {truncation!r}") from None
        if max_length is None and (pad_mode == "max_length" or trunc_mode is not None):
            if self.model_max_length > LARGE_INTEGER:
                what = "padding='max_length'" if pad_mode == "max_length" else f"truncation={truncation!r}"
                raise ValueError(f"{what} needs max_length: this tokenizer has no model_max_length "
                                 "(tokenizer_config.json does not set one)")
            max_length = self.model_max_length
        if pad_mode is not None and (self.pad_token is None or self.pad_token_id is None):
            raise ValueError("asked to pad but the tokenizer has no pad token; set one first, e.g. "
                             "`tok.pad_token = tok.eos_token`")
        return pad_mode, trunc_mode, max_length

    def _configure(self, pad_mode, trunc_mode, max_length, side, pad_to_multiple_of) -> None:
        # The backend keeps padding/truncation as state; set it only when the request differs from the last one.
        state = (pad_mode, trunc_mode, max_length, side, pad_to_multiple_of,
                 self.pad_token_id, self.truncation_side)
        if state == self._state:
            return
        if trunc_mode is None:
            self._backend.no_truncation()
        else:
            try:
                self._backend.enable_truncation(max_length, stride=0, strategy=trunc_mode,
                                                direction=self.truncation_side)
            except Exception as e:      # e.g. max_length smaller than the special tokens it must keep
                raise ValueError(f"cannot truncate to max_length={max_length}: {e}") from None
        if pad_mode is None:
            self._backend.no_padding()
        else:
            self._backend.enable_padding(direction=side, pad_id=self.pad_token_id,
                                         pad_type_id=self.pad_token_type_id, pad_token=self.pad_token,
                                         length=max_length if pad_mode == "max_length" else None,
                                         pad_to_multiple_of=pad_to_multiple_of)
        self._state = state

    def _encode_batch(self, batch: list, add_special_tokens: bool):
        try:
            return self._backend.encode_batch(batch, add_special_tokens=add_special_tokens)
        except Exception as e:
            # The Rust side reports e.g. truncation that cannot fit the special tokens; keep it a ValueError.
            self._state = ("unset",)
            raise ValueError(f"tokenization failed: {e}") from None

    # -- decoding --------------------------------------------------------------------------------------------
    def decode(self, token_ids, skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: Optional[bool] = None) -> str:
        """Text of `token_ids` (a list / 1-D array of ids, or one id). Ids the vocabulary does not have are
        dropped, as in transformers. `clean_up_tokenization_spaces` defaults to the checkpoint's setting."""
        ids = _id_list(token_ids)
        text = self._backend.decode(ids, skip_special_tokens=skip_special_tokens)
        if self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None \
                else clean_up_tokenization_spaces:
            text = clean_up_tokenization(text)
        return text

    def batch_decode(self, sequences, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: Optional[bool] = None) -> list[str]:
        if isinstance(sequences, np.ndarray) and sequences.ndim != 2:
            raise ValueError(f"batch_decode expects a 2-D array [batch, length], got shape {sequences.shape}")
        return [self.decode(s, skip_special_tokens, clean_up_tokenization_spaces) for s in sequences]

    def __repr__(self) -> str:
        return (f"Tokenizer(class={self.tokenizer_class!r}, vocab_size={self.vocab_size}, len={len(self)}, "
                f"model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
                f"special_tokens={self.special_tokens_map})")


# transformers' `clean_up_tokenization` replacements, applied in this order.
_CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
             (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def clean_up_tokenization(text: str) -> str:
    """Remove the spaces English word-splitting tokenizers put before punctuation and contractions."""
    for before, after in _CLEAN_UP:
        text = text.replace(before, after)
    return text


def _check_id(i) -> int:
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"token ids must be integers, got {type(i).__name__} {i!r}")
    if i < 0 or i >= 1 << 32:
        raise ValueError(f"token id {int(i)} is out of range")
    return int(i)


def _id_list(token_ids) -> list[int]:
    if isinstance(token_ids, (int, np.integer)):
        return [_check_id(token_ids)]
    if isinstance(token_ids, np.ndarray):
        if token_ids.ndim != 1:
            raise ValueError(f"decode expects a 1-D sequence of ids, got an array of shape {token_ids.shape}")
        if token_ids.size and not np.issubdtype(token_ids.dtype, np.integer):
            raise TypeError(f"token ids must be integers, got dtype {token_ids.dtype}")
        token_ids = token_ids.tolist()
    return [_check_id(i) for i in token_ids]


def _pair(text, pair):
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if pair is None:
        return text
    if not isinstance(pair, str):
        raise TypeError(f"text_pair must be a string, got {type(pair).__name__}")
    return (text, pair)


def _as_batch(text, text_pair) -> tuple[list, bool]:
    if isinstance(text, str):
        return [_pair(text, text_pair)], False
    if not isinstance(text, (list, tuple)):
        raise TypeError(f"text must be a string or a list of strings, got {type(text).__name__}")
    if not text:
        raise ValueError("text is an empty list; nothing to encode")
    if text_pair is None:
        return [_pair(t, None) for t in text], True
    if isinstance(text_pair, str) or len(text_pair) != len(text):
        raise ValueError("for a batch, text_pair must be a list of the same length as text")
    return [_pair(t, p) for t, p in zip(text, text_pair)], True


# ----------------------------------------------------------------------------------------------------------------
# Loading.

_OVERRIDABLE = set(SPECIAL_TOKEN_ATTRIBUTES) | {
    "additional_special_tokens", "padding_side", "truncation_side", "model_max_length", "model_input_names",
    "clean_up_tokenization_spaces", "split_special_tokens", "do_lower_case", "strip_accents", "tokenize_chinese_chars",
    "keep_accents", "split_by_punct", "add_prefix_space", "trim_offsets", "add_bos_token", "pad_token_type_id"}


class AutoTokenizer:
    """`AutoTokenizer.from_pretrained(folder)` -> `Tokenizer` (see the module docstring for the file sets)."""

    def __init__(self):
        raise TypeError("use AutoTokenizer.from_pretrained(folder)")

    @staticmethod
    def from_pretrained(path: Union[str, Path], **overrides) -> Tokenizer:
        """Load the tokenizer saved in `path`. `overrides` replace tokenizer_config.json entries, e.g.
        `padding_side="left"`, `model_max_length=1024`, `pad_token="<|endoftext|>"`, `do_lower_case=False`.

        >>> tok = AutoTokenizer.from_pretrained("tests/data/gpt2-tokenizer", padding_side="left")
        """
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"tokenizer folder {folder} does not exist (tfm loads local folders only)")
        files = {p.name for p in folder.iterdir() if p.is_file()}
        if not any(f in files for f in ("tokenizer.json", "vocab.txt", "spiece.model", "spm.model")) and \
                not {"vocab.json", "merges.txt"} <= files:
            raise FileNotFoundError(_missing_message(folder, files))
        unknown = set(overrides) - _OVERRIDABLE
        if unknown:
            raise TypeError(f"from_pretrained got unknown option(s) {sorted(unknown)}; "
                            f"known: {sorted(_OVERRIDABLE)}")

        config = _read_json(folder / "tokenizer_config.json") if "tokenizer_config.json" in files else {}
        if not isinstance(config, dict):
            raise ValueError(f"{folder / 'tokenizer_config.json'}: expected a JSON object")
        class_name, spec = _resolve_class(folder, config, files)
        has_json = "tokenizer.json" in files
        opts, added_decoder = _init_options(folder, files, config)
        opts.update(overrides)
        for key, value in spec.defaults.items():
            opts.setdefault(key, value)
        specials, additional = _special_tokens(folder, spec, opts, added_decoder, has_json)

        make_post = None
        if has_json:
            backend = _Backend.from_file(str(folder / "tokenizer.json"))
        elif spec.builder == "none":
            raise ValueError(f"{folder}: cannot build tokenizer class {class_name!r} without tokenizer.json")
        else:
            backend, make_post = _build_backend(
                spec, folder, opts, lambda a: None if specials[a] is None else str(specials[a]))

        # Padding/truncation settings stored in tokenizer.json become defaults (as in transformers).
        if backend.padding is not None:
            opts.setdefault("padding_side", backend.padding["direction"])
            if specials["pad_token"] is None and "pad_token" not in opts and backend.padding.get("pad_token"):
                specials["pad_token"] = backend.padding["pad_token"]
        if backend.truncation is not None:
            opts.setdefault("truncation_side", backend.truncation["direction"])

        # Same order as transformers: added/special tokens, then the class's fix-ups of the loaded backend.
        _register_added_tokens(backend, added_decoder, specials, additional)
        if make_post is not None:
            backend.post_processor = make_post(backend)
        _adjust_backend(backend, spec, opts)
        if opts.get("split_special_tokens"):
            backend.encode_special_tokens = True

        clean_up = opts.get("clean_up_tokenization_spaces")
        if clean_up is None:   # the slow class's default reaches the fast one only through conversion
            clean_up = spec.slow_clean_up and not has_json
        return Tokenizer(
            backend, tokenizer_class=class_name, special_tokens=specials, additional_special_tokens=additional,
            model_input_names=opts.get("model_input_names") or spec.input_names,
            model_max_length=opts.get("model_max_length", opts.get("max_len")),
            padding_side=opts.get("padding_side") or "right", truncation_side=opts.get("truncation_side") or "right",
            clean_up_tokenization_spaces=clean_up, pad_token_type_id=opts.get("pad_token_type_id", 0),
            name_or_path=str(folder))


def _init_options(folder: Path, files: set, config: dict) -> tuple[dict, dict]:
    """tokenizer_config.json's options and the folder's added tokens {id: AddedToken}, read as transformers'
    `_from_pretrained` does: new-format configs carry `added_tokens_decoder`; only old-format folders are read for
    special_tokens_map.json (which then overrides the config), added_tokens.json and tokenizer.json's tokens."""
    opts = {k: v for k, v in config.items() if k not in ("added_tokens_decoder", "tokenizer_class")}
    added: dict[int, AddedToken] = {}
    where = f"{folder / 'tokenizer_config.json'}: added_tokens_decoder"
    if "added_tokens_decoder" in config:
        entries = config["added_tokens_decoder"]
        if not isinstance(entries, dict):
            raise ValueError(f"{where} must be an object id -> token")
        for index, token in entries.items():
            if not isinstance(token, dict):
                raise ValueError(f"{where}: entry {index!r} must be a token object, got {token!r}")
            added[_int_key(index, where)] = _as_token(token, where)
        return opts, added

    if "special_tokens_map.json" in files:
        for key, value in _read_json(folder / "special_tokens_map.json").items():
            if key == "additional_special_tokens" and isinstance(value, list):
                merged = list(opts.pop("additional_special_tokens", None) or [])
                for token in map(_special_from_map, value):
                    if token not in merged:
                        merged.append(token)
                opts[key] = merged
            else:
                opts[key] = _special_from_map(value)
    if "added_tokens.json" in files:
        where = str(folder / "added_tokens.json")
        names = {str(_as_token(opts[k], where)) for k in SPECIAL_TOKEN_ATTRIBUTES if opts.get(k) is not None}
        names |= {str(_as_token(t, where)) for t in opts.get("additional_special_tokens") or []}
        for content, index in _read_json(folder / "added_tokens.json").items():
            special = content in names
            added[_int_key(index, where)] = AddedToken(content, normalized=not special, special=special)
    if "tokenizer.json" in files:
        where = str(folder / "tokenizer.json")
        for entry in _read_json(folder / "tokenizer.json").get("added_tokens", []):
            entry = dict(entry)
            index = _int_key(entry.pop("id", None), where)
            added[index] = _as_token(entry, where)
    return opts, added


def _int_key(value, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: token id {value!r} is not an integer") from None


def _special_tokens(folder: Path, spec: _ClassSpec, opts: dict, added: dict, has_json: bool):
    """Resolve the seven special tokens and the additional ones. A string naming an added token takes that token's
    flags (lstrip, normalized, ...); other strings get the class's own wrapping (see _ClassSpec)."""
    wraps = spec.fast_wrap if has_json else {**spec.fast_wrap, **spec.slow_wrap}
    by_content = {str(t): t for t in added.values()}
    specials: dict[str, Optional[Token]] = {}
    for attr in SPECIAL_TOKEN_ATTRIBUTES:
        value = _as_token(opts[attr], f"{folder}: {attr}") if attr in opts else spec.specials.get(attr)
        if isinstance(value, str):
            value = by_content[value] if value in by_content else wraps.get(attr, str)(value)
        specials[attr] = value
    extra = opts.get("additional_special_tokens") or []
    if not isinstance(extra, (list, tuple)):
        raise ValueError(f"{folder}: additional_special_tokens must be a list, got {extra!r}")
    return specials, [_as_token(t, f"{folder}: additional_special_tokens") for t in extra]


def _special_from_map(value):
    # special_tokens_map.json stores either plain strings or token objects (always special).
    if isinstance(value, dict):
        return _as_token({**value, "special": True}, "special_tokens_map.json")
    return value


def _adjust_backend(backend: _Backend, spec: _ClassSpec, opts: dict) -> None:
    """The fix-ups transformers' fast tokenizer classes apply to whatever backend they load, so that
    tokenizer_config.json options win over tokenizer.json."""
    if spec.builder == "wordpiece" and backend.normalizer is not None:
        # BertTokenizerFast (and DistilBERT/ELECTRA): do_lower_case / strip_accents / tokenize_chinese_chars.
        state = json.loads(backend.normalizer.__getstate__())
        want = {"lowercase": opts["do_lower_case"], "strip_accents": opts["strip_accents"],
                "handle_chinese_chars": opts["tokenize_chinese_chars"]}
        if state.get("type") == "BertNormalizer" and any(state.get(k, v) != v for k, v in want.items()):
            state.pop("type")
            state.update(want)
            backend.normalizer = normalizers.BertNormalizer(**state)
    if spec.builder == "roberta_bpe" and backend.post_processor is not None:
        state = json.loads(backend.post_processor.__getstate__())
        want = {"add_prefix_space": opts["add_prefix_space"], "trim_offsets": opts["trim_offsets"]}
        if state.get("type") == "RobertaProcessing" and any(state.get(k, v) != v for k, v in want.items()):
            state.update(want)
            backend.post_processor = processors.RobertaProcessing(
                sep=tuple(state["sep"]), cls=tuple(state["cls"]), trim_offsets=state["trim_offsets"],
                add_prefix_space=state["add_prefix_space"])
    # Every fast tokenizer: a top-level pre-tokenizer with an add_prefix_space flag follows the config (default
    # False), e.g. GPT-2's ByteLevel.
    if backend.pre_tokenizer is not None:
        try:
            state = json.loads(backend.pre_tokenizer.__getstate__())
        except Exception:    # custom pre-tokenizers cannot be serialised; nothing to adjust then
            return
        add_prefix_space = bool(opts.get("add_prefix_space", False))
        if "add_prefix_space" in state and state["add_prefix_space"] != add_prefix_space:
            kind = state.pop("type")
            state["add_prefix_space"] = add_prefix_space
            backend.pre_tokenizer = getattr(pre_tokenizers, kind)(**state)


def _register_added_tokens(backend: _Backend, added_decoder: dict, specials: dict, additional: list) -> None:
    """Add the folder's added tokens and the special tokens to the backend in the order, and with the flags,
    that transformers' PreTrainedTokenizerFast.__init__ uses -- re-adding a token replaces its flags, so the
    order decides the final lstrip/normalized/special of each token."""
    to_add: list[Token] = [AddedToken(**_token_fields(t)) for _, t in sorted(added_decoder.items())]
    known = {t.content for t in backend.get_added_tokens_decoder().values()} | {str(t) for t in to_add}
    extended, seen = [], set()
    for value in [specials[a] for a in SPECIAL_TOKEN_ATTRIBUTES] + list(additional):
        if value is not None and str(value) not in seen:
            seen.add(str(value))
            extended.append(value)
    for token in extended:
        if isinstance(token, AddedToken):
            # transformers compares an AddedToken with the names of known tokens, which never matches, so a
            # special token given as a token object is always (re-)added.
            if not any(_token_fields(token) == _token_fields(t) for t in to_add if isinstance(t, AddedToken)):
                to_add.append(token)
        elif token not in known and token not in to_add:
            to_add.append(token)
    if not to_add:
        return
    special_names = {str(t) for t in extended}
    final = []
    for token in to_add:
        if isinstance(token, str):
            final.append(AddedToken(token, special=token in special_names))
        else:
            fields = _token_fields(token)
            fields["special"] = fields["special"] or fields["content"] in special_names
            final.append(AddedToken(**fields))
    backend.add_tokens(final)


def _token_fields(token: AddedToken) -> dict:
    return dict(content=token.content, single_word=token.single_word, lstrip=token.lstrip, rstrip=token.rstrip,
                normalized=token.normalized, special=token.special)


# ----------------------------------------------------------------------------------------------------------------
# Streaming.

class IncrementalDecoder:
    """Turn a stream of token ids into text pieces as soon as they are final.

    Text is held back while it may still change: while the decoded tail is an incomplete UTF-8 character
    (byte-level BPE splits characters across tokens; the decoder shows U+FFFD until the last byte arrives), and
    while it ends in the start of a clean-up pattern (with `clean_up_tokenization_spaces`, "I '" becomes "I'" once
    the next token turns it into "I ' m"). Each step decodes only a short window --
    the held tokens plus a few emitted ones for context (WordPiece "##" joins, SentencePiece's leading space) --
    so a long stream costs O(1) per token. The window's first token renders differently (no WordPiece space, no
    SentencePiece "▁"), but it does so in both decodes whose difference is emitted (the window always holds the
    last emitting token, which rendered text), and clean-up patterns cannot straddle the emitted/held boundary
    because of the hold-back rule -- so the pieces add up to `tok.decode(ids)`.

    >>> dec = IncrementalDecoder(tok)
    >>> text = "".join(dec.push(i) for i in ids) + dec.flush()   # == tok.decode(ids)
    """

    CONTEXT = 6  # emitted tokens kept in the decode window

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = False,
                 clean_up_tokenization_spaces: Optional[bool] = None):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.reset()

    def reset(self) -> None:
        self._ids: list[int] = []
        self._start = 0    # window start
        self._read = 0     # the text of tokens before this index has been emitted

    def _decode(self, ids) -> str:
        return self.tokenizer.decode(ids, self.skip_special_tokens, self.clean_up_tokenization_spaces)

    def push(self, token_id: int) -> str:
        """Add one token; return the text that became final (often "", e.g. mid-character)."""
        self._ids.append(_check_id(token_id))
        done = self._decode(self._ids[self._start:self._read])
        text = self._decode(self._ids[self._start:])
        if len(text) <= len(done) or not text.startswith(done) or text.endswith(_UNSTABLE_ENDINGS):
            return ""
        self._read = len(self._ids)
        self._start = max(0, self._read - self.CONTEXT)
        return text[len(done):]

    def flush(self) -> str:
        """Return whatever is still held back (an unfinished character comes out as U+FFFD) and reset."""
        done = self._decode(self._ids[self._start:self._read])
        text = self._decode(self._ids[self._start:])
        self.reset()
        return text[len(done):]


# Text endings that a later token may still change: proper prefixes of the clean-up patterns, and U+FFFD (what the
# decoder shows for an unfinished UTF-8 character).
_UNSTABLE_ENDINGS = tuple(sorted({p[:k] for p, _ in _CLEAN_UP for k in range(1, len(p))} | {"\ufffd"}))
