"""linquant: fast, exact linear (affine) quantization of NumPy float arrays.

The semantics are those of SPEC.md (ONNX QuantizeLinear / DequantizeLinear /
DynamicQuantizeLinear where they overlap); two backends, a compiled one and a NumPy one,
give bit-identical results.

>>> import numpy as np, linquant as lq
>>> qa = lq.quantize(np.array([-1.0, 0.0, 2.0]), bits=8)
>>> qa.data
array([  0,  85, 255], dtype=uint8)
"""

from ._api import dequantize_linear, dynamic_quantize_linear, minmax, quantize_linear
from ._backend import (
    clear_pool,
    get_backend,
    get_cpu_level,
    get_pool_limit,
    set_backend,
    set_pool_limit,
)
from ._calibrate import Observer, calibrate, params_from_range
from ._choose import choose
from ._fitted import QuantizationParams
from ._io import load, save
from ._metrics import error_metrics, quantization_error
from ._notebook import (
    asymmetric_dequantization,
    asymmetric_quantization,
    symmetric_dequantization,
    symmetric_quantization,
)
from ._onnx import from_onnx, to_onnx
from ._packing import pack, unpack
from ._quantized import QuantizedArray, quantize
from ._safetensors import load_safetensors, save_safetensors
from ._threads import get_num_threads, set_num_threads
from ._version import __version__

__all__ = [
    "Observer",
    "QuantizationParams",
    "QuantizedArray",
    "__version__",
    "asymmetric_dequantization",
    "asymmetric_quantization",
    "calibrate",
    "choose",
    "clear_pool",
    "dequantize_linear",
    "dynamic_quantize_linear",
    "error_metrics",
    "from_onnx",
    "get_backend",
    "get_cpu_level",
    "get_num_threads",
    "get_pool_limit",
    "load",
    "load_safetensors",
    "minmax",
    "pack",
    "params_from_range",
    "quantization_error",
    "quantize",
    "quantize_linear",
    "save",
    "save_safetensors",
    "set_backend",
    "set_num_threads",
    "set_pool_limit",
    "symmetric_dequantization",
    "symmetric_quantization",
    "to_onnx",
    "unpack",
]
