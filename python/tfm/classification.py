"""Classification logits → scores, as transformers' text-classification pipeline post-processes them.

The model's logits are the same for every ``problem_type``; what differs is how they become scores
(transformers ``TextClassificationPipeline.postprocess``, default ``function_to_apply``):
    problem_type "regression"                           → identity
    "multi_label_classification", or num_labels == 1    → sigmoid (each label independently)
    "single_label_classification", or num_labels > 1    → softmax over labels
The pipeline itself (tokenise, run, top-k, label names) is not here.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

FUNCTIONS = ("softmax", "sigmoid", "none")


def default_function(config: Any) -> str:
    """The function transformers' text-classification pipeline applies for this config."""
    problem = getattr(config, "problem_type", None)
    if problem == "regression":
        return "none"
    if problem == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    return "softmax"


def scores_from_logits(logits: Any, config: Any, function_to_apply: Optional[str] = None) -> np.ndarray:
    """Scores [..., num_labels] from logits; `function_to_apply` overrides the config's default."""
    fn = default_function(config) if function_to_apply is None else str(function_to_apply).lower()
    if fn not in FUNCTIONS:
        raise ValueError(f"function_to_apply must be one of {', '.join(FUNCTIONS)}, got {function_to_apply!r}")
    x = np.asarray(logits, dtype=np.float64)
    if fn == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if fn == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return x
