"""The command line (issue 5 §2): every subcommand on the embedded models and, with --model DIR, on small
random checkpoints written by transformers; numbers checked against transformers/PyTorch on the same files
(greedy and beam tokens, log-probabilities, fill-mask scores, parameter counts) or recomputed here by hand
(distinct-2, perplexity = exp(-mean log-prob)); --json documents; --help completeness; bad arguments exit
with status 2 and one line on stderr; --seed determinism; and once through `python -m tfm` in a subprocess.

The CLI runs in-process (`tfm.cli.main(argv)` returns the exit status; output captured with capsys).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import tfm
from tfm import cli
from tfm.comparison import STRATEGIES

ROOT = Path(__file__).resolve().parent.parent
GPT2_TOKENIZER = Path(__file__).parent / "data" / "gpt2-tokenizer"
WORDS = ("the a of to in is and it this that capital city france paris london river sea module function "
         "returns list value name file system python code new old big small red blue cat dog sat mat").split()


def run(capsys, *argv):
    """(status, stdout, stderr) of one in-process CLI run."""
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys, *argv):
    rc, out, err = run(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def gpt(tmp_path_factory, torch_module):
    """A random GPT-2 (2 layers, width 32) with GPT-2's own BPE tokenizer, as transformers saves it."""
    import transformers as T

    d = tmp_path_factory.mktemp("cli") / "gpt"
    tok = T.GPT2TokenizerFast(str(GPT2_TOKENIZER / "vocab.json"), str(GPT2_TOKENIZER / "merges.txt"))
    torch_module.manual_seed(1)
    cfg = T.GPT2Config(vocab_size=len(tok), n_layer=2, n_embd=32, n_head=4, n_positions=64, initializer_range=0.2,
                       bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    hf = T.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)
    return d, hf, tok


@pytest.fixture(scope="module")
def bert(tmp_path_factory, torch_module):
    """A random BertForPreTraining (MLM + NSP heads) with a small WordPiece vocabulary."""
    import transformers as T

    d = tmp_path_factory.mktemp("cli") / "bert"
    d.mkdir()
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(dict.fromkeys(WORDS)) + list(".,")
    (d / "vocab.txt").write_text("\n".join(pieces) + "\n", encoding="utf-8")
    tok = T.BertTokenizerFast(str(d / "vocab.txt"), model_max_length=64)
    torch_module.manual_seed(2)
    cfg = T.BertConfig(vocab_size=len(pieces), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=40, max_position_embeddings=64, initializer_range=0.3)
    hf = T.BertForPreTraining(cfg).eval()
    hf.save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)
    return d, hf, tok


def hf_logprobs(hf, ids):
    """log p(ids[t] | ids[:t]) for t >= 1 under a transformers causal LM (float64)."""
    import torch

    with torch.no_grad():
        logits = hf(torch.as_tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    return np.array([float(lp[t - 1, ids[t]]) for t in range(1, len(ids))])


# ------------------------------------------------------------------------------------------------------
# help and bad arguments
# ------------------------------------------------------------------------------------------------------

def subparsers():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, action.choices


def test_help_of_every_subcommand_names_every_option(capsys):
    parser, subs = subparsers()
    assert set(subs) == {"generate", "compare", "fill-mask", "score", "info", "demo"}
    rc, out, _ = run(capsys, "--help")
    assert rc == 0 and all(name in out for name in subs)
    for name, sub in subs.items():
        rc, out, _ = run(capsys, name, "--help")
        assert rc == 0
        text = " ".join(out.split())
        for action in sub._actions:
            for opt in action.option_strings:
                assert opt in text, f"tfm {name} --help does not mention {opt}"
            if not action.option_strings:
                assert action.metavar in text
            assert action.help, f"tfm {name}: {action.option_strings or action.dest} has no help text"
    # the generate options cover every decoding parameter of GenerationConfig but the output switches
    gen_dests = {a.dest for a in subs["generate"]._actions}
    fields = set(tfm.GenerationConfig.__dataclass_fields__) - {
        "extra", "output_scores", "output_logits", "return_dict_in_generate", "bos_token_id"}
    fields = {"bad_words" if f == "bad_words_ids" else f for f in fields}
    assert fields <= gen_dests, f"generate has no option for {sorted(fields - gen_dests)}"
    # compare's help states the fixed parameters of each strategy
    rc, out, _ = run(capsys, "compare", "--help")
    for s in STRATEGIES:
        assert s.name in out and s.description in " ".join(out.split())


BAD = [
    (["generate"], "required"),
    (["generate", "x", "--top-p", "1.5"], "--top-p"),
    (["generate", "x", "--top-k", "many"], "--top-k"),
    (["generate", "x", "--temperature", "-1"], "--temperature"),
    (["generate", "x", "--bogus"], "--bogus"),
    (["generate", "x", "--model", "/no/such/folder"], "/no/such/folder"),
    (["generate", "x", "--strategy", "beam", "--num-beams", "2", "--num-return-sequences", "3"],
     "--num-return-sequences"),
    (["generate", "x", "--strategy", "telepathy"], "--strategy"),
    (["generate", "x", "--early-stopping", "maybe"], "--early-stopping"),
    (["generate", "x", "--max-new-tokens", "5000"], "exceeds"),
    (["compare"], "PROMPT"),
    (["compare", "x", "--strategies", "greedy,psychic"], "psychic"),
    (["compare", "x", "--samples", "0"], "--samples"),
    (["compare", "--prompts", "/no/such/file"], "/no/such/file"),
    (["compare", "x", "--prompts", "-"], "exactly one"),
    (["fill-mask", "there is no mask here", "--model", "gpt2"], "gpt2"),
    (["score", "only a prompt"], "CHOICE"),
    (["info", "/no/such/folder"], "/no/such/folder"),
    (["info"], "DIR"),
    (["unknown-command"], "unknown-command"),
    (["demo", "--width", "30", "--heads", "4"], "--heads"),
]


@pytest.mark.parametrize("argv,needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, needle):
    rc, out, err = run(capsys, *argv)
    assert rc == 2, (rc, out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfm: error: "), err
    assert needle in lines[0], err
    assert "Traceback" not in err


def test_library_errors_on_real_models_exit_2(capsys, gpt, bert):
    for argv in (["generate", "x", "--model", bert[0]],              # an encoder is not a causal LM
                 ["fill-mask", "no mask in this text", "--model", bert[0]],
                 ["fill-mask", "the [MASK] sat", "--model", bert[0], "--seed", "1"],
                 ["fill-mask", "the [MASK] sat", "--model", gpt[0]],
                 ["generate", "x", "--model", gpt[0], "--bad-words", ""],
                 ["score", "x", "", "--model", gpt[0]],
                 ["info", gpt[0] / "config.json"]):
        rc, out, err = run(capsys, *argv)
        assert rc == 2 and out == "" and len(err.splitlines()) == 1 and err.startswith("tfm: error: "), (argv, err)


# ------------------------------------------------------------------------------------------------------
# generate
# ------------------------------------------------------------------------------------------------------

def test_generate_default_gpt_streams_what_generate_returns_and_seed_is_deterministic(capsys):
    model, tok = tfm.load_default("gpt")
    rc, a, _ = run(capsys, "generate", "The module", "--seed", "3", "--max-new-tokens", "12")
    rc2, b, _ = run(capsys, "generate", "The module", "--seed", "3", "--max-new-tokens", "12")
    rc3, c, _ = run(capsys, "generate", "The module", "--seed", "4", "--max-new-tokens", "12")
    assert rc == rc2 == rc3 == 0
    assert a == b and a != c
    ids = tok.encode("The module")
    seq = model.generate([ids], seed=3, max_new_tokens=12)[0].tolist()  # generation_config.json: top-p 0.9
    eos = model.config.eos_token_id
    seq = seq[:seq.index(eos, len(ids)) + 1] if eos in seq[len(ids):] else seq
    assert a == tok.decode(seq, skip_special_tokens=True) + "\n"
    rc, d, _ = run(capsys, "generate", "The module", "--seed", "3", "--max-new-tokens", "12", "--continuation-only")
    assert "The module" + d == a


def test_generate_greedy_and_beam_match_transformers(capsys, gpt):
    import torch

    d, hf, tok = gpt
    prompt = "The capital of France is"
    ids = tok.encode(prompt)
    doc = run_json(capsys, "generate", prompt, "--model", d, "--max-new-tokens", "8")  # no generation_config: greedy
    ref = hf.generate(torch.as_tensor([ids]), max_new_tokens=8, do_sample=False, pad_token_id=tok.eos_token_id)
    assert doc["mode"] == "greedy"
    assert doc["sequences"][0]["token_ids"] == ref[0, len(ids):].tolist()
    doc = run_json(capsys, "generate", prompt, "--model", d, "--max-new-tokens", "6", "--strategy", "beam",
                   "--num-beams", "3", "--num-return-sequences", "2", "--length-penalty", "0.5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = hf.generate(torch.as_tensor([ids]), max_new_tokens=6, num_beams=3, num_return_sequences=2,
                          length_penalty=0.5, do_sample=False, pad_token_id=tok.eos_token_id,
                          output_scores=True, return_dict_in_generate=True)
    assert [s["token_ids"] for s in doc["sequences"]] == ref.sequences[:, len(ids):].tolist()
    assert np.allclose([s["sequence_score"] for s in doc["sequences"]], ref.sequences_scores.numpy(), atol=1e-4)
    # the reported log-probability is the model's (checked against PyTorch on prompt + generation)
    s = doc["sequences"][0]
    assert s["raw_logprob"] == pytest.approx(hf_logprobs(hf, ids + s["token_ids"])[len(ids) - 1:].sum(), abs=1e-3)


@pytest.mark.parametrize("strategy,extra,n", [
    ("sample", ["--top-k", "20", "--num-return-sequences", "2"], 2),
    ("beam_sample", [], 1),
    ("stochastic_beam", ["--num-return-sequences", "3"], 3),
    ("group_beam", ["--num-return-sequences", "2"], 2),
    ("contrastive", [], 1),
])
def test_generate_every_strategy_runs(capsys, gpt, strategy, extra, n):
    doc = run_json(capsys, "generate", "The river", "--model", gpt[0], "--strategy", strategy, "--seed", "0",
                   "--max-new-tokens", "5", *extra)
    assert doc["mode"] == strategy and len(doc["sequences"]) == n
    assert all(0 < len(s["token_ids"]) <= 5 and s["text"].startswith("The river") for s in doc["sequences"])
    rc, out, _ = run(capsys, "generate", "The river", "--model", gpt[0], "--strategy", strategy, "--seed", "0",
                     "--max-new-tokens", "5", *extra)
    assert rc == 0 and out.count("The river") == n


OPTION_CASES = [
    (["--max-length", "12"], "max_length", 12),
    (["--min-length", "3"], "min_length", 3),
    (["--min-new-tokens", "2"], "min_new_tokens", 2),
    (["--do-sample"], "do_sample", True),
    (["--no-do-sample"], "do_sample", False),
    (["--num-beams", "4", "--num-beam-groups", "2", "--diversity-penalty", "0.5"], "num_beam_groups", 2),
    (["--num-beams", "4", "--num-beam-groups", "2", "--diversity-penalty", "0.5"], "diversity_penalty", 0.5),
    (["--penalty-alpha", "0.4", "--top-k", "3"], "penalty_alpha", 0.4),
    (["--do-sample", "--temperature", "0.5"], "temperature", 0.5),
    (["--do-sample", "--top-p", "0.8"], "top_p", 0.8),
    (["--do-sample", "--min-p", "0.05"], "min_p", 0.05),
    (["--do-sample", "--typical-p", "0.9"], "typical_p", 0.9),
    (["--do-sample", "--epsilon", "0.001"], "epsilon_cutoff", 0.001),
    (["--do-sample", "--eta-cutoff", "0.002"], "eta_cutoff", 0.002),
    (["--do-sample", "--top-n-sigma", "1.5"], "top_n_sigma", 1.5),
    (["--repetition-penalty", "1.3"], "repetition_penalty", 1.3),
    (["--frequency-penalty", "0.2"], "frequency_penalty", 0.2),
    (["--presence-penalty", "0.3"], "presence_penalty", 0.3),
    (["--no-repeat-ngram-size", "2"], "no_repeat_ngram_size", 2),
    (["--suppress-tokens", "5", "6"], "suppress_tokens", [5, 6]),
    (["--begin-suppress-tokens", "7"], "begin_suppress_tokens", [7]),
    (["--num-beams", "3", "--early-stopping", "never"], "early_stopping", "never"),
    (["--num-beams", "3", "--length-penalty", "2"], "length_penalty", 2.0),
    (["--eos-token-id", "13", "50256"], "eos_token_id", [13, 50256]),
    (["--pad-token-id", "0"], "pad_token_id", 0),
    (["--seed", "9", "--do-sample"], "seed", 9),
]


def test_every_generate_option_reaches_the_generation_config(capsys, gpt):
    for extra, field, value in OPTION_CASES:
        doc = run_json(capsys, "generate", "The river", "--model", gpt[0], "--max-new-tokens", "1", *extra)
        assert doc["generation_config"][field] == value, (extra, doc["generation_config"][field])
    tok = gpt[2]
    doc = run_json(capsys, "generate", "The river", "--model", gpt[0], "--max-new-tokens", "3",
                   "--bad-words", " the", "--sequence-bias", " sea=2.5")
    assert doc["generation_config"]["bad_words_ids"] == [tok.encode(" the")]
    assert doc["generation_config"]["sequence_bias"] == [[tok.encode(" sea"), 2.5]]


def test_generate_constraints_take_effect(capsys, gpt):
    tok = gpt[2]
    free = run_json(capsys, "generate", "The river", "--model", gpt[0], "--max-new-tokens", "20")
    toks = free["sequences"][0]["token_ids"]
    banned = max(set(toks), key=toks.count)  # the random model's favourite token
    doc = run_json(capsys, "generate", "The river", "--model", gpt[0], "--max-new-tokens", "20",
                   "--suppress-tokens", banned, "--no-repeat-ngram-size", "2")
    toks = doc["sequences"][0]["token_ids"]
    assert banned not in toks
    ids = tok.encode("The river") + toks
    bigrams = list(zip(ids, ids[1:]))
    assert len(bigrams) == len(set(bigrams))


def test_trace_prints_every_stage_with_the_model_distribution(capsys):
    model, tok = tfm.load_default("gpt")
    rc, out, _ = run(capsys, "generate", "The module", "--seed", "0", "--max-new-tokens", "2", "--do-sample",
                     "--temperature", "0.8", "--top-k", "7", "--trace", "--trace-top-n", "3")
    assert rc == 0
    lines = out.splitlines()
    assert sum(line.startswith("step ") for line in lines) == 2
    stages = [line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("  stage")]
    assert stages == ["model", "temperature", "top_k", "top_p"] * 2  # top_p 0.9 from generation_config.json
    top_k_line = next(line for line in lines if line.startswith("  top_k"))
    assert int(top_k_line.split()[1]) == 7
    # step 0's model stage: the three most probable tokens and their probabilities under the raw softmax
    logits = model([tok.encode("The module")]).logits[0, -1].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    best = np.argsort(-p)[:3]
    model_line = next(line for line in lines if line.startswith("  model"))
    for t in best:
        assert f"{cli._show(tok, t)} {p[t]:.3f}" in model_line
    rc, out, _ = run(capsys, "generate", "The module", "--strategy", "beam", "--num-beams", "2",
                     "--max-new-tokens", "3", "--trace")
    assert rc == 0 and "beam tree" in out and out.count("running as beam") >= 4


# ------------------------------------------------------------------------------------------------------
# compare
# ------------------------------------------------------------------------------------------------------

def test_compare_default_gpt_table_has_every_strategy(capsys):
    rc, out, err = run(capsys, "compare", "The module", "--max-new-tokens", "10")
    assert rc == 0 and err == ""
    names = [s.name for s in STRATEGIES]
    rows = [line for line in out.splitlines()[3:] if line.split() and line.split()[0] in names]
    assert [r.split()[0] for r in rows] == names
    for line in rows:
        logp, ppl = float(line.split()[1]), float(line.split()[2])
        assert ppl == pytest.approx(math.exp(-logp), rel=2e-3)


def test_compare_json_metrics_against_pytorch_and_by_hand(capsys, gpt):
    d, hf, tok = gpt
    prompt = "The capital of France is"
    ids = tok.encode(prompt)
    doc = run_json(capsys, "compare", prompt, "--model", d, "--samples", "2", "--seed", "5", "--max-new-tokens", "8")
    assert [s["name"] for s in doc["strategies"]] == [s.name for s in STRATEGIES]
    assert set(doc["metrics"]) == {"mean_logprob", "perplexity", "distinct_2", "rep_2", "repetition"}
    eos = tok.eos_token_id
    for s in doc["strategies"]:
        stochastic = next(x for x in STRATEGIES if x.name == s["name"]).stochastic
        assert len(s["generations"]) == (2 if stochastic else 1)
        total, count, d2 = 0.0, 0, []
        for g in s["generations"]:
            lp = hf_logprobs(hf, ids + g["token_ids"])[len(ids) - 1:]
            total, count = total + lp.sum(), count + len(lp)
            body = [t for t in g["token_ids"] if t != eos]
            bigrams = list(zip(body, body[1:]))
            if bigrams:
                d2.append(len(set(bigrams)) / len(bigrams))
            assert g["text"] == tok.decode(g["token_ids"], skip_special_tokens=True)
        assert s["mean_logprob"] == pytest.approx(total / count, abs=1e-4), s["name"]
        assert s["perplexity"] == pytest.approx(math.exp(-total / count), rel=1e-4)
        assert s["distinct_2"] == pytest.approx(np.mean(d2))
        assert 0.0 <= s["rep_2"] <= 100.0 and 0.0 <= s["repetition"] <= 100.0
    # the same seed in every strategy: compare's pure sampling draws what `generate --do-sample --seed` draws
    gen = run_json(capsys, "generate", prompt, "--model", d, "--do-sample", "--seed", "5", "--max-new-tokens", "8")
    sampling = next(s for s in doc["strategies"] if s["name"] == "sampling")
    assert sampling["generations"][0]["token_ids"] == gen["sequences"][0]["token_ids"]
    greedy = next(s for s in doc["strategies"] if s["name"] == "greedy")
    gen = run_json(capsys, "generate", prompt, "--model", d, "--max-new-tokens", "8")
    assert greedy["generations"][0]["token_ids"] == gen["sequences"][0]["token_ids"]


def test_compare_many_prompts_progress_and_determinism(capsys, gpt, tmp_path):
    f = tmp_path / "prompts.txt"
    f.write_text("The river\n\nA small cat\nThe new file system\n", encoding="utf-8")
    argv = ["compare", "--prompts", f, "--samples", "3", "--model", gpt[0], "--max-new-tokens", "6",
            "--strategies", "greedy,top-p,typical"]
    rc, out, err = run(capsys, *argv, "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["prompts"] == ["The river", "A small cat", "The new file system"]
    assert [len(s["generations"]) for s in doc["strategies"]] == [3, 9, 9]
    assert err.count("/9") >= 9 and "9/9" in err  # the progress bar: 3 prompts x 3 strategies
    rc, again, _ = run(capsys, *argv, "--json", "--no-progress")
    assert again == out
    rc, table, err = run(capsys, *argv)
    assert rc == 0 and "(+ 2 more)" in table and "typical" in table


# ------------------------------------------------------------------------------------------------------
# fill-mask, score, info
# ------------------------------------------------------------------------------------------------------

def test_fill_mask_matches_transformers_pipeline(capsys, bert):
    import transformers as T

    d, hf, tok = bert
    text = "the cat sat on the [MASK]."
    doc = run_json(capsys, "fill-mask", text, "--model", d, "--top-k", "4")
    ref = T.pipeline("fill-mask", model=T.BertForMaskedLM.from_pretrained(d), tokenizer=tok, framework="pt")(
        text, top_k=4)
    ours = doc["masks"][0]
    assert [r["token_str"] for r in ours] == [r["token_str"] for r in ref]
    assert np.allclose([r["score"] for r in ours], [r["score"] for r in ref], atol=1e-5)
    rc, out, _ = run(capsys, "fill-mask", "the [MASK] sat on the [MASK].", "--model", d)
    assert rc == 0 and "mask 2 of 2" in out and len([ln for ln in out.splitlines() if ln[:3].strip().isdigit()]) == 10
    a = run_json(capsys, "fill-mask", text, "--model", d, "--num-samples", "5", "--top-p", "0.9", "--seed", "1")
    b = run_json(capsys, "fill-mask", text, "--model", d, "--num-samples", "5", "--top-p", "0.9", "--seed", "1")
    assert a == b and a["sampled"] and len(a["masks"][0]) == 5


def test_fill_mask_default_bert(capsys):
    rc, out, _ = run(capsys, "fill-mask", "The [MASK] returns a list.", "--top-k", "3")
    assert rc == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1


def test_score_matches_pytorch_and_ranks(capsys, gpt):
    d, hf, tok = gpt
    prompt, choices = "The capital of France is", ["Paris", "London", "a small blue river"]
    doc = run_json(capsys, "score", prompt, *choices, "--model", d)
    ids = tok.encode(prompt)
    totals = {}
    for c in choices:
        cont = tok.encode(prompt + " " + c)[len(ids):]
        totals[c] = hf_logprobs(hf, ids + cont)[len(ids) - 1:].sum()
    got = {r["choice"]: r for r in doc["choices"]}
    for c in choices:
        assert got[c]["total_logprob"] == pytest.approx(totals[c], abs=1e-3)
        assert got[c]["total_logprob"] == pytest.approx(sum(t["logprob"] for t in got[c]["tokens"]))
    ranked = [r["choice"] for r in doc["choices"]]
    assert ranked == sorted(choices, key=lambda c: -totals[c])
    assert sum(r["share"] for r in doc["choices"]) == pytest.approx(1.0)
    rc, out, _ = run(capsys, "score", "The function returns", "a list", "None")  # the embedded GPT
    assert rc == 0 and "per token" in out


def test_info_counts_parameters_and_dtypes_from_the_files(capsys, gpt, bert, tmp_path):
    import torch

    for d, hf, _ in (gpt, bert):
        doc = run_json(capsys, "info", d)
        cfg = hf.config
        assert doc["parameters"] == sum(p.numel() for p in hf.parameters())
        assert (doc["layers"], doc["width"], doc["heads"], doc["vocab"]) == (
            cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.vocab_size)
        assert doc["architectures"] == [type(hf).__name__]
        assert {f["name"]: f["bytes"] for f in doc["files"]} == {p.name: p.stat().st_size for p in d.iterdir()}
        assert "tokenizer.json" in doc["tokenizer_files"]
    half = tmp_path / "half"
    copy.deepcopy(gpt[1]).to(torch.float16).save_pretrained(half)
    doc = run_json(capsys, "info", half)
    assert list(doc["dtypes"]) == ["f16"] and doc["dtypes"]["f16"]["parameters"] == doc["parameters"]
    assert doc["parameters"] == sum(p.numel() for p in gpt[1].parameters())
    import transformers as T

    n = sum(p.numel() for p in T.GPT2LMHeadModel.from_pretrained(tfm.defaults.path("gpt")).parameters())
    rc, out, _ = run(capsys, "info", "gpt")
    assert rc == 0 and "GPT2LMHeadModel" in out and f"{n:,}" in out and "model.safetensors" in out


def test_demo_still_runs(capsys):
    rc, out, _ = run(capsys, "demo", "--new-tokens", "3")
    assert rc == 0 and "greedy ids" in out


# ------------------------------------------------------------------------------------------------------
# the entry point
# ------------------------------------------------------------------------------------------------------

def test_python_m_tfm_entry_point(capsys):
    env = dict(os.environ)  # tfm as the user has it: installed (CI) or on PYTHONPATH (a dev build)
    argv = ["generate", "The module", "--seed", "2", "--max-new-tokens", "6"]
    p = subprocess.run([sys.executable, "-m", "tfm", *argv], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    rc, out, _ = run(capsys, *argv)
    assert p.stdout == out and out.startswith("The module")
    p = subprocess.run([sys.executable, "-m", "tfm", "generate", "x", "--top-p", "2"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 2 and p.stdout == "" and p.stderr.count("\n") == 1 and p.stderr.startswith("tfm: error:")
    assert 'tfm = "tfm.cli:main"' in (ROOT / "pyproject.toml").read_text()
