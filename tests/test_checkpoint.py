"""tfm.checkpoint against the files torch / safetensors / transformers write, compared bit for bit with what
torch loads; plus hand-made malformed and malicious files (architectures.md §10)."""
import collections
import io
import json
import mmap
import pickle
import struct
import tarfile
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")

from tfm.checkpoint import (CheckpointError, MissingShardError, StoredTensor, find_checkpoint_files,  # noqa: E402
                            load_state_dict)
from tfm.checkpoint import _torch as tfm_torch  # noqa: E402

CODES = {
    torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64", torch.int64: "i64",
    torch.int32: "i32", torch.int16: "i16", torch.int8: "i8", torch.uint8: "u8", torch.bool: "bool",
    torch.uint16: "u16", torch.uint32: "u32", torch.uint64: "u64", torch.float8_e4m3fn: "f8_e4m3",
    torch.float8_e5m2: "f8_e5m2", torch.float8_e4m3fnuz: "f8_e4m3fnuz", torch.float8_e5m2fnuz: "f8_e5m2fnuz",
    torch.complex64: "c64", torch.complex128: "c128",
}
RAW_BITS = {torch.bfloat16: (torch.int16, np.uint16), torch.float8_e4m3fn: (torch.uint8, np.uint8),
            torch.float8_e5m2: (torch.uint8, np.uint8), torch.float8_e4m3fnuz: (torch.uint8, np.uint8),
            torch.float8_e5m2fnuz: (torch.uint8, np.uint8)}


def torch_bits(t) -> np.ndarray:
    """The values of a torch tensor as the NumPy array StoredTensor.array should equal (bf16/f8 as raw bits)."""
    t = t.detach().resolve_neg().resolve_conj().contiguous()
    if t.dtype in RAW_BITS:
        view_as, np_type = RAW_BITS[t.dtype]
        return t.view(view_as).numpy().view(np_type)
    return t.numpy()


def assert_same(sd: dict, ref: dict):
    """Every tensor bit-identical to torch's, with the right dtype code and shape."""
    assert list(sd) == list(ref)
    for name, r in ref.items():
        t = sd[name]
        assert isinstance(t, StoredTensor)
        assert (t.dtype, t.shape) == (CODES[r.dtype], tuple(r.shape)), name
        a, b = t.array, torch_bits(r)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.flags.c_contiguous and a.flags.aligned and not a.flags.writeable, name
        assert a.tobytes() == b.tobytes(), f"{name}: {a} != {b}"


def is_mapped(a: np.ndarray) -> bool:
    while a is not None and not isinstance(a, mmap.mmap):  # ndarray.base / as_strided's holder.base / memoryview.obj
        a = getattr(a, "base", None) if hasattr(a, "base") else getattr(a, "obj", None)
    return isinstance(a, mmap.mmap)


def all_bit_patterns(dtype, n_bits):
    raw = torch.arange(2 ** n_bits, dtype=torch.int32)
    raw = raw - 2 ** n_bits if n_bits == 16 else raw  # int16 range
    return raw.to(torch.int16 if n_bits == 16 else torch.uint8).view(dtype)


def dtype_zoo():
    g = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(3, 5, generator=g),
        "f16": all_bit_patterns(torch.float16, 16),  # incl. subnormals, inf, nan
        "bf16": all_bit_patterns(torch.bfloat16, 16).reshape(256, 256),
        "f64": torch.randn(4, dtype=torch.float64, generator=g),
        "i64": torch.tensor([-(2 ** 63), -1, 0, 2 ** 63 - 1]),
        "i32": torch.tensor([[-(2 ** 31), 7], [0, 2 ** 31 - 1]], dtype=torch.int32),
        "i16": torch.tensor([-32768, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, 5, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "bool": torch.tensor([[True, False], [False, True]]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 7, dtype=torch.float16),
    }


def exotic_zoo():  # dtypes torch only writes through the untyped-storage (v3) path
    return {
        "u16": torch.tensor([0, 1, 65535], dtype=torch.uint16),
        "e4m3": all_bit_patterns(torch.float8_e4m3fn, 8),
        "e5m2": all_bit_patterns(torch.float8_e5m2, 8),
        "e4m3fnuz": all_bit_patterns(torch.float8_e4m3fnuz, 8),
        "e5m2fnuz": all_bit_patterns(torch.float8_e5m2fnuz, 8),
    }


def check_to_f32(sd: dict, ref: dict):
    for name, r in ref.items():
        if r.dtype.is_floating_point:
            np.testing.assert_array_equal(sd[name].to_f32(), r.float().numpy(), err_msg=name)


# ------------------------------------------------------------------------------------------------- safetensors

def test_safetensors_every_dtype_bit_exact(tmp_path):
    ref = dtype_zoo() | exotic_zoo() | {
        "u32": torch.tensor([0, 2 ** 32 - 1], dtype=torch.uint32),
        "u64": torch.tensor([0, 2 ** 64 - 1], dtype=torch.uint64),
        "c64": torch.tensor([1 + 2j, -3j], dtype=torch.complex64),
    }
    path = tmp_path / "m.safetensors"
    st_torch.save_file(ref, str(path), metadata={"format": "pt"})
    sd = load_state_dict(path)
    torch_sd = st_torch.load_file(str(path))
    assert_same(sd, {k: torch_sd[k] for k in sd})  # file order
    assert sd.keys() == ref.keys()
    check_to_f32(sd, ref)
    assert sd["scalar"].shape == () and sd["scalar"].to_f32() == np.float32(2.5)
    assert sd["empty"].shape == (0, 7) and sd["empty"].to_f32().shape == (0, 7)
    with pytest.raises(TypeError, match="complex"):
        sd["c64"].to_f32()


def test_safetensors_is_memory_mapped_not_copied(tmp_path):
    path = tmp_path / "m.safetensors"
    st_torch.save_file({"w": torch.randn(64, 32), "b": torch.randn(32).half()}, str(path))
    w = load_state_dict(path)["w"]
    assert is_mapped(w.array) and not w.array.flags.owndata and not w.array.flags.writeable
    assert w.to_f32() is w.array  # f32: no conversion copy either


def hand_safetensors(path, header, data: bytes, pad_to=None):
    """Write a safetensors file from a header (dict, or raw JSON text) without any library."""
    text = header if isinstance(header, str) else json.dumps(header)
    raw = text.encode()
    if pad_to:
        raw += b" " * (-(8 + len(raw)) % pad_to)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_safetensors_misaligned_offsets_are_read_correctly(tmp_path):
    # u8[3] then f32[2,2] at data offset 3 then f64[1] at 19: neither float is aligned; header length odd too.
    u8 = np.array([1, 2, 3], np.uint8)
    f32 = np.array([[1.5, -2.0], [3.25, 1e-30]], np.float32)
    f64 = np.array([np.pi], np.float64)
    header = {"a": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]},
              "b": {"dtype": "F32", "shape": [2, 2], "data_offsets": [3, 19]},
              "c": {"dtype": "F64", "shape": [1], "data_offsets": [19, 27]}}
    path = hand_safetensors(tmp_path / "odd.safetensors", json.dumps(header) + "  ", u8.tobytes() + f32.tobytes()
                            + f64.tobytes())
    sd = load_state_dict(path)
    for name, expect in zip("abc", (u8, f32, f64)):
        a = sd[name].array
        assert a.flags.aligned and a.dtype == expect.dtype
        np.testing.assert_array_equal(a, expect)
    # the reference parser agrees the file is valid and has these values
    ref = st_torch.load_file(str(path))
    np.testing.assert_array_equal(sd["b"].array, ref["b"].numpy())


def test_safetensors_without_metadata_and_with_unknown_dtype(tmp_path):
    header = {"x": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]},
              "y": {"dtype": "I16", "shape": [], "data_offsets": [2, 4]}}
    path = hand_safetensors(tmp_path / "f4.safetensors", header, b"\x12\x34" + struct.pack("<h", -7))
    sd = load_state_dict(path)  # the unknown dtype does not stop the file from loading ...
    assert sd["y"].array == -7 and sd["x"].dtype == "f4" and sd["x"].shape == (4,)
    with pytest.raises(CheckpointError, match="'x'.*'f4'"):  # ... only reading that tensor fails
        sd["x"].array


GOOD_ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("header, data, match", [
    ("[1, 2]", b"", "not a JSON object"),
    ('{"a": ', b"", "not valid JSON"),
    ("\xff{}", b"", "not a JSON object|UTF-8"),
    ('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
     '"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}', bytes(16), "duplicate tensor name 'a'"),
    ({"a": GOOD_ENTRY}, bytes(4), "truncated"),  # offsets outside the data buffer
    ({"a": {**GOOD_ENTRY, "data_offsets": [0, 12]}}, bytes(12), "span 12 bytes but shape"),
    ({"a": {**GOOD_ENTRY, "shape": [3]}}, bytes(8), "needs 12"),
    ({"a": GOOD_ENTRY, "b": {**GOOD_ENTRY, "data_offsets": [4, 12]}}, bytes(12), "overlap"),
    ({"a": GOOD_ENTRY, "b": {**GOOD_ENTRY, "data_offsets": [12, 20]}}, bytes(20), "unused bytes"),
    ({"a": GOOD_ENTRY}, bytes(9), "1 trailing bytes"),
    ({"a": {**GOOD_ENTRY, "data_offsets": [8, 0]}}, bytes(8), "begin <= end"),
    ({"a": {**GOOD_ENTRY, "shape": [-2]}}, bytes(8), "non-negative"),
    ({"a": {**GOOD_ENTRY, "shape": [True, 2]}}, bytes(8), "non-negative"),
    ({"a": {**GOOD_ENTRY, "shape": 2}}, bytes(8), "shape"),
    ({"a": {"dtype": "F32", "shape": [2]}}, bytes(8), "lacks"),
    ({"a": [1]}, bytes(8), "not an object"),
    ({"a": {**GOOD_ENTRY, "dtype": 3}}, bytes(8), "dtype"),
    ({"__metadata__": {"format": 1}, "a": GOOD_ENTRY}, bytes(8), "__metadata__"),
    ('{"a": NaN}', b"", "not valid JSON"),
])
def test_safetensors_malformed_header(tmp_path, header, data, match):
    path = hand_safetensors(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(CheckpointError, match=match) as info:
        load_state_dict(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("prefix, match", [
    (b"", "empty"),
    (b"\x10\x00", "too short"),
    (struct.pack("<Q", 1000) + b"{}", "runs past the end"),
    (struct.pack("<Q", 2 ** 60) + b"{}", "limit"),
])
def test_safetensors_bad_length_prefix(tmp_path, prefix, match):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(prefix)
    with pytest.raises(CheckpointError, match=match):
        load_state_dict(path)


def test_safetensors_truncated_anywhere_is_an_error(tmp_path):
    path = tmp_path / "m.safetensors"
    st_torch.save_file({"a": torch.randn(10), "b": torch.randn(3, 3).half()}, str(path))
    blob = path.read_bytes()
    header_end = 8 + struct.unpack("<Q", blob[:8])[0]
    cut_path = tmp_path / "cut.safetensors"
    for cut in (0, 3, 8, 20, header_end - 1, header_end, header_end + 5, len(blob) - 1):
        cut_path.write_bytes(blob[:cut])
        with pytest.raises(CheckpointError):
            load_state_dict(cut_path)


def test_garbage_bytes_are_rejected(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(20):
        blob = rng.integers(0, 256, size=int(rng.integers(1, 3000)), dtype=np.uint8).tobytes()
        for suffix in (".safetensors", ".bin", ".weights"):
            path = tmp_path / f"g{i}{suffix}"
            path.write_bytes(blob)
            with pytest.raises(CheckpointError):
                load_state_dict(path)
    for suffix in (".safetensors", ".bin"):
        (tmp_path / f"empty{suffix}").write_bytes(b"")
        with pytest.raises(CheckpointError, match="empty"):
            load_state_dict(tmp_path / f"empty{suffix}")


# ------------------------------------------------------------------------------------------- torch .bin files

def tied_and_views():
    w = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    z = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64)
    return {
        "wte.weight": w, "lm_head.weight": w,  # tied: one storage, two names
        "transposed": w.t(),  # non-contiguous, torch keeps the strides
        "row": w[1], "column": w[:, 2], "block": w[1:, 1:3],  # views with offsets / strides
        "broadcast": torch.tensor([1.0, 2.0]).expand(3, 2),  # stride 0
        "negated": torch.tensor([1.0, -2.0])._neg_view(), "conjugated": z.conj(),  # torch's lazy bits
        "bf16_t": torch.randn(2, 3).bfloat16().t(),
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_bin_every_dtype_bit_exact(tmp_path, legacy):
    ref = dtype_zoo() | {"c128": torch.tensor([1j], dtype=torch.complex128)}
    if not legacy:  # torch 2.13 cannot load untyped-storage dtypes from legacy files itself
        ref |= exotic_zoo()
    path = tmp_path / "pytorch_model.bin"
    torch.save(ref, path, _use_new_zipfile_serialization=not legacy)
    sd = load_state_dict(path)
    assert_same(sd, torch.load(path, weights_only=True))
    check_to_f32(sd, ref)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_bin_shared_storages_and_strided_views(tmp_path, legacy):
    path = tmp_path / "views.bin"
    sd = collections.OrderedDict(tied_and_views())
    sd._metadata = {"": {"version": 1}}  # as nn.Module.state_dict() sets it (pickled with BUILD)
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    sd = load_state_dict(path)
    assert_same(sd, torch.load(path, weights_only=True))
    if not legacy:  # torch aligns zip data: contiguous tensors are zero-copy and tied ones share memory
        assert is_mapped(sd["wte.weight"].array)
        assert np.shares_memory(sd["wte.weight"].array, sd["lm_head.weight"].array)


def test_bin_parameters_and_tensors_with_attributes(tmp_path):
    t = torch.ones(2)
    t.note = "python attribute"  # pickled through _rebuild_from_type_v2
    ref = {"p": torch.nn.Parameter(torch.randn(3, 2)), "t": t}
    for legacy in (False, True):
        path = tmp_path / f"p{legacy}.bin"
        torch.save(ref, path, _use_new_zipfile_serialization=not legacy)
        assert_same(load_state_dict(path), torch.load(path, weights_only=False))


def rewrite_zip(src, dst, transform=lambda name, data: data, compression=zipfile.ZIP_STORED, zip64=False):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for info in zin.infolist():
            data = transform(info.filename, zin.read(info))
            with zout.open(info.filename, "w", force_zip64=zip64) as f:
                f.write(data)


def test_bin_zip_compressed_and_zip64_entries(tmp_path):
    src = tmp_path / "src.bin"
    ref = tied_and_views() | dtype_zoo()
    torch.save(ref, src)
    for compression, zip64 in ((zipfile.ZIP_DEFLATED, False), (zipfile.ZIP_STORED, True)):
        dst = tmp_path / f"out{compression}{zip64}.bin"
        rewrite_zip(src, dst, compression=compression, zip64=zip64)
        assert_same(load_state_dict(dst), ref)


def test_bin_zip_big_endian_is_byteswapped(tmp_path):
    src, dst = tmp_path / "little.bin", tmp_path / "big.bin"
    ref = {"f32": torch.randn(3, 4), "bf16": torch.randn(5).bfloat16(), "i64": torch.tensor([1, -2 ** 40]),
           "t": torch.randn(2, 3, dtype=torch.float64).t(), "u8": torch.tensor([1, 2], dtype=torch.uint8)}
    torch.save(ref, src)
    sizes = {}  # storage key -> element size, from what torch wrote
    with zipfile.ZipFile(src) as z:
        root = z.namelist()[0].split("/")[0]
        for key, t in zip(("0", "1", "2", "3", "4"), ref.values()):
            sizes[f"{root}/data/{key}"] = t.element_size()

    def to_big(name, data):
        if name.endswith("/byteorder"):
            return b"big"
        if name in sizes:
            return np.frombuffer(data, f"<u{sizes[name]}").byteswap().tobytes()
        return data
    rewrite_zip(src, dst, to_big)
    big_ref = torch.load(dst, weights_only=True)  # torch byte-swaps on load too
    assert_same(load_state_dict(dst), big_ref)
    assert_same(load_state_dict(dst), ref)


# Hand-made torch pickles: stand-ins whose pickles are what torch writes, so any pid / argument can be forged.
class Storage:
    def __init__(self, *pid):
        self.pid = pid


class Tensor:
    def __init__(self, *args, fn=None):
        self.args, self.fn = args, fn or torch._utils._rebuild_tensor_v2

    def __reduce__(self):
        return self.fn, self.args


class ForgingPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Storage) else None


def forge(obj) -> bytes:
    buf = io.BytesIO()
    ForgingPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_zip(path, pkl: bytes, storages: dict, byteorder=b"little"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", byteorder)
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data)
    return path


def write_legacy(path, pkl: bytes, keys, blobs, sys_info=None, magic=tfm_torch.LEGACY_MAGIC, protocol=1001):
    """Legacy stream: magic, protocol, sys_info, state-dict pickle, key list, then (int64 count, bytes)s."""
    sys_info = sys_info or {"protocol_version": 1001, "little_endian": True,
                            "type_sizes": {"short": 2, "int": 4, "long": 4}}
    parts = [pickle.dumps(x, protocol=2) for x in (magic, protocol, sys_info)] + [pkl, pickle.dumps(keys, 2)]
    for count, data in blobs:
        parts += [struct.pack("<q", count), data]
    path.write_bytes(b"".join(parts))
    return path


def test_legacy_storage_views(tmp_path):
    # 2018-era files: a tensor's storage can be a view (offset, size) of a root storage.
    root = np.arange(10, dtype=np.float32)
    fs = torch.FloatStorage
    sd = {"whole": Tensor(Storage("storage", fs, "77", "cpu", 10, None), 0, (2, 5), (5, 1), False, {}),
          "view": Tensor(Storage("storage", fs, "77", "cpu", 10, ("78", 4, 6)), 1, (2, 2), (1, 2), False, {}),
          "cuda": Tensor(Storage("storage", fs, "77", "cuda:0", 10, ("79", 8, 2)), 0, (2,), (1,), False, {})}
    path = write_legacy(tmp_path / "v.bin", forge(sd), ["77"], [(10, root.tobytes())])
    out = load_state_dict(path)
    np.testing.assert_array_equal(out["whole"].array, root.reshape(2, 5))
    np.testing.assert_array_equal(out["view"].array, [[5, 7], [6, 8]])  # root[4:][1 + i + 2j]
    np.testing.assert_array_equal(out["cuda"].array, [8, 9])
    ref = torch.load(path, weights_only=False, map_location="cpu")  # torch reads the forged file the same way
    np.testing.assert_array_equal(out["view"].array, ref["view"].numpy())


class Evil:
    def __reduce__(self):
        return eval, ("1+1",)


def os_system_pickle(marker) -> bytes:
    return b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."


@pytest.mark.parametrize("payload, qualname", [
    (None, "os.system"),
    (pickle.dumps(Evil(), protocol=4), "builtins.eval"),  # STACK_GLOBAL
    (pickle.dumps({"x": np.zeros(2)}, protocol=2), "numpy"),
    (b"\x80\x02ctorch\nload\nq\x00.", "torch.load"),
    (b"\x80\x02ctorch._utils\n_rebuild_device_tensor_from_numpy\nq\x00.", "_rebuild_device_tensor_from_numpy"),
])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pickle_globals_outside_the_allow_list_are_refused(tmp_path, payload, qualname, legacy):
    marker = tmp_path / "pwned"
    payload = payload or os_system_pickle(marker)
    path = tmp_path / "evil.bin"
    if legacy:
        write_legacy(path, payload, [], [])
    else:
        write_zip(path, payload, {})
    with pytest.raises(CheckpointError, match=f"refusing to load pickle global .*{qualname}") as info:
        load_state_dict(path)
    assert "nothing was executed" in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()


def test_pickle_cannot_modify_the_allowed_objects(tmp_path):
    before = {k: (type(v), getattr(v, "code", None)) for k, v in tfm_torch._ALLOWED.items()}
    for target in (b"ctorch\nFloatStorage\n", b"ctorch._utils\n_rebuild_tensor_v2\n", b"ctorch\nfloat32\n"):
        for state in (b"}X\x04\x00\x00\x00codeX\x03\x00\x00\x00f64s", b"N}X\x02\x00\x00\x00fnK\x01s\x86"):
            path = write_zip(tmp_path / "m.bin", b"\x80\x02" + target + state + b"b.", {})
            with pytest.raises(CheckpointError, match="set state"):
                load_state_dict(path)
    assert before == {k: (type(v), getattr(v, "code", None)) for k, v in tfm_torch._ALLOWED.items()}


FS = torch.FloatStorage


@pytest.mark.parametrize("sd, match", [
    ({"a": Tensor(Storage("storage", FS, "0", "cpu"), 0, (2,), (1,), False, {})}, "not a 5-tuple"),
    ({"a": Tensor(Storage("module", FS, "0", "cpu", 2), 0, (2,), (1,), False, {})}, "kind 'module'"),
    ({"a": Tensor(Storage("storage", "FloatStorage", "0", "cpu", 2), 0, (2,), (1,), False, {})},
     "not a torch storage class"),
    ({"a": Tensor(Storage("storage", torch.float32, "0", "cpu", 2), 0, (2,), (1,), False, {})},
     "not a torch storage class"),
    ({"a": Tensor(Storage("storage", FS, "0", "cpu", -2), 0, (2,), (1,), False, {})}, "element count"),
    ({"a": Tensor(Storage("storage", FS, 0, "cpu", 2), 0, (2,), (1,), False, {})}, "key 0"),
    ({"a": Tensor(Storage("storage", FS, "0", "cpu", 2), 0, (3,), (1,), False, {})}, "reaches element 2"),
    ({"a": Tensor(Storage("storage", FS, "0", "cpu", 2), 1, (2,), (1,), False, {})}, "reaches element 2"),
    ({"a": Tensor(Storage("storage", FS, "0", "cpu", 2), 0, (1, 2), (1,), False, {})}, "differ in length"),
    ({"a": Tensor(Storage("storage", FS, "0", "cpu", 2), -1, (2,), (1,), False, {})}, "storage offset"),
    ({"a": Tensor(Storage("storage", FS, "0", "cpu", 2), 0, (2,), (-1,), False, {})}, "stride"),
    ({"a": Tensor(Storage("storage", FS, "0", "cpu", 2), 0, (2,), (1,), False, {}, {"zeta": True})},
     "unsupported tensor metadata"),
    ({"a": Tensor("not a storage", 0, (2,), (1,), False, {})}, "not a persistent storage"),
    ({"a": Tensor(Storage("storage", FS, "0", "cpu", 2), 0, (2,), (1,), False)}, "not a valid pickle"),
    ({"a": Tensor(Storage("storage", FS, "0", "cpu", 2), 0, (2,), (1,), False, {}),
      "b": Tensor(Storage("storage", torch.HalfStorage, "0", "cpu", 4), 0, (2,), (1,), False, {})},
     "declared as"),
    ({"a": Tensor(Storage("storage", FS, "1", "cpu", 2), 0, (2,), (1,), False, {})}, "entry 'archive/data/1'"),
    ({"a": Tensor(Storage("storage", FS, "0", "cpu", 3), 0, (2,), (1,), False, {})}, "has 8 bytes"),
    ({"a": 1.5}, "not a tensor"),
    ([1, 2], "not a state dict"),
])
def test_bin_malformed_pickle_contents(tmp_path, sd, match):
    path = write_zip(tmp_path / "m.bin", forge(sd), {"0": np.ones(2, np.float32).tobytes()})
    with pytest.raises(CheckpointError, match=match) as info:
        load_state_dict(path)
    assert str(path) in str(info.value)


def test_bin_zip_structure_errors(tmp_path):
    good = forge({"a": Tensor(Storage("storage", FS, "0", "cpu", 2), 0, (2,), (1,), False, {})})
    data = {"0": bytes(8)}
    with pytest.raises(CheckpointError, match="byteorder"):
        load_state_dict(write_zip(tmp_path / "a.bin", good, data, byteorder=b"middle"))
    with zipfile.ZipFile(tmp_path / "b.bin", "w") as z:
        z.writestr("x/notdata.pkl", good)
    with pytest.raises(CheckpointError, match="0 '<dir>/data.pkl' entries"):
        load_state_dict(tmp_path / "b.bin")
    # a corrupt local header (the central directory still points at it)
    blob = bytearray(write_zip(tmp_path / "c.bin", good, data).read_bytes())
    blob[blob.index(b"archive/data/0") - 30] = ord("X")
    (tmp_path / "c.bin").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="local header"):
        load_state_dict(tmp_path / "c.bin")["a"]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_bin_truncated_anywhere_is_an_error(tmp_path, legacy):
    path = tmp_path / "m.bin"
    torch.save({"a": torch.randn(40), "b": torch.randn(8, 8).half()}, path, _use_new_zipfile_serialization=not legacy)
    blob = path.read_bytes()
    cut_path = tmp_path / "cut.bin"
    for cut in sorted({1, 2, 10, 30, 100, len(blob) // 3, len(blob) // 2, len(blob) - 200, len(blob) - 1}):
        cut_path.write_bytes(blob[:cut])
        with pytest.raises(CheckpointError):
            load_state_dict(cut_path)


def test_legacy_stream_errors(tmp_path):
    sd = forge({"a": Tensor(Storage("storage", FS, "5", "cpu", 2, None), 0, (2,), (1,), False, {})})
    blob = [(2, bytes(8))]
    assert load_state_dict(write_legacy(tmp_path / "ok.bin", sd, ["5"], blob))["a"].shape == (2,)
    cases = [
        (dict(magic=12345), "magic number"),
        (dict(protocol=1000), "protocol version 1000"),
        (dict(sys_info={"little_endian": False}), "big-endian"),
        (dict(sys_info=[1]), "sys_info"),
        (dict(keys=["5", "6"]), "does not match"),
        (dict(keys=["5", "5"]), "duplicates"),
        (dict(keys="5"), "key list is a str"),
        (dict(blobs=[(3, bytes(12))]), "3 elements on disk"),
        (dict(blobs=[(2, bytes(7))]), "truncated"),
        (dict(blobs=[]), "truncated"),
    ]
    for change, match in cases:
        args = dict(pkl=sd, keys=["5"], blobs=blob) | change
        path = write_legacy(tmp_path / "bad.bin", **args)
        with pytest.raises(CheckpointError, match=match):
            load_state_dict(path)


def test_pre_04_tar_format_is_rejected(tmp_path):
    path = tmp_path / "old.bin"
    with tarfile.open(path, "w") as tar:
        for name in ("sys_info", "pickle", "storages", "tensors"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"\x80\x02N."))
    with pytest.raises(CheckpointError, match="tar-based"):
        load_state_dict(path)


# -------------------------------------------------------------------------- HF directories, sharded checkpoints

@pytest.fixture(scope="module")
def gpt2_dirs(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=99, n_positions=16)
    model = transformers.GPT2LMHeadModel(config).eval()
    dirs = {}
    for safe in (True, False):
        for shard in ("20KB", "10GB"):
            d = tmp_path_factory.mktemp(f"gpt2_{safe}_{shard}")
            model.save_pretrained(d, safe_serialization=safe, max_shard_size=shard)
            dirs[safe, shard] = d
    return model.state_dict(), dirs


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
def test_sharded_gpt2_matches_torch(gpt2_dirs, safe):
    model_sd, dirs = gpt2_dirs
    d = dirs[safe, "20KB"]
    index = d / ("model.safetensors.index.json" if safe else "pytorch_model.bin.index.json")
    weight_map = json.loads(index.read_text())["weight_map"]
    files = find_checkpoint_files(d)
    assert len(files) > 2 and [f.name for f in files] == list(dict.fromkeys(weight_map.values()))

    ref = {}
    for f in files:
        ref |= st_torch.load_file(str(f)) if safe else torch.load(f, weights_only=True)
    sd = load_state_dict(d)
    assert sd.keys() == weight_map.keys() == ref.keys()
    assert_same(sd, ref)
    assert_same(load_state_dict(index), ref)
    for name in sd:  # and the values are the model's
        np.testing.assert_array_equal(sd[name].to_f32(), model_sd[name].numpy(), err_msg=name)
    assert "transformer.wte.weight" in sd and "transformer.h.1.mlp.c_proj.weight" in sd


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
def test_single_file_gpt2(gpt2_dirs, safe):
    model_sd, dirs = gpt2_dirs
    d = dirs[safe, "10GB"]
    name = "model.safetensors" if safe else "pytorch_model.bin"
    assert find_checkpoint_files(d) == [d / name]
    sd = load_state_dict(d)
    for key in sd:
        np.testing.assert_array_equal(sd[key].to_f32(), model_sd[key].numpy(), err_msg=key)


def test_resolution_follows_hf_order(tmp_path):
    # Add the four kinds in reverse priority, each holding a different tensor: the newest one must win.
    torch.save({"bin_shard": torch.ones(1)}, tmp_path / "s1.bin")
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": {"bin_shard": "s1.bin"}}))
    assert list(load_state_dict(tmp_path)) == ["bin_shard"]
    torch.save({"bin": torch.ones(1)}, tmp_path / "pytorch_model.bin")
    assert list(load_state_dict(tmp_path)) == ["bin"]
    st_torch.save_file({"st_shard": torch.ones(1)}, str(tmp_path / "s2.safetensors"))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"st_shard": "s2.safetensors"}}))
    assert list(load_state_dict(tmp_path)) == ["st_shard"]
    assert find_checkpoint_files(tmp_path) == [tmp_path / "s2.safetensors"]
    st_torch.save_file({"st": torch.ones(1)}, str(tmp_path / "model.safetensors"))
    assert list(load_state_dict(tmp_path)) == ["st"]
    assert find_checkpoint_files(tmp_path) == [tmp_path / "model.safetensors"]


def test_missing_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.safetensors.*pytorch_model.bin.index.json") as info:
        find_checkpoint_files(tmp_path)
    assert str(tmp_path) in str(info.value)
    (tmp_path / "tf_model.h5").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="TensorFlow/Flax"):
        load_state_dict(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        find_checkpoint_files(tmp_path / "tf_model.h5")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_state_dict(tmp_path / "nope.safetensors")


def test_index_errors(gpt2_dirs, tmp_path):
    _, dirs = gpt2_dirs
    src = dirs[True, "20KB"]
    for f in src.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    index = tmp_path / "model.safetensors.index.json"
    doc = json.loads(index.read_text())
    first = next(iter(doc["weight_map"]))

    def with_index(text):
        index.write_text(text if isinstance(text, str) else json.dumps(text))

    shard = doc["weight_map"][first]
    (tmp_path / shard).rename(tmp_path / "moved")
    with pytest.raises(MissingShardError, match=f"shard '{shard}' is missing") as info:
        load_state_dict(tmp_path)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CheckpointError)
    (tmp_path / "moved").rename(tmp_path / shard)

    other = next(s for s in doc["weight_map"].values() if s != shard)
    cases = [
        ("{not json", "not valid JSON"),
        ({"metadata": {}}, "no 'weight_map'"),
        ({"weight_map": {first: 3}}, "not a file name"),
        ({"weight_map": {first: "../" + shard}}, "relative"),
        ({"weight_map": {first: "/etc/" + shard}}, "relative"),
        ({"weight_map": doc["weight_map"] | {"ghost.weight": shard}}, "no such tensor"),
        ({"weight_map": doc["weight_map"] | {first: other}}, f"but it is in {shard}"),
    ]
    for text, match in cases:
        with_index(text)
        with pytest.raises(CheckpointError, match=match) as info:
            load_state_dict(tmp_path)
        assert str(index) in str(info.value)
    # the same tensor in two shards
    dup = tmp_path / "dup.safetensors"
    st_torch.save_file({first: torch.zeros(1)}, str(dup))
    with_index({"weight_map": doc["weight_map"] | {"x": "dup.safetensors"}})
    with pytest.raises(CheckpointError, match="in both"):
        load_state_dict(tmp_path)
