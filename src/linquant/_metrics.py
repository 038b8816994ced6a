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


class ErrorSums:
    """The sums behind :func:`error_metrics`, added piece by piece (bounded memory): the
    count, the squared errors and values, and the largest absolute error, in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.squared_error = 0.0
        self.squared_value = 0.0
        self.max_abs_error = 0.0

    def add(self, x: np.ndarray, x_hat: np.ndarray) -> None:
        """Add a piece: float64 arrays of the same shape, ``x`` without NaN."""
        with np.errstate(over="ignore"):
            error = x - x_hat
            self.squared_error += float(np.sum(np.square(error)))
            self.squared_value += float(np.sum(np.square(x)))
        if error.size:
            self.max_abs_error = max(self.max_abs_error, float(np.max(np.abs(error))))
        self.count += x.size

    def metrics(self) -> dict[str, float]:
        mse = self.squared_error / self.count
        signal = self.squared_value / self.count
        if mse == 0:
            sqnr_db = math.inf
        elif signal == 0:
            sqnr_db = -math.inf
        else:
            sqnr_db = 10 * math.log10(signal / mse)
        return {
            "mse": mse,
            "rmse": math.sqrt(mse),
            "max_abs_error": self.max_abs_error,
            "sqnr_db": sqnr_db,
        }


def error_metrics(x: object, x_hat: object) -> dict[str, float]:
    """``mse``, ``rmse``, ``max_abs_error`` and ``sqnr_db`` of a reconstruction ``x_hat``.

    ``sqnr_db = 10 log10(mean(x**2) / mse)``: ``inf`` for an exact reconstruction.

    >>> import linquant as lq
    >>> lq.error_metrics([1.0, -2.0], [1.0, -2.0])["sqnr_db"]
    inf
    """
    sums = ErrorSums()
    sums.add(*_as_pair(x, x_hat))
    return sums.metrics()
