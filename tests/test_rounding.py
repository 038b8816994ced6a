"""Rounding modes (SPEC §2.1): ``rounding=``, ``seed=`` and ``position=``.

Every mode is checked against a plain Python reference written here from the SPEC alone:

- the quotient ``t = x / scale`` is computed by NumPy in the working float (float32 for
  float16/float32 input, float64 for float64), then rounded *exactly* in Python (``math.floor``
  and ``fractions.Fraction``) by the mode, then the zero point is added and the result
  saturated; NaN (``nan="zero"``) is 0.0, ±inf saturate;
- stochastic rounding draws ``SplitMix64(seed, i) >> 11`` for the element of flat C-order index
  ``i`` of the whole array (``position=``), with SplitMix64 written in Python ints, and goes up
  iff that is below ``frac * 2**53``, ``frac = float64(t) - float64(floor(t))``.

Each call runs under the NumPy backend and, where it is built, the compiled one at every CPU
level this machine runs, on one thread, streamed (``STREAM_MIN_BYTES`` lowered to 0) and split
across three threads (``PARALLEL_MIN_SIZE`` lowered to 0): every configuration must give the
reference's codes. Stochastic rounding is further checked for its generator, chunk, layout,
thread and level invariance, its statistics and its argument checks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import linquant as lq
from linquant import _backend, _rounding

compiled: Any = _backend._compiled  # the module, or None without the compiled build
needs_compiled = pytest.mark.skipif(
    compiled is None,
    reason="the compiled backend is not built (LINQUANT_DISABLE_CEXT=1): its CPU levels and "
    "threads are what this test compares; the NumPy backend is checked by the other tests here",
)

MODES = ("half_even", "half_away", "half_up", "floor", "ceil", "trunc", "stochastic")
DETERMINISTIC = MODES[:-1]
FLOAT_DTYPES: tuple[np.dtype[Any], ...] = (
    np.dtype(np.float16),
    np.dtype(np.float32),
    np.dtype(np.float64),
)
CODE_DTYPES: tuple[np.dtype[Any], ...] = (
    np.dtype(np.uint8),
    np.dtype(np.int8),
    np.dtype(np.uint16),
    np.dtype(np.int16),
)
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SEED_MAX = 2**64 - 1

# Each mode has a run of its own (a mode drawn by Hypothesis comes up unevenly).
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- configurations: backends, CPU levels, threads, streaming --------------------------------


@dataclass(frozen=True)
class Config:
    """A backend; for the compiled one a CPU level, a thread count and streamed stores."""

    backend: str
    level: str = ""
    threads: int = 1
    stream: bool = False

    def __str__(self) -> str:
        parts = [self.backend, self.level]
        parts += [f"{self.threads} threads"] if self.threads > 1 else []
        parts += ["streamed"] if self.stream else []
        return "/".join(part for part in parts if part)


def _configs() -> list[Config]:
    configs = [Config("numpy")]
    if compiled is not None:
        for level in compiled.supported_levels():
            configs += [
                Config("cython", level),
                Config("cython", level, 1, stream=True),
                Config("cython", level, 3, stream=True),
            ]
    return configs


CONFIGS = _configs()
COMPILED_CONFIGS = [c for c in CONFIGS if c.backend == "cython"]


@contextmanager
def using(config: Config) -> Iterator[None]:
    """Run the block under ``config``, then restore the previous settings.

    With several threads even small arrays are split (``PARALLEL_MIN_SIZE`` 0); streamed
    configurations write every contiguous float32 run with the non-temporal kernel
    (``STREAM_MIN_BYTES`` 0), the others never do.
    """
    previous_backend = lq.get_backend()
    lq.set_backend(config.backend)
    if compiled is None or not config.level:
        try:
            yield
        finally:
            lq.set_backend(previous_backend)
        return
    previous = (compiled.get_level(), lq.get_num_threads())
    sizes = (compiled.PARALLEL_MIN_SIZE, compiled.STREAM_MIN_BYTES)
    compiled.set_level(config.level)
    lq.set_num_threads(config.threads)
    compiled.PARALLEL_MIN_SIZE = 0 if config.threads > 1 else sizes[0]
    compiled.STREAM_MIN_BYTES = 0 if config.stream else 1 << 62
    try:
        yield
    finally:
        lq.set_backend(previous_backend)
        compiled.set_level(previous[0])
        lq.set_num_threads(previous[1])
        compiled.PARALLEL_MIN_SIZE, compiled.STREAM_MIN_BYTES = sizes


# --- the reference -------------------------------------------------------------------------

GAMMA = 0x9E3779B97F4A7C15
MIX_1, MIX_2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
M64 = 2**64


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * MIX_1) % M64
    z = ((z ^ (z >> 27)) * MIX_2) % M64
    return z ^ (z >> 31)


def splitmix64_sequence(seed: int, n: int) -> list[int]:
    """The first ``n`` outputs of SplitMix64 seeded with ``seed``, as the generator runs:
    ``state += gamma`` then the mix of the state, in Python ints."""
    state, outputs = seed, []
    for _ in range(n):
        state = (state + GAMMA) % M64
        outputs.append(_mix(state))
    return outputs


def splitmix64_at(seed: int, i: int) -> int:
    """The i-th output (0-based) alone, by SPEC §2.1's ``z = seed + (i + 1) * gamma``
    (checked against :func:`splitmix64_sequence` below)."""
    return _mix((seed + (i + 1) * GAMMA) % M64)


HALF = Fraction(1, 2)


def round_exact(t: float, mode: str, seed: int = 0, index: int = 0) -> int:
    """``t`` (a finite float) rounded to an integer by ``mode``, in exact arithmetic."""
    floor = math.floor(t)  # exact: a Python int
    if mode == "stochastic":
        frac = t - float(floor)  # a float64 subtraction, rounded to nearest, as SPEC §2.1 says
        draw = splitmix64_at(seed, index) >> 11
        return floor + int(draw < frac * 2.0**53)  # int < float compares exactly in Python
    rest = Fraction(t) - floor  # exact, in [0, 1)
    if rest == 0 or mode == "floor":
        return floor
    if mode == "ceil":
        return floor + 1
    if mode == "trunc":
        return floor + 1 if t < 0 else floor
    if rest != HALF:
        return floor + int(rest > HALF)
    if mode == "half_even":
        return floor + floor % 2
    if mode == "half_away":
        return floor + 1 if t > 0 else floor
    assert mode == "half_up"
    return floor + 1


def code_of(t: float, mode: str, zero_point: int, qmin: int, qmax: int, seed: int, i: int) -> int:
    """The code of one quotient: NaN as 0.0 (``nan="zero"``), ±inf saturate."""
    if math.isnan(t):
        rounded = 0
    elif math.isinf(t):
        return qmax if t > 0 else qmin
    else:
        rounded = round_exact(t, mode, seed, i)
    return min(max(rounded + zero_point, qmin), qmax)


def working_float(dtype: np.dtype) -> type[np.floating[Any]]:
    return np.float64 if dtype == np.float64 else np.float32


def code_range(code: np.dtype, bits: int | None, narrow: bool) -> tuple[int, int]:
    """[qmin, qmax] of SPEC §1."""
    b = 8 * code.itemsize if bits is None else bits
    if code.kind == "u":
        return 0, 2**b - 1
    return -(2 ** (b - 1)) + int(narrow), 2 ** (b - 1) - 1


def expand(
    params: object, shape: tuple[int, ...], axis: int | None, block_size: int | None
) -> np.ndarray:
    """Per-tensor, per-axis or per-block ``params`` repeated to one per element of ``shape``."""
    arr = np.asarray(params)
    if axis is None or arr.ndim == 0 or arr.shape == (1,):
        return np.broadcast_to(arr.reshape(()) if arr.ndim else arr, shape)
    axis %= len(shape)
    if block_size is None:
        return np.broadcast_to(
            arr.reshape([-1 if k == axis else 1 for k in range(len(shape))]), shape
        )
    repeated = np.repeat(arr, block_size, axis=axis)
    return np.take(repeated, np.arange(shape[axis]), axis=axis)


def stochastic_indices(
    shape: tuple[int, ...], position: tuple[tuple[int, ...], tuple[int, ...]] | None
) -> np.ndarray:
    """Each element's flat C-order index in the whole array (int64, or object past int64)."""
    start, whole = position if position is not None else ((0,) * len(shape), shape)
    strides, step = [], 1
    for n in reversed(whole):
        strides.append(step)
        step *= n
    strides.reverse()
    index = np.zeros(shape, dtype=object)
    for axis, (n, s, k) in enumerate(zip(shape, strides, start, strict=True)):
        along = np.array([(k + m) * s for m in range(n)], dtype=object)
        index = index + along.reshape([n if a == axis else 1 for a in range(len(shape))])
    return index


def quotients(x: np.ndarray, scale_full: np.ndarray) -> np.ndarray:
    """``x / scale`` by NumPy, a true division in the working float (float16 widened first)."""
    wf = working_float(x.dtype)
    with np.errstate(all="ignore"):
        return np.divide(x.astype(wf), scale_full.astype(wf))


def reference(
    x: np.ndarray,
    scale: object,
    zero_point: object,
    *,
    qmin: int,
    qmax: int,
    mode: str,
    axis: int | None = None,
    block_size: int | None = None,
    seed: int = 0,
    position: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
) -> np.ndarray:
    """The codes SPEC §2 and §2.1 give, as an int64 array of ``x.shape``."""
    t = quotients(x, expand(scale, x.shape, axis, block_size))
    zp = expand(zero_point, x.shape, axis, block_size).astype(np.int64)
    index = stochastic_indices(x.shape, position)
    codes = [
        code_of(ti, mode, zi, qmin, qmax, seed, int(ii))
        for ti, zi, ii in zip(t.ravel().tolist(), zp.ravel().tolist(), index.ravel(), strict=True)
    ]
    return np.array(codes, np.int64).reshape(x.shape)


def assert_codes(got: np.ndarray, expected: np.ndarray, dtype: np.dtype, what: object) -> None:
    assert got.dtype == dtype and got.shape == expected.shape, what
    np.testing.assert_array_equal(got.astype(np.int64), expected, err_msg=str(what))


# --- the reference itself --------------------------------------------------------------------


def test_reference_rounds_as_the_spec_table_says() -> None:
    # The reference against the SPEC's table on values whose results are known by hand: a
    # reference bug would make every comparison below meaningless.
    table = {
        #           2.5 -2.5 0.5 -0.5 1.25 -1.75 0.49999997 3.0
        "half_even": [2, -2, 0, 0, 1, -2, 0, 3],
        "half_away": [3, -3, 1, -1, 1, -2, 0, 3],
        "half_up": [3, -2, 1, 0, 1, -2, 0, 3],
        "floor": [2, -3, 0, -1, 1, -2, 0, 3],
        "ceil": [3, -2, 1, 0, 2, -1, 1, 3],
        "trunc": [2, -2, 0, 0, 1, -1, 0, 3],
    }
    values = [2.5, -2.5, 0.5, -0.5, 1.25, -1.75, float(np.float32(0.49999997)), 3.0]
    for mode, expected in table.items():
        assert [round_exact(v, mode) for v in values] == expected, mode
    # floor(t + 0.5) in float32 moves 0.49999997 and odd integers from 2**23 up; exactly, not
    assert round_exact(float(2**23 + 1), "half_up") == 2**23 + 1
    assert round_exact(float(np.nextafter(0.5, 0)), "half_up") == 0


# --- 1. every mode against the reference ---------------------------------------------------


@dataclass
class Case:
    """One quantize_linear call and what the reference says it returns."""

    x: np.ndarray
    scale: object
    zero_point: object
    code: np.dtype
    qmin: int
    qmax: int
    kwargs: dict[str, Any] = field(default_factory=dict)

    def expected(self) -> np.ndarray:
        kw = self.kwargs
        return reference(
            self.x,
            self.scale,
            self.zero_point,
            qmin=self.qmin,
            qmax=self.qmax,
            mode=kw.get("rounding", "half_even"),
            axis=kw.get("axis"),
            block_size=kw.get("block_size"),
            seed=kw.get("seed") or 0,
            position=kw.get("position"),
        )

    def call(self) -> np.ndarray:
        return lq.quantize_linear(
            self.x, self.scale, self.zero_point, dtype=self.code, **self.kwargs
        )


def _awkward_quotients(src: np.dtype, bounds: list[int]) -> st.SearchStrategy[tuple[float, bool]]:
    """``(value, raw)``: a target quotient (``raw`` False, multiplied by the element's scale)
    or a raw ``x`` value (``raw`` True: subnormals, specials)."""
    wide = src == np.float64
    exact = 2**52 if wide else 2**23
    small = st.integers(-300, 300)
    big = st.integers(-(2**62), 2**62)
    below_half = float(np.nextafter(0.5, 0.0)) if wide else float(np.float32(0.49999997))
    steps = (-1.5, -1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 1, 1.5)
    edges = [b + d for b in bounds for d in (*steps, below_half, -below_half)]
    targets = st.one_of(
        small.map(float),  # integers never move
        small.map(lambda k: k + 0.5),  # ties, positive and negative
        st.integers(-(2**21), 2**21).map(lambda k: k + 0.5),
        st.sampled_from(
            [
                *(below_half, -below_half, 1 - below_half, 1.5, -1.5, 2.5, -2.5),
                *(exact / 2 + 0.5, -exact / 2 - 0.5, exact - 0.5, exact + 1.0, -exact - 1.0),
                *(exact * 2 + 2.0, 2.0**31 + 0.5, -(2.0**31) - 1.5, 2.0**40 + 3, 1e30, -1e30),
            ]
        ),
        big.map(float),  # beyond 2**23 / 2**52, beyond int32
        st.sampled_from(edges),  # at and around the saturation bounds
        st.floats(-1000, 1000, allow_nan=False),
        st.floats(allow_nan=False, allow_infinity=False, width=64 if wide else 32),
    ).map(lambda t: (t, False))
    info = np.finfo(src)
    sub = float(info.smallest_subnormal)
    raw = st.sampled_from(
        [
            *(0.0, -0.0, math.inf, -math.inf, math.nan, sub, -sub, 3 * sub),
            *(float(info.tiny) / 2, -float(info.tiny) / 2, float(info.max), -float(info.max)),
        ]
    ).map(lambda v: (v, True))
    return st.one_of(targets, targets, targets, raw)


def _scales(wf: type[np.floating[Any]]) -> st.SearchStrategy[float]:
    """Mostly powers of two (ties stay ties), else any scale; tiny and huge ones too."""
    limit = 100 if wf is np.float32 else 900
    return st.one_of(
        st.integers(-20, 20).map(lambda e: 2.0**e),
        st.integers(-limit, limit).map(lambda e: 2.0**e),
        st.floats(1e-3, 1e3),
        st.sampled_from([0.37, 0.1, 3.0, 1e-30, 1e30, float(np.finfo(wf).smallest_subnormal)]),
    ).map(lambda s: float(wf(s)) if wf(s) > 0 and np.isfinite(wf(s)) else 1.0)


def _zero_points(code: np.dtype, qmin: int, qmax: int) -> st.SearchStrategy[int]:
    """In the code range mostly, sometimes anywhere in int32 (the kernels' wide form)."""
    return st.one_of(
        st.integers(qmin, qmax),
        st.integers(qmin, qmax),
        st.sampled_from([0, qmin, qmax, INT32_MIN, INT32_MAX, (1 << 24) + 1, -(1 << 24) - 1]),
        # quotients past 2**23 brought into the code range: float shortcuts fail there
        st.sampled_from([-(2**23) - 100, -(2**23) + 3, 2**23 - 50, -(2**24) - 9, -(2**30) + 1]),
        st.integers(INT32_MIN, INT32_MAX),
    )


@st.composite
def cases(draw: st.DrawFn, mode: str) -> Case:
    src = draw(st.sampled_from(FLOAT_DTYPES))
    wf = working_float(src)
    code = draw(st.sampled_from(CODE_DTYPES))
    signed = code.kind == "i"
    bits = draw(st.none() | st.integers(2, 8 * code.itemsize))
    narrow = signed and draw(st.booleans())
    qmin, qmax = code_range(code, bits, narrow)

    ndim = draw(st.integers(0, 3))
    shape = [draw(st.integers(1, 5)) for _ in range(ndim)]
    if ndim and draw(st.booleans()):  # rows long enough for the vector loops and whole lines
        shape[-1] = draw(st.sampled_from([16, 17, 31, 64, 65, 129, 200]))
    shape_t = tuple(shape)

    grouping = draw(st.sampled_from(["tensor", "axis", "block"])) if ndim else "tensor"
    kwargs: dict[str, Any] = {}
    axis = block_size = None
    if grouping != "tensor":
        axis = draw(st.integers(-ndim, ndim - 1))
        kwargs["axis"] = axis
        if grouping == "block":
            block_size = draw(st.integers(1, shape_t[axis] + 2))
            kwargs["block_size"] = block_size
    if axis is None:
        param_shape: tuple[int, ...] = ()
    elif block_size is None:
        param_shape = (shape_t[axis],)
    else:
        a = axis % ndim
        param_shape = (*shape_t[:a], -(-shape_t[a] // block_size), *shape_t[a + 1 :])

    n_params = math.prod(param_shape)
    scales = [draw(_scales(wf)) for _ in range(n_params)]
    scale: object = wf(scales[0]) if axis is None else np.array(scales, wf).reshape(param_shape)
    zero_points = [draw(_zero_points(code, qmin, qmax)) for _ in range(n_params)]
    zero_point: object = zero_points[0]
    if axis is not None:
        form = draw(st.sampled_from(["int32", "code", "shared"]))
        in_code = [min(max(z, qmin), qmax) for z in zero_points]
        if form == "int32":
            zero_point = np.array(zero_points, np.int32).reshape(param_shape)
        elif form == "code":  # as ONNX gives them; the compiled backend reads these in place
            zero_point = np.array(in_code, code).reshape(param_shape)

    lo_t, hi_t = qmin - zero_points[0], qmax - zero_points[0]
    bounds = sorted({lo_t, hi_t, (lo_t + hi_t) // 2, (lo_t + hi_t) // 2 + 1, qmin, qmax})
    items = draw(st.lists(_awkward_quotients(src, bounds), min_size=3, max_size=24))
    size = math.prod(shape_t)
    order = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(size)
    picked = [items[k % len(items)] for k in order.tolist()]
    scale_full = expand(scale, shape_t, axis, block_size).astype(np.float64).ravel()
    values = [v if raw else v * float(s) for (v, raw), s in zip(picked, scale_full, strict=True)]
    with np.errstate(all="ignore"):
        x = np.array(values, np.float64).astype(src).reshape(shape_t)

    kwargs["rounding"] = mode
    kwargs["nan"] = "zero" if np.isnan(x).any() else draw(st.sampled_from(["raise", "zero"]))
    if bits is not None:
        kwargs["bits"] = bits
    if narrow:
        kwargs["narrow_range"] = True
    if mode == "stochastic":
        kwargs["seed"] = draw(st.one_of(st.integers(0, SEED_MAX), st.sampled_from([0, SEED_MAX])))
        if draw(st.booleans()):
            start = tuple(draw(st.integers(0, 2**18)) for _ in shape_t)
            whole = tuple(
                k + n + draw(st.integers(0, 2**18)) for k, n in zip(start, shape_t, strict=True)
            )
            kwargs["position"] = (start, whole)
    return Case(x, scale, zero_point, code, qmin, qmax, kwargs)


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(data=st.data())
def test_every_mode_matches_the_exact_reference(mode: str, data: st.DataObject) -> None:
    case = data.draw(cases(mode), label="case")
    expected = case.expected()
    for config in CONFIGS:
        with using(config):
            got = case.call()
        assert_codes(got, expected, case.code, config)


def _traps(src: str) -> list[tuple[float, int]]:
    """``(quotient, zero point)`` pairs where shortcuts in floats go wrong: the neighbours of
    1/2, ties of both signs, subnormals, ±0 and, with zero points that bring them into the code
    range, quotients past 2**23 (float32: odd integers, where t + 1/2 rounds to even) or past
    int32 (float64)."""
    f = np.float64 if src == "f8" else np.float32
    below_half = float(np.nextafter(f(0.5), f(0)))
    sub = float(np.finfo(f).smallest_subnormal)
    near_one = float(np.nextafter(f(1), f(0)))
    small = [below_half, -below_half, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 1.25, -1.75, 3.0, -3.0]
    small += [near_one, -near_one, 1 - near_one, sub, -sub, 0.0, -0.0, 1.0 + below_half]
    pairs = [(t, 0) for t in small]
    if src == "f4":
        big = [2.0**23 + k for k in range(-3, 4)] + [2.0**22 + k + 0.5 for k in range(-2, 2)]
        pairs += [(t, -(2**23)) for t in big] + [(-t, 2**23) for t in big]
        pairs += [(2.0**24 + 2 * k, -(2**24)) for k in range(-2, 3)]
    else:
        big = [2.0**31 + k + 0.5 for k in range(-2, 2)] + [2.0**30 + k for k in range(-2, 3)]
        pairs += [(t, -(2**31) + 1) for t in big[:4]] + [(-t, 2**31 - 1) for t in big[:4]]
        pairs += [(t, -(2**30)) for t in big[4:]] + [(2.0**52 + 0.5 * k, 0) for k in (-1, 1)]
    return pairs


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("src", ["f4", "f8"])
def test_known_traps_match_the_reference(mode: str, src: str) -> None:
    # Per tensor (scale 1, each zero point apart) and per axis along the only axis (a scale and
    # zero point per element, repeated into rows long enough for the vector loops).
    pairs = _traps(src) * 9
    t = np.array([p[0] for p in pairs], src)
    zero_points = np.array([p[1] for p in pairs], np.int32)
    seed = 0xC0FFEE if mode == "stochastic" else None
    kwargs: dict[str, Any] = {"dtype": "int16", "rounding": mode, "seed": seed}
    scales = np.exp2(np.arange(len(pairs)) % 5 - 2)
    x = (t * scales).astype(src)
    expected = reference(
        x, scales, zero_points, qmin=-(2**15), qmax=2**15 - 1, mode=mode, axis=0, seed=seed or 0
    )
    for config in CONFIGS:
        with using(config):
            got = lq.quantize_linear(x, scales, zero_points, axis=0, **kwargs)
            assert_codes(got, expected, np.dtype(np.int16), (config, "per axis"))
            for zero_point in sorted(set(zero_points.tolist())):
                chosen = zero_points == zero_point
                got = lq.quantize_linear(t[chosen], 1.0, zero_point, **kwargs)
                want = reference(
                    t[chosen], 1.0, zero_point, qmin=-(2**15), qmax=2**15 - 1, mode=mode,
                    seed=seed or 0,
                )  # fmt: skip
                assert_codes(got, want, np.dtype(np.int16), (config, zero_point))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("src", FLOAT_DTYPES, ids=str)
def test_large_awkward_arrays_match_the_reference(mode: str, src: np.dtype) -> None:
    # Rows of hundreds of values (the vector loops, whole cache lines of the streamed kernel,
    # pieces per thread), full of ties, huge quotients, ±0, ±inf, NaN (nan="zero") and values
    # at the saturation bounds, per tensor, per axis and per block: every configuration gives
    # the reference's codes.
    rng = np.random.default_rng([MODES.index(mode), FLOAT_DTYPES.index(src)])
    shape = (4, 517)
    t = rng.uniform(-200, 200, shape)
    t[:, ::3] = np.round(t[:, ::3]) + 0.5
    t[:, 1::7] = np.round(t[:, 1::7])
    huge = [2.0**23 + 1, -(2.0**23) - 1, 2.0**22 + 0.5, 2.0**52 + 2, 3e9, -3e9, 1e30, -1e300]
    bounds = [-129.5, -128.5, -128.25, -127.5, 126.5, 127.5, 127.75, 128.5, -0.5, 0.5]
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan]
    for start, step, values in [(2, 11, huge), (4, 13, bounds), (5, 17, specials)]:
        t[:, start::step] = rng.choice(values, t[:, start::step].shape)
    calls: list[tuple[object, object, dict[str, Any]]] = [
        (np.float32(0.5), 3, {}),
        (rng.uniform(0.2, 2, shape[1]).astype(np.float32), -2, {"axis": 1}),
        (np.exp2(rng.integers(-3, 3, shape[0])), np.arange(4, dtype=np.int8) - 2, {"axis": 0}),
        (
            np.full((4, 17), 0.25),
            rng.integers(-20, 20, (4, 17)).astype(np.int8),
            {"block_size": 32},
        ),
        (np.full((2, 517), 0.75), 1, {"axis": 0, "block_size": 3}),
    ]
    seed = 0x0123456789ABCDEF if mode == "stochastic" else None
    for scale, zero_point, grouping in calls:
        if "block_size" in grouping and "axis" not in grouping:
            grouping = {**grouping, "axis": 1}
        axis, block_size = grouping.get("axis"), grouping.get("block_size")
        scale_full = expand(scale, shape, axis, block_size).astype(np.float64)
        with np.errstate(all="ignore"):
            x = (t * scale_full).astype(src)
        kwargs: dict[str, Any] = {**grouping, "rounding": mode, "seed": seed, "nan": "zero"}
        kwargs["dtype"] = "int8"
        qmin, qmax = -128, 127
        expected = reference(
            x, scale, zero_point, qmin=qmin, qmax=qmax, mode=mode, axis=axis,
            block_size=block_size, seed=seed or 0,
        )  # fmt: skip
        for config in CONFIGS:
            with using(config):
                got = lq.quantize_linear(x, scale, zero_point, **kwargs)
            assert_codes(got, expected, np.dtype(np.int8), (config, grouping))


def _tie_grid(
    draw: st.DrawFn, rng: np.random.Generator, shape: tuple[int, ...], kwargs: dict[str, Any]
) -> np.ndarray:
    """Values on a grid of half steps of ``2**e``, with each group's extremes set so that its
    scale is ``2**e`` exactly (symmetric: ``±qmax * 2**e``; asymmetric: ``-z * 2**e`` and
    ``(2**bits - 1 - z) * 2**e``, zero point z): quotients that are exact ties."""
    bits, unit = kwargs["bits"], 2.0 ** draw(st.integers(-6, 3))
    if kwargs["scheme"] == "symmetric":
        low, high = -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    else:
        z = draw(st.integers(0, 2**bits - 1))
        low, high = -z, 2**bits - 1 - z
        if not kwargs["include_zero"]:
            kwargs["include_zero"] = True  # a range that includes 0 gives the same parameters
    steps = rng.integers(2 * low, 2 * high + 1, shape) / 2
    x = steps * unit
    axis, block_size = kwargs.get("axis"), kwargs.get("block_size")
    if axis is None:
        n_groups, group_of = 1, np.zeros(shape, np.int64)
    else:
        a = axis % len(shape)
        param_shape = list(shape) if block_size is not None else [shape[a]]
        if block_size is not None:
            param_shape[a] = -(-shape[a] // block_size)
        n_groups = math.prod(param_shape)
        ids = np.arange(n_groups).reshape(param_shape)
        group_of = expand(ids, shape, axis, block_size)
    for g in range(n_groups):
        members = np.flatnonzero(group_of.ravel() == g)
        x.flat[members[0]] = high * unit if rng.random() < 0.5 or low == 0 else low * unit
        if len(members) > 1:
            x.flat[members[-1]] = low * unit if x.flat[members[0]] == high * unit else high * unit
    return x


@st.composite
def dynamic_cases(draw: st.DrawFn, mode: str) -> tuple[np.ndarray, dict[str, Any]]:
    src = draw(st.sampled_from(FLOAT_DTYPES))
    ndim = draw(st.integers(1, 3))
    shape = [draw(st.integers(1, 5)) for _ in range(ndim)]
    if draw(st.booleans()):
        shape[-1] = draw(st.sampled_from([16, 33, 64, 130]))
    grouping = draw(
        st.sampled_from(
            [
                *({}, {"axis": 0}, {"axis": -1, "block_size": 16}, {"axis": -1, "block_size": 5}),
                *({"axis": ndim - 1}, {"axis": 0, "block_size": 2}),
            ]
        )
    )
    scheme = draw(st.sampled_from(["asymmetric", "symmetric"]))
    kwargs: dict[str, Any] = {
        **grouping,
        "bits": draw(st.sampled_from([2, 4, 8, 12, 16])),
        "scheme": scheme,
        "rounding": mode,
    }
    if scheme == "asymmetric":
        kwargs["include_zero"] = draw(st.booleans())
    else:
        kwargs["narrow_range"] = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        x = _tie_grid(draw, rng, tuple(shape), kwargs)
    else:
        low = draw(st.sampled_from([-100.0, 0.0, 1000.0]))
        x = rng.uniform(low, low + draw(st.sampled_from([1.0, 37.0, 255.0])), shape)
        x[rng.random(shape) < 0.2] = 0.0
    if draw(st.booleans()):
        x[rng.random(shape) < 0.1] = np.nan
        kwargs["nan"] = "zero"
    if kwargs["rounding"] == "stochastic":
        kwargs["seed"] = draw(st.integers(0, SEED_MAX))
        if draw(st.booleans()):
            start = tuple(draw(st.integers(0, 100)) for _ in shape)
            whole = tuple(
                k + n + draw(st.integers(0, 100)) for k, n in zip(start, shape, strict=True)
            )
            kwargs["position"] = (start, whole)
    with np.errstate(over="ignore"):  # float16 overflows to inf, which SPEC §4 refuses
        return x.astype(src), kwargs


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(data=st.data())
def test_quantize_rounds_its_codes_by_the_mode(mode: str, data: st.DataObject) -> None:
    # lq.quantize chooses parameters from the data (they do not depend on the mode) and rounds
    # the codes by the mode: per tensor, and per axis and per block, the latter by the compiled
    # backend's one-read kernel where the groups are runs of x (blocks along the last axis,
    # channels along the first).
    x, kwargs = data.draw(dynamic_cases(mode), label="case")
    signed = kwargs["scheme"] == "symmetric"
    code = np.dtype(f"{'i' if signed else 'u'}{1 if kwargs['bits'] <= 8 else 2}")
    qmin, qmax = code_range(code, kwargs["bits"], kwargs.get("narrow_range", False))
    deterministic = {k: v for k, v in kwargs.items() if k not in ("rounding", "seed", "position")}
    with using(CONFIGS[0]):
        try:
            lq.quantize(x, **deterministic)
        except ValueError as error:  # SPEC §4 refuses this range (include_zero=False): so must
            for config in CONFIGS:  # every mode, in every configuration, with the same message
                with using(config), pytest.raises(ValueError, match=re.escape(str(error))):
                    lq.quantize(x, **kwargs)
            return
    results = []
    for config in CONFIGS:
        with using(config):
            qa = lq.quantize(x, **kwargs)
            default = lq.quantize(x, **deterministic)
        assert qa.rounding == kwargs["rounding"] and qa.seed == kwargs.get("seed")
        np.testing.assert_array_equal(qa.scale, default.scale)
        np.testing.assert_array_equal(qa.zero_point, default.zero_point)
        results.append((config, qa))
    qa = results[0][1]
    expected = reference(
        x, qa.scale, qa.zero_point, qmin=qmin, qmax=qmax, mode=kwargs["rounding"],
        axis=kwargs.get("axis"), block_size=kwargs.get("block_size"), seed=kwargs.get("seed", 0),
        position=kwargs.get("position"),
    )  # fmt: skip
    for config, result in results:
        np.testing.assert_array_equal(result.scale, qa.scale, err_msg=str(config))
        assert_codes(result.data, expected, code, config)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("shape", "grouping"),
    [
        ((3, 16 * 40), {"axis": -1, "block_size": 16}),  # whole groups of 16 blocks
        ((2, 32 * 17 + 5), {"axis": -1, "block_size": 32}),  # and a partial group
        ((2, 2 * 3000 + 7), {"axis": -1, "block_size": 3000}),  # one block a group, pipelined
        ((5, 700), {"axis": 0}),  # channels that are runs
        ((300, 40), {"axis": 1}),  # per column
    ],
    ids=["blocks of 16", "blocks of 32", "blocks of 3000", "rows", "columns"],
)
def test_dynamic_groups_round_by_the_mode_in_every_kernel(
    mode: str, shape: tuple[int, ...], grouping: dict[str, int]
) -> None:
    # Rows long enough for the compiled backend's vector kernels of dynamic blocks and
    # channels (groups of 16 blocks, blocks pipelined one at a time): every mode, every level.
    rng = np.random.default_rng(len(mode) * 1000 + shape[-1])
    x = (rng.standard_normal(shape) * 20).astype(np.float32)
    x.flat[::7] = np.round(x.flat[::7] * 2) / 2  # ties, wherever a scale makes them exact
    seed = {"seed": 11} if mode == "stochastic" else {}
    expected = None
    for config in CONFIGS:
        with using(config):
            qa = lq.quantize(x, 6, rounding=mode, **grouping, **seed)
        if expected is None:
            expected = reference(
                x, qa.scale, qa.zero_point, qmin=0, qmax=63, mode=mode, seed=seed.get("seed", 0),
                axis=grouping["axis"], block_size=grouping.get("block_size"),
            )  # fmt: skip
        assert_codes(qa.data, expected, np.dtype(np.uint8), config)


@pytest.mark.parametrize("mode", MODES)
def test_nan_raises_in_every_mode_unless_nan_zero(mode: str) -> None:
    x = np.array([[1.25, np.nan], [2.5, -0.75]], np.float32)
    seed = 7 if mode == "stochastic" else None
    for config in CONFIGS:
        with using(config), pytest.raises(ValueError, match=r"1 NaN value, the first at index"):
            lq.quantize_linear(x, 0.5, 3, rounding=mode, seed=seed)
        with using(config):
            q = lq.quantize_linear(x, 0.5, 3, rounding=mode, seed=seed, nan="zero")
        assert q[0, 1] == 3, config  # NaN quantized as 0.0: the zero point, whatever the mode


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("src", FLOAT_DTYPES, ids=str)
def test_integers_and_infinities_never_move(mode: str, src: np.dtype) -> None:
    # Integer quotients are kept by every mode (stochastic included, whatever the seed), ±0 give
    # the zero point, ±inf saturate: codes by Python ints alone.
    ints = [0, 1, -1, 2, -2, 3, -3, 100, -100, 511, -512, 1000, -1000, 2047, -2048]
    values = [*ints, -0.0, math.inf, -math.inf] * 9
    x = np.array(values, np.float64).astype(src)
    seed = 2**63 + 5 if mode == "stochastic" else None
    expected = np.array([min(max(int(v) + 7, -(2**15)), 2**15 - 1) if math.isfinite(v)
                         else (2**15 - 1 if v > 0 else -(2**15)) for v in values])  # fmt: skip
    for config in CONFIGS:
        for scale in (1.0, 0.25, 8.0):
            with using(config):
                q = lq.quantize_linear(x * src.type(scale), scale, 7, dtype="int16",
                                       rounding=mode, seed=seed)  # fmt: skip
            assert_codes(q, expected, np.dtype(np.int16), (config, scale))


# --- 2. stochastic rounding --------------------------------------------------------------------


def test_splitmix64_matches_a_sequential_generator() -> None:
    # Known outputs of Vigna's splitmix64.c (seed 0's first; seed 1234567's first five, as
    # Rosetta Code's "Pseudo-random numbers/Splitmix64" lists them) check the pure-Python
    # sequential generator; it checks the i-th-output formula and linquant._rounding.splitmix64.
    assert splitmix64_sequence(0, 1) == [0xE220A8397B1DCDAF]
    assert splitmix64_sequence(1234567, 5) == [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ]
    for seed in (0, 1, 42, GAMMA, 2**63, SEED_MAX, 0x0123456789ABCDEF):
        sequence = splitmix64_sequence(seed, 1000)
        assert [splitmix64_at(seed, i) for i in range(1000)] == sequence
        got = _rounding.splitmix64(seed, np.arange(1000, dtype=np.uint64))
        assert got.dtype == np.uint64
        assert got.tolist() == sequence, seed
    # far indices: the i-th output alone, as a generator that ran i steps would give it
    far = [2**32, 2**40 + 3, 2**62, 2**63 - 1]
    got = _rounding.splitmix64(99, np.array(far, np.uint64)).tolist()
    assert got == [_mix((99 + (i + 1) * GAMMA) % M64) for i in far]


@pytest.mark.parametrize("seed", [0, 1, SEED_MAX, GAMMA, 0x5EED5EED5EED5EED])
@pytest.mark.parametrize(("t", "src"), [(0.3, "f8"), (0.5, "f4"), (-2.7, "f8"), (0.875, "f2")])
def test_stochastic_codes_follow_the_sequential_generator(seed: int, t: float, src: str) -> None:
    # A constant quotient: element i goes up iff the i-th output of the sequential generator,
    # shifted right by 11, is below frac * 2**53, frac = t - floor(t) in float64.
    n = 1000
    x = np.full(n, t, src)
    t_exact = float(x[0].astype(np.float64 if src == "f8" else np.float32))
    floor = math.floor(t_exact)
    frac = t_exact - floor
    ups = [int((u >> 11) < frac * 2.0**53) for u in splitmix64_sequence(seed, n)]
    expected = np.array([floor + 5 + up for up in ups])
    assert 0 < sum(ups) < n  # both ways occur: a fixed result would pass for a wrong draw
    for config in CONFIGS:
        with using(config):
            q = lq.quantize_linear(x, 1.0, 5, dtype="int8", rounding="stochastic", seed=seed)
        assert_codes(q, expected, np.dtype(np.int8), config)


def test_seeds_differ_and_reproduce() -> None:
    x = np.full((64, 65), 0.5, np.float32)
    results = {}
    for seed in (0, 1, 2, SEED_MAX, 2**63):
        runs = []
        for config in CONFIGS:
            with using(config):
                runs.append(lq.quantize_linear(x, 1.0, rounding="stochastic", seed=seed))
        for run in runs[1:]:
            np.testing.assert_array_equal(run, runs[0])  # the same seed reproduces
        results[seed] = runs[0]
    seeds = list(results)
    for a in range(len(seeds)):
        for b in range(a + 1, len(seeds)):
            differ = np.count_nonzero(results[seeds[a]] != results[seeds[b]])
            assert differ > x.size // 4, (seeds[a], seeds[b])  # about half of them differ
    # a NumPy integer seed is the same seed as the int
    np.testing.assert_array_equal(
        lq.quantize_linear(x, 1.0, rounding="stochastic", seed=np.uint64(SEED_MAX)),
        results[SEED_MAX],
    )


def _box_params(
    params: object, box: tuple[slice, ...], axis: int | None, block_size: int | None, ndim: int
) -> object:
    """The parameters of the box ``box`` of x: per-axis ones sliced along the axis, per-block
    ones at the blocks the box covers (its start along the axis is a block boundary)."""
    arr = np.asarray(params)
    if axis is None or arr.ndim == 0 or arr.shape == (1,):
        return params
    a = axis % ndim
    if block_size is None:
        return arr[box[a]]
    start, stop = box[a].start, box[a].stop
    blocks = slice(start // block_size, -(-stop // block_size))
    return arr[tuple([*box[:a], blocks, *box[a + 1 :]])]


@st.composite
def chunked_cases(draw: st.DrawFn) -> dict[str, Any]:
    ndim = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 5 if ndim > 2 else 9)) for _ in range(ndim)]
    if ndim <= 2 and draw(st.booleans()):
        shape[-1] = draw(st.sampled_from([33, 70, 131]))
    src = draw(st.sampled_from(FLOAT_DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = (rng.uniform(-40, 40, shape) * 4).round() / 4 + rng.uniform(-0.1, 0.1, shape)
    grouping = draw(st.sampled_from(["tensor", "axis", "block"]))
    axis = block_size = None
    scale: object = np.float32(draw(st.sampled_from([0.25, 0.37, 1.0])))
    zero_point: object = draw(st.integers(-5, 5))
    if grouping != "tensor":
        axis = draw(st.integers(0, ndim - 1))
        if grouping == "block":
            block_size = draw(st.integers(1, shape[axis] + 1))
            param_shape = list(shape)
            param_shape[axis] = -(-shape[axis] // block_size)
        else:
            param_shape = [shape[axis]]
        scale = rng.uniform(0.2, 2, param_shape).astype(np.float32)
        zero_point = rng.integers(-5, 5, param_shape).astype(np.int32)
    # a random partition: cuts along each axis (along a per-block axis at block boundaries)
    cuts = []
    for a, n in enumerate(shape):
        step = block_size if (a == axis and block_size is not None) else 1
        points = draw(st.sets(st.integers(1, max(1, (n - 1) // step)), max_size=3))
        inner = sorted(p * step for p in points if p * step < n)
        cuts.append([0, *inner, n])
    return {
        "x": x.astype(src),
        "scale": scale,
        "zero_point": zero_point,
        "axis": axis,
        "block_size": block_size,
        "seed": draw(st.integers(0, SEED_MAX)),
        "cuts": cuts,
    }


def _boxes(cuts: list[list[int]]) -> Iterator[tuple[slice, ...]]:
    for corner in np.ndindex(*[len(c) - 1 for c in cuts]):
        yield tuple(slice(c[k], c[k + 1]) for c, k in zip(cuts, corner, strict=True))


def _check_chunks(case: dict[str, Any], configs: list[Config]) -> None:
    x, axis, block_size, seed = case["x"], case["axis"], case["block_size"], case["seed"]
    groups = {"axis": axis, "block_size": block_size}
    common = {**groups, "dtype": "int16", "rounding": "stochastic", "seed": seed}
    expected = reference(
        x, case["scale"], case["zero_point"], qmin=-(2**15), qmax=2**15 - 1, mode="stochastic",
        axis=axis, block_size=block_size, seed=seed,
    )  # fmt: skip
    for config in configs:
        with using(config):
            whole = lq.quantize_linear(x, case["scale"], case["zero_point"], **common)
            assert_codes(whole, expected, np.dtype(np.int16), config)
            for box in _boxes(case["cuts"]):
                scale = _box_params(case["scale"], box, axis, block_size, x.ndim)
                zero_point = _box_params(case["zero_point"], box, axis, block_size, x.ndim)
                start = tuple(s.start for s in box)
                piece = lq.quantize_linear(
                    x[box], scale, zero_point, position=(start, x.shape), **common
                )
                np.testing.assert_array_equal(piece, whole[box], err_msg=f"{config} {box}")


@SETTINGS
@given(case=chunked_cases())
def test_stochastic_chunks_equal_the_whole(case: dict[str, Any]) -> None:
    # Any partition of an array into boxes, each quantized with position=(start, x.shape), gives
    # the codes of the whole array's call (which are the reference's), under every backend.
    _check_chunks(case, CONFIGS)


@pytest.mark.parametrize(
    ("axis", "block_size"), [(None, None), (0, None), (1, None), (3, None), (1, 2), (3, 4)]
)
@pytest.mark.parametrize("src", ["f4", "f8"])
def test_stochastic_4d_boxes_whose_index_maps_do_not_merge(
    axis: int | None, block_size: int | None, src: str
) -> None:
    # A box of a 4-D array cut along its inner axes has index steps that no (outer, n, inner)
    # view holds: the compiled backend takes such calls apart. Boxes with axes of length one
    # among them, per tensor, per axis and per block.
    rng = np.random.default_rng(4)
    shape = (3, 4, 5, 9)
    x = rng.uniform(-30, 30, shape).astype(src)
    if axis is None:
        scale: object = np.float32(0.3)
        zero_point: object = 2
    elif block_size is None:
        scale = rng.uniform(0.2, 2, shape[axis]).astype(np.float32)
        zero_point = rng.integers(-5, 5, shape[axis]).astype(np.int32)
    else:
        param_shape = list(shape)
        param_shape[axis] = -(-shape[axis] // block_size)
        scale = rng.uniform(0.2, 2, param_shape).astype(np.float32)
        zero_point = rng.integers(-5, 5, param_shape).astype(np.int8)
    for cuts in (
        [[0, 1, 3], [0, 2, 4], [0, 1, 5], [0, 4, 5, 9]],
        [[0, 3], [0, 2, 4], [0, 2, 3, 5], [0, 8, 9]],
        [[0, 2, 3], [0, 4], [0, 5], [0, 4, 9]],
    ):
        # along a per-block axis, cuts fall between blocks
        if (
            axis is not None
            and block_size is not None
            and any(c % block_size for c in cuts[axis][:-1])
        ):
            cuts[axis] = [0, shape[axis]]
        case = {
            "x": x, "scale": scale, "zero_point": zero_point, "axis": axis,
            "block_size": block_size, "seed": 0xDEADBEEF, "cuts": cuts,
        }  # fmt: skip
        _check_chunks(case, CONFIGS)


LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "fortran": np.asfortranarray,
    "transposed": lambda a: a.T,
    "axes permuted": lambda a: a.transpose(2, 0, 1),
    "negative strides": lambda a: a[::-1, :, ::-2],
    "strided": lambda a: a[:, ::2, 1::3],
    "byte-swapped": lambda a: a.astype(a.dtype.newbyteorder()),
    "misaligned": lambda a: np.frombuffer(b"\0" + a.tobytes(), a.dtype, a.size, 1).reshape(a.shape),
}


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
@pytest.mark.parametrize(("axis", "block_size"), [(None, None), (1, None), (2, 8), (0, 2)])
@pytest.mark.parametrize("src", ["f4", "f8"])
def test_stochastic_layouts_give_their_contiguous_copys_codes(
    layout: Callable[[np.ndarray], np.ndarray], axis: int | None, block_size: int | None, src: str
) -> None:
    # Element i of a view is the element of C-order index i of the view: Fortran-ordered,
    # transposed, negatively strided and strided input round as their C-contiguous copy, whatever
    # the order of memory or of the output.
    base = np.random.default_rng(5).uniform(-30, 30, (6, 10, 67)).astype(src)
    x = layout(base)
    copy = np.ascontiguousarray(x)
    assert np.array_equal(copy, x)
    if axis is None:
        scale: object = 0.3
    elif block_size is None:
        scale = np.linspace(0.2, 2, x.shape[axis], dtype=np.float32)
    else:
        param_shape = list(x.shape)
        param_shape[axis] = -(-x.shape[axis] // block_size)
        scale = np.linspace(0.2, 2, math.prod(param_shape)).reshape(param_shape)
    kwargs: dict[str, Any] = {"axis": axis, "block_size": block_size, "seed": 11}
    kwargs["rounding"] = "stochastic"
    kwargs["dtype"] = "int8"
    expected = reference(
        copy, scale, -1, qmin=-128, qmax=127, mode="stochastic", axis=axis,
        block_size=block_size, seed=11,
    )  # fmt: skip
    position = ((1, 2, 3), tuple(n + 5 for n in x.shape))
    expected_moved = reference(
        copy, scale, -1, qmin=-128, qmax=127, mode="stochastic", axis=axis,
        block_size=block_size, seed=11, position=position,
    )  # fmt: skip
    for config in CONFIGS:
        with using(config):
            codes = lq.quantize_linear(x, scale, -1, **kwargs)
            np.testing.assert_array_equal(codes, lq.quantize_linear(copy, scale, -1, **kwargs))
            assert_codes(codes, expected, np.dtype("i1"), config)
            out = np.zeros(x.shape, np.int8, order="F")
            lq.quantize_linear(x, scale, -1, out=out, **kwargs)
            assert_codes(out, expected, np.dtype("i1"), config)
            moved = lq.quantize_linear(x, scale, -1, position=position, **kwargs)
            assert_codes(moved, expected_moved, np.dtype("i1"), config)


@needs_compiled
@pytest.mark.parametrize("src", ["f4", "f8"])
def test_stochastic_threads_and_levels_agree(src: str) -> None:
    # Large calls split across 1 to 4 threads (PARALLEL_MIN_SIZE 0), streamed or not, at every
    # CPU level: the NumPy backend's codes, which match the reference at sampled elements.
    assert compiled is not None
    rng = np.random.default_rng(6)
    shape = (129, 517)
    x = rng.uniform(-100, 100, shape).astype(src)
    x[::5] = np.round(x[::5]) + 0.5
    calls: list[tuple[object, dict[str, Any]]] = [
        (0.5, {}),
        (rng.uniform(0.2, 2, shape[0]).astype(np.float32), {"axis": 0}),
        (rng.uniform(0.2, 2, shape[1]).astype(np.float32), {"axis": 1}),
        (rng.uniform(0.2, 2, (129, 17)).astype(np.float32), {"axis": 1, "block_size": 32}),
        (rng.uniform(0.2, 2, (43, 517)).astype(np.float32), {"axis": 0, "block_size": 3}),
    ]
    sample = tuple(rng.integers(0, n, 1500) for n in shape)
    for scale, grouping in calls:
        kwargs: dict[str, Any] = {**grouping, "dtype": "int16", "seed": 2**64 - 3}
        kwargs["rounding"] = "stochastic"
        with using(CONFIGS[0]):
            expected = lq.quantize_linear(x, scale, 9, **kwargs)
        scale_full = expand(scale, shape, grouping.get("axis"), grouping.get("block_size"))
        t = quotients(x, scale_full)[sample].tolist()
        flat = np.ravel_multi_index(sample, shape).tolist()
        codes = [code_of(ti, "stochastic", 9, -(2**15), 2**15 - 1, 2**64 - 3, i)
                 for ti, i in zip(t, flat, strict=True)]  # fmt: skip
        np.testing.assert_array_equal(expected[sample], codes)
        for level in compiled.supported_levels():
            for threads in (1, 2, 3, 4):
                for stream in (False, True):
                    config = Config("cython", level, threads, stream)
                    with using(config):
                        compiled.PARALLEL_MIN_SIZE = 0
                        got = lq.quantize_linear(x, scale, 9, **kwargs)
                    np.testing.assert_array_equal(got, expected, err_msg=f"{config} {grouping}")


@pytest.mark.parametrize(
    ("t", "src"),
    [
        (0.5, "f4"),
        (0.25, "f8"),
        (0.1, "f8"),
        (0.7, "f4"),
        (2.0**-12, "f8"),
        (1 - 2.0**-12, "f4"),
        (-0.3, "f8"),
        (-(2.0**-12), "f4"),
        (-5.5, "f2"),
        (123.875, "f4"),
    ],
)
def test_stochastic_mean_is_the_fraction(t: float, src: str) -> None:
    # P(up) is the exact fraction of the float quotient: the mean of 2**18 draws, and of each
    # half and each index residue mod 4 (which catches draws repeated along vector lanes or
    # threads), lies within 6 binomial standard deviations of it.
    n = 1 << 18
    x = np.full(n, t, src)
    quotient = float(x[0].astype(np.float64 if src == "f8" else np.float32))
    floor = math.floor(quotient)
    p = float(Fraction(quotient) - floor)
    for config in (CONFIGS[0], *COMPILED_CONFIGS[-3:]):
        with using(config):
            q = lq.quantize_linear(x, 1.0, 0, dtype="int16", rounding="stochastic", seed=12345)
        ups = q.astype(np.int64) - floor
        assert set(np.unique(ups).tolist()) <= {0, 1}, config
        for part in (ups, ups[: n // 2], ups[n // 2 :], *(ups[r::4] for r in range(4))):
            bound = 6 * math.sqrt(p * (1 - p) / part.size) + 1 / part.size
            assert abs(part.mean() - p) <= bound, (config, part.size, part.mean(), p)


def test_a_fraction_rounded_to_one_always_rounds_up() -> None:
    # t = -2**-60 (float64): frac = 1 - 2**-60 rounds to 1.0 in float64, so every draw goes up
    # to 0, never down to -1 (SPEC §2.1); the reference agrees.
    x = np.full(5000, -(2.0**-60))
    assert round_exact(float(x[0]), "stochastic", 3, 0) == 0
    for config in CONFIGS:
        with using(config):
            q = lq.quantize_linear(x, 1.0, 0, dtype="int8", rounding="stochastic", seed=3)
        assert np.all(q == 0), config


# --- 3. argument checks --------------------------------------------------------------------


X = np.linspace(-3, 5, 12, dtype=np.float32).reshape(3, 4)
CALLS: dict[str, Callable[..., object]] = {
    "quantize_linear": lambda x, **kw: lq.quantize_linear(x, 0.1, 3, **kw),
    "quantize": lambda x, **kw: lq.quantize(x, **kw),
    "quantize per block": lambda x, **kw: lq.quantize(x, axis=1, block_size=2, **kw),
}
POSITION = re.escape("position must be (start, shape)")


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rounding": "nearest"}, "rounding must be one of"),
        ({"rounding": "HALF_EVEN"}, "rounding must be one of"),
        ({"rounding": None}, "rounding must be one of"),
        ({"rounding": 3}, "rounding must be one of"),
        ({"rounding": "stochastic"}, "needs seed="),
        ({"rounding": "stochastic", "seed": None}, "needs seed="),
        ({"rounding": "stochastic", "seed": -1}, "needs seed="),
        ({"rounding": "stochastic", "seed": 2**64}, "needs seed="),
        ({"rounding": "stochastic", "seed": 1.0}, "needs seed="),
        ({"rounding": "stochastic", "seed": "3"}, "needs seed="),
        ({"rounding": "stochastic", "seed": True}, "needs seed="),
        ({"rounding": "stochastic", "seed": np.True_}, "needs seed="),
        ({"rounding": "stochastic", "seed": np.float64(2)}, "needs seed="),
        ({"seed": 1}, "^seed applies to rounding='stochastic' only"),
        ({"rounding": "floor", "seed": 1}, "^seed applies to rounding='stochastic' only"),
        ({"rounding": "half_up", "seed": 0}, "^seed applies to rounding='stochastic' only"),
        ({"rounding": "trunc", "position": ((0, 0), (3, 4))}, "^position applies to"),
        ({"position": ((0, 0), (3, 4))}, "^position applies to rounding='stochastic' only"),
    ],
)
def test_bad_rounding_arguments(
    call: Callable[..., object], kwargs: dict[str, Any], match: str
) -> None:
    for config in (CONFIGS[0], CONFIGS[-1]):
        with using(config), pytest.raises(ValueError, match=match):
            call(X, **kwargs)


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize(
    "position",
    [
        ((0, 0),),  # not a pair
        ((0, 0), (3, 4), (3, 4)),
        ((0,), (3,)),  # fewer axes than x
        ((0, 0, 0), (3, 4, 1)),
        ((1, 0), (3, 4)),  # start + shape beyond the whole
        ((0, 1), (3, 4)),
        ((0, 0), (2, 4)),  # the whole smaller than x
        ((-1, 0), (3, 4)),  # negative start
        ((0, 0), (-3, 4)),
        ((0.0, 0), (3, 4)),  # not ints
        ((0, 0), (3.0, 4)),
        ((True, 0), (4, 4)),
        ("ab", "cd"),
        (None, None),
        ((0, 0), None),
        7,
    ],
    ids=repr,
)
def test_bad_position(call: Callable[..., object], position: object) -> None:
    for config in (CONFIGS[0], CONFIGS[-1]):
        with using(config), pytest.raises(ValueError, match=POSITION) as info:
            call(X, rounding="stochastic", seed=1, position=position)
        assert "(3, 4)" in str(info.value)  # names x's shape


@pytest.mark.parametrize("position", [5, "ab", ((0,), ()), [(), 0]], ids=repr)
def test_bad_position_of_a_0d_array(position: object) -> None:
    # A 0-d x has an empty start and shape: anything else is not (start, shape).
    with pytest.raises(ValueError, match=POSITION):
        lq.quantize_linear(np.float32(0.3), 1.0, rounding="stochastic", seed=1, position=position)
    whole = lq.quantize_linear(np.float32(0.3), 1.0, rounding="stochastic", seed=1)
    placed = lq.quantize_linear(
        np.float32(0.3), 1.0, rounding="stochastic", seed=1, position=((), ())
    )
    assert placed.shape == () and placed == whole


def test_position_beyond_2_63_elements_raises() -> None:
    with pytest.raises(ValueError, match=r"at most 2\*\*63 elements"):
        lq.quantize_linear(X, 0.1, rounding="stochastic", seed=1, position=((0, 0), (2**32, 2**32)))
    # at the limit itself, it works; a valid position from NumPy ints and lists works too
    big = ((2**31 - 3, 2**32 - 4), (2**31, 2**32))
    q = lq.quantize_linear(X, 0.1, 3, rounding="stochastic", seed=1, position=big)
    expected = reference(X, np.float32(0.1), 3, qmin=0, qmax=255, mode="stochastic", seed=1,
                         position=big)  # fmt: skip
    assert_codes(q, expected, np.dtype(np.uint8), "2**63 elements")
    listed = [[np.int64(2**31 - 3), 2**32 - 4], [2**31, np.uint64(2**32)]]
    q2 = lq.quantize_linear(X, 0.1, 3, rounding="stochastic", seed=1, position=listed)  # type: ignore[arg-type]
    np.testing.assert_array_equal(q2, q)


def test_bad_arguments_write_nothing() -> None:
    out = np.full(X.shape, 77, np.uint8)
    for kwargs, match in (
        ({"rounding": "stochastic"}, "needs seed="),
        ({"rounding": "stochastic", "seed": 1, "position": ((1, 0), (3, 4))}, "position must"),
        ({"rounding": "nearest"}, "rounding must be one of"),
    ):
        with pytest.raises(ValueError, match=match):
            lq.quantize_linear(X, 0.1, 3, out=out, **kwargs)
        assert np.all(out == 77)


def test_quantized_array_records_rounding_and_seed() -> None:
    qa = lq.quantize(X)
    assert qa.rounding == "half_even" and qa.seed is None
    for mode in DETERMINISTIC:
        qa = lq.quantize(X, rounding=mode)
        assert qa.rounding == mode and qa.seed is None
        codes = reference(X, qa.scale, qa.zero_point, qmin=0, qmax=255, mode=mode)
        assert_codes(qa.data, codes, np.dtype(np.uint8), mode)
        assert (f"rounding={mode!r}" in repr(qa)) == (mode != "half_even")
    qa = lq.quantize(X, rounding="stochastic", seed=SEED_MAX, position=((2, 0), (5, 4)))
    assert qa.rounding == "stochastic" and qa.seed == SEED_MAX
    assert f"rounding='stochastic', seed={SEED_MAX}" in repr(qa)
    expected = reference(X, qa.scale, qa.zero_point, qmin=0, qmax=255, mode="stochastic",
                         seed=SEED_MAX, position=((2, 0), (5, 4)))  # fmt: skip
    assert_codes(qa.data, expected, np.dtype(np.uint8), "stochastic")
    # a QuantizedArray is checked as a call is
    with pytest.raises(ValueError, match="needs seed="):
        lq.QuantizedArray(qa.data, qa.scale, qa.zero_point, 8, "asymmetric", rounding="stochastic")
    with pytest.raises(ValueError, match="stochastic' only"):
        lq.QuantizedArray(qa.data, qa.scale, qa.zero_point, 8, "asymmetric", seed=3)
    with pytest.raises(ValueError, match="rounding must be one of"):
        lq.QuantizedArray(qa.data, qa.scale, qa.zero_point, 8, "asymmetric", rounding="up")
