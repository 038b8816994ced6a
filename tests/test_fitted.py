"""Fitted parameters (``lq.QuantizationParams``): applied to batches as ``quantize_linear``
applies them, saved and loaded bit for bit, files from outside checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import linquant as lq

RNG = np.random.default_rng(11)
GROUPINGS = [(None, None), (0, None), (1, None), (1, 4)]


def fitted(
    dtype: type, scheme: str, bits: int, axis: int | None, block_size: int | None
) -> tuple[np.ndarray, lq.QuantizationParams]:
    """Data, and the parameters a percentile observer fits to it."""
    x = RNG.standard_normal((6, 10)).astype(dtype)
    settings = {"axis": axis, "block_size": block_size, "bits": bits, "scheme": scheme}
    return x, lq.Observer("percentile", percentile=90.0, **settings).update(x).params()


@pytest.mark.parametrize(("axis", "block_size"), GROUPINGS)
@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_params_quantize_batches_as_quantize_linear_does(
    tmp_path: Path, dtype: type, scheme: str, axis: int | None, block_size: int | None
) -> None:
    x, params = fitted(dtype, scheme, 5, axis, block_size)
    assert (params.bits, params.scheme, params.axis, params.block_size) == (
        5,
        scheme,
        axis,
        block_size,
    )
    batch = 3 * RNG.standard_normal(x.shape).astype(dtype)  # beyond the range: saturates
    qa = params.quantize(batch)
    code_dtype = "int8" if scheme == "symmetric" else "uint8"
    expected = lq.quantize_linear(
        batch, *params, axis=axis, block_size=block_size, dtype=code_dtype, bits=5
    )
    assert np.array_equal(qa.data, expected) and qa.source_dtype == dtype
    assert np.array_equal(
        qa.dequantize(), lq.dequantize_linear(expected, *params, axis=axis, block_size=block_size)
    )
    path = tmp_path / "params.json"
    params.save(path)
    loaded = lq.QuantizationParams.load(path)
    assert loaded == params and np.asarray(loaded.scale).dtype == dtype
    assert np.array_equal(loaded.quantize(batch).data, qa.data)
    assert json.loads(path.read_text())["format"] == "linquant.QuantizationParams"


def test_params_check_their_fields() -> None:
    scale = np.float32(0.5)
    with pytest.raises(ValueError, match="zero point 0"):
        lq.QuantizationParams(scale, 3, 8, "symmetric")
    with pytest.raises(ValueError, match="bits"):
        lq.QuantizationParams(scale, 0, 17)
    with pytest.raises(ValueError, match="per-axis scales must be 1-D"):
        lq.QuantizationParams(np.ones((2, 2), np.float32), 0, axis=0)
    with pytest.raises(ValueError, match="scale"):
        lq.QuantizationParams(np.float32(-1.0), 0)
    with pytest.raises(TypeError, match="float32 or float64"):
        lq.QuantizationParams(np.float16(1.0), 0)
    params = lq.QuantizationParams(np.ones(3, np.float32), 2, axis=0)
    assert params.zero_point.tolist() == [2, 2, 2] and not params.scale.flags.writeable
    with pytest.raises(ValueError, match=r"channel|shape"):
        params.quantize(np.ones((2, 4), np.float32))


def document() -> dict[str, object]:
    return {
        "format": "linquant.QuantizationParams",
        "format_version": 1,
        "linquant_version": lq.__version__,
        "bits": 8,
        "scheme": "asymmetric",
        "axis": 0,
        "block_size": None,
        "scale_dtype": "float32",
        "shape": [2],
        "scale": [0.5, 0.25],
        "zero_point": [3, 4],
    }


DAMAGES = [
    lambda d: d.update(format="something else"),
    lambda d: d.update(format_version=2),
    lambda d: d.pop("scale"),
    lambda d: d.update(shape=[3]),
    lambda d: d.update(shape=[-2]),
    lambda d: d.update(scale=[0.5, "x"]),
    lambda d: d.update(scale=[0.5, 0.1]),  # not a float32
    lambda d: d.update(scale=[0.5, -1.0]),
    lambda d: d.update(zero_point=[3, 2**40]),
    lambda d: d.update(zero_point=[3, 1.5]),
    lambda d: d.update(scale_dtype="float16"),
    lambda d: d.update(bits=True),
    lambda d: d.update(axis=-1),
    lambda d: d.update(scheme="symmetric"),  # nonzero zero points
]


@pytest.mark.parametrize("damage", range(len(DAMAGES)))
def test_a_damaged_params_file_raises_naming_it(tmp_path: Path, damage: int) -> None:
    path = tmp_path / "p.json"
    good = document()
    path.write_text(json.dumps(good))
    assert lq.QuantizationParams.load(path).zero_point.tolist() == [3, 4]
    bad = document()
    DAMAGES[damage](bad)
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"p\.json"):
        lq.QuantizationParams.load(path)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_load_or_raise_value_error_naming_the_file(data: bytes) -> None:
    path = Path("/tmp") / "linquant-fuzz-params.json"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="linquant-fuzz-params"):
        lq.QuantizationParams.load(path)


def test_saving_replaces_only_a_complete_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("old")
    lq.QuantizationParams(np.float64(0.5), 1).save(path)
    assert lq.QuantizationParams.load(path) == lq.QuantizationParams(np.float64(0.5), 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(document())), JSON_VALUES)
def test_any_value_of_any_key_loads_checked_or_raises_naming_the_file(
    key: str, value: object
) -> None:
    """What loads is what the constructor accepts; anything else is a ValueError."""
    path = Path("/tmp") / "linquant-fuzz-params-field.json"
    changed = document()
    changed[key] = value
    path.write_text(json.dumps(changed))
    try:
        params, message = lq.QuantizationParams.load(path), ""
    except ValueError as error:
        params, message = None, str(error)
    if params is None:
        assert "linquant-fuzz-params-field.json" in message
    else:
        assert np.asarray(params.scale).dtype == np.dtype(changed["scale_dtype"])
        assert np.asarray(params.scale).shape == tuple(changed["shape"])
