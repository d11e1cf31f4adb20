"""safetensors reader (format: architectures.md §10.1), pure Python + NumPy, memory-mapped.

Layout: u64 little-endian header length N, N bytes of UTF-8 JSON object, then the data buffer. Each header entry
`name: {"dtype", "shape", "data_offsets": [b, e]}` addresses bytes [b, e) of the buffer, C order, little-endian.

Validated when the file is opened (CheckpointError naming the file and the problem): file too short for the
length prefix, N larger than the file or than 100 MB (the reference parser's cap), header not UTF-8 / not JSON /
not an object, duplicate names, malformed entries (dtype, shape, offsets), e - b != prod(shape) * itemsize,
entries that overlap, leave gaps, run past the end of the file (truncation) or leave trailing bytes — the same
"entries tile the buffer" rule the reference parser enforces.

Dtypes: every safetensors dtype NumPy can hold (BOOL, U8..U64, I8..I64, F16, F32, F64, C64), BF16 as raw uint16
bits, F8_E4M3 / F8_E5M2 / F8_E4M3FNUZ / F8_E5M2FNUZ as raw uint8 bits (`StoredTensor.to_f32` decodes them).
Other dtypes (F8_E8M0, F4, F6_E2M3, F6_E3M2, future ones) load as entries whose `dtype` is the lower-cased
name; the error is raised only when such a tensor is read, so a file with one exotic tensor still loads. Their
byte size is not checked (we do not know the packing of sub-byte formats), only that they tile the buffer.

Not copied: the file is mapped once with `mmap`; a tensor whose byte offset is a multiple of its item size is a
zero-copy view. A misaligned tensor (legal: the format promises no alignment) is copied, only that tensor.
`__metadata__` (str -> str) is validated and returned by `read_safetensors`, not interpreted.
"""
from __future__ import annotations

import json
import mmap
import os

import numpy as np

from ._common import DTYPES, CheckpointError, StoredTensor, finish_array

MAX_HEADER_BYTES = 100 * 1024 * 1024

# safetensors dtype name -> our dtype code (see _common.DTYPES)
_ST_DTYPES = {
    "BOOL": "bool", "U8": "u8", "I8": "i8", "I16": "i16", "U16": "u16", "F16": "f16", "BF16": "bf16",
    "I32": "i32", "U32": "u32", "F32": "f32", "F64": "f64", "I64": "i64", "U64": "u64",
    "F8_E4M3": "f8_e4m3", "F8_E5M2": "f8_e5m2", "F8_E4M3FNUZ": "f8_e4m3fnuz", "F8_E5M2FNUZ": "f8_e5m2fnuz",
    "C64": "c64",
}


def _object_pairs_no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


class _DuplicateKey(Exception):
    pass


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, StoredTensor], dict[str, str]]:
    """Open a .safetensors file: (name -> StoredTensor in file order, __metadata__ or {})."""
    src = os.fspath(path)
    with open(src, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        if file_size == 0:
            raise CheckpointError(f"{src}: file is empty")
        if file_size < 8:
            raise CheckpointError(f"{src}: truncated: {file_size} bytes, too short for the 8-byte header length")
        n = int.from_bytes(f.read(8), "little")
        if n > MAX_HEADER_BYTES:
            raise CheckpointError(f"{src}: header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit "
                                  f"(not a safetensors file?)")
        if 8 + n > file_size:
            raise CheckpointError(f"{src}: header length {n} runs past the end of the file ({file_size} bytes); "
                                  f"file truncated or not safetensors")
        raw = f.read(n)
        header = _parse_header(src, raw)
        metadata, entries = _validate_entries(src, header, buffer_len=file_size - 8 - n)
        # Map the whole file once (mmap offsets must be page-aligned, so the buffer is addressed at 8 + n).
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if any(e[3] > e[2] for e in entries) else None

    data_start = 8 + n
    out: dict[str, StoredTensor] = {}
    for name, code, b, e, shape in entries:
        out[name] = StoredTensor(name, code, shape, src, _maker(mm, code, shape, data_start + b, e - b))
    return out, metadata


def _maker(mm, code: str, shape: tuple[int, ...], start: int, nbytes: int):
    def make() -> np.ndarray:
        dt = DTYPES[code]
        if nbytes == 0:
            return np.zeros(shape, dt.newbyteorder("="))
        # frombuffer on an mmap is a zero-copy view; finish_array copies it only if misaligned
        return finish_array(np.frombuffer(mm, dt, count=nbytes // dt.itemsize, offset=start).reshape(shape))
    return make


def _parse_header(src: str, raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{src}: header is not UTF-8 ({exc})") from None
    if not text.lstrip().startswith("{"):
        raise CheckpointError(f"{src}: header is not a JSON object (starts with {text[:20]!r})")
    try:
        header = json.loads(text, object_pairs_hook=_object_pairs_no_duplicates, parse_constant=_reject_constant)
    except _DuplicateKey as exc:
        raise CheckpointError(f"{src}: duplicate tensor name {exc.args[0]!r} in header") from None
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{src}: header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{src}: header is not a JSON object")
    return header


def _validate_entries(src: str, header: dict, buffer_len: int):
    """-> (metadata, [(name, code, begin, end, shape)] in header order). Raises CheckpointError."""
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{src}: __metadata__ must be an object of strings")
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        where = f"{src}: tensor {name!r}"
        if not isinstance(info, dict):
            raise CheckpointError(f"{where}: header entry is not an object")
        missing = {"dtype", "shape", "data_offsets"} - info.keys()
        if missing:
            raise CheckpointError(f"{where}: header entry lacks {sorted(missing)}")
        st_dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(st_dtype, str):
            raise CheckpointError(f"{where}: dtype {st_dtype!r} is not a string")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise CheckpointError(f"{where}: shape {shape!r} is not a list of non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise CheckpointError(f"{where}: data_offsets {offsets!r} is not [begin, end] with 0 <= begin <= end")
        b, e = offsets
        code = _ST_DTYPES.get(st_dtype, st_dtype.lower())
        if code in DTYPES:
            numel = 1
            for d in shape:
                numel *= d
            if e - b != numel * DTYPES[code].itemsize:
                raise CheckpointError(f"{where}: data_offsets [{b}, {e}] span {e - b} bytes but shape {shape} "
                                      f"of {st_dtype} needs {numel * DTYPES[code].itemsize}")
        entries.append((name, code, b, e, tuple(shape)))

    # Entries must tile [0, buffer_len) exactly, as in the reference parser.
    pos, prev = 0, None
    for name, _, b, e, _ in sorted(entries, key=lambda x: (x[2], x[3])):
        if b < pos:
            raise CheckpointError(f"{src}: tensors {prev!r} and {name!r} overlap (byte {b} < {pos})")
        if b > pos:
            raise CheckpointError(f"{src}: {b - pos} unused bytes before tensor {name!r} (gap at {pos})")
        if e > buffer_len:
            raise CheckpointError(f"{src}: tensor {name!r} ends at data byte {e} but the data buffer has only "
                                  f"{buffer_len} bytes; file truncated")
        pos, prev = e, name
    if pos != buffer_len:
        raise CheckpointError(f"{src}: {buffer_len - pos} trailing bytes after the last tensor")
    return metadata, entries
