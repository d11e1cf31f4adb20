"""The embedded default models: two tiny checkpoints shipped inside the package, ready without a download.

    model, tok = tfm.load_default("gpt")                  # GPTForCausalLM (GPT-2 architecture) + its tokenizer
    model.generate([tok.encode("The module")], seed=0)    # uses the folder's generation_config.json
    bert, btok = tfm.load_default("bert")                 # EncoderForPreTraining: masked LM + next-sentence heads
    tfm.pipeline("fill-mask", model=bert)("The [MASK] returns a list.")   # the tokenizer rides on model.tokenizer

Each name is a folder next to this file in the Hugging Face layout (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json, special_tokens_map.json; generation_config.json for the GPT), so
``tfm.AutoModelForCausalLM.from_pretrained(tfm.defaults.path("gpt"))`` and transformers load them too.
README.md in this folder says what they were trained on and how well they do: they are toys, to try every
feature of tfm on recognisable English, not models to rely on.

What this module does not do: download anything, or build a model whose files are missing — a missing
file raises FileNotFoundError naming it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

__all__ = ["load_default", "path", "NAMES"]

_HERE = Path(__file__).resolve().parent

# name -> (default task, tasks its files support without random weights). Tasks are the Auto classes'
# (tfm.models.auto.REGISTRY): the BERT files hold the MLM and NSP heads, so every task built from those works.
NAMES: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "gpt": ("causal-lm", ("causal-lm", "base")),
    "bert": ("pretraining", ("pretraining", "masked-lm", "next-sentence", "base")),
}

_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or name not in NAMES:
        raise ValueError(f"no embedded model named {name!r}; the embedded models are: {', '.join(NAMES)}")
    return name


def path(name: str = "gpt") -> Path:
    """The folder of an embedded model. ValueError for an unknown name; FileNotFoundError when the
    installation lacks one of its files (config.json, model.safetensors, tokenizer.json)."""
    folder = _HERE / _check_name(name)
    missing = [f for f in _REQUIRED if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"the embedded {name!r} model is not in this installation: {folder} lacks "
                                f"{', '.join(missing)} (the tfm wheel ships them under tfm/defaults/{name}/; "
                                f"reinstall tfm, or pass a checkpoint folder instead)")
    return folder


def load_default(name: str = "gpt", task: str | None = None, **kwargs: Any) -> Tuple[Any, Any]:
    """(model, tokenizer) of an embedded model, loaded from the package's own files.

    name: "gpt" (a 6-layer GPT-2, byte-level BPE of 8,192 tokens) or "bert" (a 4-layer BERT with its
    pre-training heads, uncased WordPiece of 4,096 tokens).
    task: which head to build, as the Auto classes name them — "gpt": "causal-lm" (default) or "base";
    "bert": "pretraining" (default: MLM + NSP), "masked-lm", "next-sentence" or "base".
    kwargs go to the model's from_pretrained. The tokenizer is also attached as ``model.tokenizer``, so
    ``tfm.pipeline(task, model=model)`` needs no tokenizer argument.

    >>> model, tok = load_default("gpt")
    >>> model.config.model_type, tok.eos_token
    ('gpt2', '<|endoftext|>')
    """
    from ..configuration import read_config_file
    from ..models.auto import REGISTRY
    from ..tokenization import AutoTokenizer

    default_task, tasks = NAMES[_check_name(name)]
    task = default_task if task is None else task
    if task not in tasks:
        raise ValueError(f"task {task!r} is not available for the embedded {name!r} model; tasks: {', '.join(tasks)}")
    folder = path(name)
    cls = REGISTRY[task][read_config_file(folder)["model_type"]]
    model = cls.from_pretrained(folder, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model.tokenizer = tokenizer
    return model, tokenizer
