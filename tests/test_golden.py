"""Golden values of shared/seed/README.md (SPEC §7) and the notebook's three bugs, per backend."""

from __future__ import annotations

import numpy as np
import pytest

import linquant as lq

PARAMS = np.array(
    [134.85372037, -34.5079855, 0.0, 135.85372037, -17.51774727, -16.11701896,
     102.23461091, -33.5079855, 111.25202791, 121.4723397, 93.89520017,
     36.7436026, 85.58463402, -27.62545839, -29.72305535, -25.13061787,
     20.13014606, 36.91993243, 45.82819097, 89.02619806]
)  # fmt: skip
ASYMMETRIC_Q = [254, 0, 52, 255, 26, 28, 205, 2, 219, 234,
                193, 107, 180, 11, 8, 14, 82, 107, 121, 185]  # fmt: skip
SYMMETRIC_Q = [126, -32, 0, 127, -16, -15, 96, -31, 104, 114,
               88, 34, 80, -26, -28, -23, 19, 35, 43, 83]  # fmt: skip


def test_asymmetric_golden(backend: str) -> None:
    q, scale, zero_point = lq.asymmetric_quantization(PARAMS, 8)
    assert q.dtype == np.uint8
    np.testing.assert_array_equal(q, ASYMMETRIC_Q)
    assert scale == 0.6680851210588235 and scale.dtype == np.float64
    assert zero_point == 52 and zero_point.dtype == np.int32
    x_hat = lq.asymmetric_dequantization(q, scale, zero_point)
    assert lq.quantization_error(PARAMS, x_hat) == pytest.approx(0.036946, abs=1e-6)


def test_asymmetric_golden_float32(backend: str) -> None:
    q, scale, zero_point = lq.asymmetric_quantization(PARAMS.astype(np.float32), 8)
    np.testing.assert_array_equal(q, ASYMMETRIC_Q)
    assert scale.dtype == np.float32 and zero_point == 52


def test_symmetric_golden(backend: str) -> None:
    q, scale = lq.symmetric_quantization(PARAMS, 8)
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, SYMMETRIC_Q)
    assert scale == 1.0697143336220472
    x_hat = lq.symmetric_dequantization(q, scale)
    assert lq.quantization_error(PARAMS, x_hat) == pytest.approx(0.088056, abs=1e-6)


def test_bug1_clamp_saturates_codes_and_leaves_input_alone(backend: str) -> None:
    # The notebook's clamp wrote the upper bound into the caller's input, not the codes.
    x = PARAMS * 3
    before = x.copy()
    q = lq.quantize_linear(x, 0.5, 100, dtype="uint8")
    np.testing.assert_array_equal(x, before)
    assert q.max() == 255 and q.min() == 0
    np.testing.assert_array_equal(q, np.clip(np.rint(before / 0.5) + 100, 0, 255))


def test_bug2_symmetric_scale_precedence(backend: str) -> None:
    # The notebook computed alpha/2**(bits-1)-1 and showed int8 codes such as 2198.
    q, scale = lq.symmetric_quantization(PARAMS, 8)
    alpha = np.abs(PARAMS).max()
    assert scale == alpha / (2**7 - 1)
    assert scale != alpha / 2**7 - 1
    assert q.dtype == np.int8 and q.max() == 127


@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
def test_bug3_constant_input_does_not_divide_by_zero(backend: str, scheme: str) -> None:
    for constant in (0.0, 7.25):
        qa = lq.quantize(np.full(5, constant), bits=8, scheme=scheme)
        assert np.isfinite(qa.scale) and qa.scale > 0
        np.testing.assert_allclose(qa.dequantize(dtype="float64"), constant, atol=qa.scale / 2)
    qa = lq.quantize(np.zeros(4), scheme=scheme)
    assert qa.scale == 1.0
    np.testing.assert_array_equal(qa.dequantize(), 0.0)
