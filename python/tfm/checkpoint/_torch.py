"""PyTorch `torch.save` state-dict reader without torch (format: architectures.md §10.3–10.5).

Two container formats:
* zip (torch >= 1.6 default): `<dir>/data.pkl` is the pickled state dict, `<dir>/data/<key>` the raw bytes of
  storage <key>, `<dir>/byteorder` "little"/"big" (absent = little). STORED entries — the only kind torch
  writes — are memory-mapped: the zip's local header is parsed to find the entry's first data byte and arrays are
  sliced from the map (no CRC check on these, that would read every byte). Compressed entries (written by other
  tools) are read and inflated through `zipfile`, one entry at a time. ZIP64 comes from `zipfile`'s central
  directory parsing.
* legacy (`_use_new_zipfile_serialization=False`, torch < 1.6): consecutive pickles — magic number, protocol
  1001, sys_info, the state dict (persistent ids carry view metadata), the list of storage keys — then for each
  key an int64 element count and the storage bytes. These data offsets are arbitrary, so most legacy tensors
  are misaligned and get copied. Big-endian legacy files and the pre-0.4 tar format are rejected.

Safety: pickles are read by `_Unpickler`, whose `find_class` returns objects only for the globals torch emits
for a plain state dict (listed in `_ALLOWED`) — stand-ins that build descriptions, never torch or other code.
Any other global raises CheckpointError naming it before anything is called; that includes everything that
could execute code (os.system, builtins.eval, ...). Python's unpickler also routes EXT opcodes through
find_class, so the allow-list is the whole trust boundary. The stand-ins refuse BUILD (`__setstate__` raises),
so a pickle cannot mutate them. `persistent_load` accepts only well-formed ('storage', ...) tuples.

Tensors: each `_rebuild_tensor*` call records (storage, offset, size, stride) in elements and is checked
against the storage's element count at once; the array is the strided view of the storage, copied to C order
only when not already contiguous (e.g. a saved `w.t()`). Shared storages (tied weights, views) are resolved once
per key. torch's lazy-negation / conjugation bits (tensor metadata) are applied. Values in the state dict that
are not tensors are an error (a state dict is flat); the OrderedDict's `_metadata` (BUILD) is ignored.
"""
from __future__ import annotations

import io
import mmap
import os
import pickle
import zipfile

import numpy as np

from ._common import DTYPES, CheckpointError, StoredTensor, finish_array, negate

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

_STORAGE_CLASSES = {
    "FloatStorage": "f32", "HalfStorage": "f16", "BFloat16Storage": "bf16", "DoubleStorage": "f64",
    "LongStorage": "i64", "IntStorage": "i32", "ShortStorage": "i16", "CharStorage": "i8",
    "ByteStorage": "u8", "BoolStorage": "bool", "ComplexFloatStorage": "c64", "ComplexDoubleStorage": "c128",
}
# torch dtype globals (pickled by name) used by _rebuild_tensor_v3
_TORCH_DTYPES = {
    "float32": "f32", "float16": "f16", "bfloat16": "bf16", "float64": "f64", "int64": "i64", "int32": "i32",
    "int16": "i16", "int8": "i8", "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64",
    "bool": "bool", "float8_e4m3fn": "f8_e4m3", "float8_e5m2": "f8_e5m2", "float8_e4m3fnuz": "f8_e4m3fnuz",
    "float8_e5m2fnuz": "f8_e5m2fnuz", "complex64": "c64",
    "complex128": "c128",
}


# ---------------------------------------------------------------------------------------------------------
# What the unpickler may produce: immutable stand-ins for torch objects.

class _Frozen:
    """Base of every object a pickle can obtain from us: BUILD on it is refused."""
    __slots__ = ()

    def __setstate__(self, state):
        raise CheckpointError(f"pickle tries to set state on {self!r}")


class _StorageType(_Frozen):
    """A `torch.<X>Storage` class (or torch.storage.UntypedStorage, element = byte)."""
    __slots__ = ("qualname", "code")

    def __init__(self, qualname, code):
        self.qualname, self.code = qualname, code

    def __repr__(self):
        return self.qualname


class _Dtype(_Frozen):
    """A `torch.<dtype>` object, as passed to _rebuild_tensor_v3."""
    __slots__ = ("qualname", "code")

    def __init__(self, qualname, code):
        self.qualname, self.code = qualname, code

    def __repr__(self):
        return self.qualname


class _TypeMarker(_Frozen):
    """torch.Tensor / torch.nn.Parameter, only meaningful as _rebuild_from_type_v2's `new_type`."""
    __slots__ = ("qualname",)

    def __init__(self, qualname):
        self.qualname = qualname

    def __repr__(self):
        return self.qualname


class _Callable(_Frozen):
    """An allowed function global; calling it runs our replacement, never torch's."""
    __slots__ = ("qualname", "fn")

    def __init__(self, qualname, fn):
        self.qualname, self.fn = qualname, fn

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self):
        return self.qualname


class _StateDict(dict):
    """What `collections.OrderedDict` unpickles to (dicts keep insertion order). torch sets the `_metadata`
    attribute with BUILD; it only records module versions, so it is accepted and dropped."""

    def __setstate__(self, state):
        pass


class _StorageRef(_Frozen):
    """A persistent id: `numel` elements of `code`, starting `elem_offset` elements into storage `key`."""
    __slots__ = ("code", "key", "numel", "elem_offset")

    def __init__(self, code, key, numel, elem_offset=0):
        self.code, self.key, self.numel, self.elem_offset = code, key, numel, elem_offset

    def __repr__(self):
        return f"storage {self.key!r} ({self.numel} x {self.code})"


class _TensorRef(_Frozen):
    """A rebuilt tensor: a strided view (element units) of a storage, possibly with torch's neg/conj bits."""
    __slots__ = ("storage", "code", "offset", "size", "stride", "neg", "conj")

    def __init__(self, storage, code, offset, size, stride, neg, conj):
        self.storage, self.code, self.offset = storage, code, offset
        self.size, self.stride, self.neg, self.conj = size, stride, neg, conj

    def __repr__(self):
        return f"tensor {self.code}{list(self.size)} in {self.storage!r}"


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _int_tuple(x, what: str) -> tuple[int, ...]:
    if not isinstance(x, (tuple, list)) or not all(_is_int(v) and v >= 0 for v in x):
        raise CheckpointError(f"tensor {what} {x!r} is not a tuple of non-negative integers")
    return tuple(x)


def _make_tensor(storage, storage_offset, size, stride, dtype, metadata) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise CheckpointError(f"tensor storage is {type(storage).__name__}, not a persistent storage")
    if not _is_int(storage_offset) or storage_offset < 0:
        raise CheckpointError(f"tensor storage offset {storage_offset!r} is not a non-negative integer")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise CheckpointError(f"tensor size {size} and stride {stride} differ in length")
    if dtype is None:
        code = storage.code
    elif isinstance(dtype, _Dtype):
        code = dtype.code
    else:
        raise CheckpointError(f"tensor dtype {dtype!r} is not a torch dtype")
    neg = conj = False
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise CheckpointError(f"tensor metadata {metadata!r} is not a dict")
        for k, v in metadata.items():
            if k == "neg":
                neg = bool(v)
            elif k == "conj":
                conj = bool(v)
            elif v:
                raise CheckpointError(f"unsupported tensor metadata {k!r}={v!r}")
    # Bounds, in elements of the tensor dtype (differs from the storage's for an untyped storage + v3).
    avail = storage.numel * DTYPES[storage.code].itemsize // DTYPES[code].itemsize
    if all(size):  # non-empty
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= avail:
            raise CheckpointError(f"tensor size {size} stride {stride} offset {storage_offset} reaches element "
                                  f"{last} of {storage!r}, which has {avail} elements of {code}")
    return _TensorRef(storage, code, storage_offset, size, stride, neg, conj)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _make_tensor(storage, storage_offset, size, stride, None, None)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    return _make_tensor(storage, storage_offset, size, stride, None, metadata)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype,
                       metadata=None):
    return _make_tensor(storage, storage_offset, size, stride, dtype, metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    if not isinstance(data, _TensorRef):
        raise CheckpointError(f"_rebuild_parameter got {type(data).__name__}, not a tensor")
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return _rebuild_parameter(data, requires_grad, backward_hooks)  # python attributes are dropped


def _rebuild_from_type_v2(func, new_type, args, state):
    # A Tensor/Parameter carrying python attributes: rebuild the tensor, drop the attributes.
    if not (isinstance(func, _Callable) and func.fn in _TENSOR_BUILDERS):
        raise CheckpointError(f"_rebuild_from_type_v2 with function {func!r}")
    if not isinstance(new_type, _TypeMarker):
        raise CheckpointError(f"_rebuild_from_type_v2 with type {new_type!r}")
    if not isinstance(args, tuple):
        raise CheckpointError("_rebuild_from_type_v2 arguments are not a tuple")
    return func(*args)


_TENSOR_BUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter,
                    _rebuild_parameter_with_state)


def _allowed_globals() -> dict[tuple[str, str], _Frozen]:
    table: dict[tuple[str, str], _Frozen] = {
        ("collections", "OrderedDict"): _Callable("collections.OrderedDict", _StateDict),
        ("torch.storage", "UntypedStorage"): _StorageType("torch.storage.UntypedStorage", "u8"),
        ("torch", "Tensor"): _TypeMarker("torch.Tensor"),
        ("torch.nn.parameter", "Parameter"): _TypeMarker("torch.nn.parameter.Parameter"),
        ("torch._tensor", "_rebuild_from_type_v2"): _Callable("torch._tensor._rebuild_from_type_v2",
                                                              _rebuild_from_type_v2),
    }
    for fn in _TENSOR_BUILDERS:
        table[("torch._utils", fn.__name__)] = _Callable(f"torch._utils.{fn.__name__}", fn)
    for name, code in _STORAGE_CLASSES.items():
        for module in ("torch", "torch.cuda"):  # torch.cuda.*Storage: pre-1.0 GPU saves
            table[(module, name)] = _StorageType(f"{module}.{name}", code)
    for name, code in _TORCH_DTYPES.items():
        table[("torch", name)] = _Dtype(f"torch.{name}", code)
    return table


_ALLOWED = _allowed_globals()


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, persistent_load):
        super().__init__(file, encoding="utf-8")
        self._persistent = persistent_load

    def find_class(self, module, name):
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise CheckpointError(f"refusing to load pickle global {module}.{name}: only the globals torch "
                                  f"writes for a plain state dict are allowed (nothing was executed)")
        return obj

    def persistent_load(self, pid):
        return self._persistent(pid)


def _no_persistent(pid):
    raise CheckpointError(f"unexpected persistent id {pid!r}")


def _unpickle(src: str, what: str, file, persistent_load=_no_persistent):
    try:
        return _Unpickler(file, persistent_load).load()
    except CheckpointError as exc:
        raise CheckpointError(f"{src}: {what}: {exc}") from None
    except Exception as exc:  # UnpicklingError, EOFError, TypeError from a bad REDUCE, MemoryError, ...
        raise CheckpointError(f"{src}: {what} is not a valid pickle ({type(exc).__name__}: {exc})") from exc


def _text(x, what: str) -> str:
    if isinstance(x, bytes):  # python-2 era pickles
        try:
            return x.decode("ascii")
        except UnicodeDecodeError:
            pass
    if not isinstance(x, str):
        raise CheckpointError(f"persistent id {what} {x!r} is not a string")
    return x


class _StorageTable:
    """Collects persistent ids; checks that every use of a storage key agrees on dtype and size."""

    def __init__(self, legacy: bool):
        self.legacy = legacy
        self.roots: dict[str, tuple[str, int]] = {}  # key -> (code, numel)

    def __call__(self, pid) -> _StorageRef:
        n = 6 if self.legacy else 5
        if not isinstance(pid, tuple) or len(pid) != n:
            raise CheckpointError(f"persistent id {pid!r} is not a {n}-tuple")
        if _text(pid[0], "tag") != "storage":
            raise CheckpointError(f"persistent id of kind {pid[0]!r} (only 'storage' is supported)")
        stype, key, numel = pid[1], _text(pid[2], "key"), pid[4]
        _text(pid[3], "location")  # 'cpu', 'cuda:0', ...: we always load to host memory
        if not isinstance(stype, _StorageType):
            raise CheckpointError(f"persistent id storage type {stype!r} is not a torch storage class")
        if not _is_int(numel) or numel < 0:
            raise CheckpointError(f"persistent id element count {numel!r} is invalid")
        seen = self.roots.setdefault(key, (stype.code, numel))
        if seen != (stype.code, numel):
            raise CheckpointError(f"storage {key!r} is declared as {numel} x {stype.code} and as "
                                  f"{seen[1]} x {seen[0]}")
        if not self.legacy or pid[5] is None:
            return _StorageRef(stype.code, key, numel)
        view = pid[5]  # (view_key, offset, size) in elements: a sub-range of the root storage
        if (not isinstance(view, tuple) or len(view) != 3 or not all(_is_int(v) and v >= 0 for v in view[1:])
                or view[1] + view[2] > numel):
            raise CheckpointError(f"storage view {view!r} does not fit in storage {key!r} of {numel} elements")
        return _StorageRef(stype.code, key, view[2], view[1])


def _check_state_dict(src: str, obj) -> dict[str, _TensorRef]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{src}: pickled object is a {type(obj).__name__}, not a state dict")
    out = {}
    for k, v in obj.items():
        k = _text(k, "state-dict key") if isinstance(k, bytes) else k
        if not isinstance(k, str):
            raise CheckpointError(f"{src}: state-dict key {k!r} is not a string")
        if not isinstance(v, _TensorRef):
            raise CheckpointError(f"{src}: state-dict entry {k!r} is a {type(v).__name__}, not a tensor")
        out[k] = v
    return out


def _build(src: str, tensors: dict[str, _TensorRef], buffers: dict[str, tuple[object, int]],
           big_endian: bool) -> dict[str, StoredTensor]:
    """buffers: storage key -> (buffer, byte offset of the storage's first byte)."""
    out = {}
    for name, t in tensors.items():
        buf, start = buffers[t.storage.key]
        start += t.storage.elem_offset * DTYPES[t.storage.code].itemsize
        out[name] = StoredTensor(name, t.code, t.size, src, _tensor_maker(t, buf, start, big_endian))
    return out


def _tensor_maker(t: _TensorRef, buf, start: int, big_endian: bool):
    def make() -> np.ndarray:
        dt = DTYPES[t.code].newbyteorder(">") if big_endian else DTYPES[t.code]
        if not all(t.size):
            return np.zeros(t.size, DTYPES[t.code].newbyteorder("="))
        span = 1 + sum((n - 1) * s for n, s in zip(t.size, t.stride))  # elements touched (bounds-checked)
        flat = np.frombuffer(buf, dt, count=span, offset=start + t.offset * dt.itemsize)
        view = np.lib.stride_tricks.as_strided(flat, t.size, tuple(s * dt.itemsize for s in t.stride),
                                               writeable=False)
        arr = finish_array(view)  # no copy if already C-contiguous and aligned
        if t.neg:
            arr = negate(arr, t.code)
        if t.conj and t.code in ("c64", "c128"):
            arr = np.conj(arr)
        return arr
    return make


# ---------------------------------------------------------------------------------------------------------
# Containers

def read_torch_file(path: str | os.PathLike) -> dict[str, StoredTensor]:
    """Read a `torch.save`d state dict (zip or legacy format, detected from the first bytes)."""
    src = os.fspath(path)
    with open(src, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise CheckpointError(f"{src}: file is empty")
        head = f.read(512)
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            return _read_zip(src, f, size)
        if head[257:262] == b"ustar":
            raise CheckpointError(f"{src}: tar-based torch checkpoint (torch < 0.4 format) is not supported; "
                                  f"re-save it with a current torch")
        if head[:1] == b"\x80":
            return _read_legacy(src, f, size)
        raise CheckpointError(f"{src}: not a PyTorch checkpoint (starts with {head[:8]!r}; expected a zip "
                              f"archive or a pickle)")


def _read_zip(src: str, f, file_size: int) -> dict[str, StoredTensor]:
    try:
        zf = zipfile.ZipFile(f)
        infos = zf.infolist()
    except Exception as exc:  # BadZipFile, LargeZipFile, struct/unicode errors on crafted directories
        raise CheckpointError(f"{src}: not a readable zip archive ({type(exc).__name__}: {exc})") from None
    by_name = {i.filename: i for i in infos}
    pkls = [n for n in by_name if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
        raise CheckpointError(f"{src}: zip archive has {len(pkls)} '<dir>/data.pkl' entries, expected 1 "
                              f"(not a torch.save checkpoint?)")
    prefix = pkls[0][: -len("data.pkl")]

    def entry_bytes(name: str) -> bytes:
        try:
            return zf.read(by_name[name])  # CRC-checked
        except Exception as exc:
            raise CheckpointError(f"{src}: cannot read zip entry {name!r} ({type(exc).__name__}: {exc})") from None

    big_endian = False
    if prefix + "byteorder" in by_name:
        order = entry_bytes(prefix + "byteorder").strip()
        if order not in (b"little", b"big"):
            raise CheckpointError(f"{src}: unknown byteorder {order!r}")
        big_endian = order == b"big"

    table = _StorageTable(legacy=False)
    obj = _unpickle(src, pkls[0], io.BytesIO(entry_bytes(pkls[0])), table)
    tensors = _check_state_dict(src, obj)

    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    buffers = {}
    for key, (code, numel) in table.roots.items():
        name = f"{prefix}data/{key}"
        info = by_name.get(name)
        if info is None:
            raise CheckpointError(f"{src}: storage {key!r} is referenced but zip entry {name!r} is missing")
        nbytes = numel * DTYPES[code].itemsize
        if info.file_size != nbytes:
            raise CheckpointError(f"{src}: zip entry {name!r} has {info.file_size} bytes, storage {key!r} "
                                  f"needs {nbytes} ({numel} x {code})")
        if info.flag_bits & 0x1:
            raise CheckpointError(f"{src}: zip entry {name!r} is encrypted")
        if info.compress_type == zipfile.ZIP_STORED:
            buffers[key] = (mm, _stored_data_offset(src, mm, info, file_size))
        else:
            buffers[key] = (entry_bytes(name), 0)
    return _build(src, tensors, buffers, big_endian)


def _stored_data_offset(src: str, mm, info: zipfile.ZipInfo, file_size: int) -> int:
    """File offset of a STORED entry's first data byte, from its local file header (30 fixed bytes, then the
    name and an extra field whose lengths are in the header; torch pads the extra field for 64-byte alignment)."""
    h = info.header_offset
    if h < 0 or h + 30 > file_size or mm[h:h + 4] != b"PK\x03\x04":
        raise CheckpointError(f"{src}: zip entry {info.filename!r}: no local header at offset {h}")
    name_len = int.from_bytes(mm[h + 26:h + 28], "little")
    extra_len = int.from_bytes(mm[h + 28:h + 30], "little")
    name = mm[h + 30:h + 30 + name_len]
    expected = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "replace")
    if name != expected:
        raise CheckpointError(f"{src}: zip entry {info.filename!r}: local header names {name!r}")
    start = h + 30 + name_len + extra_len
    if start + info.file_size > file_size:
        raise CheckpointError(f"{src}: zip entry {info.filename!r} runs past the end of the file; truncated")
    return start


def _read_legacy(src: str, f, file_size: int) -> dict[str, StoredTensor]:
    f.seek(0)
    magic = _unpickle(src, "magic number", f)
    if magic != LEGACY_MAGIC:
        raise CheckpointError(f"{src}: pickle file without torch's magic number (got {magic!r:.40}); "
                              f"not a torch.save checkpoint")
    protocol = _unpickle(src, "protocol version", f)
    if protocol != LEGACY_PROTOCOL:
        raise CheckpointError(f"{src}: legacy protocol version {protocol!r:.40}, expected {LEGACY_PROTOCOL}")
    sys_info = _unpickle(src, "sys_info", f)
    if not isinstance(sys_info, dict):
        raise CheckpointError(f"{src}: sys_info is not a dict")
    if sys_info.get("little_endian") is not True:
        raise CheckpointError(f"{src}: big-endian legacy checkpoint is not supported")
    table = _StorageTable(legacy=True)
    tensors = _check_state_dict(src, _unpickle(src, "state-dict pickle", f, table))
    keys = _unpickle(src, "storage key list", f)
    if not isinstance(keys, list):
        raise CheckpointError(f"{src}: storage key list is a {type(keys).__name__}")
    keys = [_text(k, "storage key") for k in keys]
    if len(set(keys)) != len(keys):
        raise CheckpointError(f"{src}: storage key list has duplicates")
    if set(keys) != set(table.roots):
        raise CheckpointError(f"{src}: storage key list {sorted(set(keys) ^ set(table.roots))[:5]} does not "
                              f"match the storages the state dict uses")

    # Each storage: int64 little-endian element count, then the bytes.
    pos = f.tell()
    offsets = {}
    for key in keys:
        code, numel = table.roots[key]
        f.seek(pos)
        count = f.read(8)
        if len(count) != 8:
            raise CheckpointError(f"{src}: truncated before the data of storage {key!r}")
        n = int.from_bytes(count, "little", signed=True)
        if n != numel:
            raise CheckpointError(f"{src}: storage {key!r} has {n} elements on disk, {numel} in the pickle")
        nbytes = n * DTYPES[code].itemsize
        if pos + 8 + nbytes > file_size:
            raise CheckpointError(f"{src}: storage {key!r} runs past the end of the file; truncated")
        offsets[key] = pos + 8
        pos += 8 + nbytes
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return _build(src, tensors, {k: (mm, off) for k, off in offsets.items()}, big_endian=False)
