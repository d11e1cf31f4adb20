"""generate() against transformers' generate on the same files: token-identical for greedy, beam
search, group beam search and contrastive search; sampling determinism; streaming; the trace;
score(); bad parameters. Specification: issue 3 §2, §3, §5, §6, §7 and "Bad input".

The reference is transformers 4.55 (the last release with contrastive and group beam search in
core). Random models are given a reachable EOS: the final layer norm's bias is pointed at the EOS
embedding, so EOS gets a steady share of the probability and finishing paths are exercised.
"""
from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest

import tfm
from tfm import _tfmcore

EOS = 60


def build(torch, tmp, name, eos_boost, **kw):
    import transformers as T

    torch.manual_seed(sum(map(ord, name)))
    cfg = T.GPT2Config(bos_token_id=EOS, eos_token_id=EOS, **kw)
    hf = T.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        e = hf.transformer.wte.weight[EOS]
        hf.transformer.ln_f.bias.copy_(eos_boost * e / e.norm() ** 2)
    d = tmp / name
    hf.save_pretrained(d)
    return d, hf


@pytest.fixture(scope="module")
def models(tmp_path_factory, torch_module):
    tmp = tmp_path_factory.mktemp("gen")
    out = {}
    out["small"] = build(torch_module, tmp, "small", 5.5, n_layer=2, n_embd=64, n_head=4, vocab_size=97,
                         n_positions=64, initializer_range=0.3)
    out["deep"] = build(torch_module, tmp, "deep", 5.0, n_layer=3, n_embd=48, n_head=6, vocab_size=131,
                        n_positions=80, initializer_range=0.4, activation_function="gelu")
    out["noeos"] = build(torch_module, tmp, "noeos", 0.0, n_layer=1, n_embd=32, n_head=2, vocab_size=71,
                         n_positions=64, initializer_range=0.5)
    return out


def prompts(vocab, lengths, seed=0):
    """Left-padded batch (pad = EOS, as GPT-2 users do) and its attention mask."""
    rng = np.random.default_rng(seed)
    T = max(lengths)
    ids = np.full((len(lengths), T), EOS, dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, T - n:] = rng.integers(0, EOS, size=n)
        mask[i, T - n:] = 1
    return ids, mask


def hf_generate(hf, ids, mask, **kw):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = hf.generate(torch.as_tensor(ids), attention_mask=torch.as_tensor(mask), pad_token_id=EOS,
                          trust_remote_code=True, **kw)
    return out


def assert_same(ours, ref, what):
    ref = ref.numpy() if hasattr(ref, "numpy") else ref
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs transformers {ref.shape}\n{ours}\n{ref}"
    assert np.array_equal(ours, ref), f"{what}: tokens differ\nours:\n{ours}\ntransformers:\n{ref}"


GREEDY_CASES = [
    dict(max_new_tokens=12),
    dict(max_new_tokens=15, repetition_penalty=1.3),
    dict(max_new_tokens=15, no_repeat_ngram_size=2),
    dict(max_new_tokens=10, min_new_tokens=6),
    dict(max_new_tokens=10, bad_words_ids=[[5], [7, 8]], suppress_tokens=[11, 12]),
    dict(max_new_tokens=10, sequence_bias={(3,): 4.0, (4, 5): -2.0}),
]


@pytest.mark.parametrize("name", ["small", "deep"])
@pytest.mark.parametrize("case", range(len(GREEDY_CASES)))
def test_greedy_matches_transformers(models, name, case):
    d, hf = models[name]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids, mask = prompts(hf.config.vocab_size, [7, 4, 9], seed=case)
    kw = GREEDY_CASES[case]
    ours = model.generate(ids, attention_mask=mask, **kw)
    ref = hf_generate(hf, ids, mask, do_sample=False, **kw)
    assert_same(ours, ref, f"greedy {kw}")


BEAM_CASES = [
    dict(num_beams=4, max_new_tokens=12),
    dict(num_beams=3, max_new_tokens=14, num_return_sequences=3, length_penalty=0.0),
    dict(num_beams=5, max_new_tokens=12, early_stopping=True, num_return_sequences=2),
    dict(num_beams=4, max_new_tokens=15, early_stopping="never", length_penalty=1.5),
    dict(num_beams=4, max_new_tokens=15, no_repeat_ngram_size=2, length_penalty=-0.5),
    dict(num_beams=6, max_new_tokens=10, num_return_sequences=4, repetition_penalty=1.2),
    dict(num_beams=2, max_new_tokens=20, early_stopping=False, length_penalty=2.0),
]


@pytest.mark.parametrize("name", ["small", "deep", "noeos"])
@pytest.mark.parametrize("case", range(len(BEAM_CASES)))
def test_beam_search_matches_transformers(models, name, case):
    d, hf = models[name]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids, mask = prompts(hf.config.vocab_size, [6, 9, 3], seed=10 + case)
    kw = BEAM_CASES[case]
    ours = model.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_scores=True, **kw)
    ref = hf_generate(hf, ids, mask, do_sample=False, return_dict_in_generate=True, output_scores=True, **kw)
    assert_same(ours.sequences, ref.sequences, f"beam {kw}")
    np.testing.assert_allclose(ours.sequences_scores, ref.sequences_scores.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ours.beam_indices, ref.beam_indices.numpy())
    # transition scores rebuilt from the per-step scores equal transformers'
    ts = model.compute_transition_scores(ours.sequences, ours.scores, ours.beam_indices)
    ref_ts = hf.compute_transition_scores(ref.sequences, ref.scores, ref.beam_indices).numpy()
    np.testing.assert_allclose(ts, ref_ts, rtol=1e-4, atol=1e-4)
    # our per-token log-probs are the same numbers
    np.testing.assert_allclose(ours.token_logprobs[:, :ts.shape[1]], ts, rtol=1e-4, atol=1e-4)


def test_eos_is_reached_midway(models):
    """The finishing paths above are really exercised: some beams end before max_new_tokens."""
    d, hf = models["small"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids, mask = prompts(hf.config.vocab_size, [6, 9, 3], seed=10)
    out = model.generate(ids, attention_mask=mask, num_beams=4, max_new_tokens=12, num_return_sequences=4,
                         return_dict_in_generate=True)
    gen = out.sequences[:, ids.shape[1]:]
    lengths = (out.beam_indices >= 0).sum(1)
    assert (lengths < 12).any() and (gen == EOS).any()
    greedy = model.generate(ids, attention_mask=mask, max_new_tokens=12)
    assert (greedy[:, ids.shape[1]:] == EOS).any()


GROUP_CASES = [
    dict(num_beams=4, num_beam_groups=2, diversity_penalty=1.0, max_new_tokens=12),
    dict(num_beams=6, num_beam_groups=3, diversity_penalty=0.5, max_new_tokens=10, num_return_sequences=3),
    dict(num_beams=4, num_beam_groups=4, diversity_penalty=2.0, max_new_tokens=12, length_penalty=0.5,
         early_stopping=True),
]


@pytest.mark.parametrize("name", ["small", "deep"])
@pytest.mark.parametrize("case", range(len(GROUP_CASES)))
def test_group_beam_search_matches_transformers(models, name, case):
    d, hf = models[name]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids, mask = prompts(hf.config.vocab_size, [5, 8], seed=20 + case)
    kw = GROUP_CASES[case]
    ours = model.generate(ids, attention_mask=mask, return_dict_in_generate=True, **kw)
    ref = hf_generate(hf, ids, mask, do_sample=False, return_dict_in_generate=True, output_scores=True, **kw)
    assert_same(ours.sequences, ref.sequences, f"group beam {kw}")
    np.testing.assert_allclose(ours.sequences_scores, ref.sequences_scores.numpy(), rtol=1e-4, atol=1e-4)


CONTRASTIVE_CASES = [
    dict(penalty_alpha=0.6, top_k=4, max_new_tokens=12),
    dict(penalty_alpha=0.3, top_k=6, max_new_tokens=15, repetition_penalty=1.1),
    dict(penalty_alpha=0.9, top_k=2, max_new_tokens=10),
]


@pytest.mark.parametrize("name", ["small", "deep"])
@pytest.mark.parametrize("case", range(len(CONTRASTIVE_CASES)))
def test_contrastive_search_matches_transformers(models, name, case):
    d, hf = models[name]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids, mask = prompts(hf.config.vocab_size, [7, 4, 6], seed=30 + case)
    kw = CONTRASTIVE_CASES[case]
    ours = model.generate(ids, attention_mask=mask, **kw)
    ref = hf_generate(hf, ids, mask, do_sample=False, **kw)
    assert_same(ours, ref, f"contrastive {kw}")


# ---------------------------------------------------------------------------------------------
# Batches equal single prompts; sampling determinism
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(do_sample=True, top_p=0.9, temperature=0.8, seed=3),
                                dict(num_beams=3), dict(penalty_alpha=0.5, top_k=3),
                                dict(do_sample=True, top_k=20, num_return_sequences=2, seed=11)])
def test_batched_prompts_equal_single_runs(models, kw):
    d, hf = models["deep"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids, mask = prompts(hf.config.vocab_size, [8, 3, 5], seed=40)
    batched = model.generate(ids, attention_mask=mask, max_new_tokens=10, **kw)
    nrs = kw.get("num_return_sequences", 1)
    T = ids.shape[1]
    for i in range(3):
        real = ids[i][mask[i] == 1]
        single = model.generate(real[None, :], max_new_tokens=10, **kw)
        for j in range(nrs):
            row = batched[i * nrs + j]
            got = row[T - len(real):]
            want = single[j]
            n = min(len(got), len(want))
            assert np.array_equal(got[:n], want[:n]), f"prompt {i} sample {j}: {got} vs {want}"
            # beyond the shorter one there is only padding (a batch runs until every row is done)
            assert (got[n:] == EOS).all() and (want[n:] == EOS).all()


def test_same_seed_same_tokens_different_seed_differs(models):
    d, hf = models["small"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids, mask = prompts(hf.config.vocab_size, [6, 6], seed=50)
    a = model.generate(ids, attention_mask=mask, do_sample=True, max_new_tokens=20, seed=123)
    b = model.generate(ids, attention_mask=mask, do_sample=True, max_new_tokens=20, seed=123)
    c = model.generate(ids, attention_mask=mask, do_sample=True, max_new_tokens=20, seed=124)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # num_return_sequences samples of one prompt differ from each other
    s = model.generate(ids[:1], do_sample=True, temperature=3.0, max_new_tokens=20, seed=5, num_return_sequences=4)
    assert len({tuple(r) for r in s}) > 1


def test_no_implicit_top_k(models):
    """Unlike transformers (top_k=50 by default), no filter is applied that was not asked for."""
    d, _ = models["small"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids = np.array([[1, 2, 3]])
    out = model.generate(ids, do_sample=True, max_new_tokens=3, seed=0, return_dict_in_generate=True, trace=True)
    assert out.processors == []
    assert out.trace[0][0][0].kept == model.config.vocab_size
    out = model.generate(ids, do_sample=True, temperature=0, max_new_tokens=5, seed=0)
    assert np.array_equal(out, model.generate(ids, max_new_tokens=5)), "temperature=0 must mean greedy"


# ---------------------------------------------------------------------------------------------
# Stochastic beam search (Kool et al. 2019)
# ---------------------------------------------------------------------------------------------
def test_stochastic_beam_search_gives_distinct_samples(models):
    d, hf = models["small"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids, mask = prompts(hf.config.vocab_size, [5, 7], seed=60)
    out = model.generate(ids, attention_mask=mask, strategy="stochastic_beam", num_beams=4, num_return_sequences=4,
                         max_new_tokens=8, seed=1, return_dict_in_generate=True, trace=True)
    assert out.sequences.shape[0] == 8
    for b in range(2):
        rows = {tuple(r) for r in out.sequences[b * 4:(b + 1) * 4]}
        assert len(rows) == 4, "samples without replacement must be distinct"
    # sequences_scores are the log-probabilities of the sampled sequences under the model
    full_mask = np.concatenate(
        [np.repeat(mask, 4, axis=0), np.ones((8, out.sequences.shape[1] - ids.shape[1]), dtype=np.int64)], 1)
    pos = np.maximum(np.cumsum(full_mask, 1) - 1, 0)
    full = model(out.sequences, attention_mask=full_mask, position_ids=pos).logits
    lsm = full - np.log(np.exp(full - full.max(-1, keepdims=True)).sum(-1, keepdims=True)) - full.max(-1, keepdims=True)
    P = ids.shape[1]
    for r in range(8):
        toks = out.sequences[r, P:]
        n = int((out.beam_indices[r] >= 0).sum())
        lp = sum(lsm[r, P - 1 + t, toks[t]] for t in range(n))
        assert abs(lp - out.sequences_scores[r]) < 1e-3
    # the perturbed scores of the final beams are sorted (top-k of the Gumbels)
    g = out.beam_tree.score[-1]
    assert (np.diff(g, axis=1) <= 1e-6).all()
    again = model.generate(ids, attention_mask=mask, strategy="stochastic_beam", num_beams=4, num_return_sequences=4,
                           max_new_tokens=8, seed=1)
    assert np.array_equal(again, out.sequences)


def test_stochastic_beam_first_token_frequencies_follow_the_model(models):
    """With one step, Gumbel-top-1 over the first token is an exact sample of the model's distribution."""
    from scipy.stats import chisquare

    d, _ = models["small"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids = np.array([[4, 9, 2]])
    p = np.exp(model.score(ids, [[v] for v in range(model.config.vocab_size)]).total)
    counts = np.zeros_like(p)
    for s in range(3000):
        out = model.generate(ids, strategy="stochastic_beam", num_beams=2, num_return_sequences=1, max_new_tokens=1,
                             seed=s)
        counts[out[0, -1]] += 1
    keep = p * 3000 >= 5
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(p[keep], p[~keep].sum()) * 3000
    assert chisquare(obs, exp).pvalue > 0.001


# ---------------------------------------------------------------------------------------------
# Streaming, trace, score
# ---------------------------------------------------------------------------------------------
def test_stream_yields_what_generate_returns(models):
    d, hf = models["small"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids = np.array([[3, 1, 4, 1, 5]])
    full = model.generate(ids, do_sample=True, top_k=30, seed=9, max_new_tokens=15)
    streamed = list(model.stream(ids, do_sample=True, top_k=30, seed=9, max_new_tokens=15))
    assert streamed == full[0, 5:].tolist()
    assert _tfmcore.live_generators() == 0


def test_breaking_out_of_a_stream_releases_the_generator(models):
    d, _ = models["small"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    it = model.stream(np.array([[3, 1, 4]]), max_new_tokens=40)
    next(it)
    assert _tfmcore.live_generators() == 1
    for i, _ in enumerate(it):
        if i == 2:
            break
    del it
    gc.collect()
    assert _tfmcore.live_generators() == 0


def test_stream_text_with_multibyte_characters(tmp_path, torch_module):
    """Byte-level tokens that split a UTF-8 character are held back until it is complete."""
    import transformers as T

    from conftest import DATA

    tok = tfm.AutoTokenizer.from_pretrained(DATA / "gpt2-tokenizer")
    target = tok.encode("日本語のテキスト 🙂 ok")
    assert any("\ufffd" in tok.decode([t]) for t in target), "the text must contain split characters"
    cfg = T.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50257, n_positions=64)
    torch_module.manual_seed(0)
    T.GPT2LMHeadModel(cfg).eval().save_pretrained(tmp_path)
    model = tfm.AutoModelForCausalLM.from_pretrained(tmp_path)
    first = tok.encode("x")[0]
    # force the continuation: a +1e4 bias on each target token after its exact history (a bias
    # sequence may be at most as long as the history, so the first prompt token is left out)
    hist, bias = [first, first], {}
    for t in target:
        bias[tuple(hist[1:]) + (t,)] = 1e4
        hist.append(t)
    prompt = np.array([[first, first]])
    gen = model.generate(prompt, max_new_tokens=len(target), sequence_bias=bias)
    assert gen[0, 2:].tolist() == target
    pieces = list(model.stream(prompt, tokenizer=tok, max_new_tokens=len(target), sequence_bias=bias))
    assert "".join(pieces) == tok.decode(target)
    assert all("\ufffd" not in p for p in pieces), pieces
    assert len(pieces) > 3


def test_trace_shows_each_processor(models):
    d, _ = models["noeos"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids = np.array([[5, 6, 7]])
    out = model.generate(ids, do_sample=True, temperature=0.7, top_k=10, top_p=0.8, seed=2, max_new_tokens=6,
                         return_dict_in_generate=True, output_scores=True, trace=True, trace_top_n=5)
    assert out.processors == ["temperature", "top_k", "top_p"]
    assert len(out.trace) == 6
    for s, step in enumerate(out.trace):
        stages = step[0]
        assert [st.name for st in stages] == ["model", "temperature", "top_k", "top_p"]
        assert stages[0].kept == model.config.vocab_size and stages[1].kept == model.config.vocab_size
        assert stages[2].kept >= 10 and stages[3].kept <= stages[2].kept
        assert 0 < stages[3].kept_mass <= 1 and stages[1].kept_mass == pytest.approx(1.0)
        # top-p keeps the smallest set whose mass reaches p (mass measured before the filter)
        assert stages[3].kept_mass >= 0.8 - 1e-6
        chosen = int(step.chosen[0])
        final = out.scores[s][0]
        assert np.isfinite(final[chosen]), "the chosen token must be in the kept set"
        assert np.isfinite(final).sum() == stages[3].kept
        # the stage probabilities are the softmax of the scores at that stage
        p = np.exp(final - final[np.isfinite(final)].max())
        p /= p.sum()
        top = stages[3].top_ids[stages[3].top_ids >= 0]
        np.testing.assert_allclose(stages[3].top_probs[:len(top)], p[top], rtol=1e-5, atol=1e-6)
        assert step.logprob[0] == pytest.approx(np.log(p[chosen]), abs=1e-5)


def test_beam_tree_is_consistent(models):
    d, hf = models["small"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids, mask = prompts(hf.config.vocab_size, [5, 7], seed=70)
    out = model.generate(ids, attention_mask=mask, num_beams=3, max_new_tokens=8, num_return_sequences=3,
                         return_dict_in_generate=True, trace=True)
    tree = out.beam_tree
    steps, B, W = tree.token.shape
    assert (B, W) == (2, 6) and steps == out.sequences.shape[1] - ids.shape[1]
    for s in range(steps):
        for b in range(B):
            kept = np.flatnonzero(tree.kept[s, b])
            if s < steps - 1 or not tree.finished[s, b].all():
                assert len(kept) == 3 and sorted(tree.slot[s, b, kept]) == [0, 1, 2]
            # candidates are sorted by accumulated score (top-W)
            assert (np.diff(tree.score[s, b]) <= 1e-5).all()
            acc = np.flatnonzero(tree.accepted[s, b])
            assert np.isfinite(tree.final[s, b, acc]).all()
            assert tree.finished[s, b, acc].all()
    # every returned hypothesis's final score appears among the accepted candidates
    finals = tree.final[tree.accepted]
    for sc in out.sequences_scores:
        assert np.isclose(finals, sc, atol=1e-5).any()


def test_score_equals_summed_log_softmax(models, torch_module):
    d, hf = models["deep"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    prompt = [5, 9, 11, 2]
    choices = [[7], [3, 4, 5], [20, 21]]
    res = model.score(prompt, choices)
    for c, total, per in zip(choices, res.total, res.per_token):
        seq = torch_module.tensor([prompt + c])
        with torch_module.no_grad():
            lsm = torch_module.log_softmax(hf(seq).logits[0], -1).numpy()
        want = [lsm[len(prompt) - 1 + t, tok] for t, tok in enumerate(c)]
        np.testing.assert_allclose(per, want, atol=1e-4)
        assert total == pytest.approx(sum(want), abs=1e-4)
    assert list(res.ranking()) == list(np.argsort(-res.total))


# ---------------------------------------------------------------------------------------------
# Bad parameters: ValueError naming the parameter
# ---------------------------------------------------------------------------------------------
BAD = [
    (dict(do_sample=True, top_p=0.0), "top_p"),
    (dict(do_sample=True, top_p=1.5), "top_p"),
    (dict(do_sample=True, top_k=-1), "top_k"),
    (dict(temperature=-0.5), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(do_sample=True, min_p=1.5), "min_p"),
    (dict(do_sample=True, typical_p=0.0), "typical_p"),
    (dict(do_sample=True, epsilon_cutoff=1.0), "epsilon_cutoff"),
    (dict(do_sample=True, eta_cutoff=-0.1), "eta_cutoff"),
    (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(num_beams=0), "num_beams"),
    (dict(num_beams=2, num_return_sequences=3), "num_return_sequences"),
    (dict(num_return_sequences=2), "num_return_sequences"),
    (dict(num_beams=4, num_beam_groups=3, diversity_penalty=1.0), "num_beam_groups"),
    (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(bad_words_ids=[[5, 500]]), "bad_words_ids"),
    (dict(early_stopping="sometimes", num_beams=2), "early_stopping"),
    (dict(max_new_tokens=100), "max_length"),
]


@pytest.mark.parametrize("kw,name", BAD)
def test_bad_parameters_raise_value_error(models, kw, name):
    d, _ = models["small"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    with pytest.raises(ValueError, match=name):
        model.generate(np.array([[1, 2, 3]]), **({"max_new_tokens": 5} | kw))


def test_prompt_already_at_max_length(models):
    d, _ = models["small"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    with pytest.raises(ValueError, match="maximum length"):
        model.generate(np.zeros((1, 64), dtype=np.int64), max_new_tokens=1)


def test_generation_config_json_is_used_and_overridden(models, tmp_path):
    import json
    import shutil

    d, _ = models["noeos"]
    shutil.copytree(d, tmp_path / "m")
    (tmp_path / "m" / "generation_config.json").write_text(json.dumps(
        {"do_sample": True, "top_k": 5, "max_new_tokens": 7, "eos_token_id": EOS, "transformers_version": "4.55.4"}))
    model = tfm.AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert model.generation_config.top_k == 5 and model.generation_config.do_sample
    ids = np.array([[1, 2, 3]])
    out = model.generate(ids, seed=0, trace=True, return_dict_in_generate=True, min_new_tokens=7)
    assert out.sequences.shape == (1, 10)
    assert out.mode == "sample" and "top_k" in out.processors
    assert all(step[0][-1].kept <= 5 for step in out.trace)
    greedy = model.generate(ids, do_sample=False, max_new_tokens=3)  # keyword arguments win
    assert greedy.shape == (1, 6)
    assert np.array_equal(greedy, tfm.AutoModelForCausalLM.from_pretrained(d).generate(ids, max_new_tokens=3))
    cfg = tfm.generation.GenerationConfig.from_pretrained(tmp_path / "m")
    assert cfg.max_new_tokens == 7


def test_trace_table_is_readable(models):
    d, _ = models["noeos"]
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    out = model.generate(np.array([[5, 6, 7]]), do_sample=True, top_k=8, top_p=0.9, seed=1, max_new_tokens=2,
                         trace=True, return_dict_in_generate=True)
    text = out.trace[1].table(top=3)
    lines = text.splitlines()
    assert lines[0].startswith("step 1, row 0: chose ") and str(out.sequences[0, 4]) in lines[0]
    assert [ln.split()[0] for ln in lines[2:]] == ["model", "top_k", "top_p"]
    kept = [int(ln.split()[1]) for ln in lines[2:]]
    assert kept[0] == model.config.vocab_size and kept[1] >= 8 and kept[2] <= kept[1]
    assert str(out.trace[1]) == out.trace[1].table()


def test_score_ranks_cyrillic_choices_as_summed_log_softmax(tmp_path, torch_module):
    """Issue 3's example: "Париж" vs "Вена" after "Столица Франции –" (multi-token byte-level choices)."""
    import transformers as T

    from conftest import DATA

    tok = tfm.AutoTokenizer.from_pretrained(DATA / "gpt2-tokenizer")
    torch_module.manual_seed(3)
    hf = T.GPT2LMHeadModel(T.GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64,
                                        initializer_range=0.3)).eval()
    hf.save_pretrained(tmp_path)
    model = tfm.AutoModelForCausalLM.from_pretrained(tmp_path)
    prompt = tok.encode("Столица Франции –")
    choices = [tok.encode(" Париж"), tok.encode(" Вена")]
    assert all(len(c) > 1 for c in choices)
    res = model.score(prompt, choices)
    for c, total in zip(choices, res.total):
        with torch_module.no_grad():
            lsm = torch_module.log_softmax(hf(torch_module.tensor([prompt + c])).logits[0], -1).numpy()
        assert total == pytest.approx(sum(lsm[len(prompt) - 1 + t, x] for t, x in enumerate(c)), abs=1e-4)
    assert list(res.ranking()) == ([0, 1] if res.total[0] > res.total[1] else [1, 0])
