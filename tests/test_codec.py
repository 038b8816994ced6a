"""The numcodecs codec (``linquant.codec``) and its use in Zarr arrays (``linquant.zarr``).

- every encoded chunk decodes, bit for bit, to what ``lq.quantize(chunk)`` then
  ``dequantize`` give in memory (dynamic parameters), or ``quantize_linear`` then
  ``dequantize_linear`` (fixed ones), in the chunk's shape, dtype and memory order; the
  encoded chunk carries the codes and parameters; chunks of format version 1 still decode;
- every rounding mode gives the codes of those calls with that mode; stochastic rounding
  counts each chunk's indices from its own first element;
- out-of-range values saturate where numcodecs' FixedScaleOffset wraps;
- raw bytes are read as the codec's ``dtype``; an ``out`` of the wrong dtype or size raises;
- configurations round-trip, numcodecs and Zarr find the codec by their entry points in an
  interpreter that has not imported linquant; bad configurations raise; damaged chunks and
  headers that claim more than their bytes hold raise ValueError, allocating nothing on it;
- real Zarr arrays on disk, format 3 (serializer) and format 2 (filter, compressor), in C
  and Fortran order, of float16, float32 and float64;
- packed chunks (``pack=True``, format version 3): their codes are the bytes of
  ``lq.quantize(chunk, pack=True)``, they decode as the unpacked chunks do, for 1 to 4 bits,
  both schemes, every grouping and stochastic rounding, on drawn shapes with odd last
  dimensions; they take about ``n / 2`` bytes of codes at 4 bits, ``n / 8`` at 1 bit; wider
  codes and 0-d chunks stay version 2; damaged packed chunks raise ValueError; Zarr arrays
  store them.

numcodecs and Zarr 3 need CPython 3.11 or later and have no wheels for musl libc or Windows
ARM64; there the ``test`` extra leaves them out and this module skips.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import linquant as lq

_NO_CODEC = (
    "numcodecs and Zarr are optional (the codec extra) and have no wheels for this platform "
    "or Python (pyproject.toml's test extra says where): linquant.codec needs them"
)
numcodecs = pytest.importorskip("numcodecs", reason=_NO_CODEC)
zarr = pytest.importorskip("zarr", reason=_NO_CODEC)

from linquant.codec import Linquant, decode_chunk  # noqa: E402
from linquant.zarr import Linquant as ZarrLinquant  # noqa: E402

# Zarr warns on every use of a numcodecs codec in a format 3 array that other Zarr
# implementations may not read it; that is so, and these tests use one on purpose.
ZARR3_NUMCODECS = pytest.mark.filterwarnings(
    "ignore:Numcodecs codecs are not in the Zarr version 3 specification"
    ":zarr.errors.ZarrUserWarning"
)


def bitwise_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def sample(shape: tuple[int, ...], dtype: str = "float32", seed: int = 0) -> np.ndarray:
    """Values of both signs, exact zeros, negative zeros and ties at 0.5 steps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 20.0, size=shape)
    flat = x.reshape(-1)
    flat[::7] = np.round(flat[::7]) + 0.5
    flat[3::11] = 0.0
    flat[5::13] = -0.0
    return x.astype(dtype)


DYNAMIC = [
    {"bits": 8},
    {"bits": 2},
    {"bits": 12, "include_zero": False},
    {"bits": 16, "scheme": "symmetric"},
    {"bits": 4, "scheme": "symmetric", "narrow_range": True},
    {"bits": 8, "axis": 0},
    {"bits": 8, "axis": -1, "scheme": "symmetric"},
    {"bits": 6, "axis": 1, "block_size": 4},
    {"bits": 10, "axis": 0, "block_size": 3, "include_zero": False},
    {"bits": 1},
    {"bits": 1, "scheme": "symmetric", "axis": 1, "block_size": 4},  # the sign of x
]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("options", DYNAMIC)
def test_dynamic_chunk_decodes_to_quantize_then_dequantize(options: dict, dtype: str) -> None:
    x = sample((7, 10), dtype)
    codec = Linquant(**options)
    encoded = codec.encode(x)
    expected = lq.quantize(x, **options)
    chunk = decode_chunk(encoded)
    assert bitwise_equal(chunk.codes, expected.data)
    assert bitwise_equal(np.asarray(chunk.scale), np.asarray(expected.scale))
    assert bitwise_equal(np.asarray(chunk.zero_point, np.int32), np.asarray(expected.zero_point))
    assert (chunk.axis, chunk.block_size) == (expected.axis, expected.block_size)
    assert chunk.dtype == x.dtype
    # float64 dequantizes in float64, float16 and float32 in float32, each back to its dtype
    x_hat = expected.dequantize("float64" if dtype == "float64" else "float32")
    assert bitwise_equal(codec.decode(encoded), x_hat.astype(dtype))


@pytest.mark.parametrize(
    "options",
    [
        {"scale": 0.25, "zero_point": 100},
        {"scale": 1e-3, "zero_point": -40000, "bits": 16},
        {"scale": 3.0, "bits": 4, "scheme": "symmetric", "narrow_range": True},
        {"scale": 0.1, "zero_point": 3, "bits": 12, "scheme": "symmetric"},
    ],
)
def test_fixed_chunk_decodes_to_quantize_linear_then_dequantize_linear(options: dict) -> None:
    x = sample((5, 6, 4), "float32")
    x.reshape(-1)[:3] = [np.inf, -np.inf, 1e30]  # saturate with given parameters
    codec = Linquant(**options)
    bits = options.get("bits", 8)
    signed = options.get("scheme") == "symmetric"
    dtype = {(False, 8): "uint8", (True, 8): "int8", (False, 16): "uint16", (True, 16): "int16"}[
        (signed, 8 if bits <= 8 else 16)
    ]
    scale, zero_point = options["scale"], options.get("zero_point", 0)
    narrow_range = options.get("narrow_range", False)
    q = lq.quantize_linear(x, scale, zero_point, dtype=dtype, bits=bits, narrow_range=narrow_range)
    assert bitwise_equal(decode_chunk(codec.encode(x)).codes, q)
    expected = lq.dequantize_linear(q, scale, zero_point)
    assert bitwise_equal(codec.decode(codec.encode(x)), expected)


def test_out_of_range_values_saturate_where_fixedscaleoffset_wraps() -> None:
    x = np.array([-1.0, 0.0, 1.0, 254.0, 300.0])
    wrapped = numcodecs.FixedScaleOffset(offset=0, scale=1, dtype="f8", astype="u1").encode(x)
    codec = Linquant(scale=1.0, zero_point=0, astype="float64")
    codes = decode_chunk(codec.encode(x)).codes
    assert wrapped.tolist() == [255, 0, 1, 254, 44]  # -1 and 300 wrap around
    assert codes.tolist() == [0, 0, 1, 254, 255]  # saturated to [0, 255] (SPEC §2)
    assert codec.decode(codec.encode(x)).tolist() == [0.0, 0.0, 1.0, 254.0, 255.0]


def test_decode_writes_into_out() -> None:
    x = sample((6, 5), "float64")
    codec = Linquant(bits=8, axis=1, astype="float64")
    out = np.full(x.shape, np.nan)
    result = codec.decode(codec.encode(x), out=out)
    assert result is out
    assert bitwise_equal(out, lq.quantize(x, axis=1).dequantize("float64"))


def test_nan_raises_or_is_quantized_as_zero() -> None:
    x = sample((4, 5), "float32")
    x[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN value, the first at index \(2, 3\)"):
        Linquant().encode(x)
    codec = Linquant(nan="zero")
    expected = lq.quantize(x, nan="zero").dequantize()
    assert bitwise_equal(codec.decode(codec.encode(x)), expected)


def test_non_float_chunks_raise_type_error() -> None:
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        Linquant().encode(np.arange(4))


ROUNDINGS = [
    {"rounding": "half_even"},
    {"rounding": "half_away"},
    {"rounding": "half_up"},
    {"rounding": "floor"},
    {"rounding": "ceil"},
    {"rounding": "trunc"},
    {"rounding": "stochastic", "seed": 2**64 - 1},
]


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("parameters", ["dynamic", "fixed"])
def test_each_rounding_mode_gives_the_codes_of_the_call(parameters: str, order: str) -> None:
    """Each mode's codes are those of the in-memory call (stochastic: indices in C order of
    the chunk, whatever its memory order), the modes' codes differ (the sample has ties at
    scale 1.0, negative values and fractions), and decoding is that of the codes."""
    x = sample((7, 10, 3), "float32")  # x / 1.0 has ties at the 0.5 steps
    chunk = np.asarray(x, order=order)
    seen = []
    for rounding in ROUNDINGS:
        if parameters == "dynamic":
            codec = Linquant(bits=6, axis=1, **rounding)
            expected = lq.quantize(x, bits=6, axis=1, **rounding)
            codes, scale, zero_point = expected.data, expected.scale, expected.zero_point
        else:
            codec = Linquant(scale=1.0, zero_point=-5, bits=8, scheme="symmetric", **rounding)
            scale, zero_point = 1.0, -5
            codes = lq.quantize_linear(x, scale, zero_point, dtype="int8", **rounding)
        encoded = codec.encode(chunk)
        assert bitwise_equal(np.ascontiguousarray(decode_chunk(encoded).codes), codes)
        axis = 1 if parameters == "dynamic" else None
        x_hat = lq.dequantize_linear(codes, scale, zero_point, axis=axis)
        assert bitwise_equal(np.ascontiguousarray(codec.decode(encoded)), x_hat)
        seen.append(codes.tobytes())
    # a dynamic scale leaves no ties here: the three modes to nearest agree
    assert len(set(seen)) == (5 if parameters == "dynamic" else len(ROUNDINGS))


def test_stochastic_rounding_depends_on_the_seed_not_on_where_the_chunk_lies() -> None:
    x = sample((40, 6), "float64")
    codec = Linquant(bits=5, rounding="stochastic", seed=3)
    first, second = (decode_chunk(codec.encode(piece)).codes for piece in (x[:20], x[20:]))
    assert bitwise_equal(first, lq.quantize(x[:20], bits=5, rounding="stochastic", seed=3).data)
    assert bitwise_equal(second, lq.quantize(x[20:], bits=5, rounding="stochastic", seed=3).data)
    whole = lq.quantize(x[20:], bits=5, rounding="stochastic", seed=3, position=((20, 0), x.shape))
    assert not bitwise_equal(second, whole.data)  # not the codes of the whole array
    other = Linquant(bits=5, rounding="stochastic", seed=4)
    assert not bitwise_equal(decode_chunk(other.encode(x[:20])).codes, first)


CONFIGS = [
    {},
    {"bits": 4, "scheme": "symmetric", "narrow_range": True, "nan": "zero"},
    {"bits": 12, "axis": 1, "block_size": 32, "include_zero": False, "astype": "float64"},
    {"scale": 0.125, "zero_point": -3, "bits": 16},
    {"dtype": "float16"},
    {"rounding": "floor", "bits": 4},
    {"rounding": "stochastic", "seed": 2**64 - 1, "scale": 0.5},
    {"pack": True, "bits": 2, "axis": 0},
    {"pack": True, "bits": 8},
]


@pytest.mark.parametrize("config", CONFIGS)
def test_config_round_trips_through_json_and_the_registry(config: dict) -> None:
    codec = Linquant(**config)
    stored = json.loads(json.dumps(codec.get_config()))
    assert stored["id"] == "linquant"
    assert {key: stored[key] for key in config} == config
    again = numcodecs.get_codec(stored)
    assert type(again) is Linquant
    assert again == codec
    assert again.get_config() == codec.get_config()
    assert Linquant.from_config({k: v for k, v in stored.items() if k != "id"}) == codec
    assert codec != Linquant(**{**config, "bits": 3})


def test_the_default_rounding_is_left_out_of_the_config() -> None:
    """What a codec of the default rounding stores takes no argument that older codecs lack."""
    stored = Linquant(rounding="half_even").get_config()
    assert "rounding" not in stored and "seed" not in stored
    assert numcodecs.get_codec(stored) == Linquant()
    assert Linquant(rounding="half_up") != Linquant()
    assert Linquant(rounding="stochastic", seed=1) != Linquant(rounding="stochastic", seed=2)
    assert Linquant(rounding="stochastic", seed=np.uint64(7)).get_config()["seed"] == 7


def test_pack_is_in_the_config_only_where_it_is_true() -> None:
    """A codec that stores unpacked chunks configures as one that predates ``pack``."""
    assert "pack" not in Linquant(pack=False).get_config()
    assert Linquant(pack=False) == Linquant()
    stored = Linquant(bits=4, pack=True).get_config()
    assert stored["pack"] is True
    assert numcodecs.get_codec(stored) == Linquant(bits=4, pack=True) != Linquant(bits=4)
    assert Linquant(pack=np.bool_(True)).get_config()["pack"] is True


def test_numcodecs_finds_the_codec_without_importing_linquant(python) -> None:
    code = (
        "import sys, numcodecs\n"
        "assert 'linquant' not in sys.modules\n"
        "codec = numcodecs.get_codec({'id': 'linquant', 'bits': 4})\n"
        "print(type(codec).__module__, type(codec).__name__, codec.bits)\n"
    )
    assert python(code).stdout.split() == ["linquant.codec", "Linquant", "4"]


def test_import_linquant_imports_no_optional_dependency(python) -> None:
    code = (
        "import sys, linquant\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'numcodecs', 'zarr', 'dask', 'distributed', 'onnx', 'torch', 'safetensors', "
        "'ml_dtypes'}))\n"
    )
    assert python(code).stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bits": 0}, "bits must be an int from 1 to 16"),
        ({"bits": 17}, "bits must be an int from 1 to 16"),
        ({"bits": 8.0}, "bits must be an int"),
        ({"scheme": "affine"}, "scheme must be one of"),
        ({"nan": "ignore"}, "nan must be one of"),
        ({"astype": "float16"}, "dtype must be one of"),
        ({"axis": "0"}, "axis must be an int"),
        ({"axis": 0, "block_size": 0}, "block_size must be a positive int"),
        ({"block_size": 8}, "block_size needs an axis"),
        ({"scheme": "symmetric", "include_zero": False}, "include_zero=False applies"),
        ({"narrow_range": True}, "narrow_range=True applies"),
        ({"zero_point": 3}, "zero_point applies to fixed parameters"),
        ({"scale": 0.0}, "scale must be positive and finite"),
        ({"scale": -1.0}, "scale must be positive and finite"),
        ({"scale": math.nan}, "scale must be positive and finite"),
        ({"scale": math.inf}, "scale must be positive and finite"),
        ({"scale": "0.1"}, "scale must be a real number"),
        ({"scale": 0.1, "zero_point": 2**31}, "zero_point must fit in int32"),
        ({"scale": 0.1, "axis": 0}, "apply to dynamic parameters only"),
        ({"scale": 0.1, "narrow_range": True}, "narrow_range=True needs a signed dtype"),
        ({"dtype": "int8"}, "dtype must be None or one of"),
        ({"dtype": "float128"}, "dtype must be None or one of"),
        ({"rounding": "nearest"}, "rounding must be one of"),
        ({"rounding": None}, "rounding must be one of"),
        ({"rounding": "stochastic"}, "rounding='stochastic' needs seed="),
        ({"rounding": "stochastic", "seed": 2**64}, "rounding='stochastic' needs seed="),
        ({"rounding": "stochastic", "seed": -1}, "rounding='stochastic' needs seed="),
        ({"rounding": "stochastic", "seed": 1.0}, "rounding='stochastic' needs seed="),
        ({"rounding": "stochastic", "seed": True}, "rounding='stochastic' needs seed="),
        ({"seed": 3}, "seed applies to rounding='stochastic' only"),
        ({"rounding": "floor", "seed": 3}, "seed applies to rounding='stochastic'"),
        ({"pack": 1}, "pack must be True or False, got 1"),
        ({"pack": "yes"}, "pack must be True or False"),
        ({"pack": None}, "pack must be True or False"),
    ],
)
def test_bad_configuration_raises_at_construction(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Linquant(**options)


# Header bytes (see linquant.codec): the byte each corruption changes, and the value it writes.
HEADER_BYTES = {
    "magic": (3, ord("X")),
    "version": (4, 99),
    "dtype": (5, 9),
    "scale dtype": (6, 0),
    "axis": (8, 5),  # axis 5 of a 2-d chunk
    "source dtype": (9, 4),
    "order": (10, 2),
    "reserved": (14, 1),
    "block size": (16, 3),  # a block size without an axis
}
CUTS = {
    "empty": lambda chunk: b"",
    "header cut": lambda chunk: chunk[:10],
    "shape cut": lambda chunk: chunk[:30],
    "one byte short": lambda chunk: chunk[:-1],
    "one byte more": lambda chunk: chunk + b"\0",
}


@pytest.mark.parametrize("what", [*CUTS, *HEADER_BYTES])
def test_corrupted_or_truncated_chunk_raises_value_error(what: str) -> None:
    codec = Linquant()
    chunk = codec.encode(sample((3, 4)))
    assert codec.decode(chunk).shape == (3, 4)
    if what in CUTS:
        damaged = CUTS[what](chunk)
    else:
        index, value = HEADER_BYTES[what]
        damaged = chunk[:index] + bytes([value]) + chunk[index + 1 :]
    with pytest.raises(ValueError, match="linquant chunk"):
        codec.decode(damaged)


def craft(
    shape: tuple[int, ...],
    axis: int = 255,
    block_size: int = 0,
    params: bytes = np.float32(1.0).tobytes() + bytes(4),
    codes: bytes = b"",
    ndim: int | None = None,
    version: int = 2,
    scale_dtype: int = 1,
) -> bytes:
    """A chunk of float32 source and uint8 codes whose header claims these (``scale_dtype``
    1 for float32 scales, 2 for float64)."""
    ndim = len(shape) if ndim is None else ndim
    header = struct.pack(
        "<4sBBBBBBB5xQ", b"LQNT", version, 1, scale_dtype, ndim, axis, 2, 0, block_size
    )
    return header + struct.pack(f"<{len(shape)}Q", *shape) + params + codes


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("shape", [(2**24, 0), (2**40, 0), (2**60 - 1, 0)])
def test_an_empty_chunk_of_a_huge_claimed_shape_decodes_allocating_nothing_on_it(
    backend: str, shape: tuple[int, ...], version: int
) -> None:
    # per block of 1 along axis 0: no parameters, yet a block per element of it (with float64
    # scales, the widest array NumPy allows)
    chunk = craft(shape, axis=0, block_size=1, params=b"", version=version, scale_dtype=2)
    tracemalloc.start()
    try:
        decoded = Linquant().decode(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**16
    assert decoded.shape == shape and decoded.dtype == np.float32


SCALE_0 = np.float32(0.0).tobytes() + bytes(4)
# What a damaged header claims (craft's arguments), and what the error says.
BAD_HEADERS: dict[str, tuple[dict, str]] = {
    "a dimension of 2**63": ({"shape": (2**63, 0)}, "no NumPy array has shape"),
    "a dimension of 2**64 - 1": ({"shape": (0, 2**64 - 1)}, "no NumPy array has shape"),
    "2**62 float64 elements": ({"shape": (2**62, 0, 7)}, "no NumPy array has shape"),
    "65 dimensions": ({"shape": (0,) * 65}, "65 dimensions, over NumPy's 64"),
    "255 dimensions": ({"shape": (0,) * 255}, "255 dimensions, over"),
    "255 dimensions, shape cut": ({"shape": (), "ndim": 255}, "255 dimensions, over"),
    "block_size 2**63": ({"shape": (0, 0), "axis": 0, "block_size": 2**63}, "block_size must"),
    "block_size 2**64 - 1": (
        {"shape": (1,), "axis": 0, "block_size": 2**64 - 1, "codes": b"\1"},
        "block_size must be",
    ),
    "axis past ndim": ({"shape": (2, 2), "axis": 2, "codes": bytes(4)}, "axis 2 is out of range"),
    "per-axis parameters cut": ({"shape": (2**40, 0), "axis": 0}, "bytes where its header says"),
    "zero scale": ({"shape": (1,), "params": SCALE_0, "codes": b"\1"}, "scale must be positive"),
    "NaN scale": (
        {"shape": (1,), "params": np.float32("nan").tobytes() + bytes(4), "codes": b"\1"},
        "scale must be positive",
    ),
    "a zero scale per block": (
        {"shape": (2,), "axis": 0, "block_size": 1, "params": SCALE_0 + SCALE_0, "codes": b"12"},
        "every scale must be positive",
    ),
}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("what", BAD_HEADERS)
def test_a_header_claim_its_bytes_do_not_back_raises_value_error(
    backend: str, what: str, version: int
) -> None:
    claims, message = BAD_HEADERS[what]
    with pytest.raises(ValueError, match=r"^(corrupted|truncated).* linquant chunk: ") as info:
        Linquant().decode(craft(**claims, version=version))
    assert info.match(message)


def test_version_1_chunks_decode_in_c_order_to_astype() -> None:
    # a chunk as format version 1 wrote it: 7 padding bytes, codes in C order, no dtype
    codes = np.array([[0, 1, 2], [3, 4, 255]], np.uint8)
    params = np.float64(0.5).tobytes() + np.int32(1).tobytes()
    chunk = craft((2, 3), params=params, codes=codes.tobytes(), version=1, scale_dtype=2)
    for astype in ("float32", "float64"):
        expected = lq.dequantize_linear(codes, 0.5, 1, dtype=astype)
        assert bitwise_equal(Linquant(astype=astype).decode(chunk).reshape(2, 3), expected)


def test_fortran_ordered_chunk_decodes_in_fortran_order() -> None:
    x = sample((6, 5), "float64")
    codec = Linquant(bits=8, axis=1)
    decoded = codec.decode(codec.encode(np.asfortranarray(x)))
    assert decoded.flags.f_contiguous and not decoded.flags.c_contiguous
    assert bitwise_equal(np.ascontiguousarray(decoded), codec.decode(codec.encode(x)))
    # numcodecs reads a chunk in its memory order: an out of another shape takes it so
    flat = np.empty(x.size)
    assert codec.decode(codec.encode(np.asfortranarray(x)), out=flat) is flat
    assert bitwise_equal(flat, numcodecs.compat.ndarray_copy(decoded, np.empty(x.size)))
    assert bitwise_equal(flat, decoded.reshape(-1, order="F"))
    c_ordered = np.empty(x.shape)  # an out of the chunk's shape takes the values by index
    codec.decode(codec.encode(np.asfortranarray(x)), out=c_ordered)
    assert bitwise_equal(c_ordered, np.ascontiguousarray(decoded))


@pytest.mark.parametrize("options", [{}, {"axis": 2}, {"axis": 0, "block_size": 5}, {"scale": 0.1}])
def test_fortran_ordered_chunk_of_3_dimensions_takes_memory_of_its_size(options: dict) -> None:
    # In C order, the compiled kernels' order, it was a piece per pair of its last two
    # dimensions (137 times its size); the NumPy backend's temporaries take up to about 9.
    x = np.asfortranarray(sample((4000, 2, 2), "float32"))
    bound = 1 if lq.get_backend() == "cython" else 3
    codec = Linquant(**options)
    tracemalloc.start()
    try:
        chunk = codec.encode(x)
        encoding = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        decoded = codec.decode(chunk)
        decoding = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert encoding < 4 * bound * x.nbytes and decoding < 3 * bound * x.nbytes
    assert bitwise_equal(np.ascontiguousarray(decoded), codec.decode(codec.encode(x.copy())))


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1, 1)])
def test_0_d_and_empty_chunks_keep_their_shape(shape: tuple[int, ...]) -> None:
    x = np.full(shape, 2.5, np.float32)
    for codec in (Linquant(bits=3), Linquant(scale=0.5), Linquant(axis=-1, block_size=2)):
        if codec.axis is not None and x.ndim == 0:
            continue
        assert bitwise_equal(codec.decode(codec.encode(x)), x)


def test_raw_bytes_are_read_as_the_codec_dtype() -> None:
    x = sample((12,), "float32")
    expected = Linquant(bits=6).encode(x)
    codec = Linquant(bits=6, dtype="float32")
    for buf in (x.tobytes(), bytearray(x.tobytes()), memoryview(x.tobytes()), x.view(np.uint8)):
        assert codec.encode(buf) == expected
    assert codec.encode(x) == expected
    assert Linquant().encode(memoryview(x)) == Linquant().encode(x)  # a buffer of floats
    with pytest.raises(TypeError, match=r"float16, float32 or float64.*dtype="):
        Linquant().encode(x.tobytes())
    with pytest.raises(TypeError, match="the codec's dtype= float32"):
        codec.encode(x.astype(np.float64))
    with pytest.raises(ValueError, match="not a whole number of float32"):
        codec.encode(x.tobytes()[:-1])


def test_decode_refuses_an_out_of_the_wrong_dtype_or_size() -> None:
    x = sample((6, 5), "float64")
    chunk = Linquant().encode(x)  # float64 data: the chunk decodes to float64
    with pytest.raises(TypeError, match="out must have dtype float64, got object"):
        Linquant().decode(chunk, out=np.empty(x.shape, object))
    with pytest.raises(TypeError, match="out must have dtype float64, got float32"):
        Linquant().decode(chunk, out=np.empty(x.shape, np.float32))
    with pytest.raises(ValueError, match=r"out must have 30 elements \(shape \(6, 5\)\), got 31"):
        Linquant().decode(chunk, out=np.empty(31))
    read_only = np.empty(x.shape)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        Linquant().decode(chunk, out=read_only)
    with pytest.raises(ValueError, match="contiguous"):
        Linquant().decode(chunk, out=np.empty(60)[::2])
    strided = np.full((12, 5), np.nan)[::2]  # of the chunk's shape: any strides will do
    Linquant().decode(chunk, out=strided)
    assert bitwise_equal(np.ascontiguousarray(strided), Linquant().decode(chunk))


# --- packed chunks (pack=True, format version 3) -------------------------------------------

# Header of a packed chunk: bytes 4 (version) and 5 (code format; see linquant.codec).
PACKED_FORMAT_CODES = {"uint1": 5, "int1": 6, "uint2": 7, "int2": 8, "uint4": 9, "int4": 10}


@st.composite
def packed_cases(draw: st.DrawFn) -> tuple[np.ndarray, dict]:
    """A float array of 1 to 3 dimensions (odd and even sides, one element, empty) and codec
    options of 1 to 4 bits, either scheme, per tensor, channel or block, any rounding."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=19))
    dtype = draw(st.sampled_from(["float16", "float32", "float64"]))
    x = sample(shape, dtype, seed=draw(st.integers(0, 2**16)))
    options: dict = {"bits": draw(st.integers(1, 4))}
    options["scheme"] = draw(st.sampled_from(["asymmetric", "symmetric"]))
    grouping = draw(st.sampled_from(["tensor", "axis", "block"]))
    if grouping != "tensor":
        options["axis"] = draw(st.integers(-len(shape), len(shape) - 1))
    if grouping == "block":
        options["block_size"] = draw(st.integers(1, 6))
    rounding = draw(st.sampled_from(["half_even", "half_away", "floor", "stochastic"]))
    if rounding == "stochastic":
        options["seed"] = draw(st.integers(0, 2**64 - 1))
    options["rounding"] = rounding
    if options["scheme"] == "asymmetric" and draw(st.booleans()):
        options["include_zero"] = False
    elif options["scheme"] == "symmetric" and options["bits"] > 1 and draw(st.booleans()):
        options["narrow_range"] = True
    return x, options


@settings(max_examples=150, deadline=None)
@given(packed_cases())
def test_packed_chunk_holds_the_packed_codes_and_decodes_as_unpacked(case: tuple) -> None:
    x, options = case
    codec = Linquant(pack=True, **options)
    encoded = codec.encode(x)
    expected = lq.quantize(x, pack=True, **options)
    chunk = decode_chunk(encoded)
    assert (encoded[4], encoded[5]) == (3, PACKED_FORMAT_CODES[expected.format.name])
    assert chunk.length == x.shape[-1] and chunk.shape == x.shape
    assert chunk.format == expected.format
    assert bitwise_equal(chunk.codes, expected.data)
    assert bitwise_equal(np.asarray(chunk.scale), np.asarray(expected.scale))
    assert bitwise_equal(np.asarray(chunk.zero_point, np.int32), np.asarray(expected.zero_point))
    unpacked_codec = Linquant(**options)
    unpacked = unpacked_codec.encode(x)
    assert unpacked[4] == 2
    assert bitwise_equal(chunk.unpacked(), decode_chunk(unpacked).codes)
    decoded = codec.decode(encoded)
    assert bitwise_equal(decoded, unpacked_codec.decode(unpacked))
    work = "float64" if x.dtype == np.float64 else "float32"
    assert bitwise_equal(decoded, expected.dequantize(work).astype(x.dtype))
    out = np.full(x.size, np.nan, x.dtype)  # flat: in the chunk's (C) memory order
    assert codec.decode(encoded, out=out) is out
    assert bitwise_equal(out, decoded.reshape(-1))


@pytest.mark.parametrize(
    ("bits", "scheme", "per_byte"),
    [(4, "asymmetric", 2), (3, "symmetric", 2), (2, "symmetric", 4), (1, "asymmetric", 8)],
)
def test_packed_chunk_is_smaller_by_the_codes_a_byte_holds(
    bits: int, scheme: str, per_byte: int
) -> None:
    x = sample((64, 101), "float32")
    packed = Linquant(bits=bits, scheme=scheme, pack=True).encode(x)
    unpacked = Linquant(bits=bits, scheme=scheme).encode(x)
    header = 24 + 2 * 8 + 4 + 4  # header, shape, one float32 scale, one zero point
    assert len(unpacked) == header + 64 * 101
    assert len(packed) == header + 64 * math.ceil(101 / per_byte)  # each row on a byte
    assert len(packed) - header <= (len(unpacked) - header) / per_byte + 64  # a part byte a row


def test_packed_chunk_with_fixed_parameters_holds_the_packed_codes() -> None:
    x = sample((5, 6, 7), "float32")
    x.reshape(-1)[:2] = [np.inf, -np.inf]  # saturate
    for options, dtype in [
        ({"scale": 2.0, "zero_point": 7, "bits": 4}, "uint8"),
        ({"scale": 1.5, "bits": 3, "scheme": "symmetric", "narrow_range": True}, "int8"),
        ({"scale": 0.5, "bits": 1, "scheme": "symmetric"}, "int8"),  # the sign: -1 or +1
        ({"scale": 4.0, "zero_point": 2, "bits": 2, "rounding": "stochastic", "seed": 1}, "uint8"),
    ]:
        codec = Linquant(pack=True, **options)
        encoded = codec.encode(x)
        settings = {k: v for k, v in options.items() if k not in ("scale", "zero_point", "scheme")}
        codes = lq.quantize_linear(
            x, options["scale"], options.get("zero_point", 0), dtype=dtype, **settings
        )
        assert encoded[4] == 3
        assert bitwise_equal(decode_chunk(encoded).codes, lq.pack(codes, options["bits"]))
        assert bitwise_equal(decode_chunk(encoded).unpacked(), codes)
        expected = lq.dequantize_linear(codes, options["scale"], options.get("zero_point", 0))
        assert bitwise_equal(codec.decode(encoded), expected)


@pytest.mark.parametrize(
    ("options", "x"),
    [
        ({"bits": 5}, sample((4, 9))),
        ({"bits": 16, "axis": 0}, sample((4, 9))),
        ({"bits": 4}, np.array(2.5, np.float32)),  # 0-d: never packed
        ({"bits": 2, "scale": 0.5}, np.array(-1.0)),
    ],
)
def test_pack_leaves_wider_codes_and_0_d_chunks_as_version_2(options: dict, x: np.ndarray) -> None:
    encoded = Linquant(pack=True, **options).encode(x)
    assert encoded == Linquant(**options).encode(x)
    assert encoded[4] == 2


def test_packed_fortran_ordered_chunk_decodes_in_fortran_order() -> None:
    """The codes are packed along the chunk's last axis in C order; the chunk decodes to the
    memory order it was encoded from, and a flat ``out`` takes the values in that order."""
    x = sample((6, 5, 3), "float64")
    codec = Linquant(bits=4, axis=1, pack=True)
    encoded = codec.encode(np.asfortranarray(x))
    assert encoded[10] == 1  # the order byte: F
    assert bitwise_equal(decode_chunk(encoded).codes, lq.quantize(x, 4, axis=1, pack=True).data)
    decoded = codec.decode(encoded)
    assert decoded.flags.f_contiguous and not decoded.flags.c_contiguous
    assert bitwise_equal(np.ascontiguousarray(decoded), codec.decode(codec.encode(x)))
    flat = np.empty(x.size)
    codec.decode(encoded, out=flat)
    assert bitwise_equal(flat, decoded.reshape(-1, order="F"))
    by_index = np.empty(x.shape)
    codec.decode(encoded, out=by_index)
    assert bitwise_equal(by_index, np.ascontiguousarray(decoded))


def test_packed_float16_chunk_decodes_to_float16() -> None:
    x = sample((9, 11), "float16")
    x[0, 0] = 60000.0  # the dequantized maximum rounds past float16's range
    codec = Linquant(bits=3, pack=True)
    decoded = codec.decode(codec.encode(x))
    assert decoded.dtype == np.float16
    expected = lq.quantize(x, bits=3).dequantize().astype(np.float16)
    assert bitwise_equal(decoded, expected)
    out = np.empty(x.shape, np.float16)
    assert bitwise_equal(codec.decode(codec.encode(x), out=out), expected)


def test_packed_chunk_refuses_an_out_of_the_wrong_dtype_or_size() -> None:
    chunk = Linquant(bits=4, pack=True).encode(sample((6, 5), "float64"))
    with pytest.raises(TypeError, match="out must have dtype float64, got float32"):
        Linquant().decode(chunk, out=np.empty((6, 5), np.float32))
    with pytest.raises(ValueError, match=r"out must have 30 elements \(shape \(6, 5\)\), got 18"):
        Linquant().decode(chunk, out=np.empty(18))  # the bytes of the packed codes
    with pytest.raises(ValueError, match="contiguous"):
        Linquant().decode(chunk, out=np.empty(60)[::2])


# A packed chunk as this format writes it: version 3, uint4 codes (9), float32 scale and
# source, C order, per tensor, shape (2, 3); the codes 0, 5, 15 / 15, 5, 0, rows of 2 bytes.
GOLDEN_PACKED = bytes.fromhex(
    "4c514e54" "03" "09" "01" "02" "ff" "02" "00" "0000000000" "0000000000000000"
    "0200000000000000" "0300000000000000" "0000003f" "05000000" "50" "0f" "5f" "00"
)  # fmt: skip


def test_golden_packed_chunk_decodes() -> None:
    """The layout of format version 3 (as linquant.codec documents it) stays readable."""
    chunk = decode_chunk(GOLDEN_PACKED)
    assert (chunk.shape, chunk.length, chunk.format.name) == ((2, 3), 3, "uint4")
    assert chunk.unpacked().tolist() == [[0, 5, 15], [15, 5, 0]]
    assert Linquant().decode(GOLDEN_PACKED).tolist() == [[-2.5, 0.0, 5.0], [5.0, 0.0, -2.5]]
    x = np.array([[-2.5, 0.0, 5.0], [5.0, 0.0, -2.5]], np.float32)
    assert Linquant(bits=4, pack=True).encode(x) == GOLDEN_PACKED  # scale 0.5, zero point 5


def test_a_decoder_of_versions_1_and_2_refuses_packed_chunks() -> None:
    """Packed chunks are version 3, which decoders before it refuse by their version check
    (``version not in (1, 2)``) with a clear error; unpacked ones stay version 2."""
    packed = Linquant(bits=4, pack=True).encode(sample((3, 4)))
    assert packed[4] == 3 and Linquant(bits=4).encode(sample((3, 4)))[4] == 2
    as_version_4 = packed[:4] + bytes([4]) + packed[5:]
    with pytest.raises(ValueError, match="linquant chunk format version 4 is not supported"):
        Linquant().decode(as_version_4)


PACKED_DAMAGE = {
    "unpacked codes in version 3": (5, 1, "unknown packed code format code 1"),
    "packed codes in version 2": (4, 2, "unknown code dtype code 9"),
    "unknown packed format": (5, 11, "unknown packed code format code 11"),
    "an 8-bit format's code": (5, 2, "unknown packed code format code 2"),
    "1-bit codes: fewer bytes": (5, 5, "bytes where its header says"),
    "2-bit codes: fewer bytes": (5, 7, "bytes where its header says"),
    "reserved": (13, 1, "reserved header bytes are not zero"),
    "order": (10, 2, "unknown order code 2"),
    "source dtype": (9, 4, "unknown source dtype code 4"),
}


@pytest.mark.parametrize("what", [*CUTS, *PACKED_DAMAGE])
def test_damaged_or_truncated_packed_chunk_raises_value_error(what: str) -> None:
    codec = Linquant(bits=4, pack=True)
    chunk = codec.encode(sample((3, 17)))  # 3 rows of 9 bytes
    assert codec.decode(chunk).shape == (3, 17)
    if what in CUTS:
        damaged = CUTS[what](chunk)
        message = "linquant chunk"
    else:
        index, value, message = PACKED_DAMAGE[what]
        damaged = chunk[:index] + bytes([value]) + chunk[index + 1 :]
    with pytest.raises(ValueError, match=r"^(truncated|corrupted).* linquant chunk: ") as info:
        codec.decode(damaged)
    assert info.match(message)


def craft_packed(shape: tuple[int, ...], code_format: int = 9, **claims: object) -> bytes:
    """A version 3 chunk of packed codes whose header claims ``shape`` (see ``craft``)."""
    chunk = bytearray(craft(shape, **claims))  # type: ignore[arg-type]
    chunk[4], chunk[5] = 3, code_format
    return bytes(chunk)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"shape": ()}, "packed codes of 0 dimensions"),
        ({"shape": (), "codes": b"\1"}, "packed codes of 0 dimensions"),
        ({"shape": (2**40, 3)}, "bytes where its header says"),
        ({"shape": (3, 2**40)}, "bytes where its header says"),
        ({"shape": (2, 3), "codes": bytes(3)}, "51 bytes where its header says 52"),  # 2 a row
        ({"shape": (2, 3), "codes": bytes(5)}, "53 bytes where its header says 52"),
        ({"shape": (2**63, 0)}, "no NumPy array has shape"),
        ({"shape": (2, 1), "params": SCALE_0, "codes": b"\1\2"}, "scale must be positive"),
        (
            {"shape": (1, 4), "axis": 1, "block_size": 2, "params": SCALE_0 * 2, "codes": b"12"},
            "every scale must be positive",
        ),
        ({"shape": (2, 2), "axis": 2, "codes": bytes(2)}, "axis 2 is out of range"),
    ],
)
def test_a_packed_header_claim_its_bytes_do_not_back_raises_value_error(
    backend: str, claims: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=r"^(corrupted|truncated).* linquant chunk: ") as info:
        Linquant().decode(craft_packed(**claims))
    assert info.match(message)


@pytest.mark.parametrize("code_format", list(PACKED_FORMAT_CODES.values()))
def test_any_bits_of_packed_codes_decode(backend: str, code_format: int) -> None:
    """Every byte is a code or codes (the bits of a row past its last code are not read):
    a chunk of all-ones bytes decodes to the largest unsigned codes, to -1 in signed formats
    (+1 in int1, whose bit 1 is +1)."""
    width = {5: 1, 6: 1, 7: 2, 8: 2, 9: 4, 10: 4}[code_format]
    chunk = craft_packed((2, 3), code_format, codes=b"\xff" * 2 * math.ceil(3 * width / 8))
    decoded = Linquant().decode(chunk)
    fmt = decode_chunk(chunk).format
    assert fmt.width == width
    code = (1 if width == 1 else -1) if fmt.signed else 2**width - 1
    expected = np.full((2, 3), code, np.float32)
    assert bitwise_equal(decoded, expected)


@pytest.mark.parametrize("shape", [(2**24, 0), (2**40, 0), (0, 2**60 - 1), (2**60 - 1, 0)])
def test_an_empty_packed_chunk_of_a_huge_claimed_shape_allocates_nothing_on_it(
    backend: str, shape: tuple[int, ...]
) -> None:
    chunk = craft_packed(shape, axis=0, block_size=1, params=b"", scale_dtype=2)
    tracemalloc.start()
    try:
        decoded = Linquant().decode(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**16
    assert decoded.shape == shape and decoded.dtype == np.float32


def decoding_overhead(codec: Linquant, chunk: bytes) -> int:
    """The most memory ``codec.decode(chunk)`` held beyond its result."""
    tracemalloc.start()
    try:
        decoded = codec.decode(chunk)
        held, peak = tracemalloc.get_traced_memory()  # held: the result, unless pooled
    finally:
        tracemalloc.stop()
    del decoded
    return peak - held


def test_decoding_a_packed_chunk_takes_no_memory_that_grows_with_it() -> None:
    """The codes are unpacked a chunk at a time: what decoding holds beyond its result is the
    same for a chunk 4 times as long (each backend has its own per-piece temporaries)."""
    codec = Linquant(bits=1, pack=True)
    small, large = (sample((rows, 2**16 + 3), "float32") for rows in (64, 256))
    small_chunk, large_chunk = codec.encode(small), codec.encode(large)
    assert bitwise_equal(codec.decode(small_chunk), lq.quantize(small, bits=1).dequantize())
    # 4M codes are 4 MiB unpacked: a temporary of their size would show
    assert decoding_overhead(codec, large_chunk) < decoding_overhead(codec, small_chunk) + 2**20


# --- Zarr ----------------------------------------------------------------------------------


def expected_chunks(
    x: np.ndarray, chunks: tuple[int, ...], fill: float, decode: object
) -> np.ndarray:
    """``decode(chunk)`` of every chunk, chunks at the edge padded with ``fill`` as Zarr does."""
    padded_shape = tuple(math.ceil(n / c) * c for n, c in zip(x.shape, chunks, strict=True))
    padded = np.full(padded_shape, fill, x.dtype)
    padded[tuple(slice(0, n) for n in x.shape)] = x
    result = np.empty(padded_shape, x.dtype)
    for index in itertools.product(
        *(range(0, n, c) for n, c in zip(padded_shape, chunks, strict=True))
    ):
        region = tuple(slice(i, i + c) for i, c in zip(index, chunks, strict=True))
        result[region] = decode(padded[region])
    return result[tuple(slice(0, n) for n in x.shape)]


@ZARR3_NUMCODECS
@pytest.mark.parametrize(
    "options", [{"bits": 8}, {"bits": 4, "axis": 1}, {"bits": 12, "axis": 0, "block_size": 5}]
)
def test_zarr3_array_stores_dynamically_quantized_chunks(tmp_path: Path, options: dict) -> None:
    x = sample((23, 30), "float64")
    path = tmp_path / "a.zarr"
    z = zarr.create_array(
        store=path, shape=x.shape, chunks=(10, 12), dtype="float64",
        serializer=ZarrLinquant(**options), compressors=None,
    )  # fmt: skip
    z[:] = x
    assert (path / "c" / "0" / "0").read_bytes()[:4] == b"LQNT"  # the codec wrote the chunk
    stored = json.loads((path / "zarr.json").read_text())["codecs"][0]
    assert stored["name"] == "numcodecs.linquant"
    assert decode_chunk((path / "c" / "0" / "0").read_bytes()).dtype == np.float64
    expected = expected_chunks(
        x, (10, 12), 0.0, lambda chunk: lq.quantize(chunk, **options).dequantize("float64")
    )
    assert bitwise_equal(zarr.open_array(path, mode="r")[:], expected)


@ZARR3_NUMCODECS
def test_zarr3_stochastic_rounding_counts_each_chunk_from_its_first_element(
    tmp_path: Path,
) -> None:
    x = sample((23, 30), "float64")
    options = {"bits": 4, "axis": 1, "rounding": "stochastic", "seed": 11}
    path = tmp_path / "s.zarr"
    z = zarr.create_array(
        store=path, shape=x.shape, chunks=(10, 12), dtype="float64",
        serializer=ZarrLinquant(**options), compressors=None,
    )  # fmt: skip
    z[:] = x
    stored = json.loads((path / "zarr.json").read_text())["codecs"][0]["configuration"]
    assert (stored["rounding"], stored["seed"]) == ("stochastic", 11)
    expected = expected_chunks(
        x, (10, 12), 0.0, lambda chunk: lq.quantize(chunk, **options).dequantize("float64")
    )
    assert bitwise_equal(zarr.open_array(path, mode="r")[:], expected)


@ZARR3_NUMCODECS
def test_zarr3_array_with_fixed_parameters_and_a_compressor(tmp_path: Path) -> None:
    x = sample((40, 16), "float32")
    path = tmp_path / "fixed.zarr"
    z = zarr.create_array(
        store=path, shape=x.shape, chunks=(16, 16), dtype="float32",
        serializer=ZarrLinquant(scale=0.2, zero_point=128), compressors=zarr.codecs.ZstdCodec(),
    )  # fmt: skip
    z[:] = x
    q = lq.quantize_linear(x, 0.2, 128)
    assert bitwise_equal(zarr.open_array(path, mode="r")[:], lq.dequantize_linear(q, 0.2, 128))


def test_zarr3_reads_the_array_without_importing_linquant(tmp_path: Path, python) -> None:
    x = sample((12, 9), "float32")
    path = tmp_path / "b.zarr"
    with pytest.warns(zarr.errors.ZarrUserWarning, match="not in the Zarr version 3"):
        serializer = ZarrLinquant(bits=6, scheme="symmetric")
    z = zarr.create_array(
        store=path, shape=x.shape, chunks=(5, 9), dtype="float32", serializer=serializer
    )
    z[:] = x
    code = (
        "import sys, warnings, numpy as np, zarr\n"
        "warnings.simplefilter('ignore', zarr.errors.ZarrUserWarning)\n"
        f"values = zarr.open_array({str(path)!r}, mode='r')[:]\n"
        "assert 'linquant.zarr' in sys.modules  # loaded by its entry point\n"
        "sys.stdout.write(values.tobytes().hex())\n"
    )
    assert "linquant" not in code.split("assert")[0]
    values = np.frombuffer(bytes.fromhex(python(code).stdout), np.float32).reshape(x.shape)
    expected = expected_chunks(
        x, (5, 9), 0.0, lambda c: lq.quantize(c, bits=6, scheme="symmetric").dequantize()
    )
    assert bitwise_equal(values, expected)


@ZARR3_NUMCODECS
def test_zarr3_bad_configuration_raises_at_construction() -> None:
    with pytest.raises(ValueError, match="bits must be an int from 1 to 16"):
        ZarrLinquant(bits=20)
    with pytest.raises(ValueError, match="rounding='stochastic' needs seed="):
        ZarrLinquant(rounding="stochastic")


@pytest.mark.parametrize("role", ["filter", "compressor"])
def test_zarr2_array_with_the_codec_as_filter_or_compressor(tmp_path: Path, role: str) -> None:
    x = sample((20, 14), "float32")
    path = tmp_path / "v2.zarr"
    codec = Linquant(bits=8, axis=0)
    if role == "filter":
        encoding = {"filters": [codec], "compressors": None}
    else:
        encoding = {"filters": None, "compressors": codec}
    z = zarr.create_array(
        store=path, shape=x.shape, chunks=(8, 7), dtype="float32", zarr_format=2, **encoding
    )
    z[:] = x
    assert (path / "0.0").read_bytes()[:4] == b"LQNT"
    metadata = json.loads((path / ".zarray").read_text())
    stored = metadata["filters"][0] if role == "filter" else metadata["compressor"]
    assert stored == codec.get_config()
    expected = expected_chunks(x, (8, 7), 0.0, lambda c: lq.quantize(c, axis=0).dequantize())
    assert bitwise_equal(zarr.open_array(path, mode="r")[:], expected)


@pytest.mark.parametrize("role", ["filter", "compressor"])
def test_zarr2_fortran_order_array_reads_back_as_with_fixedscaleoffset(
    tmp_path: Path, role: str
) -> None:
    x = sample((20, 14), "float32")
    fixed = numcodecs.FixedScaleOffset(offset=0, scale=100, dtype="f4", astype="i4")
    arrays = {}
    for name, codec in {"linquant": Linquant(bits=8, axis=1), "fixed": fixed}.items():
        if role == "filter":
            encoding = {"filters": [codec], "compressors": None}
        else:
            encoding = {"filters": None, "compressors": codec}
        z = zarr.create_array(
            store=tmp_path / name, shape=x.shape, chunks=(8, 7), dtype="float32",
            zarr_format=2, order="F", **encoding,
        )  # fmt: skip
        z[:] = x
        arrays[name] = zarr.open_array(tmp_path / name, mode="r")[:]
    assert np.abs(arrays["fixed"] - x).max() <= 0.5 / 100  # numcodecs' own codec: in order
    expected = expected_chunks(x, (8, 7), 0.0, lambda c: lq.quantize(c, axis=1).dequantize())
    assert bitwise_equal(arrays["linquant"], expected)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_zarr2_array_of_any_float_dtype_with_the_default_codec(tmp_path: Path, dtype: str) -> None:
    x = sample((30, 20), dtype)
    z = zarr.create_array(
        store=tmp_path / "a.zarr", shape=x.shape, chunks=(16, 16), dtype=dtype, zarr_format=2,
        filters=[Linquant()],
    )  # fmt: skip
    z[:] = x
    work = "float64" if dtype == "float64" else "float32"
    expected = expected_chunks(
        x, (16, 16), 0.0, lambda c: lq.quantize(c).dequantize(work).astype(dtype)
    )
    assert bitwise_equal(zarr.open_array(tmp_path / "a.zarr", mode="r")[:], expected)


@ZARR3_NUMCODECS
@pytest.mark.parametrize("order", ["C", "F"])
def test_zarr3_float16_array_in_either_order(tmp_path: Path, order: str) -> None:
    x = sample((21, 18), "float16")
    path = tmp_path / "h.zarr"
    z = zarr.create_array(
        store=path, shape=x.shape, chunks=(8, 9), dtype="float16",
        serializer=ZarrLinquant(bits=8, axis=0), config={"order": order},
    )  # fmt: skip
    z[:] = x
    expected = expected_chunks(
        x, (8, 9), 0.0, lambda c: lq.quantize(c, axis=0).dequantize().astype(np.float16)
    )
    assert bitwise_equal(zarr.open_array(path, mode="r", config={"order": order})[:], expected)


@ZARR3_NUMCODECS
@pytest.mark.parametrize(
    "options",
    [
        {"bits": 4, "axis": 1},
        {"bits": 1, "scheme": "symmetric"},
        {"bits": 3, "axis": 0, "block_size": 4, "rounding": "stochastic", "seed": 5},
    ],
)
@pytest.mark.parametrize("order", ["C", "F"])
def test_zarr3_array_with_the_packed_codec(tmp_path: Path, options: dict, order: str) -> None:
    x = sample((23, 30), "float32")
    path = tmp_path / "p.zarr"
    z = zarr.create_array(
        store=path, shape=x.shape, chunks=(10, 7), dtype="float32",
        serializer=ZarrLinquant(pack=True, **options), compressors=None,
        config={"order": order},
    )  # fmt: skip
    z[:] = x
    stored = json.loads((path / "zarr.json").read_text())["codecs"][0]["configuration"]
    assert stored["pack"] is True
    chunk = (path / "c" / "0" / "0").read_bytes()
    assert chunk[4] == 3  # packed
    per_byte = 8 // decode_chunk(chunk).format.width
    assert len(chunk) - len(decode_chunk(chunk).codes.tobytes()) + 10 * 7 == len(
        Linquant(**options).encode(np.zeros((10, 7), np.float32))
    )
    assert decode_chunk(chunk).codes.shape == (10, math.ceil(7 / per_byte))
    expected = expected_chunks(
        x, (10, 7), 0.0, lambda c: lq.quantize(c, pack=True, **options).dequantize()
    )
    assert bitwise_equal(zarr.open_array(path, mode="r", config={"order": order})[:], expected)


def test_zarr2_array_with_the_packed_codec_as_filter(tmp_path: Path) -> None:
    x = sample((20, 14), "float64")
    codec = Linquant(bits=2, axis=0, pack=True)
    z = zarr.create_array(
        store=tmp_path / "v2.zarr", shape=x.shape, chunks=(8, 7), dtype="float64",
        zarr_format=2, filters=[codec], compressors=None,
    )  # fmt: skip
    z[:] = x
    metadata = json.loads((tmp_path / "v2.zarr" / ".zarray").read_text())
    assert metadata["filters"][0] == codec.get_config()
    assert (tmp_path / "v2.zarr" / "0.0").read_bytes()[4] == 3
    expected = expected_chunks(
        x, (8, 7), 0.0, lambda c: lq.quantize(c, 2, axis=0).dequantize("float64")
    )
    assert bitwise_equal(zarr.open_array(tmp_path / "v2.zarr", mode="r")[:], expected)
