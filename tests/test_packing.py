"""Packed codes (SPEC §8) and 1-bit codes: the format table, ``pack``/``unpack`` against the
ONNX layouts (``onnx.numpy_helper`` raw bytes, the reference evaluator) and ONNX Runtime,
quantization to packed codes and back, and files that hold them."""

from __future__ import annotations

import itertools
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import linquant as lq
from linquant import _backend, _packing
from linquant._formats import FORMATS, code_format
from linquant._params import integer_range

RNG = np.random.default_rng(17)
SCHEMES = ("asymmetric", "symmetric")


def random_codes(shape: tuple[int, ...], bits: int, signed: bool) -> np.ndarray:
    if signed and bits == 1:
        return RNG.choice(np.array([-1, 1], np.int8), shape)
    qmin, qmax = integer_range(bits, signed)
    return RNG.integers(qmin, qmax + 1, shape).astype(np.int8 if signed else np.uint8)


# --- the format table -------------------------------------------------------------------------


def test_the_table_has_one_row_per_width_and_signedness() -> None:
    assert len({(f.width, f.signed) for f in FORMATS}) == len(FORMATS)
    assert [f.name for f in FORMATS if f.packed] == [
        "uint1", "int1", "uint2", "int2", "uint4", "int4",
    ]  # fmt: skip
    assert code_format(3, True, packed=True).name == "int4"
    assert code_format(5, False, packed=True).name == "uint8"  # wider codes are never packed
    assert code_format(3, False, packed=False).name == "uint8"
    assert code_format(12, True, packed=True).name == "int16"
    fmt = code_format(2, False, packed=True)
    assert fmt.stored_shape((3, 9)) == (3, 3) and fmt.stored_shape(()) == (1,)
    assert fmt.stored_bytes((3, 9)) == 9


# --- pack and unpack ------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (16,), (3, 5), (2, 3, 9), (4, 0), ()])
def test_unpack_inverts_pack(backend: str, bits: int, signed: bool, shape: tuple[int, ...]) -> None:
    codes = random_codes(shape, bits, signed)
    packed = lq.pack(codes, bits)
    fmt = code_format(bits, signed, packed=True)
    assert packed.dtype == np.uint8 and packed.shape == fmt.stored_shape(shape)
    n = shape[-1] if shape else 1
    back = lq.unpack(packed, bits, n, dtype=codes.dtype)
    np.testing.assert_array_equal(back, codes.reshape(back.shape))


@pytest.mark.parametrize("bits", [1, 2, 4])
@pytest.mark.parametrize("signed", [False, True])
def test_backends_pack_and_unpack_alike_in_any_layout(bits: int, signed: bool) -> None:
    codes = random_codes((5, 6, 19), bits, signed)
    views = [codes, codes[:, ::-1], codes.transpose(1, 0, 2), np.asfortranarray(codes)[::2]]
    for view in views:
        results = []
        for name in _backend.available_backends():
            lq.set_backend(name)
            packed = lq.pack(view, bits)
            results.append((packed, lq.unpack(packed, bits, view.shape[-1], view.dtype)))
        lq.set_backend(_backend.available_backends()[0])
        for packed, back in results:
            np.testing.assert_array_equal(packed, results[0][0])
            np.testing.assert_array_equal(back, view)


def test_pack_layouts() -> None:
    """ONNX's int4 and int2 orders (low bits first), np.packbits' for 1-bit codes."""
    assert lq.pack(np.array([1, 2, 3], np.uint8), 4).tolist() == [0x21, 0x03]
    assert lq.pack(np.array([-1, 7, -8], np.int8), 4).tolist() == [0x7F, 0x08]
    assert lq.pack(np.array([1, 2, 3, 0, 1], np.uint8), 2).tolist() == [0b00111001, 0b01]
    bits = np.array([1, 0, 0, 1, 1, 0, 1, 0, 1], np.uint8)
    assert lq.pack(bits, 1).tolist() == np.packbits(bits).tolist()
    assert lq.pack(2 * bits.astype(np.int8) - 1, 1).tolist() == np.packbits(bits).tolist()


@pytest.mark.parametrize(
    ("codes", "bits", "message"),
    [
        (np.array([0, 16], np.uint8), 4, "codes must be 4-bit unsigned codes"),
        (np.array([-5, 0], np.int8), 3, "codes must be 3-bit signed codes"),
        (np.array([-1, 0, 1], np.int8), 1, r"-1 or \+1"),
        (np.array([2], np.uint8), 1, "0 to 1"),
        (np.array([1], np.uint8), 5, "bits must be an int from 1 to 4"),
        (np.array([1], np.uint8), 0, "bits must be an int from 1 to 4"),
    ],
)
def test_pack_never_cuts_a_code(codes: np.ndarray, bits: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lq.pack(codes, bits)


def test_pack_and_unpack_errors() -> None:
    with pytest.raises(TypeError, match="uint8 or int8"):
        lq.pack(np.array([1], np.uint16), 4)
    with pytest.raises(TypeError, match="uint8"):
        lq.unpack(np.array([1], np.int8), 4, 2)
    with pytest.raises(ValueError, match="1 bytes along its last axis for 2"):
        lq.unpack(np.zeros(2, np.uint8), 4, 2)
    with pytest.raises(ValueError, match="n must be an int"):
        lq.unpack(np.zeros(1, np.uint8), 4, -1)
    with pytest.raises(ValueError, match="dtype must be uint8 or int8"):
        lq.unpack(np.zeros(1, np.uint8), 4, 2, dtype="int16")


# --- the ONNX oracles ---------------------------------------------------------------------------


onnx = pytest.importorskip("onnx", reason="ONNX has no wheel for this platform")
ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes comes with onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ONNX_4BIT = {False: ml_dtypes.uint4, True: ml_dtypes.int4}
ONNX_2BIT = {False: TensorProto.UINT2, True: TensorProto.INT2}


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("n", [1, 2, 7, 32])
def test_4bit_packing_is_onnx_raw_data(signed: bool, n: int) -> None:
    codes = random_codes((n,), 4, signed)
    raw = numpy_helper.from_array(codes.astype(ONNX_4BIT[signed])).raw_data
    assert lq.pack(codes, 4).tobytes() == raw


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("n", [1, 3, 4, 9])
def test_2bit_packing_is_onnx_int2(signed: bool, n: int) -> None:
    codes = random_codes((n,), 2, signed)
    tensor = helper.make_tensor("t", ONNX_2BIT[signed], [n], codes.astype(np.int32).tolist())
    packed = np.array(tensor.int32_data, np.int32).astype(np.uint8)  # one packed byte each
    np.testing.assert_array_equal(lq.pack(codes, 2), packed)
    np.testing.assert_array_equal(numpy_helper.to_array(tensor).astype(np.int8), codes)


def _reference_quantize(x: np.ndarray, scale: float, zero_point: int, signed: bool) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    zp_type = TensorProto.INT4 if signed else TensorProto.UINT4
    node = helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["y"])
    graph = helper.make_graph(
        [node],
        "q",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", zp_type, None)],
        [
            numpy_helper.from_array(np.array(scale, np.float32), "scale"),
            helper.make_tensor("zp", zp_type, [], [zero_point]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    (y,) = ReferenceEvaluator(model).run(None, {"x": x})
    return np.asarray(y)


@pytest.mark.parametrize("signed", [False, True])
def test_quantize_to_4_bits_is_onnx_reference_quantize_linear(backend: str, signed: bool) -> None:
    x = (RNG.standard_normal(64) * 4).astype(np.float32)
    x[:4] = [0.5, 1.5, -2.5, 100.0]  # ties round half to even; saturation
    zero_point = 0 if signed else 8
    reference = _reference_quantize(x, 0.5, zero_point, signed)
    dtype = "int8" if signed else "uint8"
    codes = lq.quantize_linear(x, 0.5, zero_point, dtype=dtype, bits=4)
    np.testing.assert_array_equal(codes, reference.astype(np.int8 if signed else np.uint8))
    assert lq.pack(codes, 4).tobytes() == numpy_helper.from_array(reference).raw_data


ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime has no wheel for this platform")


@pytest.mark.parametrize("signed", [False, True])
def test_quantize_to_4_bits_is_onnx_runtime_through_a_cast(backend: str, signed: bool) -> None:
    """ONNX Runtime's int4/uint4 QuantizeLinear, its codes cast to int8 to read them."""
    zp_type = TensorProto.INT4 if signed else TensorProto.UINT4
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"]),
        helper.make_node("Cast", ["q"], ["y"], to=TensorProto.INT8),
    ]
    zero_point = -1 if signed else 5
    graph = helper.make_graph(
        nodes,
        "q",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.INT8, None)],
        [
            numpy_helper.from_array(np.array(0.25, np.float32), "scale"),
            helper.make_tensor("zp", zp_type, [], [zero_point]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = (RNG.standard_normal((8, 33)) * 2).astype(np.float32)
    (expected,) = session.run(None, {"x": x})
    dtype = "int8" if signed else "uint8"
    codes = lq.quantize_linear(x, 0.25, zero_point, dtype=dtype, bits=4)
    np.testing.assert_array_equal(codes.astype(np.int8), expected)


# --- quantize(pack=True) -------------------------------------------------------------------------


GROUPINGS = [{}, {"axis": 0}, {"axis": -1, "block_size": 3}, {"axis": 0, "block_size": 2}]


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=13),
        elements=st.floats(-1e3, 1e3, width=32),
    ),
    bits=st.integers(1, 4),
    scheme=st.sampled_from(SCHEMES),
    grouping=st.sampled_from(GROUPINGS),
    stochastic=st.booleans(),
    chunk=st.sampled_from([1, 7, 64, 1 << 20]),
)
def test_packed_quantize_is_the_unpacked_codes_packed(
    x: np.ndarray, bits: int, scheme: str, grouping: dict, stochastic: bool, chunk: int
) -> None:
    """Chunk by chunk, on every backend and thread count: the codes, parameters and values of
    the unpacked call."""
    rounding = {"rounding": "stochastic", "seed": 5} if stochastic else {}
    chunk_elements, threads = _packing.CHUNK_ELEMENTS, lq.get_num_threads()
    _packing.CHUNK_ELEMENTS = chunk
    try:
        for name, n_threads in itertools.product(_backend.available_backends(), (1, 3)):
            lq.set_backend(name)
            lq.set_num_threads(n_threads)
            qa = lq.quantize(x, bits, scheme, pack=True, **grouping, **rounding)
            whole = lq.quantize(x, bits, scheme, **grouping, **rounding)
            assert qa.packed and qa.shape == x.shape and qa.length == x.shape[-1]
            np.testing.assert_array_equal(qa.data, lq.pack(whole.data, bits))
            np.testing.assert_array_equal(qa.codes(), whole.data)
            np.testing.assert_array_equal(qa.scale, whole.scale)
            np.testing.assert_array_equal(qa.dequantize(), whole.dequantize())
            np.testing.assert_array_equal(qa.dequantize("float64"), whole.dequantize("float64"))
    finally:
        _packing.CHUNK_ELEMENTS = chunk_elements
        lq.set_backend(_backend.available_backends()[0])
        lq.set_num_threads(threads)


def test_packed_sizes() -> None:
    x = RNG.standard_normal((256, 1024)).astype(np.float32)
    for bits, ratio in [(4, 2), (3, 2), (2, 4), (1, 8)]:
        qa = lq.quantize(x, bits, pack=True)
        assert qa.data.nbytes * ratio == x.size
        assert qa.nbytes == qa.data.nbytes + 8
    assert repr(lq.quantize(x, 4, pack=True)).startswith(
        "QuantizedArray(shape=(256, 1024), format='uint4', bits=4"
    )


def test_pack_is_a_no_op_where_nothing_packs() -> None:
    x = RNG.standard_normal(10)
    assert not lq.quantize(x, 8, pack=True).packed
    zero_d = lq.quantize(np.float64(2.5), 4, pack=True)
    assert not zero_d.packed and zero_d.shape == ()
    with pytest.raises(ValueError, match="pack must be True or False"):
        lq.quantize(x, 4, pack="yes")  # type: ignore[arg-type]


def test_a_packed_quantized_array_checks_its_bytes() -> None:
    data = np.zeros((2, 3), np.uint8)
    qa = lq.QuantizedArray(data, 1.0, 0, 4, "asymmetric", length=5)
    assert qa.shape == (2, 5) and qa.format.name == "uint4"
    with pytest.raises(ValueError, match="need 2 bytes there"):
        lq.QuantizedArray(data, 1.0, 0, 4, "asymmetric", length=3)
    with pytest.raises(ValueError, match="only codes of 1 to 4 bits"):
        lq.QuantizedArray(data, 1.0, 0, 8, "asymmetric", length=3)
    with pytest.raises(TypeError, match="uint8"):
        lq.QuantizedArray(data.astype(np.int8), 1.0, 0, 4, "asymmetric", length=5)


# --- 1-bit codes ---------------------------------------------------------------------------------


def test_signed_1_bit_codes_are_the_sign(backend: str) -> None:
    x = np.array([[-2.0, 0.0, 0.5], [3.0, -0.0, -1e-30]], np.float32)
    qa = lq.quantize(x, 1, "symmetric")
    np.testing.assert_array_equal(qa.data, [[-1, -1, 1], [1, -1, -1]])
    assert qa.scale == 3.0 and qa.zero_point == 0
    np.testing.assert_array_equal(qa.dequantize(), [[-3, -3, 3], [3, -3, -3]])
    packed = lq.quantize(x, 1, "symmetric", pack=True)
    np.testing.assert_array_equal(packed.data, np.packbits(x > 0, axis=-1))
    per_row = lq.quantize(x, 1, "symmetric", axis=0)
    np.testing.assert_array_equal(per_row.scale, [2.0, 3.0])
    given = lq.quantize_linear(x, 0.25, dtype="int8", bits=1)
    np.testing.assert_array_equal(given, qa.data)
    wide = lq.quantize_linear(x, 0.25, dtype="int16", bits=1)
    assert wide.dtype == np.int16
    np.testing.assert_array_equal(wide, qa.data)
    out = np.zeros((3, 2), np.int8).T  # a strided view
    lq.quantize_linear(x[:, ::-1], 1.0, dtype="int8", bits=1, out=out)
    np.testing.assert_array_equal(out, qa.data[:, ::-1])


def test_signed_1_bit_nan(backend: str) -> None:
    x = np.array([1.0, np.nan, -1.0])
    with pytest.raises(ValueError, match=r"1 NaN value, the first at index \(1,\)"):
        lq.quantize(x, 1, "symmetric")
    np.testing.assert_array_equal(lq.quantize(x, 1, "symmetric", nan="zero").data, [1, -1, -1])


def test_unsigned_1_bit_codes_are_affine(backend: str) -> None:
    x = np.array([0.0, 0.2, 0.6, 1.0])
    qa = lq.quantize(x, 1)
    assert qa.scale == 1.0 and qa.zero_point == 0
    np.testing.assert_array_equal(qa.data, [0, 0, 1, 1])


# --- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_files_hold_packed_codes(tmp_path: Path, bits: int, scheme: str) -> None:
    x = RNG.standard_normal((40, 33)).astype(np.float32)
    qa = lq.quantize(x, bits, scheme, axis=1, block_size=8)
    path = tmp_path / "q.npz"
    lq.save(path, qa)
    back = lq.load(path)
    assert back.packed and back.shape == qa.shape
    np.testing.assert_array_equal(back.codes(), qa.data)
    np.testing.assert_array_equal(back.dequantize(), qa.dequantize())
    fmt = code_format(bits, scheme == "symmetric", packed=True)
    with np.load(path) as archive:
        meta = json.loads(str(archive["metadata"]))
        assert archive["codes"].shape == fmt.stored_shape(x.shape)
        assert ("zero_point" in archive.files) == (scheme == "asymmetric")
        if scheme == "asymmetric":
            assert archive["zero_point"].dtype == np.uint8
    assert meta["format_version"] == 3 and meta["code_format"] == fmt.name
    lq.save(tmp_path / "again.npz", back)  # a packed QuantizedArray saves as it is
    assert (tmp_path / "again.npz").read_bytes() == path.read_bytes()


def test_a_4_bit_file_is_a_quarter_of_the_floats(tmp_path: Path) -> None:
    x = RNG.standard_normal((768, 1024)).astype(np.float32)  # 3 MiB
    lq.save(tmp_path / "q.npz", lq.quantize(x, 4))
    size = (tmp_path / "q.npz").stat().st_size
    assert size < x.nbytes / 8 + 4096  # the zip's and the headers' bytes


def _write_file(path: Path, meta: dict, **members: np.ndarray) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in {"metadata": np.array(json.dumps(meta)), **members}.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, value, allow_pickle=False)


def _meta(**fields: object) -> dict:
    meta = {
        "format": "linquant.QuantizedArray",
        "format_version": 1,
        "linquant_version": "0.1.0",
        "bits": 4,
        "scheme": "asymmetric",
        "axis": None,
        "block_size": None,
        "source_dtype": "float32",
        "shape": [2, 3],
    }
    meta.update(fields)
    return meta


def test_earlier_file_versions_still_load(tmp_path: Path) -> None:
    codes = np.array([[0, 7, 3], [4, 5, 6]], np.uint8)
    path = tmp_path / "v1.npz"
    scale, zero_point = np.float32(0.5), np.int32(3)
    _write_file(path, _meta(), codes=codes, scale=scale, zero_point=zero_point)
    qa = lq.load(path)
    assert not qa.packed and qa.rounding == "half_even"  # as the file holds them
    np.testing.assert_array_equal(qa.codes(), codes)
    v2 = _meta(format_version=2, rounding="stochastic", seed=9, scheme="symmetric", bits=3)
    _write_file(
        tmp_path / "v2.npz",
        v2,
        codes=codes.astype(np.int8) - 4,
        scale=scale,
        zero_point=np.int32(0),
    )
    qa = lq.load(tmp_path / "v2.npz")
    assert qa.seed == 9 and qa.format.name == "int8"
    np.testing.assert_array_equal(qa.codes(), codes.astype(np.int8) - 4)


@pytest.mark.parametrize(
    ("fields", "members", "message"),
    [
        ({}, {"codes": np.zeros((2, 3), np.uint8)}, r"codes have shape \(2, 3\), .* says \(2, 2\)"),
        ({"code_format": "int4"}, {}, "code_format must be 'uint4'"),
        ({"bits": 8}, {}, "code_format must be 'uint8'|only codes"),
        ({}, {"codes": np.zeros((2, 2), np.int8)}, "packed codes have dtype int8"),
        ({"bits": 3}, {"codes": np.full((2, 2), 0x80, np.uint8)}, r"codes outside \[0, 7\]"),
        ({"shape": []}, {"codes": np.zeros(1, np.uint8)}, "C order with at least one axis"),
        ({"scheme": "asymmetric"}, {"zero_point": None}, "no zero_point"),
    ],
)
def test_bad_packed_files_are_refused(
    tmp_path: Path, fields: dict, members: dict, message: str
) -> None:
    arrays = {
        "codes": np.zeros((2, 2), np.uint8),
        "scale": np.float32(1.0),
        "zero_point": np.uint8(0),
    }
    arrays.update(members)
    arrays = {name: value for name, value in arrays.items() if value is not None}
    path = tmp_path / "bad.npz"
    _write_file(path, _meta(**{"format_version": 3, "code_format": "uint4", **fields}), **arrays)
    with pytest.raises(ValueError, match=message) as error:
        lq.load(path)
    assert str(path) in str(error.value)


def test_packed_file_sizes_are_checked_before_reading(tmp_path: Path) -> None:
    """A packed member is read by its stored size, chunk by chunk: huge claims are refused."""
    path = tmp_path / "huge.npz"
    meta = _meta(format_version=3, code_format="uint4", shape=[2**40, 2])
    _write_file(
        path, meta, codes=np.zeros((4, 1), np.uint8), scale=np.float32(1), zero_point=np.uint8(0)
    )
    with pytest.raises(ValueError, match="codes have shape"):
        lq.load(path)
