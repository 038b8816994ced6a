"""Error metrics of a quantization round trip, computed in float64."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._groups import Grouping, group_rows, grouping


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
    return float(error_metrics(x, x_hat)["mse"])


class ErrorSums:
    """The sums behind :func:`error_metrics`, added piece by piece (bounded memory): the
    count, the squared errors and values, and the largest absolute error, in float64; of the
    whole array, or with ``groups`` of each channel or block (arrays of its parameters'
    shape)."""

    def __init__(self, groups: Grouping | None = None) -> None:
        self.groups = groups
        shape = () if groups is None else groups.param_shape
        self.count = np.zeros(shape, np.int64)
        self.squared_error = np.zeros(shape)
        self.squared_value = np.zeros(shape)
        self.max_abs_error = np.zeros(shape)

    def add(self, x: np.ndarray, x_hat: np.ndarray) -> None:
        """Add a piece: float64 arrays of the same shape, ``x`` without NaN (with groups,
        a batch of the whole array's shape)."""
        with np.errstate(over="ignore"):
            error = x - x_hat
            squared_error, squared_value = np.square(error), np.square(x)
        if self.groups is None:
            self.squared_error += np.sum(squared_error)
            self.squared_value += np.sum(squared_value)
            self.max_abs_error = np.maximum(self.max_abs_error, np.max(np.abs(error), initial=0))
            self.count += x.size
            return
        origin = (0,) * x.ndim
        count, max_abs_error = self.count.reshape(-1), self.max_abs_error.reshape(-1)  # views
        for ids, rows in group_rows(squared_error, origin, self.groups):
            self.squared_error.reshape(-1)[ids] += rows.sum(axis=1)
            count[ids] += rows.shape[1]
        for ids, rows in group_rows(squared_value, origin, self.groups):
            self.squared_value.reshape(-1)[ids] += rows.sum(axis=1)
        for ids, rows in group_rows(np.abs(error), origin, self.groups):
            max_abs_error[ids] = np.maximum(max_abs_error[ids], rows.max(axis=1))

    def metrics(self) -> dict[str, Any]:
        """``mse``, ``rmse``, ``max_abs_error`` and ``sqnr_db``: floats, or arrays by group."""
        with np.errstate(divide="ignore", invalid="ignore"):
            mse = self.squared_error / self.count
            signal = self.squared_value / self.count
            sqnr_db = np.where(
                mse == 0, np.inf, np.where(signal == 0, -np.inf, 10 * np.log10(signal / mse))
            )
        metrics = {
            "mse": mse,
            "rmse": np.sqrt(mse),
            "max_abs_error": self.max_abs_error,
            "sqnr_db": sqnr_db,
        }
        if self.groups is None:
            return {name: float(value) for name, value in metrics.items()}
        return metrics


def error_metrics(
    x: object, x_hat: object, axis: int | None = None, block_size: int | None = None
) -> dict[str, Any]:
    """``mse``, ``rmse``, ``max_abs_error`` and ``sqnr_db`` of a reconstruction ``x_hat``.

    ``sqnr_db = 10 log10(mean(x**2) / mse)``: ``inf`` for an exact reconstruction. With
    ``axis`` (and ``block_size``), arrays of each channel's (block's) metrics, of the shape
    of their parameters (as :func:`linquant.quantize` groups them).

    >>> import numpy as np, linquant as lq
    >>> lq.error_metrics([1.0, -2.0], [1.0, -2.0])["sqnr_db"]
    inf
    >>> lq.error_metrics([[1.0, -2.0], [3.0, 4.0]], [[1.0, -2.5], [3.0, 4.0]], axis=1)["mse"]
    array([0.   , 0.125])
    """
    values, reconstruction = _as_pair(x, x_hat)
    sums = ErrorSums(grouping(values.shape, axis, block_size))
    sums.add(values, reconstruction)
    return sums.metrics()
