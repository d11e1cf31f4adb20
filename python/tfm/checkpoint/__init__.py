"""Read HuggingFace checkpoint files into NumPy without torch.

    >>> from tfm.checkpoint import load_state_dict
    >>> sd = load_state_dict("path/to/gpt2")      # directory, or one .safetensors / .bin / *.index.json file
    >>> sd["wte.weight"].dtype, sd["wte.weight"].shape
    ('f32', (50257, 768))
    >>> w = sd["wte.weight"].to_f32()             # float32 ndarray, a read-only view of the memory-mapped file

Formats (architectures.md §10): safetensors; sharded `*.index.json` (safetensors or .bin shards);
`pytorch_model.bin` as written by `torch.save` in the zip format (torch >= 1.6) or the legacy pickle-stream
format. Pickles go through a restricted unpickler that builds only tensors (see `_torch.py`): loading an
untrusted .bin cannot run code.

What this module does NOT do: it only reads files. Key normalisation (base-model prefixes, gamma/beta), dropping
buffers and tying weights (architectures.md §0.4–0.6) belong to the model loaders. It does not download, does not
read TensorFlow/Flax checkpoints, and never imports torch.

Errors: CheckpointError (a ValueError) names the file and the problem for every malformed, truncated or unsafe
file; FileNotFoundError when a path or a directory's checkpoint is missing; MissingShardError (both) when an index
names a shard that does not exist.
"""
from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from ._common import DTYPES, CheckpointError, MissingShardError, StoredTensor
from ._safetensors import read_safetensors
from ._torch import read_torch_file

__all__ = ["load_state_dict", "find_checkpoint_files", "StoredTensor", "CheckpointError", "MissingShardError",
           "DTYPES"]

# HF's resolution order (transformers modeling_utils): safetensors before pickles, single file before index.
CHECKPOINT_NAMES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                    "pytorch_model.bin.index.json")
_UNSUPPORTED_NAMES = ("tf_model.h5", "flax_model.msgpack", "model.ckpt.index")
_MAX_INDEX_BYTES = 64 * 1024 * 1024


def find_checkpoint_files(directory: str | os.PathLike) -> list[Path]:
    """The weight files of a HF model directory, in the order to read them.

    Looks for model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json
    and takes the first that exists (HF's order). A single file gives [that file]; an index gives its shard
    files, in weight_map order (the index itself is not in the list — `load_state_dict(directory)` reads it).
    Raises FileNotFoundError naming the directory and the names looked for, MissingShardError for a shard the
    index names but the directory lacks, CheckpointError for a malformed index.
    """
    found = _resolve(Path(directory))
    return _index_shards(found, _read_index(found)) if found.name.endswith(".index.json") else [found]


def load_state_dict(path: str | os.PathLike) -> dict[str, StoredTensor]:
    """All tensors of a checkpoint: name -> StoredTensor (file order; shards merged in index order).

    `path` is a model directory (resolved as in `find_checkpoint_files`), a `.safetensors` file, a torch file
    (`.bin`/`.pt`/`.pth`/`.ckpt`, or anything starting like a zip archive or a pickle) or a `*.index.json`.
    Tensor data is memory-mapped and decoded on first access (`StoredTensor.array`); everything that can be
    checked without reading tensor bytes is checked here.
    """
    p = Path(path)
    if p.is_dir():
        p = _resolve(p)
    elif not p.exists():
        raise FileNotFoundError(f"checkpoint path {str(p)!r} does not exist")
    if p.name.endswith(".index.json"):
        return _load_sharded(p)
    return _load_file(p)


def _resolve(directory: Path) -> Path:
    if not directory.is_dir():
        raise FileNotFoundError(f"{str(directory)!r} is not a directory")
    for name in CHECKPOINT_NAMES:
        if (directory / name).is_file():
            return directory / name
    other = [n for n in _UNSUPPORTED_NAMES if (directory / n).exists()]
    hint = f" (found {', '.join(other)}: TensorFlow/Flax checkpoints are not supported)" if other else ""
    raise FileNotFoundError(f"no checkpoint in {str(directory)!r}: looked for {', '.join(CHECKPOINT_NAMES)}{hint}")


def _load_file(p: Path) -> dict[str, StoredTensor]:
    if p.suffix == ".safetensors":
        return read_safetensors(p)[0]
    if p.suffix in (".bin", ".pt", ".pth", ".ckpt"):
        return read_torch_file(p)
    with open(p, "rb") as f:  # unknown extension: sniff
        head = f.read(9)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return read_torch_file(p)
    if len(head) == 9 and head[8:9] == b"{":
        return read_safetensors(p)[0]
    raise CheckpointError(f"{p}: unrecognised checkpoint format (not safetensors, not a torch zip or pickle)")


def _read_index(index: Path) -> dict[str, str]:
    """weight_map of a sharded-checkpoint index, validated."""
    if index.stat().st_size > _MAX_INDEX_BYTES:
        raise CheckpointError(f"{index}: index file is larger than {_MAX_INDEX_BYTES} bytes")
    try:
        doc = json.loads(index.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{index}: index is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("weight_map"), dict):
        raise CheckpointError(f"{index}: index has no 'weight_map' object")
    weight_map = doc["weight_map"]
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard:
            raise CheckpointError(f"{index}: weight_map[{name!r}] = {shard!r} is not a file name")
        parts = PurePosixPath(shard).parts
        if shard.startswith(("/", "\\")) or ".." in parts or ":" in shard or "\\" in shard:
            raise CheckpointError(f"{index}: shard name {shard!r} must be a path relative to the index's folder")
        if shard.endswith(".index.json"):
            raise CheckpointError(f"{index}: shard {shard!r} is itself an index")
    return weight_map


def _index_shards(index: Path, weight_map: dict[str, str]) -> list[Path]:
    shards = list(dict.fromkeys(weight_map.values()))
    paths = [index.parent / s for s in shards]
    for s, p in zip(shards, paths):
        if not p.is_file():
            raise MissingShardError(f"{index}: shard {s!r} is missing (expected {str(p)!r})")
    return paths


def _load_sharded(index: Path) -> dict[str, StoredTensor]:
    """Union of the shards. Each name in weight_map must be in the shard it points to; tensors a shard holds
    beyond the map are kept (HF loads whole shards); a name present in two shards is an error."""
    weight_map = _read_index(index)
    out: dict[str, StoredTensor] = {}
    origin: dict[str, Path] = {}
    for shard in _index_shards(index, weight_map):
        for name, t in _load_file(shard).items():
            if name in out:
                raise CheckpointError(f"{index}: tensor {name!r} is in both {origin[name].name} and {shard.name}")
            out[name], origin[name] = t, shard
    for name, s in weight_map.items():
        if name not in out:
            raise CheckpointError(f"{index}: weight_map puts {name!r} in {s!r}, but that shard has no such tensor")
        if origin[name] != index.parent / s:
            raise CheckpointError(f"{index}: weight_map puts {name!r} in {s!r}, but it is in {origin[name].name}")
    return out
