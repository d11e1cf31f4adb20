"""Shared pieces of the checkpoint readers: the error type, the dtype table and `StoredTensor`.

A `StoredTensor` is a description of one tensor in a file (name, dtype code, shape) plus a function that
produces its NumPy array on first use. The readers validate everything that can be checked without touching
tensor bytes (dtype, shape, offsets, bounds) when the file is opened, so a malformed file fails at load time;
building the array is deferred so that opening a multi-GB file costs nothing until a tensor is used.

Array contract (what `StoredTensor.array` returns): C-contiguous, aligned, read-only, little-endian values in
native order. It is a view into the file's memory map when the stored bytes already satisfy that (the normal
case: safetensors and torch zip files align their data); otherwise it is a private copy of that one tensor
(misaligned offsets, strided torch views, big-endian torch files, compressed zip entries).
"""
from __future__ import annotations

import numpy as np

__all__ = ["CheckpointError", "MissingShardError", "StoredTensor", "DTYPES"]


class CheckpointError(ValueError):
    """A checkpoint file is malformed, truncated, unsafe or uses a feature this reader does not support."""


class MissingShardError(CheckpointError, FileNotFoundError):
    """A sharded checkpoint's index names a shard file that does not exist (both a CheckpointError and a
    FileNotFoundError, so either `except` catches it)."""


# dtype code -> (NumPy storage dtype, little-endian). bf16 and the float8 formats have no NumPy type: their
# arrays hold the raw bits (uint16 / uint8) and `to_f32` decodes them.
DTYPES: dict[str, np.dtype] = {
    "f64": np.dtype("<f8"), "f32": np.dtype("<f4"), "f16": np.dtype("<f2"), "bf16": np.dtype("<u2"),
    "i64": np.dtype("<i8"), "i32": np.dtype("<i4"), "i16": np.dtype("<i2"), "i8": np.dtype("i1"),
    "u64": np.dtype("<u8"), "u32": np.dtype("<u4"), "u16": np.dtype("<u2"), "u8": np.dtype("u1"),
    "bool": np.dtype("?"), "f8_e4m3": np.dtype("u1"), "f8_e5m2": np.dtype("u1"),
    "f8_e4m3fnuz": np.dtype("u1"), "f8_e5m2fnuz": np.dtype("u1"),
    "c64": np.dtype("<c8"), "c128": np.dtype("<c16"),
}


def _f8_table(exp_bits: int, man_bits: int, bias: int, specials: str) -> np.ndarray:
    """float32 value of every 8-bit pattern of a float8 format (OCP FP8 spec; "fnuz" variants as in torch):
    specials "ieee" (e5m2): exponent all ones = inf (mantissa 0) or NaN; "fn" (e4m3fn): no infinities, only
    S.1111.111 is NaN; "fnuz": no infinities, no negative zero, 0x80 is the only NaN."""
    out = np.empty(256, np.float32)
    top = (1 << exp_bits) - 1
    for bits in range(256):
        sign = -1.0 if bits & 0x80 else 1.0
        e = (bits >> man_bits) & top
        m = bits & ((1 << man_bits) - 1)
        if specials == "ieee" and e == top:
            v = sign * np.inf if m == 0 else np.nan
        elif specials == "fn" and e == top and m == (1 << man_bits) - 1:
            v = np.nan
        elif specials == "fnuz" and bits == 0x80:
            v = np.nan
        elif e == 0:  # subnormal
            v = sign * m / (1 << man_bits) * 2.0 ** (1 - bias)
        else:
            v = sign * (1 + m / (1 << man_bits)) * 2.0 ** (e - bias)
        out[bits] = v
    out.flags.writeable = False
    return out


_F8_TABLES = {
    "f8_e4m3": _f8_table(4, 3, 7, "fn"), "f8_e5m2": _f8_table(5, 2, 15, "ieee"),
    "f8_e4m3fnuz": _f8_table(4, 3, 8, "fnuz"), "f8_e5m2fnuz": _f8_table(5, 2, 16, "fnuz"),
}


class StoredTensor:
    """One tensor of a checkpoint.

    >>> t = load_state_dict("gpt2/model.safetensors")["wte.weight"]
    >>> t.dtype, t.shape          # ("f32", (50257, 768))
    >>> w = t.to_f32()            # float32 ndarray (read-only view when the file is f32)

    `dtype` is a code from `DTYPES` ("f32", "bf16", ...), or for safetensors dtypes this reader cannot decode
    (F8_E8M0, F4, F6_*, ...) the lower-cased file name of the dtype; reading such a tensor raises CheckpointError.
    """

    __slots__ = ("name", "dtype", "shape", "source", "_make", "_array")

    def __init__(self, name: str, dtype: str, shape: tuple[int, ...], source: str, make):
        self.name = name
        self.dtype = dtype
        self.shape = tuple(shape)
        self.source = source  # file the tensor came from, for error messages
        self._make = make
        self._array = None

    @classmethod
    def from_array(cls, name: str, array: np.ndarray, source: str = "<memory>") -> "StoredTensor":
        """Wraps an in-memory float32/float16 array (random initialisation, conversions, tests)."""
        a = np.ascontiguousarray(array)
        codes = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}
        if a.dtype not in codes:
            raise TypeError(f"{name}: from_array takes float32 or float16, got {a.dtype}")
        return cls(name, codes[a.dtype], a.shape, source, lambda: a)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def array(self) -> np.ndarray:
        """The stored values (bf16 / float8 as raw bits), C-contiguous, aligned, read-only. Built on first use."""
        if self._array is None:
            if self.dtype not in DTYPES:
                raise CheckpointError(f"{self.source}: tensor {self.name!r} has dtype {self.dtype!r}, "
                                      f"which this reader cannot decode")
            arr = self._make()
            arr.flags.writeable = False
            assert arr.shape == self.shape and arr.dtype == DTYPES[self.dtype].newbyteorder("=")
            self._array = arr
            self._make = None
        return self._array

    def to_f32(self) -> np.ndarray:
        """The values as float32. For f32 tensors this is `array` itself (read-only, no copy); otherwise a new
        array: bf16 widened exactly (bits << 16), f16/float8 decoded exactly, f64 and integers rounded."""
        a = self.array
        if self.dtype == "f32":
            return a
        if self.dtype == "bf16":
            return (a.astype(np.uint32) << 16).view(np.float32)
        if self.dtype in _F8_TABLES:
            return _F8_TABLES[self.dtype][a]
        if self.dtype in ("c64", "c128"):
            raise TypeError(f"{self.source}: tensor {self.name!r} is complex ({self.dtype}); "
                            f"it has no float32 value")
        return a.astype(np.float32)

    def __repr__(self) -> str:
        return f"StoredTensor({self.name!r}, dtype={self.dtype!r}, shape={self.shape}, source={self.source!r})"


def finish_array(arr: np.ndarray) -> np.ndarray:
    """Give a freshly sliced array the `StoredTensor.array` guarantees, copying only when it must.

    `arr` may be a strided or misaligned view into a memory map, and its dtype carries the file's byte order
    (little-endian from `DTYPES`, or its big-endian variant for a torch file written on a big-endian host)."""
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="), order="C")  # byte-swapping copy
    elif not (arr.flags.c_contiguous and arr.flags.aligned):
        arr = np.array(arr, order="C")  # a fresh array is always aligned
    arr.flags.writeable = False
    return arr


def negate(arr: np.ndarray, code: str) -> np.ndarray:
    """-arr for torch's lazy negation bit. bf16 / float8 arrays hold raw bits, so flip the sign bit instead."""
    if code == "bf16":
        return arr ^ np.uint16(0x8000)
    if code in _F8_TABLES:
        return arr ^ np.uint8(0x80)
    if code == "bool":
        raise CheckpointError("negation bit set on a bool tensor")
    return -arr
