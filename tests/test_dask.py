"""``linquant.dask``: Dask arrays quantized bit for bit as ``lq.quantize`` on the whole array.

Over several chunkings (one chunk, irregular chunks, chunks of one element along the axis,
chunks that split blocks), schemes, bit widths, per tensor, per channel and per block:
codes, scales and zero points equal those of ``lq.quantize(x.compute(), ...)``, and
dequantization equals ``QuantizedArray.dequantize``. Most cases run on a real
``distributed.LocalCluster`` of two worker processes, some on Dask's threaded scheduler.
NaN and ±inf raise the errors that ``lq.quantize`` raises on the whole array. Every rounding
mode, stochastic rounding included, gives the codes of the whole array whatever the chunking.
Packed codes (``pack=True``, 1 to 4 bits) are those of ``lq.quantize(..., pack=True)`` for any
chunking (the last axis rechunked so that each chunk holds whole bytes), and dequantize,
unpack and compute as the in-memory ``QuantizedArray`` does.
"""

from __future__ import annotations

from collections.abc import Iterator

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster

import linquant as lq
import linquant.dask as lqd


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Two single-threaded worker processes on this machine; the default scheduler meanwhile."""
    with (
        LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=":0",  # any free port: never one another cluster holds
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def bitwise_equal(a: object, b: object) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def sample(shape: tuple[int, ...], dtype: str = "float32", seed: int = 0) -> np.ndarray:
    """Values of both signs, exact and negative zeros, ties at 0.5 steps, one channel of zeros."""
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 30.0, size=shape)
    flat = x.reshape(-1)
    flat[::7] = np.round(flat[::7]) + 0.5
    flat[3::11] = 0.0
    flat[5::13] = -0.0
    if x.ndim == 2:
        x[:, 1] = 0.0  # a degenerate channel along axis 1
    return x.astype(dtype)


CHUNKINGS = {
    "one chunk": (11, 12),
    "irregular": ((3, 5, 3), (4, 1, 7)),
    "single rows": (1, 12),
    "single columns": (11, 1),
}
OPTIONS = [
    {"bits": 8},
    {"bits": 3, "scheme": "symmetric"},
    {"bits": 16, "include_zero": False},
    {"bits": 8, "axis": 0},
    {"bits": 5, "axis": 1, "scheme": "symmetric", "narrow_range": True},
    {"bits": 12, "axis": -1, "include_zero": False},
    {"bits": 8, "axis": 1, "block_size": 4},  # blocks split by the irregular chunks
    {"bits": 4, "axis": 0, "block_size": 2, "scheme": "symmetric"},
    {"bits": 10, "axis": 1, "block_size": 5, "include_zero": False},
    {"bits": 1, "scheme": "symmetric", "axis": 0},  # the sign of x
]


def check_against_memory(x: np.ndarray, chunks: object, options: dict) -> None:
    qa = lqd.quantize(da.from_array(x, chunks=chunks), **options)
    expected = lq.quantize(x, **options)
    assert bitwise_equal(qa.scale, expected.scale)
    assert bitwise_equal(qa.zero_point, expected.zero_point)
    computed = qa.compute()
    assert bitwise_equal(computed.data, expected.data)
    names = ("axis", "block_size", "bits", "scheme", "source_dtype", "rounding", "seed", "length")
    for name in (*names, "shape", "packed", "format"):
        assert getattr(qa, name) == getattr(computed, name) == getattr(expected, name), name
    for dtype in ("float32", "float64"):
        dequantized = qa.dequantize(dtype)
        assert dequantized.chunks == qa.chunks
        assert bitwise_equal(dequantized.compute(), expected.dequantize(dtype))
    assert bitwise_equal(qa.codes().compute(), expected.codes())
    assert sum(qa.chunks[-1]) == x.shape[-1] if x.ndim else qa.chunks == ()
    if options.get("block_size"):  # blocks do not straddle chunks of the codes
        axis = expected.axis
        assert all(size % options["block_size"] == 0 for size in qa.chunks[axis][:-1])
    if expected.packed:  # chunks of whole bytes along the last axis
        per_byte = expected.format.per_item
        assert all(size % per_byte == 0 for size in qa.chunks[-1][:-1])
        assert qa.data.chunks[-1] == tuple(-(-size // per_byte) for size in qa.chunks[-1])
        assert qa.data.chunks[:-1] == qa.chunks[:-1]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_matches_quantize_in_memory_on_a_cluster(
    client: Client, chunking: str, options: dict
) -> None:
    check_against_memory(sample((11, 12)), CHUNKINGS[chunking], options)


PACKED_OPTIONS = [
    {"bits": 4},
    {"bits": 3, "scheme": "symmetric", "axis": 1},
    {"bits": 2, "axis": 0, "include_zero": False},
    {"bits": 1},
    {"bits": 1, "scheme": "symmetric", "axis": 1},  # the sign of x, scale max|x| per column
    {"bits": 4, "axis": 1, "block_size": 3, "scheme": "symmetric"},  # bounds at 6, 12...
    {"bits": 2, "axis": 1, "block_size": 5},  # bounds at multiples of 20
    {"bits": 3, "axis": 0, "block_size": 2, "rounding": "stochastic", "seed": 3},
    {"bits": 8, "axis": 1},  # not packed: the chunks stay
]
PACKED_CHUNKINGS = {
    **CHUNKINGS,
    "odd last chunks": ((4, 7), (3, 3, 5, 1, 1)),  # 13 columns
}


def check_packed(chunking: str, options: dict) -> None:
    chunks = PACKED_CHUNKINGS[chunking]
    x = sample((11, 13)) if chunking == "odd last chunks" else sample((11, 12))
    check_against_memory(x, chunks, {**options, "pack": True})
    qa = lqd.quantize(da.from_array(x, chunks=chunks), **options, pack=True)
    assert qa.packed == (options["bits"] <= 4)
    if not qa.packed:
        assert qa.data.chunks == da.from_array(x, chunks=chunks).chunks


# The module's cluster may still be the default client here; this test asks for threads.
@pytest.mark.filterwarnings(
    "ignore:Running on a single-machine scheduler when a distributed client is active:UserWarning"
)
@pytest.mark.parametrize("options", PACKED_OPTIONS)
@pytest.mark.parametrize("chunking", list(PACKED_CHUNKINGS))
def test_packed_codes_match_quantize_in_memory(chunking: str, options: dict) -> None:
    with dask.config.set(scheduler="threads"):
        check_packed(chunking, options)


@pytest.mark.parametrize("options", [PACKED_OPTIONS[1], PACKED_OPTIONS[7]])
def test_packed_codes_match_quantize_in_memory_on_a_cluster(client: Client, options: dict) -> None:
    check_packed("odd last chunks", options)


@pytest.mark.parametrize(
    "options",
    [
        {"bits": 4},
        {"bits": 1, "scheme": "symmetric"},
        {"bits": 2, "axis": 2, "block_size": 3},
        {"bits": 3, "axis": 0, "block_size": 2, "include_zero": False},
    ],
)
@pytest.mark.parametrize(
    "rounding", [{"rounding": "stochastic", "seed": 5}, {"rounding": "half_away"}]
)
def test_packed_codes_of_the_whole_array_for_any_chunking(rounding: dict, options: dict) -> None:
    """Stochastic rounding with packed codes: each chunk is quantized at its position, then
    packed; the bytes are those of the whole array's packed codes."""
    x = sample((5, 7, 19), seed=4)
    expected = lq.quantize(x, **options, **rounding, pack=True)
    chunkings = [(5, 7, 19), ((1, 3, 1), (2, 3, 1, 1), (3, 1, 7, 5, 3)), (2, 3, 1), (1, 1, 9)]
    with dask.config.set(scheduler="sync"):
        for chunks in chunkings:
            qa = lqd.quantize(da.from_array(x, chunks=chunks), **options, **rounding, pack=True)
            assert bitwise_equal(qa.data.compute(), expected.data), chunks
            assert bitwise_equal(qa.dequantize().compute(), expected.dequantize()), chunks
            assert qa.compute().nbytes == expected.nbytes


def test_packed_repr_and_compute() -> None:
    x = sample((6, 9))
    qa = lqd.quantize(da.from_array(x, chunks=(6, 4)), bits=4, pack=True)
    assert repr(qa).startswith("QuantizedDaskArray(shape=(6, 9), format='uint4', chunks=(6, 2)")
    computed = qa.compute(scheduler="sync")
    expected = lq.quantize(x, bits=4, pack=True)
    assert repr(computed) == repr(expected)
    assert computed.length == 9 and computed.data.shape == (6, 5)
    assert bitwise_equal(computed.data, expected.data)


def test_packed_empty_and_zero_d_arrays() -> None:
    check_against_memory(np.zeros((0, 5), np.float32), 2, {"bits": 4, "pack": True})
    check_against_memory(np.zeros((3, 0), np.float32), 2, {"bits": 1, "pack": True})
    check_against_memory(np.zeros((3, 0), np.float32), 2, {"bits": 2, "axis": 1, "pack": True})
    check_against_memory(np.array(-2.5), (), {"bits": 4, "pack": True})  # never packed
    assert not lqd.quantize(da.from_array(np.array(1.0)), bits=4, pack=True).packed


def test_packed_nan_raises_as_in_memory_or_is_quantized_as_zero() -> None:
    x = sample((8, 9))
    x[5, 7] = np.nan
    with pytest.raises(ValueError, match="NaN") as in_memory:
        lq.quantize(x, bits=4, pack=True)
    with pytest.raises(ValueError, match="NaN") as chunked:
        lqd.quantize(da.from_array(x, chunks=(3, 4)), bits=4, pack=True)
    assert str(chunked.value) == str(in_memory.value)
    with dask.config.set(scheduler="sync"):
        check_against_memory(
            x, (3, 5), {"bits": 1, "scheme": "symmetric", "nan": "zero", "pack": True}
        )


# The module's cluster may still be the default client here; this test asks for threads.
@pytest.mark.filterwarnings(
    "ignore:Running on a single-machine scheduler when a distributed client is active:UserWarning"
)
@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize(
    "options", [{"bits": 8}, {"bits": 6, "axis": 2}, {"bits": 8, "axis": 1, "block_size": 3}]
)
def test_matches_quantize_in_memory_on_threads(dtype: str, options: dict) -> None:
    x = sample((4, 10, 6), dtype, seed=1)
    with dask.config.set(scheduler="threads"):
        check_against_memory(x, (3, 4, 5), options)


def test_compute_gives_the_quantized_array(client: Client) -> None:
    x = sample((9, 8))
    qa = lqd.quantize(da.from_array(x, chunks=(4, 3)), bits=6, axis=1).compute()
    expected = lq.quantize(x, bits=6, axis=1)
    assert isinstance(qa, lq.QuantizedArray)
    assert repr(qa) == repr(expected)
    assert bitwise_equal(qa.data, expected.data)


ROUNDINGS = [
    {"rounding": "half_away"},
    {"rounding": "floor"},
    {"rounding": "stochastic", "seed": 0},
    {"rounding": "stochastic", "seed": 2**64 - 1},
]
# Uneven chunks of every size in 3-D, single elements, and chunks that split blocks.
CHUNKINGS_3D = [(5, 7, 4), ((1, 3, 1), (2, 3, 1, 1), (3, 1)), (1, 1, 1), ((5,), (7,), (4,))]
OPTIONS_3D = [
    {"bits": 5},
    {"bits": 7, "axis": 1, "scheme": "symmetric"},
    {"bits": 4, "axis": 2, "block_size": 3},
    {"bits": 9, "axis": 0, "block_size": 2, "include_zero": False},
]


@pytest.mark.parametrize("options", OPTIONS_3D)
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_each_rounding_gives_the_codes_of_the_whole_array_for_any_chunking(
    rounding: dict, options: dict
) -> None:
    """Codes on the synchronous scheduler, for several chunkings of a 3-D array: each chunk
    is quantized with its position in the array."""
    x = sample((5, 7, 4), seed=2)
    expected = lq.quantize(x, **options, **rounding)
    with dask.config.set(scheduler="sync"):
        for chunks in CHUNKINGS_3D:
            qa = lqd.quantize(da.from_array(x, chunks=chunks), **options, **rounding)
            assert bitwise_equal(qa.data.compute(), expected.data), chunks


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_stochastic_rounding_on_a_cluster(client: Client, chunking: str) -> None:
    options = {"bits": 6, "axis": 1, "block_size": 4, "rounding": "stochastic", "seed": 99}
    check_against_memory(sample((11, 12)), CHUNKINGS[chunking], options)


def test_compute_and_repr_carry_the_rounding() -> None:
    x = sample((6, 5))
    qa = lqd.quantize(da.from_array(x, chunks=2), bits=6, rounding="stochastic", seed=2**63)
    assert repr(qa).endswith(", rounding='stochastic', seed=9223372036854775808)")
    computed = qa.compute(scheduler="sync")
    expected = lq.quantize(x, bits=6, rounding="stochastic", seed=2**63)
    assert repr(computed) == repr(expected)
    assert (computed.rounding, computed.seed) == ("stochastic", 2**63)
    assert bitwise_equal(computed.data, expected.data)
    ceil = lqd.quantize(da.from_array(x, chunks=2), rounding="ceil")
    assert repr(ceil).endswith(", rounding='ceil')")
    assert ceil.compute(scheduler="sync").rounding == "ceil"
    assert "rounding" not in repr(lqd.quantize(da.from_array(x, chunks=2)))


@pytest.mark.parametrize("options", [{}, {"axis": 0}, {"axis": 1, "block_size": 3}])
def test_nan_raises_as_in_memory_or_is_quantized_as_zero(client: Client, options: dict) -> None:
    x = sample((8, 9))
    x[5, 7] = x[6, 2] = np.nan
    with pytest.raises(ValueError, match="NaN") as in_memory:
        lq.quantize(x, **options)
    with pytest.raises(ValueError, match="2 NaN values, the first at index") as chunked:
        lqd.quantize(da.from_array(x, chunks=(3, 4)), **options)
    assert str(chunked.value) == str(in_memory.value)
    check_against_memory(x, (3, 4), {**options, "nan": "zero"})


def test_inf_raises_as_in_memory() -> None:
    x = sample((6, 6))
    x[4, 4] = np.inf
    with pytest.raises(ValueError, match="infinite values") as in_memory:
        lq.quantize(x, axis=0)
    with pytest.raises(ValueError, match="infinite values") as chunked:
        lqd.quantize(da.from_array(x, chunks=3), axis=0)
    assert str(chunked.value) == str(in_memory.value)


@pytest.mark.parametrize("options", [{}, {"axis": 1}, {"axis": 1, "block_size": 2}])
def test_empty_and_zero_d_arrays(options: dict) -> None:
    check_against_memory(np.zeros((0, 5), np.float32), 2, options)
    if not options:
        check_against_memory(np.array(-2.5), (), options)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"bits": 0}, ValueError, "bits must be an int from 1 to 16"),
        ({"scheme": "affine"}, ValueError, "scheme must be one of"),
        ({"axis": 2}, ValueError, "axis 2 is out of range"),
        ({"block_size": 4}, ValueError, "block_size needs an axis"),
        ({"nan": "skip"}, ValueError, "nan must be one of"),
        ({"scheme": "symmetric", "include_zero": False}, ValueError, "include_zero=False"),
        ({"rounding": "nearest"}, ValueError, "rounding must be one of"),
        ({"rounding": "stochastic"}, ValueError, "rounding='stochastic' needs seed="),
        ({"rounding": "stochastic", "seed": 2**64}, ValueError, "needs seed=, an int from 0"),
        ({"seed": 1}, ValueError, "seed applies to rounding='stochastic' only"),
        ({"pack": 1}, ValueError, "pack must be True or False, got 1"),
        ({"pack": "no"}, ValueError, "pack must be True or False"),
    ],
)
def test_bad_arguments_raise_before_any_computation(
    options: dict, error: type[Exception], message: str
) -> None:
    def fail(block: np.ndarray) -> np.ndarray:
        raise AssertionError("computed")

    x = da.zeros((4, 4), chunks=2, dtype=np.float32).map_blocks(fail, dtype=np.float32)
    with pytest.raises(error, match=message):
        lqd.quantize(x, **options)


def test_integer_arrays_raise_type_error() -> None:
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        lqd.quantize(da.arange(6, chunks=3))


def test_dequantize_refuses_a_dtype_other_than_float32_or_float64() -> None:
    qa = lqd.quantize(da.from_array(sample((4, 4)), chunks=2), bits=4, pack=True)
    with pytest.raises(ValueError, match="dtype must be one of"):
        qa.dequantize("float16")


@pytest.mark.parametrize("calibration", ["percentile", "mse", "entropy"])
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_a_calibration_on_a_cluster_is_the_whole_arrays(
    client: Client, chunking: str, calibration: str
) -> None:
    """Each chunk's observer on a worker, merged in a tree: the range of the whole array."""
    x = sample((11, 12))
    x[3, 4] = 40 * np.abs(x).max()  # an outlier worth clipping
    for options in ({"bits": 4}, {"bits": 8, "scheme": "symmetric", "pack": True}):
        check_against_memory(x, CHUNKINGS[chunking], {**options, "calibration": calibration})
    observer = lq.Observer("percentile", percentile=90.0, bits=3, scheme="symmetric")
    qa = lqd.quantize(
        da.from_array(x, chunks=CHUNKINGS[chunking]), 3, "symmetric", calibration=observer
    )
    expected = lq.quantize(x, 3, "symmetric", range=observer.fresh().update(x).range())
    assert bitwise_equal(qa.compute().data, expected.data) and observer.count == 0


@pytest.mark.parametrize("calibration", ["minmax", "percentile", "mse"])
@pytest.mark.parametrize(("axis", "block_size"), [(0, None), (1, None), (1, 5)])
def test_a_calibration_per_channel_or_block_is_the_whole_arrays(
    client: Client, calibration: str, axis: int, block_size: int | None
) -> None:
    """Chunks split across channels and blocks: each observer told where its chunk lies."""
    x = sample((11, 12))
    x[3, 4] = 40 * np.abs(x).max()
    observer = lq.Observer(calibration, axis=axis, block_size=block_size, bins=64, bits=4)
    for chunks in ((4, 5), (11, 3)):
        qa = lqd.quantize(
            da.from_array(x, chunks=chunks),
            4,
            axis=axis,
            block_size=block_size,
            calibration=observer,
        )
        expected = lq.quantize(x, 4, axis=axis, block_size=block_size, calibration=observer)
        assert bitwise_equal(qa.compute().data, expected.data)
        assert bitwise_equal(np.asarray(qa.scale), expected.scale)


def test_a_calibration_takes_a_new_observer_of_the_calls_settings() -> None:
    x = da.from_array(sample((4, 6)), chunks=2)
    with pytest.raises(ValueError, match="the call's axis"):
        lqd.quantize(x, axis=0, calibration=lq.Observer("mse"))
    with pytest.raises(ValueError, match="needs nan='raise'"):
        lqd.quantize(x, nan="zero", calibration="mse")
    with pytest.raises(ValueError, match="new observer"):
        lqd.quantize(x, calibration=lq.Observer().update(np.ones(2)))
    with pytest.raises(ValueError, match="method must be one of"):
        lqd.quantize(x, calibration="kl")
