#!/usr/bin/env python3
"""Train tfm's two embedded default models (dev-only; never imported by the package).

What it does
  * builds an English prose corpus from the Python 3.11 documentation sources that Debian's package
    `python3.11-doc` installs (/usr/share/doc/python3.11/html/_sources, PSF License Version 2 -- a
    permissive licence; see python/tfm/defaults/README.md). reST markup, code samples, tables and
    doctest sessions are stripped; what is left is the documentation's running text, one document per
    source file. Every 20th document (sorted by path) is held out for validation.
  * trains our own small tokenizers with `tokenizers` (byte-level BPE for the GPT, uncased WordPiece
    for BERT), so the embedding tables stay small;
  * trains a tiny GPT-2 (`GPT2LMHeadModel`) and a tiny BERT (`BertForPreTraining`: MLM + NSP heads)
    with the lecture's recipe: AdamW, linear warm-up then linear decay, gradient clipping, gradient
    accumulation, length-grouped batches, bf16 autocast where the CPU has native bf16. BERT gets
    dynamic 15% / 80-10-10 masking and 50/50 NSP pairs from tfm.pretraining (issue 4's tools);
  * writes the HF layout (config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
    special_tokens_map.json, generation_config.json for the GPT) to python/tfm/defaults/{gpt,bert}/
    (float32 weights; --fp16 halves them),
    prints validation perplexity and, for the GPT, a seeded top-p 0.9 sample.

What it does not do: it is not part of the runtime (torch and transformers are dev-only), it does not
download anything, and it is not a general training framework.

Usage (2 shared cores; be nice). The shipped files were made with exactly:
    nice -n 19 python -m tfm.defaults.train gpt  --minutes 33 --threads 1
    nice -n 19 python -m tfm.defaults.train bert --minutes 28 --threads 1 --max-len 128 --lr 1e-3 --batch 32
(--minutes makes the warm-up/decay schedule follow the wall clock, so the run ends on time on a shared
machine; pass --steps N instead for a run that is reproducible step for step. --threads 1 because the
2 cores were busy with other jobs: then 2 OpenMP threads wait on each other at every barrier and run
~3x slower than one -- measured with bench-bf16 --threads 1/2.)
Also:
    python -m tfm.defaults.train corpus-stats     # size of the extracted prose
    python -m tfm.defaults.train bench-bf16       # does bf16 autocast help on this CPU?
Run as a module (python -m tfm.defaults.train …) with tfm importable (installed or PYTHONPATH=python).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import time
from pathlib import Path

DEFAULT_CORPUS = Path("/usr/share/doc/python3.11/html/_sources")
OUT_ROOT = Path(__file__).resolve().parent  # python/tfm/defaults: the shipped folders
VALID_EVERY = 20  # document i (in sorted path order) is validation iff i % VALID_EVERY == VALID_EVERY - 1


# ----------------------------------------------------------------------------------------------------
# Corpus: reST sources -> documents made of prose paragraphs
# ----------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Document:
    name: str
    paragraphs: list  # list[str], one paragraph per entry, whitespace-normalised


# Directives whose indented body is prose worth keeping (API descriptions, notes). Everything else
# (code-block, literalinclude, toctree, tables, productionlist, ...) is dropped with its body.
_KEEP_BODY = {
    "function", "method", "class", "attribute", "data", "exception", "describe", "decorator",
    "classmethod", "staticmethod", "decoratormethod", "abstractmethod", "coroutinefunction",
    "coroutinemethod", "note", "warning", "important", "tip", "caution", "attention", "impl-detail",
    "versionadded", "versionchanged", "deprecated", "deprecated-removed", "seealso", "topic",
    "admonition", "glossary", "c:function", "c:type", "c:member", "c:macro", "c:var", "opcode",
    "option", "cmdoption", "envvar", "pdbcommand", "rubric", "sidebar", "audit-event-table",
}
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:-]+)::(.*)$")
_UNDERLINE = re.compile(r"^\s*([=\-~^*#+`'\".:_])\1{2,}\s*$")
_ROLE = re.compile(r":[\w:.+-]+:`(?:[^`<]*?<)?~?!?([^`<>]+?)>?`")  # :func:`x`, :ref:`text <label>`
_LITERAL = re.compile(r"``([^`]+)``")
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]*>`_{1,2}")
_INTERP = re.compile(r"`([^`]+)`_{0,2}")
_EMPH = re.compile(r"\*{1,2}([^*\s][^*]*?)\*{1,2}")
_SUBST = re.compile(r"\|([\w -]+)\|")
_FOOTREF = re.compile(r"\s*\[(?:#\w*|\d+|\*)\]_")
_WORD = re.compile(r"[A-Za-z]+")


def _clean_inline(text: str) -> str:
    text = _ROLE.sub(r"\1", text)
    text = _LITERAL.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _INTERP.sub(r"\1", text)
    text = _EMPH.sub(r"\1", text)
    text = _SUBST.sub(r"\1", text)
    text = _FOOTREF.sub("", text)
    text = text.replace("\\ ", "").replace("\\", "")
    return re.sub(r"\s+", " ", text).strip()


def _is_prose(par: str) -> bool:
    """A paragraph we want a language model to learn: a few words, mostly letters, sentence-like."""
    words = _WORD.findall(par)
    if len(words) < 6:
        return False
    letters = sum(len(w) for w in words)
    if letters < 0.6 * len(par):
        return False
    if par.count("(") + par.count("=") + par.count("{") > len(words) / 4:
        return False
    return par[-1] in ".:!?)\"'"


def rst_to_paragraphs(src: str) -> list:
    lines = src.expandtabs(8).splitlines()
    out, cur = [], []
    skip_indent = None      # when dropping an indented block: the indent of the line that opened it
    literal_next = False    # previous paragraph ended with '::' -> next indented block is code

    def flush():
        if cur:
            par = _clean_inline(" ".join(cur))
            if par and _is_prose(par):
                out.append(par)
            cur.clear()

    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        if not stripped:
            flush()
            continue
        m = _DIRECTIVE.match(line)
        if m:
            flush()
            name = m.group(2)
            if name not in _KEEP_BODY:
                skip_indent = indent
            continue
        if literal_next and indent > 0:
            # an indented block after '::' is a code sample
            skip_indent = 0 if indent else None
            literal_next = False
            continue
        literal_next = False
        if _UNDERLINE.match(line):
            cur.clear()  # the line(s) above were a section title: not prose
            continue
        if stripped.startswith((">>>", "...", "+-", "|", "..")) or stripped.startswith("$ "):
            flush()
            continue
        if i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1]) and len(stripped) <= len(lines[i + 1].strip()) + 1:
            flush()
            continue  # a title line
        # list items start a new paragraph
        if re.match(r"^([*+-]|\d+\.|#\.)\s", stripped):
            flush()
            stripped = re.sub(r"^([*+-]|\d+\.|#\.)\s+", "", stripped)
        if stripped.endswith("::"):
            literal_next = True
            stripped = stripped[:-2].rstrip()
            stripped = stripped + ":" if stripped else ""
        if stripped:
            cur.append(stripped)
        if literal_next:
            flush()
    flush()
    return out


def load_corpus(root: Path = DEFAULT_CORPUS) -> list:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"corpus directory {root} not found: install Debian's python3.11-doc (apt-get install python3.11-doc)")
    docs = []
    for path in sorted(root.rglob("*.rst.txt")):
        pars = rst_to_paragraphs(path.read_text(encoding="utf-8", errors="replace"))
        if pars:
            docs.append(Document(str(path.relative_to(root)), pars))
    return docs


def split_corpus(docs: list):
    train = [d for i, d in enumerate(docs) if i % VALID_EVERY != VALID_EVERY - 1]
    valid = [d for i, d in enumerate(docs) if i % VALID_EVERY == VALID_EVERY - 1]
    return train, valid


# ----------------------------------------------------------------------------------------------------
# Tokenizers (ours, small vocabularies, trained on the training split only)
# ----------------------------------------------------------------------------------------------------

EOS = "<|endoftext|>"
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _train_texts(docs):
    for d in docs:
        yield from d.paragraphs


def train_gpt_tokenizer(docs, vocab_size):
    """Byte-level BPE as GPT-2 (no unknown tokens; a leading space belongs to the word)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_train_texts(docs), trainer=trainer)
    from transformers import GPT2TokenizerFast
    return GPT2TokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                             model_max_length=None)


def train_bert_tokenizer(docs, vocab_size):
    """Uncased WordPiece as bert-base-uncased (BertNormalizer lowercases and strips accents)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=BERT_SPECIALS,
                                        show_progress=False)
    tok.train_from_iterator(_train_texts(docs), trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    from transformers import BertTokenizerFast
    return BertTokenizerFast(tokenizer_object=tok, do_lower_case=True, unk_token="[UNK]", sep_token="[SEP]",
                             pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]", model_max_length=None)


# ----------------------------------------------------------------------------------------------------
# Examples and length-grouped batches
# ----------------------------------------------------------------------------------------------------

def gpt_examples(docs, tokenizer, max_len):
    """Whole paragraphs packed greedily into sequences of <= max_len tokens, one document at a time;
    a paragraph longer than max_len is cut into max_len pieces. Paragraphs are joined by a newline and
    a document ends with <|endoftext|>. Lengths vary, which is what length grouping is for."""
    eos = tokenizer.eos_token_id
    nl = tokenizer.encode("\n")
    out = []
    for d in docs:
        cur = []
        for k, par in enumerate(d.paragraphs):
            ids = tokenizer.encode(par) + (nl if k + 1 < len(d.paragraphs) else [eos])
            if cur and len(cur) + len(ids) > max_len:
                out.append(cur)
                cur = []
            while len(ids) > max_len:
                out.append(ids[:max_len])
                ids = ids[max_len:]
            cur = cur + ids
        if cur:
            out.append(cur)
    return [e for e in out if len(e) >= 2]


def length_grouped_batches(lengths, batch_size, rng, mega=50):
    """Length-grouped sampling as HF's LengthGroupedSampler: shuffle, cut into mega-batches of
    `mega * batch_size`, sort each by length (longest first), cut into batches, shuffle the batches.
    Sequences in a batch then have similar lengths, so little compute goes into padding."""
    import numpy as np
    order = rng.permutation(len(lengths))
    batches = []
    step = mega * batch_size
    for s in range(0, len(order), step):
        chunk = sorted(order[s:s + step], key=lambda i: -lengths[i])
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_batch(seqs, pad_id):
    import torch
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids, mask


# ----------------------------------------------------------------------------------------------------
# The lecture's recipe: AdamW + linear warm-up/decay + clipping + accumulation + bf16 autocast
# ----------------------------------------------------------------------------------------------------

def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def make_optimizer(model, lr, weight_decay, progress_fn, warmup_frac):
    """AdamW with decoupled weight decay on matrices only (not biases, LayerNorm), and the schedule
    from the lecture: linear warm-up to `lr` over the first `warmup_frac` of training, then linear
    decay to zero at the end (BERT's recipe). `progress_fn()` says how far training is, in [0, 1]:
    steps done / total steps, or -- with a wall-clock budget -- seconds spent / seconds allowed."""
    import torch
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in n.lower() or n.endswith(".bias") else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98), eps=1e-6)

    def factor(_step):
        x = min(1.0, progress_fn())
        if x < warmup_frac:
            return max(x / warmup_frac, 1e-3)
        return max(0.0, (1.0 - x) / max(1e-9, 1.0 - warmup_frac))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train_loop(model, micro_batches_fn, *, steps, minutes, accum, lr, warmup, clip, bf16, log, eval_fn=None,
               eval_every=0, weight_decay=0.01):
    """`micro_batches_fn()` yields dicts of model inputs forever (one micro-batch each). One optimizer
    step = `accum` micro-batches; each loss is divided by `accum` so the gradient is the batch mean.
    With steps > 0 the schedule runs over that many steps (reproducible); otherwise over a wall-clock
    budget of `minutes` (the machine is shared, so a step count fixed in advance could overrun by hours),
    and training stops when the budget is spent. Returns (seconds, optimizer steps done)."""
    import contextlib
    import torch
    t0 = time.time()
    state = {"step": 0}
    if steps > 0:
        progress = lambda: state["step"] / steps  # noqa: E731
    else:
        budget = minutes * 60.0
        progress = lambda: (time.time() - t0) / budget  # noqa: E731
    opt, sched = make_optimizer(model, lr, weight_decay, progress, warmup)
    model.train()
    it = micro_batches_fn()
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    step = 0
    while (step < steps) if steps > 0 else (progress() < 1.0):
        total = 0.0
        for _ in range(accum):
            batch = next(it)
            with ctx():
                loss = model(**batch).loss / accum
            loss.backward()
            total += float(loss.detach())
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        step += 1
        state["step"] = step
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 20 == 1:
            log(f"step {step} ({100 * min(1.0, progress()):.0f}%) loss {total:.4f} gnorm {float(gnorm):.2f} "
                f"lr {sched.get_last_lr()[0]:.2e} {time.time() - t0:.0f}s")
        if eval_fn is not None and eval_every and step % eval_every == 0:
            model.eval()
            log(f"  validation: {eval_fn()}")
            model.train()
    log(f"last step {step}: loss {total:.4f}")
    model.eval()
    return time.time() - t0, step


def save_model(model, out_dir: Path, fp16: bool):
    """float32 by default; --fp16 halves the files (loaders must then upcast)."""
    import torch
    out_dir.mkdir(parents=True, exist_ok=True)
    if fp16:
        model.to(torch.float16).save_pretrained(out_dir, safe_serialization=True)
        model.to(torch.float32)
    else:
        model.save_pretrained(out_dir, safe_serialization=True)


def make_logger(path: Path | None):
    fh = open(path, "a", buffering=1) if path else None

    def log(msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        if fh:
            fh.write(line + "\n")
    return log


def setup_torch(seed, threads=2):
    import numpy as np
    import torch
    torch.set_num_threads(threads)  # the machine has 2 cores shared with other engineers
    torch.manual_seed(seed)
    np.random.seed(seed)
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------------------
# GPT
# ----------------------------------------------------------------------------------------------------

def gpt_config(args, vocab_size, tok):
    from transformers import GPT2Config
    return GPT2Config(vocab_size=vocab_size, n_positions=args.max_len, n_embd=args.d_model, n_layer=args.layers,
                      n_head=args.heads, n_inner=4 * args.d_model, activation_function="gelu_new",
                      resid_pdrop=args.dropout, embd_pdrop=args.dropout, attn_pdrop=args.dropout,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)


def gpt_eval(model, examples, pad_id, batch_size=32):
    """Validation perplexity = exp(total NLL / number of predicted tokens), pooled over all tokens."""
    import torch
    nll, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(examples), batch_size):
            ids, mask = pad_batch(examples[s:s + batch_size], pad_id)
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            tgt = ids[:, 1:]
            m = mask[:, 1:].bool()
            tok_lp = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
            nll -= float(tok_lp[m].sum())
            count += int(m.sum())
    return math.exp(nll / count), count


def gpt_sample(out_dir: Path, prompt: str, seed: int, max_new_tokens=60):
    """Reload the saved files with transformers and draw one top-p 0.9 sample (pure nucleus: top_k=0)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir, torch_dtype=torch.float32).eval()
    enc = tok(prompt, return_tensors="pt")
    torch.manual_seed(seed)
    out = model.generate(**enc, do_sample=True, top_p=0.9, top_k=0, max_new_tokens=max_new_tokens,
                         pad_token_id=tok.eos_token_id)
    return tok.decode(out[0], skip_special_tokens=True)


def run_gpt(args):
    import torch
    from transformers import GenerationConfig, GPT2LMHeadModel
    log = make_logger(args.log)
    rng = setup_torch(args.seed, args.threads)
    train_docs, valid_docs = split_corpus(load_corpus(args.corpus))
    tok = train_gpt_tokenizer(train_docs, args.vocab)
    train = gpt_examples(train_docs, tok, args.max_len)
    valid = gpt_examples(valid_docs, tok, args.max_len)
    ntok = sum(map(len, train))
    log(f"gpt: vocab {len(tok)}, train {len(train)} seqs / {ntok} tokens, valid {len(valid)} seqs "
        f"/ {sum(map(len, valid))} tokens")
    cfg = gpt_config(args, len(tok), tok)
    model = GPT2LMHeadModel(cfg)
    log(f"params {sum(p.numel() for p in model.parameters())}")
    lengths = [len(e) for e in train]

    def micro_batches():
        while True:
            for b in length_grouped_batches(lengths, args.batch, rng):
                ids, mask = pad_batch([train[i] for i in b], tok.eos_token_id)
                labels = ids.masked_fill(mask == 0, -100)
                yield {"input_ids": ids, "attention_mask": mask, "labels": labels}

    log(f"training {args.steps or f'{args.minutes} min'} x {args.accum} x {args.batch} seqs (bf16={args.bf16})")
    secs, steps = train_loop(model, micro_batches, steps=args.steps, minutes=args.minutes, accum=args.accum,
                      lr=args.lr, warmup=args.warmup, clip=args.clip, bf16=args.bf16, log=log,
                      eval_fn=lambda: "ppl %.2f (%d tokens)" % gpt_eval(model, valid, tok.eos_token_id),
                      eval_every=args.eval_every)
    ppl, n = gpt_eval(model, valid, tok.eos_token_id)
    log(f"trained in {secs / 60:.1f} min; validation perplexity (fp32 weights) {ppl:.2f} over {n} tokens")
    out = args.out or OUT_ROOT / "gpt"
    save_model(model, out, args.fp16)
    tok.save_pretrained(out, legacy_format=False)  # tokenizer.json only (no vocab.txt/merges.txt copies)
    GenerationConfig(do_sample=True, top_p=0.9, top_k=0, max_new_tokens=60, bos_token_id=tok.bos_token_id,
                     eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id).save_pretrained(out)
    # the number the README reports is the one of the files as shipped (reloaded from disk)
    shipped = GPT2LMHeadModel.from_pretrained(out, torch_dtype=torch.float32).eval()
    ppl16, _ = gpt_eval(shipped, valid, tok.eos_token_id)
    log(f"validation perplexity of the shipped files: {ppl16:.2f}")
    for seed in (0, 1, 2):
        log(f"sample seed {seed}: {gpt_sample(out, args.prompt, seed)!r}")
    write_report(out / "train_report.json", kind="gpt", steps=steps, minutes=secs / 60, valid_ppl=ppl16,
                 valid_tokens=n, train_tokens=ntok, args=vars(args))


def write_report(path: Path, **kw):
    kw["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in kw["args"].items() if k not in ("log", "out")}
    path.write_text(json.dumps(kw, indent=1) + "\n")


# ----------------------------------------------------------------------------------------------------
# BERT (MLM + NSP), with issue 4's tools: tfm.pretraining.nsp_pairs and DynamicMasking
# ----------------------------------------------------------------------------------------------------

def bert_segments(docs, tok):
    """Each document as a list of segments (one per paragraph, as WordPiece ids without specials)."""
    return [[tok.encode(p, add_special_tokens=False) for p in d.paragraphs] for d in docs]


def bert_examples(pairs, tok):
    """[CLS] a [SEP] b [SEP] with token_type 0 / 1 and HF's NSP label (0 = IsNext, 1 = NotNext)."""
    cls, sep = tok.cls_token_id, tok.sep_token_id
    out = []
    for p in pairs:
        ids = [cls, *p.a, sep, *p.b, sep]
        types = [0] * (len(p.a) + 2) + [1] * (len(p.b) + 1)
        out.append((ids, types, p.hf_label))
    return out


def bert_batch(examples, tok, masker):
    import torch
    ids, mask = pad_batch([e[0] for e in examples], tok.pad_token_id)
    types, _ = pad_batch([e[1] for e in examples], 0)
    m = masker(ids.numpy(), attention_mask=mask.numpy())
    return {"input_ids": torch.from_numpy(m["input_ids"]), "attention_mask": mask, "token_type_ids": types,
            "labels": torch.from_numpy(m["labels"]),
            "next_sentence_label": torch.tensor([e[2] for e in examples], dtype=torch.long)}


def bert_eval(model, examples, tok, seed=0, batch_size=64):
    """MLM perplexity = exp(mean cross-entropy over the masked positions) of the validation pairs under
    one fixed (seeded) 15%/80-10-10 masking, and NSP accuracy. Both pooled over the whole split."""
    import torch
    from tfm.pretraining import DynamicMasking
    masker = DynamicMasking(seed=seed, tokenizer=tok)
    nll, count, right = 0.0, 0, 0
    with torch.no_grad():
        for s in range(0, len(examples), batch_size):
            b = bert_batch(examples[s:s + batch_size], tok, masker)
            out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                        token_type_ids=b["token_type_ids"])
            logp = torch.log_softmax(out.prediction_logits.float(), dim=-1)
            sel = b["labels"] != -100
            nll -= float(logp[sel].gather(-1, b["labels"][sel].unsqueeze(-1)).sum())
            count += int(sel.sum())
            right += int((out.seq_relationship_logits.argmax(-1) == b["next_sentence_label"]).sum())
    return math.exp(nll / count), count, right / len(examples)


def run_bert(args):
    import torch
    from transformers import BertConfig, BertForPreTraining
    from tfm.pretraining import DynamicMasking, nsp_pairs
    log = make_logger(args.log)
    rng = setup_torch(args.seed, args.threads)
    train_docs, valid_docs = split_corpus(load_corpus(args.corpus))
    tok = train_bert_tokenizer(train_docs, args.vocab)
    train_segs = bert_segments(train_docs, tok)
    max_pair = args.max_len - 3  # room for [CLS] a [SEP] b [SEP]
    valid = bert_examples(nsp_pairs(bert_segments(valid_docs, tok), seed=args.seed, max_tokens=max_pair), tok)
    ntok = sum(len(s) for d in train_segs for s in d)
    log(f"bert: vocab {len(tok)}, train {ntok} tokens in {sum(len(d) for d in train_segs)} segments, "
        f"valid {len(valid)} NSP pairs")
    cfg = BertConfig(vocab_size=len(tok), hidden_size=args.d_model, num_hidden_layers=args.layers,
                     num_attention_heads=args.heads, intermediate_size=4 * args.d_model,
                     max_position_embeddings=args.max_len, type_vocab_size=2, pad_token_id=tok.pad_token_id,
                     hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout)
    model = BertForPreTraining(cfg)
    log(f"params {sum(p.numel() for p in model.parameters())}")
    # RoBERTa-style dynamic masking: a fresh 15% / 80-10-10 mask every time a batch is built
    masker = DynamicMasking(rng=rng, tokenizer=tok)

    def micro_batches():
        while True:
            # fresh NSP pairs every pass over the data (50% IsNext / 50% NotNext from another document)
            ex = bert_examples(nsp_pairs(train_segs, rng=rng, max_tokens=max_pair), tok)
            for b in length_grouped_batches([len(e[0]) for e in ex], args.batch, rng):
                yield bert_batch([ex[i] for i in b], tok, masker)

    log(f"training {args.steps or f'{args.minutes} min'} x {args.accum} x {args.batch} pairs (bf16={args.bf16})")

    def ev():
        return "MLM ppl %.2f over %d masked tokens, NSP acc %.3f" % bert_eval(model, valid, tok)
    secs, steps = train_loop(model, micro_batches, steps=args.steps, minutes=args.minutes, accum=args.accum,
                             lr=args.lr, warmup=args.warmup, clip=args.clip, bf16=args.bf16, log=log,
                             eval_fn=ev, eval_every=args.eval_every)
    log(f"trained in {secs / 60:.1f} min; validation (fp32 weights): {ev()}")
    out = args.out or OUT_ROOT / "bert"
    save_model(model, out, args.fp16)
    tok.save_pretrained(out, legacy_format=False)  # tokenizer.json only (no vocab.txt/merges.txt copies)
    shipped = BertForPreTraining.from_pretrained(out, torch_dtype=torch.float32).eval()
    ppl, n, acc = bert_eval(shipped, valid, tok)
    log(f"validation of the shipped files: MLM perplexity {ppl:.2f} over {n} masked tokens, "
        f"NSP accuracy {acc:.3f} over {len(valid)} pairs")
    write_report(out / "train_report.json", kind="bert", steps=steps, minutes=secs / 60, valid_mlm_ppl=ppl,
                 valid_masked_tokens=n, valid_nsp_acc=acc, train_tokens=ntok, args=vars(args))


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------

def run_corpus_stats(args):
    docs = load_corpus(args.corpus)
    train, valid = split_corpus(docs)
    size = lambda ds: sum(len(p) + 1 for d in ds for p in d.paragraphs)  # noqa: E731
    print(f"{len(docs)} documents, {size(docs)} characters of prose "
          f"(train {len(train)} docs / {size(train)} chars, valid {len(valid)} docs / {size(valid)} chars)")


def run_bench_bf16(args):
    """Time forward+backward of the GPT shape with and without bf16 autocast (answers: does it help?)."""
    import contextlib
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    setup_torch(args.seed, args.threads)
    cfg = GPT2Config(vocab_size=args.vocab, n_positions=args.max_len, n_embd=args.d_model, n_layer=args.layers,
                     n_head=args.heads)
    model = GPT2LMHeadModel(cfg)
    ids = torch.randint(0, args.vocab, (args.batch, args.max_len // 2))
    for name, ctx in (("fp32", contextlib.nullcontext),
                      ("bf16 autocast", lambda: torch.autocast("cpu", dtype=torch.bfloat16))):
        times = []
        for r in range(4):
            t0 = time.time()
            with ctx():
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            model.zero_grad(set_to_none=True)
            times.append(time.time() - t0)
        print(f"{name}: {min(times[1:]):.3f} s per micro-batch of {args.batch}x{args.max_len // 2} "
              f"(best of 3 after warm-up)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["gpt", "bert", "corpus-stats", "bench-bf16"])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="python3.11-doc reST sources")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default python/tfm/defaults/<what>)")
    ap.add_argument("--log", type=Path, default=None, help="also append the log to this file")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=256, help="n_positions / max_position_embeddings")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=16, help="micro-batch (sequences)")
    ap.add_argument("--accum", type=int, default=2, help="gradient accumulation steps per optimizer step")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=float, default=0.05, help="fraction of training for linear warm-up")
    ap.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping")
    ap.add_argument("--steps", type=int, default=0, help="optimizer steps (0: train for --minutes of wall-clock time)")
    ap.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget when --steps is 0; the lr schedule follows the clock")
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                    help="bf16 autocast (auto: on iff the CPU has native bf16, avx512_bf16/amx_bf16)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the machine has 2 cores)")
    ap.add_argument("--fp16", action="store_true", help="store the weights as float16 (half the size)")
    ap.add_argument("--prompt", default="The module", help="GPT sample prompt")
    args = ap.parse_args(argv)
    args.bf16 = cpu_has_bf16() if args.bf16 == "auto" else args.bf16 == "on"
    {"gpt": run_gpt, "bert": run_bert, "corpus-stats": run_corpus_stats, "bench-bf16": run_bench_bf16}[args.what](args)


if __name__ == "__main__":
    main()
