"""tfm.AutoTokenizer against transformers' fast tokenizers loaded from the same folders.

Every family is checked on >= 300 deterministic, deliberately awkward strings (scripts, emoji with ZWJ and skin
tones, whitespace runs, control characters, code, numbers, contractions, very long words, special-token text, the
empty string): ids, pair ids and token types, decoding, batch padding/truncation. Vocabularies: the real GPT-2 files
in tests/data/gpt2-tokenizer (GPT-2, GPT-Neo, RoBERTa, DeBERTa), a WordPiece vocab.txt derived from them, a
sentencepiece unigram model trained here (ALBERT, DeBERTa-v2; needs the test-only `sentencepiece` package, and
`protobuf` for transformers' own conversion), and a small openai-gpt BPE trained here with `tokenizers`.
"""
import io
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import sentencepiece
import transformers
from tokenizers import Tokenizer as RustTokenizer
from tokenizers import models, normalizers, pre_tokenizers, trainers

import tfm
from tfm.tokenization import IncrementalDecoder, SentencePieceModel

GPT2_DIR = Path(__file__).parent / "data" / "gpt2-tokenizer"

# ------------------------------------------------------------------------------------------------------------------
# Deterministic varied text.

PIECES = [
    # words, contractions, capitalisation
    "Hello", "world", "The", "quick", "brown", "fox", "JUMPS", "over", "the", "lazy", "dog", "tokenization",
    "I'm", "don't", "we'll", "they've", "you're", "it's", "can't", "O'Neil", "'s", "'re", "rock'n'roll",
    "McDonald's", "e.g.", "U.S.A.", "Mr.", "iPhone", "HTTPServer", "camelCaseWord", "snake_case_word",
    # numbers
    "0", "42", "3.14159", "1,000,000", "9,", "2024-01-31", "1e-9", "0x1F", "12:30", "-7", "+3", "50%", "$19.99",
    "007", "１２３", "Ⅻ", "½", "x²", "10⁻³",
    # scripts
    "Привет", "мир", "Γειά σου", "Ελλάδα", "مرحبا بالعالم", "שלום", "नमस्ते", "你好世界", "中文分词", "こんにちは",
    "カタカナ", "한국어", "안녕하세요", "สวัสดี", "ሰላም", "Ձեզ", "ქართული", "தமிழ்",
    # accents, ligatures, compatibility forms, combining marks
    "café", "naïve", "Ångström", "résumé", "São Paulo", "Zürich", "Øresund", "Łódź", "ﬁnance", "Ｆｕｌｌ",
    "ℌ", "e\u0301", "a\u0308o\u0308", "ÉCOLE", "Straße", "İstanbul",
    # emoji incl. modifiers, ZWJ sequences, flags, variation selectors
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "❤️", "🧑🏿‍💻", "🤖", "🎉🎉", "✔", "☃",
    # code and markup
    "def f(x):\n    return x ** 2", "for (int i = 0; i < n; ++i) {", "}", '{"key": [1, 2, 3]}', '<div class="a">',
    "#include <stdio.h>", "SELECT * FROM t WHERE a=1;", "https://example.com/a?b=c&d=e", "user@example.com",
    "x+=1;", "a->b", "::", "if __name__ == '__main__':", "\\n", "$$\\alpha$$", "``tex''",
    # punctuation
    "...", "!?", "—", "–", "«guillemets»", "“quoted”", "‘single’", "(parens)", "[brackets]", "@#$%^&*", "~",
    # text that looks like special tokens
    "<|endoftext|>", "[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "<s>", "</s>", "<mask>", "<pad>", "<unk>",
    "[mask]", "<S>",
    # whitespace and control characters
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \t ", "\u00a0", "\u3000", "\u2003", "\u200b", "\ufeff",
    "\x00", "\x07", "\x1b[31m", "\x7f",
    # very long words
    "a" * 120, "supercalifragilisticexpialidocious" * 4, "ab" * 70, "😀" * 30, "9" * 110, "x" * 260,
]
SEPARATORS = [" ", " ", " ", "", "  ", "\n", "\t", " \n ", ", ", ". "]


def varied_strings(n: int = 320, seed: int = 0) -> list:
    """The hand-written pieces, the empty string and random joins of them -- n strings in all."""
    rng = random.Random(seed)
    out = [""] + [p for p in PIECES if p.strip()] + ["  leading", "trailing  ", " both ", "\n\nnewlines\n"]
    while len(out) < n:
        k = rng.randint(2, 9)
        text = ""
        for i in range(k):
            text += rng.choice(PIECES) + (rng.choice(SEPARATORS) if i < k - 1 else "")
        if rng.random() < 0.2:
            text = rng.choice([" ", "  ", "\n", "\t"]) + text
        if rng.random() < 0.2:
            text += rng.choice([" ", "  ", "\n", "."])
        out.append(text)
    return out[:n]


TEXTS = varied_strings()


def corpus_lines(n_lines: int = 6000, seed: int = 1) -> list:
    """Training text for the small vocabularies: English-looking words from the GPT-2 vocabulary plus the pieces."""
    vocab = json.loads((GPT2_DIR / "vocab.json").read_text(encoding="utf-8"))
    words = [k[1:] for k in vocab if k.startswith("Ġ") and k[1:].isalpha()][:8000]
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        ws = [rng.choice(words) for _ in range(rng.randint(3, 14))]
        if i % 3 == 0:
            ws.insert(rng.randrange(len(ws)), rng.choice(PIECES))
        lines.append(" ".join(ws))
    return lines


# ------------------------------------------------------------------------------------------------------------------
# Folder builders.

def gpt2_byte_decoder() -> dict:
    """GPT-2's byte <-> printable-character table, inverted: character -> byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return {c: b for b, c in chars.items()}


def write_wordpiece_vocab(path: Path) -> None:
    """A BERT vocab.txt of ~9k pieces: GPT-2's first 6000 tokens as words / ## continuations, every character of
    the test pieces as a word and continuation, and BERT's specials."""
    dec = gpt2_byte_decoder()
    vocab = json.loads((GPT2_DIR / "vocab.json").read_text(encoding="utf-8"))
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    for token, index in sorted(vocab.items(), key=lambda kv: kv[1]):
        if index >= 6000:
            break
        try:
            text = bytes(dec[c] for c in token).decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text.startswith(" "):
            text = text[1:]
        elif text:
            text = "##" + text
        if text and not any(c.isspace() for c in text):
            pieces.append(text)
    chars = sorted({c for p in PIECES for c in p if not c.isspace()})
    pieces += chars + ["##" + c for c in chars]
    seen, lines = set(), []
    for p in pieces:
        if p not in seen:
            seen.add(p)
            lines.append(p)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def train_spm(path: Path, specials: str) -> None:
    """A 3000-piece unigram sentencepiece model, ALBERT-style (<pad>=0 <unk>=1 [CLS] [SEP] control, [MASK]
    user-defined) or DeBERTa-v3-style ([PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3)."""
    buf = io.BytesIO()
    if specials == "albert":
        ids = dict(pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, pad_piece="<pad>", unk_piece="<unk>",
                   control_symbols=["[CLS]", "[SEP]"], user_defined_symbols=["[MASK]"])
    else:
        ids = dict(pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]",
                   eos_piece="[SEP]", unk_piece="[UNK]", user_defined_symbols=["[MASK]"])
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()), model_writer=buf, model_type="unigram", vocab_size=3000,
        num_threads=1, minloglevel=2, **ids)
    path.write_bytes(buf.getvalue())


def train_openai_bpe(folder: Path) -> None:
    """vocab.json + merges.txt of a 2000-token BPE with openai-gpt's `</w>` word ends."""
    tok = RustTokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<unk>"], end_of_word_suffix="</w>",
                                  show_progress=False)
    tok.train_from_iterator(corpus_lines(2000), trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.model.save(str(folder))


def copy_gpt2(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(GPT2_DIR / name, folder / name)
    return folder


def without_tokenizer_json(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / "tokenizer.json").unlink()
    return dst


# ------------------------------------------------------------------------------------------------------------------
# Fixtures: each family's folders, with the transformers fast class that is the reference for them.

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """name -> (folder, transformers fast tokenizer class). Built once; the small vocabularies are trained here."""
    root = tmp_path_factory.mktemp("tok")
    vocab, merges = str(GPT2_DIR / "vocab.json"), str(GPT2_DIR / "merges.txt")
    T = transformers
    out = {}

    out["gpt2-files"] = (copy_gpt2(root / "gpt2-files"), T.GPT2TokenizerFast)
    T.GPT2TokenizerFast(vocab, merges).save_pretrained(root / "gpt2-json")
    out["gpt2-json"] = (root / "gpt2-json", T.GPT2TokenizerFast)
    neo = copy_gpt2(root / "gpt-neo")
    (neo / "config.json").write_text(json.dumps({"model_type": "gpt_neo"}))
    out["gpt-neo"] = (neo, T.GPT2TokenizerFast)

    for lower in (True, False):
        d = root / f"bert-vocab-{lower}"
        d.mkdir()
        write_wordpiece_vocab(d / "vocab.txt")
        (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lower}))
        out[f"bert-vocab-lower={lower}"] = (d, T.BertTokenizerFast)
        T.BertTokenizerFast(str(d / "vocab.txt"), do_lower_case=lower).save_pretrained(root / f"bert-json-{lower}")
        out[f"bert-json-lower={lower}"] = (root / f"bert-json-{lower}", T.BertTokenizerFast)
    # Cased but accent-stripping, and a tokenizer.json whose normalizer the config overrides (as BertTokenizerFast
    # lets tokenizer_config.json win).
    d = shutil.copytree(root / "bert-vocab-False", root / "bert-vocab-strip")
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "strip_accents": True,
                                                         "tokenize_chinese_chars": False}))
    out["bert-vocab-cased-strip-accents"] = (d, T.BertTokenizerFast)
    d = shutil.copytree(root / "bert-json-True", root / "bert-json-override")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["do_lower_case"] = False
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    out["bert-json-config-overrides"] = (d, T.BertTokenizerFast)

    # DistilBERT found through config.json's model_type (no token_type_ids); ELECTRA as saved by transformers.
    d = root / "distilbert-vocab"
    d.mkdir()
    shutil.copy(root / "bert-vocab-True" / "vocab.txt", d / "vocab.txt")
    (d / "config.json").write_text(json.dumps({"model_type": "distilbert"}))
    out["distilbert-vocab"] = (d, T.DistilBertTokenizerFast)
    T.ElectraTokenizerFast(str(d / "vocab.txt")).save_pretrained(root / "electra-json")
    out["electra-json"] = (root / "electra-json", T.ElectraTokenizerFast)

    T.RobertaTokenizerFast(vocab, merges).save_pretrained(root / "roberta-json")
    out["roberta-json"] = (root / "roberta-json", T.RobertaTokenizerFast)
    out["roberta-vocab"] = (without_tokenizer_json(root / "roberta-json", root / "roberta-vocab"),
                            T.RobertaTokenizerFast)
    T.DebertaTokenizerFast(vocab, merges).save_pretrained(root / "deberta-json")
    out["deberta-vocab"] = (without_tokenizer_json(root / "deberta-json", root / "deberta-vocab"),
                            T.DebertaTokenizerFast)

    d = root / "albert-spiece"
    d.mkdir()
    train_spm(d / "spiece.model", "albert")
    out["albert-spiece-only"] = (d, T.AlbertTokenizerFast)
    T.AlbertTokenizer(str(d / "spiece.model")).save_pretrained(root / "albert-slow")
    out["albert-slow-save"] = (root / "albert-slow", T.AlbertTokenizerFast)
    T.AlbertTokenizerFast(str(d / "spiece.model")).save_pretrained(root / "albert-json")
    out["albert-json"] = (root / "albert-json", T.AlbertTokenizerFast)
    d = shutil.copytree(root / "albert-slow", root / "albert-cased")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg.update(do_lower_case=False, keep_accents=True)
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    out["albert-cased-keep-accents"] = (d, T.AlbertTokenizerFast)

    d = root / "deberta-v2-spm"
    d.mkdir()
    train_spm(d / "spm.model", "deberta")
    out["deberta-v2-spm-only"] = (d, T.DebertaV2TokenizerFast)

    train_openai_bpe(root / "openai-vocab")
    out["openai-gpt-vocab"] = (root / "openai-vocab", T.OpenAIGPTTokenizerFast)
    return out


_LOADED = {}


def load_pair(folders, name, fresh=False):
    """(ours, transformers') tokenizers for one folder; cached, unless the test is going to modify them."""
    folder, ref_class = folders[name]
    if fresh or (folder, name) not in _LOADED:
        pair = tfm.AutoTokenizer.from_pretrained(folder), ref_class.from_pretrained(folder)
        if fresh:
            return pair
        _LOADED[folder, name] = pair
    return _LOADED[folder, name]


def first_mismatches(texts, ours, ref, limit=3):
    bad = [(t, o, r) for t, o, r in zip(texts, ours, ref) if o != r]
    return f"{len(bad)} of {len(texts)} differ, e.g. " + "; ".join(f"{t!r}: ours {o} ref {r}" for t, o, r in bad[:limit])


FAMILIES = ["gpt2-files", "gpt2-json", "gpt-neo", "bert-vocab-lower=True", "bert-vocab-lower=False",
            "bert-json-lower=True", "bert-json-lower=False", "bert-vocab-cased-strip-accents",
            "bert-json-config-overrides", "distilbert-vocab", "electra-json", "roberta-json", "roberta-vocab", "deberta-vocab", "albert-spiece-only",
            "albert-slow-save", "albert-json", "albert-cased-keep-accents", "deberta-v2-spm-only",
            "openai-gpt-vocab"]


def test_corpus_is_varied_enough():
    assert len(TEXTS) >= 300 and len(set(TEXTS)) >= 300
    assert "" in TEXTS
    assert any("\u200d" in t for t in TEXTS) and any("\t" in t for t in TEXTS) and any("   " in t for t in TEXTS)
    assert any(len(t) > 200 for t in TEXTS)


# ------------------------------------------------------------------------------------------------------------------
# Parity with transformers, every family.

@pytest.mark.parametrize("name", FAMILIES)
def test_ids_match_transformers(folders, name):
    ours, ref = load_pair(folders, name)
    for add in (True, False):
        got = ours(TEXTS, add_special_tokens=add)
        want = ref(TEXTS, add_special_tokens=add)
        assert list(got) == list(want), f"fields {list(got)} vs {list(want)}"
        assert got["input_ids"] == want["input_ids"], first_mismatches(TEXTS, got["input_ids"], want["input_ids"])
        assert dict(got) == dict(want)
    for text in TEXTS[::7]:
        assert ours.encode(text) == ref.encode(text), text
        assert ours.tokenize(text) == ref.tokenize(text), text


@pytest.mark.parametrize("name", FAMILIES)
def test_pairs_match_transformers(folders, name):
    ours, ref = load_pair(folders, name)
    a, b = TEXTS[:-1], TEXTS[1:]
    got = ours(a, b, return_token_type_ids=True)
    want = ref(a, b, return_token_type_ids=True)
    assert got["input_ids"] == want["input_ids"], first_mismatches(list(zip(a, b)), got["input_ids"],
                                                                   want["input_ids"])
    assert got["token_type_ids"] == want["token_type_ids"]
    assert got["attention_mask"] == want["attention_mask"]
    assert ours.encode("first one", "second one") == ref.encode("first one", "second one")


@pytest.mark.parametrize("name", FAMILIES)
def test_decode_matches_transformers(folders, name):
    ours, ref = load_pair(folders, name)
    ids = ref(TEXTS[:-1], TEXTS[1:])["input_ids"]
    assert ours.clean_up_tokenization_spaces == ref.clean_up_tokenization_spaces
    for skip in (False, True):
        got = ours.batch_decode(ids, skip_special_tokens=skip)
        want = ref.batch_decode(ids, skip_special_tokens=skip)
        assert got == want, first_mismatches(ids, got, want)
    for clean in (False, True):
        assert ours.decode(ids[5], clean_up_tokenization_spaces=clean) == \
            ref.decode(ids[5], clean_up_tokenization_spaces=clean)
    assert ours.convert_ids_to_tokens(ids[3]) == ref.convert_ids_to_tokens(ids[3])
    assert ours.convert_ids_to_tokens(ids[3], skip_special_tokens=True) == \
        ref.convert_ids_to_tokens(ids[3], skip_special_tokens=True)


@pytest.mark.parametrize("name", FAMILIES)
def test_special_tokens_and_vocab_match_transformers(folders, name):
    ours, ref = load_pair(folders, name)
    for attr in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{attr}_token") == getattr(ref, f"{attr}_token"), attr
        assert getattr(ours, f"{attr}_token_id") == getattr(ref, f"{attr}_token_id"), attr
    assert ours.all_special_tokens == ref.all_special_tokens
    assert ours.all_special_ids == ref.all_special_ids
    assert ours.vocab_size == ref.vocab_size and len(ours) == len(ref)
    assert ours.get_vocab() == ref.get_vocab()
    assert ours.model_max_length == ref.model_max_length
    assert ours.padding_side == ref.padding_side
    assert ours.model_input_names == ref.model_input_names
    tokens = ref.tokenize(TEXTS[40]) + ["surely-not-a-token-\u2603\u2603"]
    assert ours.convert_tokens_to_ids(tokens) == ref.convert_tokens_to_ids(tokens)
    # The flags of added tokens (lstrip, normalized, special) decide how "[MASK]" or " <mask>" in text is split.
    assert ({i: repr(t) for i, t in ours.backend_tokenizer.get_added_tokens_decoder().items()}
            == {i: repr(t) for i, t in ref.backend_tokenizer.get_added_tokens_decoder().items()})


@pytest.mark.parametrize("name", FAMILIES)
def test_backend_pipeline_matches_transformers(folders, name):
    # Diagnostic companion of the id tests: the same normalizer, pre-tokenizer, model (vocabulary, merges,
    # unigram scores), post-processor and decoder as transformers builds -- including from bare vocabulary files.
    ours, ref = load_pair(folders, name)
    parts = ["normalizer", "pre_tokenizer", "post_processor", "decoder"]
    if not (folders[name][0] / "tokenizer.json").exists():
        parts.append("model")     # built here from vocab files (else both read it from the same tokenizer.json)
    for part in parts:
        got, want = getattr(ours.backend_tokenizer, part), getattr(ref.backend_tokenizer, part)
        got, want = (None if x is None else json.loads(x.__getstate__()) for x in (got, want))
        assert got == want, f"{part}: ours {str(got)[:400]} ref {str(want)[:400]}"


@pytest.mark.parametrize("name", ["gpt2-json", "bert-vocab-lower=True", "roberta-vocab", "albert-spiece-only"])
def test_offsets_match_transformers(folders, name):
    ours, ref = load_pair(folders, name)
    got = ours(TEXTS[:80], TEXTS[80:160], return_offsets_mapping=True, return_special_tokens_mask=True)
    want = ref(TEXTS[:80], TEXTS[80:160], return_offsets_mapping=True, return_special_tokens_mask=True)
    assert [list(map(tuple, o)) for o in got["offset_mapping"]] == want["offset_mapping"]
    assert got["special_tokens_mask"] == want["special_tokens_mask"]


def test_gpt2_round_trip_and_real_vocabulary(folders):
    ours, _ = load_pair(folders, "gpt2-files")
    assert ours.vocab_size == 50257 and ours.eos_token_id == 50256 and ours.pad_token is None
    # Byte-level BPE is lossless.
    for text in TEXTS:
        assert ours.decode(ours.encode(text)) == text
    # A few ids every GPT-2 user knows (the tokenization of transformers' docs example).
    assert ours.encode("Hello world") == [15496, 995]
    assert ours.encode("<|endoftext|>") == [50256]


# ------------------------------------------------------------------------------------------------------------------
# Batching: padding, truncation, arrays.

@pytest.mark.parametrize("name", ["gpt2-files", "gpt2-json"])
def test_gpt2_batch_padding_and_truncation_match_transformers(folders, name):
    ours, ref = load_pair(folders, name, fresh=True)
    ours.pad_token = ours.eos_token
    ref.pad_token = ref.eos_token
    batch = TEXTS[100:132]
    cases = [
        dict(padding=True, padding_side="left"),
        dict(padding=True, padding_side="right"),
        dict(padding="longest", truncation=True, max_length=7),
        dict(padding="max_length", max_length=40, truncation=True, padding_side="left"),
        dict(padding=True, pad_to_multiple_of=8),
        dict(truncation=True, max_length=5, padding=True),
    ]
    for kw in cases:
        got = ours(batch, return_tensors="np", **kw)
        want = ref(batch, return_tensors="np", **kw)
        assert set(got) == set(want) == {"input_ids", "attention_mask"}, kw
        for key in got:
            assert got[key].dtype == np.int64 and got[key].shape == want[key].shape, (kw, key)
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{kw} {key}")
    # max_length alone truncates (transformers' rule); one text gives flat lists.
    assert ours("a b c d e f g h", max_length=3)["input_ids"] == ref("a b c d e f g h", max_length=3)["input_ids"]
    single = ours("Hello world", return_tensors="np")
    assert single["input_ids"].shape == (1, 2)
    assert single.input_ids is single["input_ids"]


def test_padding_side_and_limits_from_tokenizer_config(folders, tmp_path):
    d = shutil.copytree(folders["gpt2-json"][0], tmp_path / "gpt2-left")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg.update(padding_side="left", model_max_length=16, pad_token="<|endoftext|>")
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    ours, ref = tfm.AutoTokenizer.from_pretrained(d), transformers.GPT2TokenizerFast.from_pretrained(d)
    assert ours.padding_side == ref.padding_side == "left"
    assert ours.model_max_length == 16 and ours.pad_token_id == 50256
    batch = ["short", "a much longer sentence " * 10]
    got, want = ours(batch, padding=True, truncation=True), ref(batch, padding=True, truncation=True)
    assert dict(got) == dict(want)
    assert len(got["input_ids"][1]) == 16 and got["attention_mask"][0][0] == 0   # truncated; padded on the left
    got = ours(batch, padding="max_length")
    assert dict(got) == dict(ref(batch, padding="max_length"))
    assert tfm.AutoTokenizer.from_pretrained(d, padding_side="right").padding_side == "right"


@pytest.mark.parametrize("name", ["bert-vocab-lower=True", "albert-spiece-only", "roberta-json"])
def test_pair_truncation_strategies_match_transformers(folders, name):
    ours, ref = load_pair(folders, name)
    a, b = TEXTS[1:41], TEXTS[190:230]        # short first texts, so "only_second" can always fit
    for kw in (dict(truncation=True, max_length=12), dict(truncation="only_second", max_length=30),
               dict(truncation="only_first", max_length=200),
               dict(truncation="longest_first", max_length=9, padding="max_length"),
               dict(padding=True, return_tensors="np", padding_side="left")):
        got, want = ours(a, b, **kw), ref(a, b, **kw)
        assert set(got) == set(want), kw
        for key in want:
            if isinstance(want[key], np.ndarray):
                np.testing.assert_array_equal(got[key], want[key], err_msg=f"{kw} {key}")
            else:
                assert got[key] == want[key], (kw, key)
    # A first text longer than max_length cannot be fixed by cutting the second one: both refuse.
    long_first = "word " * 50
    with pytest.raises(Exception):
        ref(long_first, "x", truncation="only_second", max_length=10)
    with pytest.raises(ValueError, match="truncat"):
        ours(long_first, "x", truncation="only_second", max_length=10)


# ------------------------------------------------------------------------------------------------------------------
# Streaming decoder.

@pytest.mark.parametrize("name", ["gpt2-files", "roberta-json", "bert-vocab-lower=False", "albert-spiece-only",
                                  "openai-gpt-vocab"])
def test_incremental_decoder_equals_full_decode(folders, name):
    ours, _ = load_pair(folders, name)
    texts = TEXTS + ["👨‍👩‍👧‍👦 family 🏳️‍🌈 flag", "中文分词和日本語のテキスト", "🇯🇵🇯🇵 x 😀😀😀",
                     "I do n't know , he 's here . You 're right ! ' quoted ' I 'm we 've"]
    held_back = 0
    for skip, clean in ((False, None), (True, None), (False, True)):
        for text in texts:
            ids = ours.encode(text)
            full = ours.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
            dec = IncrementalDecoder(ours, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
            out = ""
            for i in ids:
                piece = dec.push(i)
                held_back += piece == "" and "\ufffd" in ours.decode([i])
                out += piece
                assert full.startswith(out), (text, out, full)     # only final text is ever emitted
                assert "\ufffd" not in piece or "\ufffd" in full
            out += dec.flush()
            assert out == full, (text, out, full)
    if name == "gpt2-files":
        assert held_back > 0   # the byte-level case really splits characters across tokens


def test_incremental_decoder_skips_runs_of_special_tokens(folders):
    ours, _ = load_pair(folders, "bert-vocab-lower=True")
    ids = ours.encode("hello world") + [ours.sep_token_id] * 9 + ours.encode("again , they 're here", "x")
    for skip in (False, True):
        dec = IncrementalDecoder(ours, skip_special_tokens=skip)
        out = "".join(dec.push(i) for i in ids) + dec.flush()
        assert out == ours.decode(ids, skip_special_tokens=skip)


# ------------------------------------------------------------------------------------------------------------------
# The sentencepiece reader, checked against sentencepiece itself.

@pytest.mark.parametrize("name, filename", [("albert-spiece-only", "spiece.model"),
                                            ("deberta-v2-spm-only", "spm.model")])
def test_sentencepiece_reader_matches_sentencepiece(folders, name, filename):
    from sentencepiece import sentencepiece_model_pb2   # needs protobuf, as transformers' own conversion does

    path = folders[name][0] / filename
    ours = SentencePieceModel.from_file(path)
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(path.read_bytes())
    assert [(p, s, t) for p, s, t in ours.pieces] == [(p.piece, p.score, p.type) for p in proto.pieces]
    assert ours.unk_id == proto.trainer_spec.unk_id and ours.model_type == proto.trainer_spec.model_type
    assert ours.precompiled_charsmap == proto.normalizer_spec.precompiled_charsmap
    assert len(ours.precompiled_charsmap) > 0
    assert {t for _, _, t in ours.pieces} >= {1, 2, 3} and ours.pieces[ours.unk_id][2] == 2


def test_sentencepiece_reader_rejects_garbage(tmp_path):
    with pytest.raises(ValueError, match="not a valid sentencepiece model"):
        SentencePieceModel.from_bytes(b"\x0a\xff\xff\xff\x0f" + b"x" * 10)
    with pytest.raises(ValueError, match="not a valid sentencepiece model"):
        SentencePieceModel.from_bytes(b"")
    (tmp_path / "spiece.model").write_bytes(b"\x0b\x0c\x0d")
    with pytest.raises(ValueError, match="spiece.model"):
        tfm.AutoTokenizer.from_pretrained(tmp_path)


# ------------------------------------------------------------------------------------------------------------------
# Bad input.

def test_missing_files_are_reported(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as err:
        tfm.AutoTokenizer.from_pretrained(tmp_path)
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "spiece.model", "spm.model"):
        assert name in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tfm.AutoTokenizer.from_pretrained(tmp_path / "nope")
    # The config names a WordPiece tokenizer but only BPE files are there.
    d = copy_gpt2(tmp_path / "mismatch")
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        tfm.AutoTokenizer.from_pretrained(d)


def test_padding_without_pad_token_says_how_to_set_one(folders):
    ours, ref = load_pair(folders, "gpt2-files")
    with pytest.raises(ValueError, match="pad_token"):
        ref(["a", "b c"], padding=True)            # transformers refuses too
    with pytest.raises(ValueError, match=r"tok\.pad_token = tok\.eos_token"):
        ours(["a", "b c"], padding=True)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ours.pad_token = "<definitely-not-a-token>"


def test_bad_arguments_raise_clear_errors(folders):
    ours, _ = load_pair(folders, "gpt2-files")
    with pytest.raises(ValueError, match="return_tensors"):
        ours("a", return_tensors="pt")
    with pytest.raises(ValueError, match="padding=True"):
        ours(["a", "b c d"], return_tensors="np")  # ragged without padding
    with pytest.raises(ValueError, match="padding must be"):
        ours("a", padding="everything")
    with pytest.raises(ValueError, match="truncation must be"):
        ours("a", truncation="middle")
    with pytest.raises(ValueError, match="needs max_length"):
        ours("a", truncation=True)                  # no model_max_length in a bare vocab/merges folder
    with pytest.raises(ValueError, match="padding_side"):
        ours(["a"], padding_side="top")
    with pytest.raises(TypeError, match="text"):
        ours(123)
    with pytest.raises(ValueError, match="same length"):
        ours(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="empty"):
        ours([])
    with pytest.raises(ValueError, match="out of range"):
        ours.decode([1, -5])
    with pytest.raises(TypeError, match="integers"):
        ours.decode([1.5])
    with pytest.raises(TypeError, match="unknown option"):
        tfm.AutoTokenizer.from_pretrained(folders["gpt2-files"][0], paddin_side="left")
