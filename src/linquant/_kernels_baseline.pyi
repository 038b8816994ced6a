# Types of the compiled kernels (_kernels.pxi), the same in every _kernels_<level> module.
# Arrays are 2-D views: float32/float64 values, uint8/int8/uint16/int16 codes.
import numpy as np
from numpy.typing import NDArray

# The fast form's bound on |qmin - zero_point| and |qmax - zero_point| (_c/lq_portable.h).
FAST_BOUND: int
# The numbers of the rounding modes (SPEC §2.1), by name.
ROUNDING_MODES: dict[str, int]

def minmax(x: NDArray[np.floating]) -> tuple[float, float, bool]: ...
def nan_stats(x: NDArray[np.floating]) -> tuple[int, int]: ...

# Quantize kernels take `index`, (first, a step per axis): the stochastic index of x's first
# element and its steps; and last the rounding mode's number and the seed.
def quantize(
    x: NDArray[np.floating],
    out: NDArray[np.integer],
    index: tuple[int, ...],
    scale_value: float,
    zero_point: int,
    qmin: int,
    qmax: int,
    stream: bool,
    rounding_mode: int,
    seed: int,
) -> bool: ...
def dequantize(
    q: NDArray[np.integer],
    out: NDArray[np.floating],
    scale_value: float,
    zero_point: int,
    stream: bool,
) -> None: ...
def cpu_level() -> int: ...

# Packed codes (SPEC §8): rows of codes and rows of bytes, 8 // width codes a byte.
def pack(q: NDArray[np.integer], width: int, out: NDArray[np.uint8]) -> None: ...
def unpack(packed: NDArray[np.uint8], width: int, out: NDArray[np.integer]) -> None: ...

# Per-axis and per-block: (outer, n, inner) arrays; (outer, blocks, inner) parameters.
def group_minmax(
    x: NDArray[np.floating], lo: NDArray[np.floating], hi: NDArray[np.floating], block: int
) -> bool: ...
def group_quantize(
    x: NDArray[np.floating],
    out: NDArray[np.integer],
    index: tuple[int, ...],
    scale: NDArray[np.floating],
    zero_point: NDArray[np.int32],
    block: int,
    qmin: int,
    qmax: int,
    fast: bool,
    stream: bool,
    rounding_mode: int,
    seed: int,
) -> bool: ...
def block_quantize(
    x: NDArray[np.floating],
    out: NDArray[np.integer],
    index: tuple[int, ...],
    scale: NDArray[np.floating],
    zero_point: NDArray[np.integer],
    block: int,
    qmin: int,
    qmax: int,
    stream: bool,
    rounding_mode: int,
    seed: int,
) -> bool: ...
def group_dequantize(
    q: NDArray[np.integer],
    out: NDArray[np.floating],
    scale: NDArray[np.floating],
    zero_point: NDArray[np.int32],
    block: int,
    fast: bool,
    stream: bool,
) -> None: ...
def block_dynamic_quantize(
    x: NDArray[np.floating],
    out: NDArray[np.integer],
    index: tuple[int, ...],
    scale: NDArray[np.floating],
    zero_point: NDArray[np.int32],
    block: int,
    bits: int,
    signed: bool,
    include_zero: bool,
    nan_raises: bool,
    qmin: int,
    qmax: int,
    stream: bool,
    rounding_mode: int,
    seed: int,
) -> bool: ...

# GGUF blocks (SPEC §9): C-contiguous rows of whole blocks.
def gguf_quantize(x: NDArray[np.float32], ggml_type: int, out: NDArray[np.uint8]) -> int: ...
def gguf_dequantize(
    blocks: NDArray[np.uint8], ggml_type: int, out: NDArray[np.float32]
) -> None: ...

# Calibration histograms (SPEC §10): fold x into counts (2 * 2**log2_bins int64) of bin width
# 2**exponent (NO_WIDTH: none yet); return (lo, hi, status, exponent), status 0, 1 for a NaN,
# 2 for an infinity.
NO_WIDTH: int

def histogram(
    x: NDArray[np.floating], log2_bins: int, counts: NDArray[np.int64], exponent: int
) -> tuple[float, float, int, int]: ...
