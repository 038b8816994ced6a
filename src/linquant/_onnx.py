"""ONNX: quantized arrays as initializers feeding ``DequantizeLinear`` nodes, and back.

:func:`to_onnx` builds a model with no inputs whose output ``NAME`` is a ``DequantizeLinear``
of the initializers ``NAME.codes``, ``NAME.scale`` and ``NAME.zero_point`` (none for
symmetric codes) with the array's ``axis`` and ``block_size`` (SPEC §12): ONNX Runtime's
session outputs exactly ``QuantizedArray.dequantize()``. Codes take the narrowest ONNX type
that holds them and their zero points: ``int4``/``uint4`` (packed as ONNX packs them), 8, 16
or 32 bits; ``int4``, 16-bit codes and blocks need opset 21, the rest 13. Each array's
settings go into the model's ``metadata_props`` (``linquant:NAME``, as in safetensors
files), so that :func:`from_onnx` gives back the same :class:`QuantizedArray`. Needs the
``onnx`` package (``pip install 'linquant[onnx]'``).
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._io import Header, _checked
from ._params import storage_dtype
from ._quantized import QuantizedArray
from ._version import __version__

PREFIX = "linquant:"
# the ONNX code types by (signed, bits), narrowest first, with the opset that has them
CODE_TYPES = (
    (4, "INT4", "UINT4", 21),
    (8, "INT8", "UINT8", 13),
    (16, "INT16", "UINT16", 21),
    (32, "INT32", None, 21),
)


def _onnx() -> Any:
    try:
        import onnx  # type: ignore[import-not-found, unused-ignore]
    except ImportError as error:
        raise ImportError(
            "linquant's ONNX export needs onnx: pip install 'linquant[onnx]'"
        ) from error
    return onnx


def _code_type(qa: QuantizedArray, codes: np.ndarray) -> tuple[int, str, int]:
    """The bits, ONNX type name and opset of the narrowest type holding the codes and
    their zero points."""
    values = np.concatenate([codes.reshape(-1), np.asarray(qa.zero_point).reshape(-1)])
    lo, hi = int(values.min(initial=0)), int(values.max(initial=0))
    for bits, signed_name, unsigned_name, opset in CODE_TYPES:
        if lo >= 0 and unsigned_name is not None and hi < 2**bits:
            return bits, unsigned_name, opset
        if -(2 ** (bits - 1)) <= lo and hi < 2 ** (bits - 1):
            return bits, signed_name, opset
    raise ValueError("codes and zero points beyond int32")  # cannot happen: they are int32


def to_onnx(tensors: Mapping[str, QuantizedArray], opset: int | None = None) -> Any:
    """An ONNX model (``onnx.ModelProto``, checked) with an output for each quantized array
    of ``tensors``: a ``DequantizeLinear`` of its codes, scale and zero point (see the
    module). Scales must be float32 (DequantizeLinear has no float64 output); ``opset``
    defaults to the lowest that holds every array (13 or 21).

    >>> import numpy as np, linquant as lq
    >>> qa = lq.quantize(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), 4, axis=0)
    >>> model = lq.to_onnx({"w": qa})
    >>> [node.op_type for node in model.graph.node], model.opset_import[0].version
    (['DequantizeLinear'], 21)
    >>> lq.from_onnx(model)["w"].scale.shape
    (2,)
    """
    onnx = _onnx()
    from onnx import helper, numpy_helper  # type: ignore[import-not-found, unused-ignore]

    nodes, initializers, outputs, metadata = [], [], [], {}
    needed = 13
    for name, qa in tensors.items():
        if not isinstance(qa, QuantizedArray):
            raise TypeError(f"{name}: to_onnx takes QuantizedArray values, got {type(qa).__name__}")
        scale = np.asarray(qa.scale)
        if scale.dtype != np.float32:
            raise ValueError(
                f"{name}: ONNX's DequantizeLinear needs float32 scales, got {scale.dtype}"
            )
        codes = qa.codes()
        bits, type_name, type_opset = _code_type(qa, codes)
        needed = max(needed, type_opset, 21 if qa.block_size is not None else 13)
        elem_type = getattr(onnx.TensorProto, type_name)
        inputs = [f"{name}.codes", f"{name}.scale"]
        initializers += [
            _tensor(helper, numpy_helper, inputs[0], codes, elem_type, bits),
            numpy_helper.from_array(scale, inputs[1]),
        ]
        if qa.scheme != "symmetric":
            inputs.append(f"{name}.zero_point")
            zero_point = np.asarray(qa.zero_point)
            initializers.append(
                _tensor(helper, numpy_helper, inputs[2], zero_point, elem_type, bits)
            )
        attributes: dict[str, Any] = {} if qa.axis is None else {"axis": qa.axis}
        if qa.block_size is not None:
            attributes["block_size"] = qa.block_size
        nodes.append(helper.make_node("DequantizeLinear", inputs, [name], **attributes))
        outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(qa.shape)))
        settings = {key: getattr(qa, key) for key in ("bits", "scheme", "rounding", "seed")}
        settings.update(source_dtype=qa.source_dtype.name, shape=list(qa.shape))
        metadata[PREFIX + name] = json.dumps(settings)
    if opset is not None and opset < needed:
        raise ValueError(f"these arrays need opset {needed}, got opset={opset}")
    graph = helper.make_graph(nodes, "linquant", [], outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset or needed)])
    model.producer_name, model.producer_version = "linquant", __version__
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model


def _tensor(
    helper: Any, numpy_helper: Any, name: str, values: np.ndarray, elem_type: int, bits: int
) -> Any:
    """An initializer of ``values`` (integers that fit) as ONNX type ``elem_type``."""
    if bits == 4:  # packed two a byte over the flat tensor, low nibble first
        nibbles = values.reshape(-1).astype(np.int64) & 0xF
        if nibbles.size % 2:
            nibbles = np.append(nibbles, 0)
        packed = (nibbles[0::2] | nibbles[1::2] << 4).astype(np.uint8)
        return helper.make_tensor(name, elem_type, values.shape, packed.tobytes(), raw=True)
    dtype = {8: "int8", 16: "int16", 32: "int32"}[bits]
    signed = helper.tensor_dtype_to_np_dtype(elem_type).kind == "i"
    target = np.dtype(dtype if signed else "u" + dtype)
    return numpy_helper.from_array(values.astype(target), name)


def from_onnx(model: Any) -> dict[str, QuantizedArray]:
    """The quantized arrays of a model :func:`to_onnx` made (a ``ModelProto`` or a path;
    a file that is not an ONNX model raises ValueError naming it):
    each ``DequantizeLinear`` output whose inputs are initializers and whose settings the
    model's ``metadata_props`` holds, checked as :func:`linquant.load` checks a file."""
    onnx = _onnx()
    from onnx import numpy_helper  # type: ignore[import-not-found, unused-ignore]

    if not isinstance(model, onnx.ModelProto):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, "No such file", path)
        try:
            model = onnx.load(path)
        except Exception as error:  # the protobuf parser's, whatever the damage
            raise ValueError(f"{path}: not an ONNX model ({type(error).__name__})") from None
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    arrays = {}
    for node in model.graph.node:
        name = node.output[0] if node.output else ""
        if node.op_type != "DequantizeLinear" or PREFIX + name not in metadata:
            continue
        where = f"ONNX output {name!r}"
        if not all(item in initializers for item in node.input):
            raise ValueError(f"{where}: its codes, scale and zero point must be initializers")
        codes, scale, *zero = (numpy_helper.to_array(initializers[item]) for item in node.input)
        attributes = {attribute.name: attribute.i for attribute in node.attribute}
        try:
            settings = json.loads(metadata[PREFIX + name])
            axis, block_size = attributes.get("axis"), attributes.get("block_size")
            meta = {**settings, "axis": axis, "block_size": block_size, "code_format": None}
            shape = tuple(meta["shape"])
            if codes.shape != shape:
                raise ValueError(f"codes have shape {codes.shape}, the metadata says {shape}")
            code_dtype = storage_dtype(meta["bits"], meta["scheme"] == "symmetric")
            values = codes.astype(np.int64)
            zero_point = zero[0].astype(np.int64) if zero else np.zeros(scale.shape, np.int64)
            checked = _checked(where, shape, code_dtype, scale, zero_point, meta)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from None
        header = Header(where, shape, code_dtype, False, *checked, __version__, False)
        header.check_codes(values)
        arrays[name] = header.quantized(values.astype(code_dtype).reshape(shape))
    return arrays
