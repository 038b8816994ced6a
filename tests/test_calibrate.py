"""Calibration (SPEC §10): ranges against np.percentile and ONNX Runtime's HistogramCollector,
and the same range, bit for bit, for any chunking and any order of merges."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import linquant as lq

SCHEMES = ("asymmetric", "symmetric")


def outlier_example() -> np.ndarray:
    """100k N(0, 1) values and outliers at 40 and -25."""
    rng = np.random.default_rng(7)
    return np.concatenate([rng.standard_normal(100_000), [40.0, -25.0]]).astype(np.float32)


def bin_width(x: np.ndarray, bins: int = 2048) -> float:
    """The width of the histogram's bins for ``x`` (SPEC §10): the least power of two
    ``w`` with ``max|x| < bins * w``."""
    amax = float(np.max(np.abs(x)))
    return math.ldexp(1.0, math.frexp(amax)[1] - int(math.log2(bins)))


def finite_arrays() -> st.SearchStrategy[np.ndarray]:
    scales = st.sampled_from([1.0, 1e-3, 1e6, 1e-30, 1e30])
    values = hnp.arrays(
        st.sampled_from([np.float16, np.float32, np.float64]),
        hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=40),
        elements=st.floats(-1000, 1000, width=16),
    )
    return st.builds(_scaled, values, scales)


def _scaled(values: np.ndarray, scale: float) -> np.ndarray:
    """``values * scale`` in their dtype, with what leaves its range made 0."""
    with np.errstate(over="ignore"):
        scaled = (values.astype(np.float64) * scale).astype(values.dtype)
    return np.where(np.isfinite(scaled), scaled, 0).astype(values.dtype)


@given(finite_arrays(), st.sampled_from([50.0, 90.0, 99.0, 99.99, 100.0]))
def test_a_percentile_bound_is_the_edge_of_the_bin_of_its_order_statistic(
    x: np.ndarray, percentile: float
) -> None:
    x = x.reshape(-1)
    lo, hi = lq.calibrate(x, "percentile", percentile=percentile)
    wf = np.float64 if x.dtype == np.float64 else np.float32
    values = np.sort(x.astype(np.float64))
    width = bin_width(values)
    rank = (x.size - 1) * percentile / 100  # np.percentile's, linear
    above = values[math.ceil(rank)]
    below = values[math.floor((x.size - 1) * (100 - percentile) / 100)]
    assert values[0] <= lo <= below and above <= hi <= values[-1]
    slack = width * (1 + 1e-6)  # and the edge's rounding to the working float, below
    assert hi - above <= slack + abs(np.spacing(wf(hi)))
    assert below - lo <= slack + abs(np.spacing(wf(lo)))
    magnitudes = np.sort(np.abs(values))
    t_lo, t_hi = lq.calibrate(x, "percentile", percentile=percentile, scheme="symmetric")
    assert t_lo == -t_hi
    assert magnitudes[math.ceil(rank)] <= t_hi <= magnitudes[-1]
    assert t_hi - magnitudes[math.ceil(rank)] <= slack + abs(np.spacing(wf(t_hi)))


def test_percentile_is_within_a_bin_of_numpy_on_the_outlier_example() -> None:
    x = outlier_example()
    width = bin_width(x)
    lo, hi = lq.calibrate(x, "percentile", percentile=99.99)
    expected_lo, expected_hi = np.percentile(x, [0.01, 99.99])
    assert 0 <= hi - expected_hi <= width and 0 <= expected_lo - lo <= width
    assert lq.calibrate(x, "minmax") == (np.float32(-25.0), np.float32(40.0))


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None,
    reason="ONNX Runtime, an optional oracle, has no wheel here (the percentile itself is "
    "checked against np.percentile above)",
)
@pytest.mark.parametrize("symmetric", [True, False])
def test_percentile_agrees_with_onnxruntimes_histogram_collector(symmetric: bool) -> None:
    """Within a bin of each. ORT's asymmetric percentile p keeps p% in all, cutting
    (100 - p) / 2 from each tail: linquant's per-tail percentile 100 - (100 - p) / 2."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    x = outlier_example()
    collector = HistogramCollector("percentile", symmetric, 2048, 128, 99.9, None)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        collector.collect({"x": x})
        expected_lo, expected_hi = collector.compute_collection_result()["x"][:2]
    scheme = "symmetric" if symmetric else "asymmetric"
    percentile = 99.9 if symmetric else 100 - (100 - 99.9) / 2
    lo, hi = lq.calibrate(x, "percentile", scheme=scheme, percentile=percentile)
    theirs = (np.abs(x).max() - np.abs(x).min() if symmetric else 2 * np.abs(x).max()) / 2048
    tolerance = bin_width(x) + theirs
    assert abs(hi - expected_hi) <= tolerance and abs(lo - expected_lo) <= tolerance


@st.composite
def chunkings(draw: st.DrawFn) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
    """An array, chunks that cover it (some empty, some all zero), and an order of merges."""
    x = draw(finite_arrays()).reshape(-1)
    if draw(st.booleans()):  # zeros first, then values: the width is set late
        x = np.concatenate([np.zeros(draw(st.integers(1, 5)), x.dtype), x])
    cuts = sorted(draw(st.lists(st.integers(0, x.size), max_size=6)))
    chunks = np.split(x, cuts)
    order = draw(st.permutations(range(len(chunks))))
    return x, chunks, order


@settings(max_examples=150, deadline=None)
@given(chunkings(), st.sampled_from(lq.Observer.METHODS), st.sampled_from(SCHEMES))
def test_any_chunking_and_order_of_merges_gives_the_whole_arrays_range(
    case: tuple[np.ndarray, list[np.ndarray], list[int]], method: str, scheme: str
) -> None:
    x, chunks, order = case
    whole = lq.calibrate(x, method, scheme=scheme, percentile=99.0)
    observers = [lq.Observer(method, scheme=scheme, percentile=99.0).update(c) for c in chunks]
    merged = lq.Observer(method, scheme=scheme, percentile=99.0)
    for i in order:
        merged.merge(observers[i])
    streamed = lq.Observer(method, scheme=scheme, percentile=99.0)
    for chunk in chunks:
        streamed.update(chunk)
    for observer in (merged, streamed):
        lo, hi = observer.range()
        assert (lo, hi) == whole and lo.dtype == whole[0].dtype == whole[1].dtype
        assert np.signbit(lo) == np.signbit(whole[0]) and np.signbit(hi) == np.signbit(whole[1])


def test_histograms_of_any_chunking_are_the_same_counts() -> None:
    x = outlier_example()
    whole = lq.Observer("percentile").update(x)
    # the first two pieces' bins are finer than the whole array's (no outlier in them)
    pieces = [x[:1000], x[1000:50_000], x[50_000:]]
    merged = lq.Observer("percentile")
    for piece in reversed(pieces):
        merged.merge(lq.Observer("percentile").update(piece))
    (exponent, counts), (whole_exponent, whole_counts) = merged.histogram(), whole.histogram()
    assert exponent == whole_exponent
    assert np.array_equal(counts, whole_counts) and counts.sum() == x.size


def test_minmax_is_the_exact_range_and_params_are_those_of_quantize() -> None:
    x = outlier_example()
    assert lq.calibrate(x, "minmax") == lq.minmax(x)
    observer = lq.Observer("minmax", bits=4).update(x)
    qa = lq.quantize(x, 4)
    assert tuple(observer.params()) == (qa.scale, qa.zero_point)
    assert tuple(observer.params()) == lq.params_from_range(*observer.range(), bits=4)
    symmetric = lq.Observer("percentile", bits=8, scheme="symmetric").update(x)
    _, hi = symmetric.range()
    scale, zero_point = symmetric.params()
    assert zero_point == 0 and scale == np.float32(hi / np.float32(127))


def test_the_outlier_examples_percentile_range_is_far_tighter_than_minmax() -> None:
    x = outlier_example()
    lo, hi = lq.calibrate(x, "percentile", scheme="symmetric")
    assert 3 < hi < 5 and lo == -hi
    scale, _ = lq.params_from_range(lo, hi, bits=8, scheme="symmetric")
    minmax_scale, _ = lq.params_from_range(*lq.calibrate(x), bits=8, scheme="symmetric")
    assert minmax_scale / scale > 8


def test_params_from_range_follows_spec_4() -> None:
    assert lq.params_from_range(-1.0, 3.0) == (np.float64(4 / 255), np.int32(64))
    assert lq.params_from_range(np.float32(-2), np.float32(1), 4, "symmetric") == (
        np.float32(2 / 7),
        np.int32(0),
    )
    assert lq.params_from_range(0.0, 0.0) == (np.float64(1.0), np.int32(0))
    with pytest.raises(ValueError, match="lo <= hi"):
        lq.params_from_range(2.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        lq.params_from_range(-np.inf, 1.0)
    with pytest.raises(TypeError, match="real numbers"):
        lq.params_from_range("a", 1.0)


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        ({"method": "kl"}, ValueError, "method must be one of"),
        ({"bins": 1000}, ValueError, "power of two"),
        ({"bins": 8}, ValueError, "power of two"),
        ({"bins": 2048.0}, TypeError, "bins must be an int"),
        ({"percentile": 101}, ValueError, "from 50 to 100"),
        ({"percentile": "99"}, TypeError, "percentile must be a number"),
        ({"bits": 0}, ValueError, "bits"),
    ],
)
def test_bad_settings_raise(bad: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        lq.Observer(**bad)  # type: ignore[arg-type]


def test_bad_data_and_merges_raise() -> None:
    with pytest.raises(ValueError, match=r"NaN value, the first at index \(1,\)"):
        lq.calibrate(np.array([1.0, np.nan]), "percentile")
    for method in lq.Observer.METHODS:
        with pytest.raises(ValueError, match="holds an infinity"):
            lq.Observer(method).update(np.array([1.0, -np.inf]))
    with pytest.raises(ValueError, match="update the observer first"):
        lq.Observer().range()
    with pytest.raises(ValueError, match="update the observer first"):
        lq.calibrate(np.zeros(0))
    with pytest.raises(ValueError, match="same method and settings"):
        lq.Observer("percentile").merge(lq.Observer("percentile", percentile=99))
    observer = lq.Observer().update(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="float32 data, this chunk is float64"):
        observer.update(np.ones(3))
    with pytest.raises(ValueError, match="do not merge"):
        observer.merge(lq.Observer().update(np.ones(3)))
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        lq.calibrate(np.arange(3))


def tensorrt_entropy_divergences(
    hist: np.ndarray, bits: int, unsigned: bool, start_bin: int
) -> list[float]:
    """The divergence of each number of bins, from ``start_bin`` up, that TensorRT's
    ``_compute_amax_entropy`` (pytorch-quantization's calib/histogram.py) may clip a
    histogram of |x| to, written as its loop is: each level's count spread over its nonzero
    bins, KL divergence by scipy's definition. Its ``bins[0] = bins[1]`` included; a clipped
    histogram with no counts diverges infinitely (where scipy's gives NaN, which np.argmin
    would pick). TensorRT clips to the last of the least."""
    bins = hist.astype(np.float64).copy()
    bins[0] = bins[1]
    nbins = 1 << (bits - 1 + int(unsigned))
    divergences = []
    for i in range(start_bin, len(bins) + 1):
        space = np.linspace(0, i, num=nbins + 1)
        digitized = np.digitize(range(i), space) - 1
        digitized[bins[:i] == 0] = -1
        density = np.zeros(nbins)
        members = np.zeros(nbins)
        for j, d in enumerate(digitized):
            if d != -1:
                density[d] += bins[j]
                members[d] += 1
        new = np.array([density[d] / members[d] if d != -1 else 0.0 for d in digitized])
        reference = bins[:i].copy()
        reference[-1] += bins[i:].sum()
        p, q = reference / reference.sum(), new / max(new.sum(), 1.0)  # (all 0: stays 0)
        if np.any((q == 0) & (p > 0)):
            divergences.append(math.inf)
        else:
            mask = p > 0
            divergences.append(float(np.sum(p[mask] * np.log(p[mask] / q[mask]))))
    return divergences


@settings(max_examples=60, deadline=None)
@given(finite_arrays(), st.sampled_from([2, 4, 8]), st.sampled_from(SCHEMES))
def test_entropy_is_tensorrts_on_the_same_histogram(x: np.ndarray, bits: int, scheme: str) -> None:
    observer = lq.Observer("entropy", bits=bits, scheme=scheme, bins=256).update(x)
    lo, hi = observer.range()
    exponent, counts = observer.histogram()
    if exponent is None:  # all zeros: nothing to clip
        assert lo == hi == 0
        return
    magnitudes = counts[:256] + counts[256:]
    used = int(np.flatnonzero(magnitudes)[-1]) + 1
    unsigned = scheme == "asymmetric" and float(np.min(x)) >= 0
    start = min(256 // 16, used)
    divergences = tensorrt_entropy_divergences(magnitudes[:used], bits, unsigned, start)
    least = min(divergences)
    # TensorRT's choice, or one within rounding of its divergence (sums in another order)
    ties = [start + k for k, d in enumerate(divergences) if d <= least + 1e-9 * abs(least)]
    wf = lo.dtype.type
    ranges = set()
    for i in ties:
        t = min(i * math.ldexp(1.0, exponent), float(np.max(np.abs(x))))
        low, high = (
            (-t, t) if scheme == "symmetric" else (max(float(x.min()), -t), min(float(x.max()), t))
        )
        ranges.add((wf(low) + wf(0), wf(high) + wf(0)))
    assert (lo, hi) in ranges


def quantized(x: np.ndarray, lo: float, hi: float, bits: int, scheme: str) -> np.ndarray:
    """``x`` through codes of the range ``[lo, hi]`` and back (SPEC §2-§4), in float64."""
    scale, zero_point = lq.params_from_range(lo, hi, bits, scheme)
    dtype = f"{'int' if scheme == 'symmetric' else 'uint'}{16 if bits > 8 else 8}"
    codes = lq.quantize_linear(x, scale, zero_point, dtype=dtype, bits=bits)
    return lq.dequantize_linear(codes, scale, zero_point, dtype="float64")


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("bits", [3, 8])
def test_mse_picks_the_threshold_a_brute_force_search_picks(bits: int, scheme: str) -> None:
    """On the histogram's own data (each bin's centre, as often as it counts), quantizing
    with every candidate threshold; and on the data itself, near the best candidate's error."""
    rng = np.random.default_rng(bits)
    x = np.concatenate([rng.standard_normal(3000), rng.standard_normal(20) * 8])
    observer = lq.Observer("mse", bits=bits, scheme=scheme, bins=256).update(x)
    exponent, counts = observer.histogram()
    assert exponent is not None
    centres = (np.arange(256) + 0.5) * math.ldexp(1.0, exponent)
    positive, negative = counts[:256], counts[256:]
    data = np.concatenate([np.repeat(centres, positive), -np.repeat(centres, negative)])
    used = int(np.flatnonzero(positive + negative)[-1]) + 1
    lo, hi, amax = float(x.min()), float(x.max()), float(np.abs(x).max())
    errors = {}
    for t in centres[256 // 16 : used]:
        t = min(float(t), amax)
        bounds = (-t, t) if scheme == "symmetric" else (max(lo, -t), min(hi, t))
        errors[bounds] = float(np.sum(np.square(data - quantized(data, *bounds, bits, scheme))))
    best = min(errors, key=lambda bounds: errors[bounds])  # the first of equal errors
    assert tuple(map(float, observer.range())) == best
    exact = {b: np.mean(np.square(x - quantized(x, *b, bits, scheme))) for b in errors}
    assert exact[best] <= min(exact.values()) * 1.1
    assert exact[best] < np.mean(np.square(x - quantized(x, lo, hi, bits, scheme)))


def test_the_outlier_examples_ranges_by_method() -> None:
    """Percentile and entropy clip the outliers to a few sigma; mse keeps most of the range
    (two outliers clipped to 4 would cost more squared error than a coarser grid)."""
    x = outlier_example()
    ranges = {m: lq.calibrate(x, m, scheme="symmetric") for m in lq.Observer.METHODS}
    assert ranges["minmax"] == (np.float32(-25), np.float32(40))
    assert 3 < ranges["percentile"][1] < 5 and 3 < ranges["entropy"][1] < 5
    assert 10 < ranges["mse"][1] < 40


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("method", lq.Observer.METHODS)
def test_quantize_with_a_calibration_uses_its_range(method: str, scheme: str) -> None:
    x = outlier_example().reshape(2, -1)
    lo, hi = lq.calibrate(x, method, bits=4, scheme=scheme)
    scale, zero_point = lq.params_from_range(lo, hi, bits=4, scheme=scheme)
    dtype = "int8" if scheme == "symmetric" else "uint8"
    expected = lq.quantize_linear(x, scale, zero_point, dtype=dtype, bits=4)
    for qa in (
        lq.quantize(x, 4, scheme, calibration=method),
        lq.quantize(x, 4, scheme, range=(lo, hi)),
    ):
        assert (qa.scale, qa.zero_point) == (scale, zero_point)
        assert np.array_equal(qa.data, expected)
    packed = lq.quantize(x, 4, scheme, calibration=method, pack=True)
    assert np.array_equal(packed.data, lq.pack(expected, 4))
    assert np.array_equal(
        packed.dequantize(), lq.quantize(x, 4, scheme, range=(lo, hi)).dequantize()
    )


def test_quantize_with_a_range_checks_it() -> None:
    x = np.linspace(-1, 1, 10)
    with pytest.raises(ValueError, match="not both"):
        lq.quantize(x, calibration="mse", range=(-1, 1))
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        lq.quantize(x.reshape(2, 5), axis=1, range=([-1, -1], [1, 1]))
    with pytest.raises(ValueError, match="a pair"):
        lq.quantize(x, range=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lo <= hi"):
        lq.quantize(x, range=(1, -1))
    with pytest.raises(ValueError, match="method must be one of"):
        lq.quantize(x, calibration="kl")
    with pytest.raises(ValueError, match="NaN"):
        lq.quantize(np.array([1.0, np.nan]), calibration="percentile")
    with pytest.raises(ValueError, match="NaN"):
        lq.quantize(np.array([1.0, np.nan]), range=(-1, 1))
    clipped = lq.quantize(np.array([-5.0, 0.5, 5.0]), 8, "symmetric", range=(-1, 1))
    assert clipped.data.tolist() == [-128, 64, 127]  # saturated at the range's codes


@pytest.mark.parametrize("threads", [1, 2])
def test_a_nan_after_an_infinity_is_the_error(backend: str, threads: int) -> None:
    """NaN's error comes first (SPEC §5), wherever the infinity lies before it."""
    x = np.ones((3, 1 << 20), np.float32)
    x[0, 0], x[2, 5000] = np.inf, np.nan
    previous = lq.get_num_threads()
    lq.set_num_threads(threads)
    try:
        for view in (x, x.T):
            with pytest.raises(ValueError, match="1 NaN value"):
                lq.calibrate(view, "percentile")
    finally:
        lq.set_num_threads(previous)


# Per channel and per block: each group's range is its values' own, chunked any way.


@st.composite
def grouped_cases(draw: st.DrawFn) -> tuple[np.ndarray, int, int | None]:
    """A 2-D or 3-D array, an axis and a block size (None: per channel)."""
    values = draw(finite_arrays())
    x = values.reshape(draw(st.sampled_from([(-1, 1), (1, -1), (values.shape[0], -1, 1)])))
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    block_size = draw(st.one_of(st.none(), st.integers(1, x.shape[axis] + 2)))
    return x, axis, block_size


def group_values(x: np.ndarray, axis: int, block_size: int | None) -> dict[tuple, np.ndarray]:
    """Each group's values, by its index in the parameters' shape (a loop, the definition)."""
    axis %= x.ndim
    groups: dict[tuple, list[float]] = {}
    for index in np.ndindex(x.shape):
        group = list(index)
        group[axis] //= block_size if block_size is not None else 1
        key = tuple(group) if block_size is not None else (index[axis],)
        groups.setdefault(key, []).append(x[index])
    return {key: np.array(values, x.dtype) for key, values in groups.items()}


@settings(max_examples=60, deadline=None)
@given(grouped_cases(), st.sampled_from(lq.Observer.METHODS), st.sampled_from(SCHEMES))
def test_a_groups_range_is_the_range_of_its_values(
    case: tuple[np.ndarray, int, int | None], method: str, scheme: str
) -> None:
    x, axis, block_size = case
    options = {"scheme": scheme, "bins": 64, "percentile": 90.0}
    lo, hi = lq.calibrate(x, method, axis=axis, block_size=block_size, **options)
    for group, values in group_values(x, axis, block_size).items():
        alone = lq.calibrate(values, method, **options)
        assert (lo[group], hi[group]) == alone and lo.dtype == alone[0].dtype


@st.composite
def boxes(draw: st.DrawFn) -> tuple[np.ndarray, list[tuple[tuple[int, int], ...]], list[int]]:
    """A 2-D array, boxes that tile it, and an order of merges."""
    x = draw(finite_arrays())
    x = x.reshape(x.shape[0], -1)
    cuts = [[0, *sorted(draw(st.lists(st.integers(0, n), max_size=3))), n] for n in x.shape]
    tiles = [
        ((r0, r1), (c0, c1))
        for r0, r1 in zip(cuts[0], cuts[0][1:], strict=False)
        for c0, c1 in zip(cuts[1], cuts[1][1:], strict=False)
    ]
    return x, tiles, draw(st.permutations(range(len(tiles))))


@settings(max_examples=60, deadline=None)
@given(
    boxes(),
    st.sampled_from(lq.Observer.METHODS),
    st.sampled_from([(0, None), (1, None), (1, 2), (0, 3)]),
)
def test_any_tiling_and_order_of_merges_gives_the_whole_arrays_ranges(
    case: tuple[np.ndarray, list[tuple[tuple[int, int], ...]], list[int]],
    method: str,
    grouping: tuple[int, int | None],
) -> None:
    x, tiles, order = case
    axis, block_size = grouping
    settings = {"axis": axis, "block_size": block_size, "bins": 32, "percentile": 95.0}
    whole = lq.calibrate(x, method, **settings)
    observers = []
    for (r0, r1), (c0, c1) in tiles:
        piece = x[r0:r1, c0:c1]
        observers.append(lq.Observer(method, **settings).update(piece, ((r0, c0), x.shape)))
    merged = lq.Observer(method, **settings)
    for i in order:
        merged.merge(observers[i])
    for lo, hi in (merged.range(),):
        assert np.array_equal(lo, whole[0]) and np.array_equal(hi, whole[1])
        assert not np.signbit(lo[lo == 0]).any() and not np.signbit(hi[hi == 0]).any()


def test_batches_without_a_position_are_the_channels_of_a_stream() -> None:
    x = outlier_example()[:100_000].reshape(-1, 8)
    observer = lq.Observer("percentile", axis=1, percentile=99.0, bins=256)
    for batch in np.array_split(x, 9):
        observer.update(batch)
    expected = lq.calibrate(x, "percentile", axis=1, percentile=99.0, bins=256)
    assert all(np.array_equal(a, b) for a, b in zip(observer.range(), expected, strict=True))
    with pytest.raises(ValueError, match=r"parameters of shape \(8,\) along axis 1"):
        observer.update(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="only observers of the same"):
        observer.merge(lq.Observer("percentile", axis=0, percentile=99.0, bins=256))


def test_a_group_without_values_or_with_nan_raises_naming_it() -> None:
    observer = lq.Observer("minmax", axis=1)
    observer.update(np.ones((2, 2)), position=((0, 0), (2, 4)))
    with pytest.raises(ValueError, match="channel 2 along axis 1 has no values"):
        observer.range()
    with pytest.raises(ValueError, match=r"NaN value, the first at index \(1, 0\) \(in chan"):
        lq.calibrate(np.array([[1.0, 2.0], [np.nan, 0.0]]), "mse", axis=0, bins=16)
    nan_chunk = (np.array([[np.nan]]), ((1, 2), (3, 4)))  # in the whole array: index (1, 2)
    with pytest.raises(ValueError, match=r"index \(1, 2\) \(in block \(1, 1\) \(axis 1"):
        lq.Observer("minmax", axis=1, block_size=2).update(*nan_chunk)
    with pytest.raises(ValueError, match="infinity"):
        lq.calibrate(np.array([[1.0, np.inf]]), "percentile", axis=0, block_size=1)
    with pytest.raises(ValueError, match="position must be"):
        observer.update(np.ones((2, 2)), position=((3, 0), (2, 4)))
    with pytest.raises(ValueError, match="pass fewer bins"):  # 40000 * 2 * 2048 int64
        lq.Observer("entropy", axis=0).update(np.zeros((40_000, 1)))


@pytest.mark.parametrize("method", lq.Observer.METHODS)
@pytest.mark.parametrize(("axis", "block_size"), [(0, None), (1, None), (1, 16)])
def test_quantize_with_a_calibration_per_group_uses_its_ranges(
    method: str, axis: int, block_size: int | None
) -> None:
    x = outlier_example()[:4096].reshape(64, 64)
    settings = {"axis": axis, "block_size": block_size, "bits": 4, "scheme": "symmetric"}
    observer = lq.Observer(method, bins=128, **settings)  # the options of calibration=
    lo, hi = lq.calibrate(x, method, bins=128, **settings)
    qa = lq.quantize(x, calibration=observer, **settings)
    params = observer.fresh().update(x).params()
    assert np.array_equal(qa.scale, params.scale) and not qa.zero_point.any()
    expected = lq.quantize_linear(
        x, *params, dtype="int8", axis=axis, block_size=block_size, bits=4
    )
    assert np.array_equal(qa.data, expected) and observer.count == 0
    given = lq.quantize(x, range=(lo, hi), **settings)
    assert np.array_equal(given.data, qa.data) and np.array_equal(given.scale, qa.scale)
    with pytest.raises(ValueError, match="the call's axis"):
        lq.quantize(x, calibration=observer, bits=4, scheme="symmetric")


# Error metrics per group, and choosing bits and grouping for a target SQNR.


@pytest.mark.parametrize(("axis", "block_size"), [(0, None), (1, None), (1, 3), (-1, 100)])
def test_error_metrics_per_group_are_each_groups_own(axis: int, block_size: int | None) -> None:
    x = outlier_example()[:600].reshape(20, 30).astype(np.float64)
    x_hat = lq.quantize(x, 3, axis=axis, block_size=block_size).dequantize("float64")
    x_hat[0, 0] = x[0, 0]  # one group's error differs from the others'
    metrics = lq.error_metrics(x, x_hat, axis=axis, block_size=block_size)
    originals, reconstructions = (
        group_values(x, axis, block_size),
        group_values(x_hat, axis, block_size),
    )
    assert set(metrics) == {"mse", "rmse", "max_abs_error", "sqnr_db"}
    for group, values in originals.items():
        alone = lq.error_metrics(values, reconstructions[group])
        for name, value in alone.items():
            assert metrics[name][group] == pytest.approx(value, rel=1e-12)
    exact = lq.error_metrics(np.ones((2, 2)), np.ones((2, 2)), axis=0)
    assert exact["sqnr_db"].tolist() == [np.inf, np.inf]


def test_choose_takes_the_fewest_bits_then_the_coarsest_grouping() -> None:
    x = outlier_example()[:16_384].reshape(64, 256)
    granularities = [None, (0, None), (1, 32)]
    choice = lq.choose(x, 25.0, granularities=granularities, scheme="symmetric")
    assert choice.sqnr_db >= 25.0 and choice.tried[-1].sqnr_db == choice.sqnr_db
    expected = lq.quantize(
        x, choice.bits, "symmetric", axis=choice.axis, block_size=choice.block_size
    )
    assert np.array_equal(choice.quantized.data, expected.data)
    assert all(t.sqnr_db < 25.0 for t in choice.tried[:-1])
    tried = [(t.bits, t.axis, t.block_size) for t in choice.tried]
    settings = [(b, *(g or (None, None))) for b in range(2, 9) for g in granularities]
    assert tried == settings[: len(tried)]  # in order, stopping at the first that meets it
    sqnr = lq.error_metrics(x, expected.dequantize())["sqnr_db"]
    assert choice.sqnr_db == sqnr
    with pytest.raises(ValueError, match="no setting tried reaches 200"):
        lq.choose(x, 200.0, bits=[2, 4])
    with pytest.raises(TypeError, match="chooses axis"):
        lq.choose(x, 20.0, axis=0)
    with pytest.raises(ValueError, match="a granularity is"):
        lq.choose(x, 20.0, granularities=[0])
