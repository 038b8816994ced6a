"""Error metrics of a quantization round trip, computed in float64."""

from __future__ import annotations

import math

import numpy as np


def _as_pair(x: object, x_hat: object) -> tuple[np.ndarray, np.ndarray]:
    pair = []
    for name, value in (("x", x), ("x_hat", x_hat)):
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
        arr = arr.astype(np.float64, copy=False)
        if np.isnan(arr).any():
            raise ValueError(f"{name} contains NaN")
        pair.append(arr)
    if pair[0].shape != pair[1].shape:
        raise ValueError(
            f"x and x_hat must have the same shape, got {pair[0].shape} and {pair[1].shape}"
        )
    if pair[0].size == 0:
        raise ValueError("error metrics of empty arrays are undefined")
    return pair[0], pair[1]


def quantization_error(x: object, x_hat: object) -> float:
    """Mean squared error between ``x`` and its reconstruction ``x_hat``.

    >>> import linquant as lq
    >>> lq.quantization_error([1.0, 2.0], [1.0, 2.5])
    0.125
    """
    return error_metrics(x, x_hat)["mse"]


def error_metrics(x: object, x_hat: object) -> dict[str, float]:
    """``mse``, ``rmse``, ``max_abs_error`` and ``sqnr_db`` of a reconstruction ``x_hat``.

    ``sqnr_db = 10 log10(mean(x**2) / mse)``: ``inf`` for an exact reconstruction.

    >>> import linquant as lq
    >>> lq.error_metrics([1.0, -2.0], [1.0, -2.0])["sqnr_db"]
    inf
    """
    a, b = _as_pair(x, x_hat)
    with np.errstate(over="ignore"):
        error = a - b
        mse = float(np.mean(np.square(error)))
        signal = float(np.mean(np.square(a)))
    if mse == 0:
        sqnr_db = math.inf
    elif signal == 0:
        sqnr_db = -math.inf
    else:
        sqnr_db = 10 * math.log10(signal / mse)
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "max_abs_error": float(np.max(np.abs(error))),
        "sqnr_db": sqnr_db,
    }
