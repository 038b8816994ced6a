"""The compiled and the NumPy backend agree bit for bit on awkward inputs (SPEC §5, §6).

Every operation is run under each configuration by one helper, :func:`run_both`: the NumPy
reference, and the compiled backend at each CPU level this machine runs and with 2-4 threads
(splitting even small arrays). It records either the result or the exception (type and
message) and asserts that the records are identical: arrays by dtype, shape, contiguity
and bytes; scalars by dtype and bytes. It also asserts that no input array (nor the memory
around a view of one) was modified.

The inputs come from composable strategies:

- :func:`float_arrays`: 0-d to 4-d float16/float32/float64 arrays, empty ones included, drawn
  from one *regime* per array (arbitrary floats, ordinary data, subnormal-sized values, values
  near the float maximum, exact ``.5`` ties on a power-of-two grid, constants), with NaN, ±inf
  and signed zeros sprinkled in, and seen through a :class:`Layout`;
- :func:`layouts`: views with the same contents: strided (steps of 2 and 3, the gaps filled
  with garbage), negatively strided, transposed, Fortran-ordered, byte-swapped, read-only,
  misaligned, alone or combined (SPEC §5: each gives the result of its contiguous copy, which
  :func:`check_op` also asserts);
- scalar strategies for bits, scales, zero points and dtypes, mostly valid, with an
  occasional invalid value, since "both raise the same error" is an outcome to compare too.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import linquant as lq
from linquant import _backend, _histograms, _numpy_backend, gguf

BACKENDS = _backend.available_backends()
REFERENCE = "numpy"


@dataclass(frozen=True)
class Config:
    """A backend, and for the compiled one its CPU level and thread count."""

    backend: str
    level: str = ""
    threads: int = 1

    def __str__(self) -> str:
        threads = f"{self.threads} threads" if self.threads > 1 else ""
        return "/".join(part for part in (self.backend, self.level, threads) if part)


def _configs() -> list[Config]:
    configs = [Config(REFERENCE)]
    if _backend._compiled is not None:
        levels = _backend._compiled.supported_levels()
        configs += [Config("cython", level) for level in levels]
        configs += [Config("cython", levels[-1], threads) for threads in (2, 3, 4)]
    return configs


CONFIGS = _configs()

settings.register_profile("linquant-backends", max_examples=300, deadline=None)
BACKEND_SETTINGS = settings.get_profile("linquant-backends")

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
CODE_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.uint16), np.dtype(np.int16))
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SPECIAL_VALUES = (math.nan, math.inf, -math.inf, 0.0, -0.0)


# --- running one call under every backend -------------------------------------------------


@contextmanager
def using(config: Config) -> Iterator[None]:
    """Run the block under ``config``, then restore the previous settings.

    With several threads even small arrays are split, and their results are written with the
    non-temporal stores meant for large ones, so that both are exercised on every shape and
    layout the strategies make.
    """
    compiled = _backend._compiled
    previous = (lq.get_backend(), lq.get_cpu_level(), lq.get_num_threads())
    lq.set_backend(config.backend)
    if compiled is not None and config.level:
        compiled.set_level(config.level)
        lq.set_num_threads(config.threads)
        sizes = (compiled.PARALLEL_MIN_SIZE, compiled.STREAM_MIN_BYTES)
        if config.threads > 1:
            compiled.PARALLEL_MIN_SIZE = compiled.STREAM_MIN_BYTES = 0
    try:
        yield
    finally:
        lq.set_backend(previous[0])
        if compiled is not None and config.level:
            compiled.set_level(previous[1])
            lq.set_num_threads(previous[2])
            compiled.PARALLEL_MIN_SIZE, compiled.STREAM_MIN_BYTES = sizes


def fingerprint(value: object) -> object:
    """A comparable record of a result: arrays and NumPy scalars by dtype and bytes."""
    if isinstance(value, lq.QuantizedArray):
        parts = (value.data, value.scale, value.zero_point, value.bits, value.scheme)
        return ("QuantizedArray", *map(fingerprint, parts))
    if isinstance(value, tuple):
        return tuple(map(fingerprint, value))
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.flags.c_contiguous, value.tobytes())
    if isinstance(value, np.generic):
        return (type(value).__name__, value.dtype.str, value.tobytes())
    return (type(value).__name__, repr(value))


@dataclass(frozen=True)
class Outcome:
    """What one call did: returned ``value``, or raised ``error`` (type and message)."""

    value: object = None
    error: tuple[type[BaseException], str] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def record(self) -> object:
        return self.error if self.error is not None else fingerprint(self.value)


def _outcome(fn: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Outcome:
    try:
        return Outcome(value=fn(*args, **kwargs))
    except AssertionError:
        raise
    except Exception as error:
        return Outcome(error=(type(error), str(error)))


def _memory(arr: np.ndarray) -> np.ndarray:
    """The array that owns the memory ``arr`` views (so that gaps of a view are checked too)."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def describe(arr: np.ndarray) -> str:
    """dtype, shape and memory layout of ``arr``, for failure messages."""
    flags = ("C_CONTIGUOUS", "F_CONTIGUOUS", "WRITEABLE", "ALIGNED")
    set_flags = "|".join(flag for flag in flags if arr.flags[flag])
    return f"{arr.dtype.str}{arr.shape} strides={arr.strides} {set_flags}"


def run_both(fn: Callable[..., object], *args: Any, **kwargs: Any) -> Outcome:
    """Run ``fn(*args, **kwargs)`` under every backend and assert identical outcomes.

    Also asserts that no array argument (nor the memory it views) was modified. Returns the
    outcome of the NumPy reference.
    """
    inputs = [a for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray)]
    before = [_memory(a).tobytes() for a in inputs]
    outcomes = {}
    for config in CONFIGS:
        with using(config):
            outcomes[str(config)] = _outcome(fn, args, kwargs)
        after = [_memory(a).tobytes() for a in inputs]
        assert after == before, f"{config} modified an input array"
    reference = outcomes[REFERENCE]
    for name, outcome in outcomes.items():
        assert outcome.record == reference.record, (
            f"backends differ:\n  {name}: {outcome}\n  {REFERENCE}: {reference}\n"
            f"  arrays: {', '.join(map(describe, inputs))}"
        )
    return reference


def check_op(fn: Callable[..., object], x: np.ndarray, *args: Any, **kwargs: Any) -> Outcome:
    """:func:`run_both` on ``x`` and on its contiguous native copy, which must agree (SPEC §5)."""
    outcome = run_both(fn, x, *args, **kwargs)
    event("returned" if outcome.ok else f"raised {outcome.error[0].__name__}")  # type: ignore[index]
    plain = np.array(x, dtype=x.dtype.newbyteorder("="), order="C", copy=True)
    assert run_both(fn, plain, *args, **kwargs).record == outcome.record, (
        f"a view ({describe(x)}) and its contiguous copy give different outcomes"
    )
    return outcome


def assert_fresh_result(arr: object, shape: tuple[int, ...]) -> None:
    """A returned array is C-contiguous with the input's shape (SPEC §5)."""
    assert isinstance(arr, np.ndarray)
    assert arr.shape == shape
    assert arr.flags.c_contiguous


# --- layouts: views with given contents ----------------------------------------------------


def _garbage(dtype: np.dtype) -> object:
    return math.nan if dtype.kind == "f" else np.iinfo(dtype).max


def _strided(a: np.ndarray, steps: tuple[int, ...]) -> np.ndarray:
    base = np.full([n * s for n, s in zip(a.shape, steps, strict=True)], _garbage(a.dtype), a.dtype)
    view = base[(Ellipsis, *(slice(None, None, s) for s in steps))]
    view[...] = a
    return view


def _reversed(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.flip(np.flip(a, axes).copy(), axes) if axes else a


def _transposed(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return a.transpose(axes).copy().transpose(np.argsort(axes))


def _fortran(a: np.ndarray, _: None) -> np.ndarray:
    return a.copy(order="F")  # np.asfortranarray would make a 0-d array 1-d


def _byteswapped(a: np.ndarray, _: None) -> np.ndarray:
    return a.astype(a.dtype.newbyteorder())


def _readonly(a: np.ndarray, _: None) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def _misaligned(a: np.ndarray, _: None) -> np.ndarray:
    buffer = np.empty(a.nbytes + 1, np.uint8)
    view = np.ndarray(a.shape, a.dtype, buffer=buffer, offset=1)
    view[...] = a
    return view


def _axes_subset(ndim: int) -> st.SearchStrategy[tuple[int, ...]]:
    if ndim == 0:
        return st.just(())
    return st.lists(st.integers(0, ndim - 1), min_size=1, unique=True).map(tuple)


LAYOUT_STEPS: dict[str, tuple[Callable[..., np.ndarray], Callable[[int], st.SearchStrategy]]] = {
    # name: (function of (array, argument), strategy for the argument given ndim)
    "strided": (_strided, lambda n: st.tuples(*[st.integers(1, 3)] * n)),
    "reversed": (_reversed, _axes_subset),
    "transposed": (_transposed, lambda n: st.permutations(range(n)).map(tuple)),
    "fortran": (_fortran, lambda n: st.none()),
    "byteswapped": (_byteswapped, lambda n: st.none()),
    "readonly": (_readonly, lambda n: st.none()),
    "misaligned": (_misaligned, lambda n: st.none()),
}
OUT_LAYOUTS = ("strided", "reversed", "transposed", "fortran")


@dataclass(frozen=True)
class Layout:
    """A recipe of views: applied to an array, gives an array with the same contents."""

    steps: tuple[tuple[str, object], ...] = ()

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        for name, argument in self.steps:
            arr = LAYOUT_STEPS[name][0](arr, argument)
        return arr

    def __repr__(self) -> str:
        steps = (name if arg is None else f"{name}{arg}" for name, arg in self.steps)
        return f"Layout({' -> '.join(steps) or 'contiguous'})"


@st.composite
def layouts(
    draw: st.DrawFn, ndim: int, names: tuple[str, ...] = tuple(LAYOUT_STEPS), min_steps: int = 1
) -> Layout:
    """One to three layout steps (inputs: :func:`check_op` runs the plain copy anyway)."""
    chosen = draw(st.lists(st.sampled_from(names), min_size=min_steps, max_size=3))
    return Layout(tuple((name, draw(LAYOUT_STEPS[name][1](ndim))) for name in chosen))


@dataclass(frozen=True)
class OutSpec:
    """Makes a fresh ``out=`` array (each backend writes its own)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    layout: Layout = Layout()

    def __call__(self) -> np.ndarray:
        return self.layout(np.zeros(self.shape, self.dtype))


def mostly(
    valid: st.SearchStrategy, invalid: st.SearchStrategy, one_in: int = 8
) -> st.SearchStrategy:
    """``valid``, and about one draw in ``one_in`` from ``invalid`` (shrinks towards valid)."""
    return st.integers(1, one_in).flatmap(lambda i: invalid if i == one_in else valid)


def outs(shape: tuple[int, ...], dtype: object) -> st.SearchStrategy[OutSpec | None]:
    """No ``out=``, a fresh one in some layout, or now and then a wrong one."""
    dtype = np.dtype(dtype)
    valid = st.none() | layouts(len(shape), OUT_LAYOUTS, min_steps=0).map(
        lambda lay: OutSpec(shape, dtype, lay)
    )
    invalid = st.sampled_from(
        [
            OutSpec(shape, np.dtype(np.int32)),
            OutSpec((*shape, 2), dtype),
            OutSpec(shape, dtype, Layout((("readonly", None),))),
            OutSpec(shape, dtype, Layout((("byteswapped", None),))),
            OutSpec(shape, dtype, Layout((("misaligned", None),))),
        ]
    )
    return mostly(valid, invalid)


def with_out(fn: Callable[..., np.ndarray], make_out: OutSpec | None) -> Callable[..., object]:
    """``fn`` given a fresh ``out=make_out()`` per call; returns ``(result, out)``."""

    def call(x: np.ndarray, *args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray | None]:
        if make_out is None:
            return fn(x, *args, **kwargs), None
        out = make_out()
        return fn(x, *args, out=out, **kwargs), out

    return call


def assert_written(value: object, shape: tuple[int, ...]) -> None:
    """``(result, out)``: the result is ``out`` when given, else a fresh C-contiguous array."""
    result, out = value  # type: ignore[misc]
    if out is None:
        assert_fresh_result(result, shape)
    else:
        assert result is out


# --- arrays ---------------------------------------------------------------------------------

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


def _floats(dtype: np.dtype, **bounds: float) -> st.SearchStrategy[float]:
    return st.floats(width=8 * dtype.itemsize, **bounds)


def _symmetric(dtype: np.dtype, low: float, high: float) -> st.SearchStrategy[float]:
    return _floats(dtype, min_value=low, max_value=high) | _floats(
        dtype, min_value=-high, max_value=-low
    )


ELEMENTS: dict[str, Callable[[np.dtype], st.SearchStrategy[float]]] = {
    "any": lambda dt: _floats(dt),
    "ordinary": lambda dt: _floats(dt, min_value=-1e4, max_value=1e4),
    "tiny": lambda dt: _symmetric(dt, 0.0, 4 * float(np.finfo(dt).smallest_normal)),
    "huge": lambda dt: _symmetric(dt, float(np.finfo(dt).max) / 4, float(np.finfo(dt).max)),
}


@st.composite
def _ties(
    draw: st.DrawFn,
    dtype: np.dtype,
    shape: tuple[int, ...],
    grid: float | None,
    levels: tuple[int, int] | None,
) -> np.ndarray:
    """``(k + 0.5) * grid``: exact ties after division by ``grid``, a power of two unless given.

    With ``levels=(lo, hi)``, ``k`` is in ``[lo, hi)`` and the first and last elements are
    ``lo * grid`` and ``hi * grid``, so that a range-derived scale is ``grid`` itself.
    """
    if grid is None:
        grid = 2.0 ** draw(st.integers(-12, 8))
    lo, hi = levels if levels is not None else (-(2**17), 2**17)
    ks = draw(hnp.arrays(np.float64, shape, elements=st.integers(lo, max(lo, hi - 1))))
    ks += 0.5  # in place: arithmetic on a 0-d array would return a scalar
    if levels is not None and ks.size >= 2:
        ks.flat[0], ks.flat[-1] = lo, hi
    with np.errstate(all="ignore"):  # may overflow to inf or round: still a valid input
        ks *= grid
        return ks.astype(dtype)


@st.composite
def with_specials(draw: st.DrawFn, values: np.ndarray) -> np.ndarray:
    """``values`` with NaN, ±inf or signed zeros written at a few drawn places."""
    if values.size:
        places = st.tuples(st.integers(0, values.size - 1), st.sampled_from(SPECIAL_VALUES))
        for index, special in draw(st.lists(places, max_size=2)):
            values.flat[index] = special
    return values


@st.composite
def float_arrays(
    draw: st.DrawFn,
    grid: float | None = None,
    levels: tuple[int, int] | None = None,
) -> np.ndarray:
    """A float array of any layout; see the module docstring. ``grid``/``levels``: ties."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    shape = draw(shapes)
    regime = draw(st.sampled_from(["ties", "ordinary", "any", "tiny", "huge", "constant"]))
    event(f"x: {regime}")
    if regime == "ties":
        values = draw(_ties(dtype, shape, grid, levels))
    elif regime == "constant":
        values = np.full(shape, draw(_floats(dtype)), dtype)
    else:
        values = draw(hnp.arrays(dtype, shape, elements=ELEMENTS[regime](dtype)))
    values = draw(with_specials(values))
    return draw(layouts(values.ndim))(values)


@st.composite
def code_arrays(draw: st.DrawFn) -> np.ndarray:
    """Integer codes (uint8, int8, uint16, int16) of any shape and layout."""
    dtype = draw(st.sampled_from(CODE_DTYPES))
    values = draw(hnp.arrays(dtype, shapes))
    return draw(layouts(values.ndim))(values)


# Arrays at least this large are split across threads by the compiled backend.
LARGE_SIZE = getattr(_backend._compiled, "PARALLEL_MIN_SIZE", 1 << 18)


@st.composite
def large_float_arrays(draw: st.DrawFn) -> np.ndarray:
    """2-D arrays of about ``LARGE_SIZE`` elements (seeded random data) in any layout.

    One row or few rows make the compiled backend split by columns, many rows by rows.
    """
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    cols = draw(st.sampled_from([LARGE_SIZE, LARGE_SIZE // 2 + 1, 513, 3]))
    rows = -(-LARGE_SIZE // cols) + draw(st.integers(0, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        values = rng.standard_normal((rows, cols)) * 10.0 ** draw(st.integers(-3, 3))
    else:  # exact ties on a power-of-two grid
        values = (rng.integers(-1000, 1000, (rows, cols)) + 0.5) * 2.0 ** draw(st.integers(-4, 4))
    values = draw(with_specials(values.astype(dtype)))
    return draw(layouts(2))(values)


# --- parameters -----------------------------------------------------------------------------

VALID_BITS = st.integers(1, 16)
bits_arguments = mostly(VALID_BITS | VALID_BITS.map(np.int64), st.sampled_from([0, 17, True, 8.0]))
nan_policies = mostly(st.sampled_from(["raise", "zero"]), st.just("ignore"))
schemes = mostly(st.sampled_from(["asymmetric", "symmetric"]), st.just("affine"))

powers_of_two = st.integers(-30, 30).map(lambda e: 2.0**e)
scales = mostly(
    st.one_of(
        powers_of_two,
        powers_of_two.map(np.float32),
        st.floats(min_value=0.0, exclude_min=True, allow_infinity=False),  # subnormal to huge
        st.floats(min_value=0.0, exclude_min=True, allow_infinity=False, width=32).map(np.float32),
        st.integers(1, 1000),
    ),
    st.sampled_from([0.0, -0.0, -1.0, math.nan, math.inf, 1e300, 5e-324, "1.0", np.ones(2)]),
)
zero_points = mostly(
    st.one_of(
        st.integers(-300, 300),
        st.sampled_from([-32769, -32768, 32767, 65535, 65536, INT32_MIN, INT32_MAX]),
        st.integers(INT32_MIN, INT32_MAX),
        st.integers(-70000, 70000).map(np.int64),
    ),
    st.sampled_from([INT32_MAX + 1, INT32_MIN - 1, 1.5, 2.0, True, np.zeros(2, np.int32)]),
)
code_dtype_arguments = mostly(
    st.sampled_from([*CODE_DTYPES, "uint8", "int8", "uint16", "int16", np.int8, np.uint16]),
    st.sampled_from(["int32", "float32", "bool"]),
)
float_dtype_arguments = mostly(
    st.sampled_from(["float32", "float64", np.float32, np.dtype(np.float64)]),
    st.sampled_from(["float16", "int16"]),
)


def dynamic_levels(
    bits: object, scheme: object, include_zero: bool, offset: int
) -> tuple[int, int] | None:
    """Tie levels whose range gives a scale equal to the tie grid (SPEC §4), if bits is valid."""
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or not 2 <= bits <= 16:
        return None
    if scheme == "symmetric":
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    start = 0 if include_zero else offset
    return start, start + 2**bits - 1


# --- the operations -------------------------------------------------------------------------


@BACKEND_SETTINGS
@given(st.data())
def test_quantize(data: st.DataObject) -> None:
    bits = data.draw(bits_arguments, label="bits")
    scheme = data.draw(schemes, label="scheme")
    include_zero = data.draw(st.booleans(), label="include_zero")
    narrow_range = data.draw(st.booleans(), label="narrow_range")
    nan = data.draw(nan_policies, label="nan")
    offset = data.draw(st.integers(-(2**20), 2**20), label="offset")
    levels = dynamic_levels(bits, scheme, include_zero, offset)
    x = data.draw(float_arrays(levels=levels), label="x")
    pack = data.draw(st.booleans(), label="pack")
    outcome = check_op(
        lq.quantize,
        x,
        bits,
        scheme,
        include_zero=include_zero,
        narrow_range=narrow_range,
        nan=nan,
        pack=pack,
    )
    if outcome.ok:
        qa = outcome.value
        assert isinstance(qa, lq.QuantizedArray) and qa.shape == x.shape
        assert_fresh_result(qa.data, qa.format.stored_shape(x.shape))


@BACKEND_SETTINGS
@given(st.data())
def test_pack_and_unpack(data: st.DataObject) -> None:
    """Codes of any layout, in range or not, packed; the bytes unpacked again."""
    bits = data.draw(st.integers(1, 4), label="bits")
    signed = data.draw(st.booleans(), label="signed")
    dtype = np.int8 if signed else np.uint8
    low, high = (-(2 ** max(bits - 1, 1)), 2 ** max(bits - 1, 1)) if signed else (0, 2**bits)
    values = data.draw(hnp.arrays(dtype, shapes, elements=st.integers(low, high)), label="codes")
    codes = data.draw(layouts(values.ndim))(values)
    packed = run_both(lq.pack, codes, bits)
    if packed.ok:
        assert isinstance(packed.value, np.ndarray)
        n = codes.shape[-1] if codes.ndim else 1
        back = run_both(lq.unpack, packed.value, bits, n, dtype)
        assert isinstance(back.value, np.ndarray)
        np.testing.assert_array_equal(back.value, codes.reshape(back.value.shape))


@st.composite
def gguf_arrays(draw: st.DrawFn) -> np.ndarray:
    """Float arrays of whole 32-value blocks (now and then not), in any layout and regime."""
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
    last = draw(mostly(st.integers(0, 3).map(lambda k: 32 * k), st.integers(1, 40)))
    values = draw(float_arrays())  # its dtype and regime, tiled out to the blocks' shape
    flat = np.resize(np.asarray(values).reshape(-1), math.prod((*lead, last)))
    if flat.size and draw(st.booleans()):  # a value of largest magnitude met with both signs
        flat[draw(st.integers(0, flat.size - 1))] = -flat[np.argmax(np.abs(flat))]
    return draw(layouts(len(lead) + 1))(flat.reshape((*lead, last)))


@BACKEND_SETTINGS
@given(st.data())
def test_gguf_quantize_and_dequantize(data: st.DataObject) -> None:
    """GGUF blocks of any array, and any bytes dequantized (SPEC §9)."""
    block = data.draw(st.sampled_from(list(gguf.TYPES.values())), label="type")
    x = data.draw(gguf_arrays(), label="x")
    outcome = check_op(gguf.quantize, x, block.name)
    if outcome.ok:
        assert_fresh_result(outcome.value, block.stored_shape(x.shape))
        run_both(gguf.dequantize, outcome.value, block.name)
    elif x.shape[-1] % 32 == 0:  # an undefined block: NaN, inf or beyond float32, named
        assert outcome.error is not None and outcome.error[0] is ValueError
    stored = data.draw(hnp.arrays(np.uint8, (2, 3 * block.type_size)), label="blocks")
    run_both(gguf.dequantize, stored, block.name)


def calibration(x: np.ndarray, method: str, scheme: str, bins: int) -> tuple[object, ...]:
    """An observer's whole state after ``x``: its range, and the histogram (SPEC §10)."""
    observer = lq.Observer(method, scheme=scheme, bins=bins, bits=4).update(x)
    return (*observer.range(), *observer.histogram())


def check_calibration(x: np.ndarray, method: str, scheme: str, bins: int) -> None:
    outcome = check_op(calibration, x, method, scheme, bins)
    if x.size and not np.isfinite(x).all():  # NaN (named) or an infinity: no finite range
        assert outcome.error is not None and outcome.error[0] is ValueError


METHODS = st.sampled_from(lq.Observer.METHODS)
SCHEMES = st.sampled_from(["asymmetric", "symmetric"])
BINS = st.sampled_from([16, 2048])


@BACKEND_SETTINGS
@given(float_arrays(), METHODS, SCHEMES, BINS)
def test_calibration_histograms(x: np.ndarray, method: str, scheme: str, bins: int) -> None:
    """The histogram kernel and every method on it (SPEC §10)."""
    check_calibration(x, method, scheme, bins)


@settings(BACKEND_SETTINGS, max_examples=12)
@given(large_float_arrays(), METHODS, SCHEMES, BINS)
def test_calibration_histograms_split_across_threads(
    x: np.ndarray, method: str, scheme: str, bins: int
) -> None:
    """Each thread's part in a histogram of its own, merged exactly."""
    check_calibration(x, method, scheme, bins)


@settings(BACKEND_SETTINGS, max_examples=4)
@given(st.sampled_from([16, 2048]))
def test_calibration_histograms_widening_piece_by_piece(bins: int) -> None:
    """|x| grows through the array: the bins coarsen again and again within one call,
    with values tallied before each (SPEC §10)."""
    x = (np.arange(1, 300_001) * (-1.0) ** np.arange(300_000)).astype(np.float32)
    check_calibration(x, "percentile", "asymmetric", bins)
    check_calibration(x[::-1].copy(), "entropy", "symmetric", bins)


def test_the_kernels_no_width_is_the_histograms() -> None:
    """The C kernel compares the exponent it is given with its own sentinel."""
    if "cython" in BACKENDS:  # (imported here: a pure install has no extension)
        from linquant import _kernels_baseline

        assert _kernels_baseline.NO_WIDTH == _histograms.NO_WIDTH
    assert _numpy_backend.histogram(np.zeros(3), 4)[3] == _histograms.NO_WIDTH


@BACKEND_SETTINGS
@given(float_arrays(levels=(0, 255)))
def test_dynamic_quantize_linear(x: np.ndarray) -> None:
    outcome = check_op(lq.dynamic_quantize_linear, x)
    if outcome.ok:
        assert_fresh_result(outcome.value[0], x.shape)  # type: ignore[index]
    if not np.isfinite(x).all():  # NaN (nan="raise") or ±inf (an infinite range): SPEC §5
        assert outcome.error is not None
        assert outcome.error[0] is ValueError


@BACKEND_SETTINGS
@given(st.data())
def test_quantize_linear(data: st.DataObject) -> None:
    scale = data.draw(scales, label="scale")
    grid = float(scale) if isinstance(scale, (float, np.floating)) else None
    x = data.draw(float_arrays(grid=grid), label="x")
    zero_point = data.draw(zero_points, label="zero_point")
    dtype = data.draw(code_dtype_arguments, label="dtype")
    bits = data.draw(st.none() | bits_arguments, label="bits")
    make_out = data.draw(outs(x.shape, dtype), label="out")
    outcome = check_op(
        with_out(lq.quantize_linear, make_out),
        x,
        scale,
        zero_point,
        dtype=dtype,
        bits=bits,
        narrow_range=data.draw(st.booleans(), label="narrow_range"),
        nan=data.draw(nan_policies, label="nan"),
    )
    if outcome.ok:
        assert_written(outcome.value, x.shape)


@BACKEND_SETTINGS
@given(st.data())
def test_dequantize_linear(data: st.DataObject) -> None:
    q = data.draw(code_arrays(), label="q")
    dtype = data.draw(float_dtype_arguments, label="dtype")
    make_out = data.draw(outs(q.shape, dtype), label="out")
    scale = data.draw(scales, label="scale")
    zero_point = data.draw(zero_points, label="zero_point")
    outcome = check_op(with_out(lq.dequantize_linear, make_out), q, scale, zero_point, dtype=dtype)
    if outcome.ok:
        assert_written(outcome.value, q.shape)


@BACKEND_SETTINGS
@given(float_arrays())
@example(np.array([0.0, -0.0]))  # signed zeros compare equal: which one is the min/max?
@example(np.array([-0.0, 0.0], np.float32))
def test_minmax(x: np.ndarray) -> None:
    check_op(lq.minmax, x)


@BACKEND_SETTINGS
@given(
    st.sampled_from([lq.asymmetric_quantization, lq.symmetric_quantization]),
    float_arrays(),
    bits_arguments,
)
def test_notebook_quantization(
    fn: Callable[..., tuple[np.ndarray, ...]], x: np.ndarray, bits: int
) -> None:
    outcome = check_op(fn, x, bits)
    if outcome.ok:
        assert_fresh_result(outcome.value[0], x.shape)  # type: ignore[index]


@settings(BACKEND_SETTINGS, max_examples=15)
@given(large_float_arrays(), VALID_BITS, st.sampled_from(["raise", "zero"]), st.data())
def test_large_arrays(x: np.ndarray, bits: int, nan: str, data: st.DataObject) -> None:
    """The threaded path of the compiled backend (pieces combined exactly, SPEC §6)."""
    check_op(lq.minmax, x)
    for scheme in ("asymmetric", "symmetric"):
        check_op(partial(lq.quantize, bits=bits, scheme=scheme, nan=nan), x)
    outcome = check_op(partial(lq.quantize_linear, scale=0.25, zero_point=-3, dtype="int16"), x)
    if outcome.ok:
        codes = data.draw(layouts(2), label="codes layout")(outcome.value)
        check_op(partial(lq.dequantize_linear, scale=0.25, zero_point=-3), codes)


def test_backends_pair_kernels_by_name() -> None:
    """Both backend modules define the same kernels with the same parameters (SPEC §6).

    Every public function of either module is a kernel with a twin in the other, the compiled
    module's CPU-level settings aside (the reference runs on no instruction-set level). In a
    build without the extension only the reference is there to check.
    """

    def public_functions(module: ModuleType) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(obj).parameters)
            for name, obj in vars(module).items()
            if inspect.isfunction(obj) and obj.__module__ == module.__name__ and name[0] != "_"
        }

    reference = public_functions(_numpy_backend)
    assert set(reference) == {
        "minmax", "quantize", "dequantize", "group_minmax", "group_quantize", "group_dequantize",
        "block_dynamic_quantize", "pack", "unpack", "gguf_quantize", "gguf_dequantize",
        "histogram",
    }  # fmt: skip
    assert ("cython" in BACKENDS) == (_backend._compiled is not None)
    for module in filter(None, [_backend._compiled]):
        functions = public_functions(module)
        assert set(functions) == set(reference) | {"supported_levels", "get_level", "set_level"}
        assert {name: functions[name] for name in reference} == reference
