"""BERT family (bert, roberta, albert, distilbert, electra) against transformers + PyTorch on the same files.

Specification: issue 4 §1–3 and its bad-input list. Tolerance: max|Δ| ≤ 1e-4 · max(1, max|ref|)
(parity_error) on non-pad positions — transformers' outputs at padded query positions are not
specified (architectures.md §0.3). Every model type × every head it has, two configurations each,
padded batches, hidden states and attentions (transformers built with eager attention).
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import parity_error

import tfm
from tfm.classification import scores_from_logits

TOL = 1e-4

# (name, model_type, config kwargs): two per type, varying widths, layers, heads, activations,
# epsilon, tying, vocabularies that are not multiples of 32, and the family-specific options.
CONFIGS = {
    "bert-a": ("bert", dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=37, max_position_embeddings=40, initializer_range=0.2)),
    "bert-b": ("bert", dict(vocab_size=131, hidden_size=48, num_hidden_layers=3, num_attention_heads=6,
                            intermediate_size=64, max_position_embeddings=24, type_vocab_size=3, hidden_act="gelu_new",
                            layer_norm_eps=1e-6, tie_word_embeddings=False, initializer_range=0.1)),
    "roberta-a": ("roberta", dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=37, max_position_embeddings=40, type_vocab_size=1,
                                  layer_norm_eps=1e-5, initializer_range=0.2)),
    "roberta-b": ("roberta", dict(vocab_size=120, hidden_size=24, num_hidden_layers=3, num_attention_heads=2,
                                  intermediate_size=50, max_position_embeddings=30, pad_token_id=3, hidden_act="relu",
                                  tie_word_embeddings=False, initializer_range=0.15)),
    # ALBERT: ≥ 2 groups × ≥ 2 inner layers; b has num_hidden_layers not divisible by the groups
    "albert-a": ("albert", dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=4,
                                num_hidden_groups=2, inner_group_num=2, num_attention_heads=4, intermediate_size=37,
                                max_position_embeddings=40, initializer_range=0.2)),
    "albert-b": ("albert", dict(vocab_size=77, embedding_size=24, hidden_size=40, num_hidden_layers=5,
                                num_hidden_groups=2, inner_group_num=2, num_attention_heads=5, intermediate_size=50,
                                hidden_act="gelu", layer_norm_eps=1e-5, max_position_embeddings=32,
                                initializer_range=0.15)),
    "distilbert-a": ("distilbert", dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                        max_position_embeddings=40, initializer_range=0.2)),
    "distilbert-sin": ("distilbert", dict(vocab_size=101, dim=24, n_layers=3, n_heads=3, hidden_dim=40,
                                          max_position_embeddings=32, sinusoidal_pos_embds=True, activation="relu",
                                          initializer_range=0.2)),
    "electra-proj": ("electra", dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=37, max_position_embeddings=40,
                                     initializer_range=0.2)),
    "electra-same": ("electra", dict(vocab_size=88, embedding_size=24, hidden_size=24, num_hidden_layers=3,
                                     num_attention_heads=3, intermediate_size=40, hidden_act="gelu_new",
                                     tie_word_embeddings=False, max_position_embeddings=30, initializer_range=0.15)),
}

# head → (tfm Auto class, extra config kwargs); "seq-*" are one task with three problem types
HEADS = {
    "base": ("AutoModel", {}),
    "masked-lm": ("AutoModelForMaskedLM", {}),
    "pretraining": ("AutoModelForPreTraining", {}),
    "next-sentence": ("AutoModelForNextSentencePrediction", {}),
    "seq-single": ("AutoModelForSequenceClassification",
                   dict(num_labels=3, problem_type="single_label_classification",
                        id2label={0: "neg", 1: "neutral", 2: "pos"}, label2id={"neg": 0, "neutral": 1, "pos": 2})),
    "seq-multi": ("AutoModelForSequenceClassification", dict(num_labels=4, problem_type="multi_label_classification")),
    "seq-regression": ("AutoModelForSequenceClassification", dict(num_labels=1, problem_type="regression")),
    "token": ("AutoModelForTokenClassification", dict(num_labels=5)),
}
FAMILY_HEADS = {
    "bert": ["base", "masked-lm", "pretraining", "next-sentence", "seq-single", "seq-multi", "seq-regression", "token"],
    "roberta": ["base", "masked-lm", "seq-single", "token"],
    "albert": ["base", "masked-lm", "pretraining", "seq-single", "token"],
    "distilbert": ["base", "masked-lm", "seq-multi", "token"],
    "electra": ["base", "masked-lm", "pretraining", "seq-single", "token"],
}
HF_PREFIX = {"bert": "Bert", "roberta": "Roberta", "albert": "Albert", "distilbert": "DistilBert", "electra": "Electra"}
HF_SUFFIX = {"base": "Model", "masked-lm": "ForMaskedLM", "pretraining": "ForPreTraining",
             "next-sentence": "ForNextSentencePrediction", "seq-single": "ForSequenceClassification",
             "seq-multi": "ForSequenceClassification", "seq-regression": "ForSequenceClassification",
             "token": "ForTokenClassification"}

CASES = [(name, head) for name, (mt, _) in CONFIGS.items() for head in FAMILY_HEADS[mt]]


def hf_model(name, head, torch):
    import transformers as T

    mt, kw = CONFIGS[name]
    cfg = getattr(T, HF_PREFIX[mt] + "Config")(**kw, **HEADS[head][1])
    cfg._attn_implementation = "eager"  # attentions are only returned by eager attention
    torch.manual_seed(sum(map(ord, name + head)))
    return getattr(T, HF_PREFIX[mt] + HF_SUFFIX[head])(cfg).eval()


@pytest.fixture(scope="module")
def built(tmp_path_factory, torch_module):
    """(name, head) → (directory, transformers model), built once."""
    cache = {}

    def get(name, head):
        if (name, head) not in cache:
            hf = hf_model(name, head, torch_module)
            d = tmp_path_factory.mktemp(f"{name}-{head}")
            hf.save_pretrained(d, safe_serialization=True)
            cache[name, head] = (d, hf)
        return cache[name, head]

    return get


def padded_batch(cfg, rng):
    """ids, mask, token types for 3 rows: full, right-padded, left-padded (pads = pad_token_id)."""
    B, T = 3, 11
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else 0
    ids = rng.integers(0, cfg.vocab_size, size=(B, T))
    ids[ids == pad] = (pad + 1) % cfg.vocab_size  # pad ids only where the mask says so (RoBERTa positions)
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, 7:] = 0
    mask[2, :3] = 0
    ids[mask == 0] = pad
    tt = None
    if getattr(cfg, "type_vocab_size", 0) > 1:
        tt = np.zeros((B, T), dtype=np.int64)
        tt[:, 5:] = 1  # a second segment
        tt[0, 9:] = cfg.type_vocab_size - 1
    return ids, mask, tt


def run_hf(hf, ids, mask, tt):
    import torch

    kw = dict(attention_mask=torch.as_tensor(mask), output_hidden_states=True, output_attentions=True)
    if tt is not None:
        kw["token_type_ids"] = torch.as_tensor(tt)
    with torch.no_grad():
        return hf(torch.as_tensor(ids), **kw)


def assert_close(ours, ref, what, real=None):
    """real: [B, T] bool of non-pad positions; token-level outputs are compared there only."""
    ref = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != reference {ref.shape}"
    if real is not None:
        ours, ref = ours[real], ref[real]
    err = parity_error(ours, ref)
    assert err <= TOL, f"{what} differs by {err:.3g}"


def compare_outputs(out, ref, mask, label):
    real = mask.astype(bool)
    assert len(out.hidden_states) == len(ref.hidden_states), f"{label}: number of hidden states"
    for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states)):
        assert_close(a, b, f"{label} hidden_states[{i}]", real)
    assert len(out.attentions) == len(ref.attentions), f"{label}: number of attention maps"
    for i, (a, b) in enumerate(zip(out.attentions, ref.attentions)):
        # [B, NH, T, T]: rows of non-pad queries
        assert_close(np.moveaxis(a, 1, 2), np.moveaxis(b.numpy(), 1, 2), f"{label} attentions[{i}]", real)


@pytest.mark.parametrize("name,head", CASES, ids=[f"{n}-{h}" for n, h in CASES])
def test_parity_with_transformers(built, name, head):
    d, hf = built(name, head)
    model = getattr(tfm, HEADS[head][0]).from_pretrained(d)
    ids, mask, tt = padded_batch(hf.config, np.random.default_rng(len(name) + len(head)))
    out = model(ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True, output_attentions=True)
    ref = run_hf(hf, ids, mask, tt)
    real = mask.astype(bool)
    label = f"{name}/{head}"
    mt = CONFIGS[name][0]
    if head == "base":
        assert_close(out.last_hidden_state, ref.last_hidden_state, f"{label} last_hidden_state", real)
        if mt in ("bert", "roberta", "albert"):
            assert_close(out.pooler_output, ref.pooler_output, f"{label} pooler_output")
        else:
            assert out.pooler_output is None
    elif head == "masked-lm":
        assert_close(out.logits, ref.logits, f"{label} logits", real)
    elif head == "pretraining" and mt == "electra":
        assert out.logits.shape == ids.shape
        assert_close(out.logits, ref.logits, f"{label} discriminator logits", real)
    elif head == "pretraining":
        assert_close(out.prediction_logits, ref.prediction_logits, f"{label} prediction_logits", real)
        seq = out.sop_logits if mt == "albert" else out.seq_relationship_logits
        ref_seq = ref.sop_logits if mt == "albert" else ref.seq_relationship_logits
        assert_close(seq, ref_seq, f"{label} sentence logits")
    elif head == "token":
        assert_close(out.logits, ref.logits, f"{label} logits", real)
        assert model.id2label == hf.config.id2label and model.num_labels == hf.config.num_labels
    else:  # sequence-level heads
        assert_close(out.logits, ref.logits, f"{label} logits")
    compare_outputs(out, ref, mask, label)


def test_sequence_classification_labels_problem_type_and_scores(built):
    """id2label/label2id and problem_type come from config.json; scores follow transformers'
    text-classification pipeline: softmax (single label), sigmoid (multi-label), identity (regression)."""
    from transformers.pipelines.text_classification import sigmoid, softmax

    d, _ = built("bert-a", "seq-single")
    single = tfm.AutoModelForSequenceClassification.from_pretrained(d)
    assert single.id2label == {0: "neg", 1: "neutral", 2: "pos"} and single.label2id["pos"] == 2
    assert single.problem_type == "single_label_classification"
    logits = single(np.arange(1, 8)[None]).logits
    np.testing.assert_allclose(single.scores(logits), softmax(logits), rtol=1e-6)
    np.testing.assert_allclose(single.scores(logits, "sigmoid"), sigmoid(logits), rtol=1e-6)

    multi = tfm.AutoModelForSequenceClassification.from_pretrained(built("bert-a", "seq-multi")[0])
    assert multi.problem_type == "multi_label_classification" and multi.num_labels == 4
    logits = multi(np.arange(1, 8)[None]).logits
    np.testing.assert_allclose(multi.scores(logits), sigmoid(logits), rtol=1e-6)

    reg = tfm.AutoModelForSequenceClassification.from_pretrained(built("bert-a", "seq-regression")[0])
    assert reg.problem_type == "regression"
    logits = reg(np.arange(1, 8)[None]).logits
    assert logits.shape == (1, 1)
    np.testing.assert_array_equal(reg.scores(logits), logits)
    # one label without a problem type: the pipeline applies a sigmoid
    reg.config.problem_type = None
    np.testing.assert_allclose(scores_from_logits(logits, reg.config), sigmoid(logits), rtol=1e-6)
    with pytest.raises(ValueError, match="function_to_apply"):
        reg.scores(logits, "argmax")


def test_padded_rows_equal_their_single_runs(built):
    d, hf = built("roberta-b", "masked-lm")
    model = tfm.AutoModelForMaskedLM.from_pretrained(d)
    ids, mask, _ = padded_batch(hf.config, np.random.default_rng(7))
    batched = model(ids, attention_mask=mask).logits
    for i in range(ids.shape[0]):
        real = mask[i].astype(bool)
        single = model(ids[i][real][None]).logits[0]
        assert parity_error(batched[i][real], single) <= TOL, f"row {i}"


def test_gamma_beta_layernorm_names_load(built, tmp_path):
    """Old checkpoints (bert-base-uncased) name LayerNorm parameters gamma/beta."""
    from safetensors.numpy import load_file, save_file

    d, hf = built("bert-a", "pretraining")
    state = load_file(str(d / "model.safetensors"))
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in state.items()}
    assert sum(k.endswith(".gamma") for k in renamed) >= 5
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(d / "config.json", old / "config.json")
    save_file(renamed, str(old / "model.safetensors"), metadata={"format": "pt"})
    ids = np.random.default_rng(8).integers(0, 99, size=(2, 9))
    a = tfm.AutoModelForPreTraining.from_pretrained(d)(ids)
    b = tfm.AutoModelForPreTraining.from_pretrained(old)(ids)
    np.testing.assert_array_equal(a.prediction_logits, b.prediction_logits)
    np.testing.assert_array_equal(a.seq_relationship_logits, b.seq_relationship_logits)


def test_bare_model_from_head_checkpoints(built):
    """AutoModel takes the encoder (and pooler, when saved) out of any head checkpoint; the head
    weights it does not use are reported, not silently dropped."""
    d, hf = built("bert-a", "seq-single")
    bare = tfm.AutoModel.from_pretrained(d)
    ids = np.random.default_rng(9).integers(0, 99, size=(2, 6))
    ref = run_hf(hf.bert, ids, np.ones_like(ids), None)
    out = bare(ids)
    assert_close(out.pooler_output, ref.pooler_output, "pooler_output")
    assert set(bare.unexpected_keys) == {"classifier.weight", "classifier.bias"}
    # BertForMaskedLM is saved without a pooler: the bare model then has none
    d, hf = built("bert-a", "masked-lm")
    bare = tfm.AutoModel.from_pretrained(d)
    out = bare(ids)
    assert out.pooler_output is None and "pooler_output" not in out.keys()
    assert_close(out.last_hidden_state, run_hf(hf.bert, ids, np.ones_like(ids), None).last_hidden_state,
                 "last_hidden_state")


# ---- bad input --------------------------------------------------------------------------------

def test_token_type_ids_out_of_range(built):
    d, _ = built("bert-a", "base")
    model = tfm.AutoModel.from_pretrained(d)
    ids = np.ones((1, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="type_vocab_size is 2"):
        model(ids, token_type_ids=np.array([[0, 1, 2, 0]]))
    with pytest.raises(ValueError, match="token_type_ids has shape"):
        model(ids, token_type_ids=np.zeros((1, 5), dtype=np.int64))
    d, _ = built("distilbert-a", "base")
    with pytest.raises(ValueError, match="no token type embeddings"):
        tfm.AutoModel.from_pretrained(d)(ids, token_type_ids=np.zeros_like(ids))
    # the binding refuses it too, independently of the Python checks
    core = tfm.AutoModel.from_pretrained(built("bert-a", "base")[0])._core
    with pytest.raises(ValueError, match="token_type_ids"):
        core.encode(ids, None, None, np.array([[0, 0, 2, 0]]))


def test_sequence_longer_than_max_positions(built):
    d, _ = built("bert-b", "base")  # max_position_embeddings = 24
    model = tfm.AutoModel.from_pretrained(d)
    assert model(np.ones((1, 24), dtype=np.int64)).last_hidden_state.shape == (1, 24, 48)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings = 24"):
        model(np.ones((1, 25), dtype=np.int64))
    with pytest.raises(ValueError, match="position_ids contains 24"):
        model(np.ones((1, 3), dtype=np.int64), position_ids=np.array([[0, 1, 24]]))
    # RoBERTa numbers real tokens from pad + 1 = 4: positions 4..29 hold 26 tokens, pads cost nothing
    d, _ = built("roberta-b", "base")
    model = tfm.AutoModel.from_pretrained(d)
    model(np.full((1, 26), 5))
    model(np.concatenate([np.full((1, 26), 5), np.full((1, 8), 3)], axis=1))
    with pytest.raises(ValueError, match="at most 26"):
        model(np.full((1, 27), 5))
    # the C core computes and checks the same positions on its own
    with pytest.raises(ValueError, match="position ids computed from input_ids reach past the model's 30"):
        model._core.encode(np.full((1, 27), 5))


def test_attention_mask_of_the_wrong_shape(built):
    d, _ = built("electra-proj", "base")
    model = tfm.AutoModel.from_pretrained(d)
    ids = np.ones((2, 5), dtype=np.int64)
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 4\), expected \(2, 5\)"):
        model(ids, attention_mask=np.ones((2, 4)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        model(ids, attention_mask=np.full((2, 5), 2))
    with pytest.raises(ValueError, match="input_ids contains 99"):
        model(np.array([[1, 99]]))


def test_missing_head_weights_are_refused_by_name(built):
    d, hf = built("bert-a", "base")  # BertModel: encoder + pooler, no heads
    with pytest.raises(ValueError, match=r"cls\.predictions\.transform\.dense\.weight.*allow_random_head=True"):
        tfm.AutoModelForMaskedLM.from_pretrained(d)
    with pytest.raises(ValueError, match=r"classifier\.weight, classifier\.bias"):
        tfm.AutoModelForSequenceClassification.from_pretrained(d)
    d2, _ = built("electra-proj", "masked-lm")  # a generator checkpoint has no discriminator head
    with pytest.raises(ValueError, match=r"discriminator_predictions\.dense\.weight"):
        tfm.AutoModelForPreTraining.from_pretrained(d2)


def test_allow_random_head_initialises_like_transformers_with_a_seed(built):
    d, hf = built("bert-a", "base")
    with pytest.warns(UserWarning, match="randomly"):
        a = tfm.AutoModelForTokenClassification.from_pretrained(d, allow_random_head=True, random_head_seed=1)
    with pytest.warns(UserWarning):
        b = tfm.AutoModelForTokenClassification.from_pretrained(d, allow_random_head=True, random_head_seed=1)
    with pytest.warns(UserWarning):
        c = tfm.AutoModelForTokenClassification.from_pretrained(d, allow_random_head=True, random_head_seed=2)
    assert a.random_head_keys == ["classifier.weight", "classifier.bias"]
    ids = np.random.default_rng(10).integers(0, 99, size=(4, 20))  # 80 rows > 32 unknowns per label
    la, lb, lc = a(ids).logits, b(ids).logits, c(ids).logits
    np.testing.assert_array_equal(la, lb)
    assert not np.allclose(la, lc)
    # the classifier is N(0, initializer_range) with a zero bias: logits are h·Wᵀ for the real encoder
    h = run_hf(hf, ids, np.ones_like(ids), None).last_hidden_state.numpy()
    w = np.linalg.lstsq(h.reshape(-1, 32), la.reshape(-1, 2), rcond=None)[0]
    assert np.abs(h.reshape(-1, 32) @ w - la.reshape(-1, 2)).max() < 1e-3
    assert 0.12 < w.std() < 0.3  # initializer_range = 0.2


def test_num_labels_disagreeing_with_the_classifier(built, tmp_path):
    d, _ = built("roberta-a", "seq-single")  # 3 labels
    bad = tmp_path / "bad"
    shutil.copytree(d, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["id2label"] = {str(i): f"L{i}" for i in range(5)}
    cfg["label2id"] = {f"L{i}": i for i in range(5)}
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"num_labels = 5 .* classifier\.out_proj\.weight has 3 rows"):
        tfm.AutoModelForSequenceClassification.from_pretrained(bad)
    cfg.pop("id2label"), cfg.pop("label2id")
    cfg["num_labels"] = 4
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="num_labels = 4"):
        tfm.AutoModelForSequenceClassification.from_pretrained(bad)
    cfg["num_labels"] = 3
    (bad / "config.json").write_text(json.dumps(cfg))
    assert tfm.AutoModelForSequenceClassification.from_pretrained(bad).id2label == {0: "LABEL_0", 1: "LABEL_1",
                                                                                    2: "LABEL_2"}


def test_unsupported_task_and_config_variants(built, tmp_path):
    d, _ = built("roberta-a", "base")
    with pytest.raises(ValueError, match="supported: bert"):
        tfm.AutoModelForNextSentencePrediction.from_pretrained(d)
    bad = tmp_path / "rel"
    shutil.copytree(d, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["position_embedding_type"] = "relative_key"
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="relative_key"):
        tfm.AutoModel.from_pretrained(bad)


def test_core_refuses_calls_the_model_was_not_built_for(built):
    core = tfm.AutoModelForMaskedLM.from_pretrained(built("electra-proj", "masked-lm")[0])._core
    ids = np.ones((1, 3), dtype=np.int64)
    assert core.encode(ids, mlm_logits=True)["mlm_logits"].shape == (1, 3, 99)
    with pytest.raises(ValueError, match="built without a sequence classifier"):
        core.encode(ids, seq_logits=True)
    with pytest.raises(TypeError, match="use encode"):
        core.forward(ids)
    with pytest.raises(TypeError, match="no KV cache"):
        core.new_cache(1, 4)


def test_sinusoidal_distilbert_without_the_position_table(built, tmp_path):
    """sinusoidal_pos_embds: the table is fixed (Vaswani et al.), so a file that leaves it out still loads."""
    from safetensors.numpy import load_file, save_file

    d, _ = built("distilbert-sin", "masked-lm")
    state = load_file(str(d / "model.safetensors"))
    key = "distilbert.embeddings.position_embeddings.weight"
    assert key in state
    del state[key]
    lean = tmp_path / "lean"
    lean.mkdir()
    shutil.copy(d / "config.json", lean / "config.json")
    save_file(state, str(lean / "model.safetensors"), metadata={"format": "pt"})
    ids = np.random.default_rng(11).integers(0, 101, size=(2, 9))
    a = tfm.AutoModelForMaskedLM.from_pretrained(d)(ids).logits
    b = tfm.AutoModelForMaskedLM.from_pretrained(lean)(ids).logits
    assert parity_error(b, a) <= 1e-6
