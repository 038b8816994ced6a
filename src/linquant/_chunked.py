"""``.npy`` files to linquant files and back, chunk by chunk: the engine of the CLI.

Memory stays bounded whatever the size of the array: the ``.npy`` input is memory-mapped one
chunk at a time (each window is unmapped before the next, so mapped pages do not pile up in
the resident set), codes are written to the ``.npz`` member as each chunk is quantized, and
dequantized values are written to the ``.npy`` output as each chunk of codes is read.

Chunks are boxes of consecutive elements in memory order (``_chunks``), whose own channels or
blocks are a box of the parameter array. Fortran-ordered files are read as the C-ordered
transpose, with the axis and per-block parameters transposed to match, and each element keeping
its stochastic rounding index (its flat index in C order of the array, SPEC §2.1).

Dynamic parameters take two passes: the range of every chunk (per tensor, channel or block),
combined into the range of the whole array, gives the parameters through the same code as
:func:`linquant.quantize` (``_api.range_params``); then each chunk is quantized with them.
Minimum and maximum do not depend on how the array is cut, and each chunk rounds as its
place in the array says, so the codes and parameters are bit-identical to quantizing the whole
array in memory.
"""

from __future__ import annotations

import math
import os
import stat
import tokenize
import warnings
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np

from . import _checks, _io, _rounding
from ._api import (
    _finite_range,
    dequantize_linear,
    dynamic_settings,
    nan_error,
    quantize_given,
    range_params,
)
from ._calibrate import Observer, observer_for
from ._chunks import Chunk, chunks, param_slices, params_of
from ._groups import grouping
from ._layout import as_float_input, working_float
from ._metrics import ErrorSums
from ._output import replacing
from ._params import storage_dtype
from ._quantized import PACKED_BITS
from ._rounding import Rounding
from ._version import __version__

CHUNK_BYTES = 32 * 2**20
"""The default size of a chunk of the float array (input of quantize, output of dequantize)."""

# NumPy's readers of a .npy header, by format version (3.0, a UTF-8 header, is written for
# names of structured fields, never for an array of floats).
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
# What reading a damaged .npy header raises (NumPy parses its text with tokenize and
# ast.literal_eval, then makes a dtype and a memory map of it); each becomes a ValueError
# naming the file.
_NPY_ERRORS = (
    ValueError,
    EOFError,
    TypeError,  # an unhashable key in the header's dict
    OverflowError,  # a dimension beyond int64
    RecursionError,  # deeply nested operators
    SyntaxError,  # an IndentationError from tokenize, in the filter of Python 2 headers
    tokenize.TokenError,  # an unclosed bracket, in that filter
)

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: elements of ``total`` processed in ``stage``."""


class _Layout:
    """An array of ``shape`` seen in memory order: as itself, or as its C-ordered transpose."""

    def __init__(
        self, shape: tuple[int, ...], fortran_order: bool, axis: object, block_size: object
    ) -> None:
        self.shape, self.fortran_order = shape, fortran_order
        self.groups = grouping(shape, axis, block_size)
        self.memory_shape = shape[::-1] if fortran_order else shape
        self.memory_groups = self.groups
        if fortran_order and self.groups is not None:
            self.memory_groups = grouping(
                self.memory_shape, len(shape) - 1 - self.groups.axis, self.groups.block_size
            )

    @property
    def axis(self) -> int | None:
        """The quantization axis in the memory-order view."""
        return None if self.memory_groups is None else self.memory_groups.axis

    @property
    def block_size(self) -> int | None:
        return None if self.groups is None else self.groups.block_size

    def to_memory(self, params: Any) -> Any:
        """Parameters of the array as parameters of its memory-order view (and back)."""
        blocks = self.groups is not None and self.groups.block_size is not None
        return params.T if self.fortran_order and blocks else params

    def chunks(self, max_elements: int, align: int = 1) -> Iterator[Chunk]:
        return chunks(self.memory_shape, self.memory_groups, max_elements, align)

    def index(self, chunk: Chunk, local: tuple[int, ...]) -> tuple[int, ...]:
        """The index in the array of the element at ``local`` in ``chunk``."""
        index = tuple(k + i for k, i in zip(chunk.origin, local, strict=True))
        return index[::-1] if self.fortran_order else index

    def rounding_of(self, chunk: Chunk, rounding: Rounding) -> Rounding:
        """The rounding of ``chunk``, given that of the array: its elements keep their
        stochastic indices in the array, C order of the array whatever its memory order."""
        view = rounding.transposed(self.shape) if self.fortran_order else rounding
        return view.moved(chunk.origin, self.memory_shape)

    def in_array(self, chunk: Chunk, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """The values of ``chunk`` as a box of the array and its position ``(start, shape)``
        there (a transposed view of a Fortran-ordered file's)."""
        if self.fortran_order:
            return x.T, (chunk.origin[::-1], self.shape)
        return x, (chunk.origin, self.shape)

    def params_of(self, chunk: Chunk, scale: Any, zero_point: Any) -> tuple[Any, Any]:
        """The memory-order parameters of ``chunk``, given those of the memory-order view."""
        return params_of(chunk, self.memory_groups, scale, zero_point)


def _npy_header(file: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The shape, order and dtype of the ``.npy`` file ``file``, read as ``np.load`` reads
    them; ValueError for a dtype of sub-arrays or data that goes past the end of the file."""
    version = np.lib.format.read_magic(file)
    read_header = _HEADER_READERS.get(version)
    if read_header is None:
        raise ValueError(f"format version {version[0]}.{version[1]}, not 1.0 or 2.0")
    with warnings.catch_warnings():  # NumPy's note that its fallback parser read the header
        warnings.simplefilter("ignore", UserWarning)
        shape, fortran_order, dtype = read_header(file)
    if dtype.subdtype is not None:  # np.save writes none; np.load and np.memmap disagree on it
        raise ValueError(f"dtype {dtype}, of sub-arrays")
    size = math.prod(shape) * dtype.itemsize
    if file.tell() + size > os.fstat(file.fileno()).st_size:  # np.memmap would overflow on it
        raise ValueError(f"{size} bytes of data for shape {shape} {dtype}, past the end")
    return shape, fortran_order, dtype


class NpyInput:
    """A ``.npy`` file of floats, read by memory-mapping one chunk at a time: a regular file
    (a pipe or device cannot be mapped, and opening a FIFO would wait for a writer)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if not stat.S_ISREG(os.stat(self.path).st_mode):
            raise ValueError(f"{self.path}: not a regular file (a .npy input is memory-mapped)")
        with open(self.path, "rb") as file:
            if file.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
                raise ValueError(f"{self.path}: not a .npy file")
            file.seek(0)
            try:
                shape, fortran_order, dtype = _npy_header(file)
                if dtype.kind == "f":  # else refused below, never mapped: objects would be
                    array = np.memmap(
                        file, dtype, "r", file.tell(), shape, "F" if fortran_order else "C"
                    )
            except _NPY_ERRORS as error:
                raise ValueError(f"{self.path}: damaged .npy file ({error})") from None
        try:
            as_float_input(np.empty(0, dtype))
        except TypeError as error:
            raise ValueError(f"{self.path}: {error}") from None
        self.shape, self.dtype, self.offset = array.shape, array.dtype, array.offset
        self.fortran_order = not array.flags.c_contiguous
        del array  # nothing of it was read

    def mapped(self, file: IO[bytes]) -> np.ndarray:
        """The whole array, mapped anew (its pages leave memory when it is deleted)."""
        flat = np.memmap(file, self.dtype, "r", self.offset, (math.prod(self.shape),))
        whole: np.ndarray = flat.reshape(self.shape, order="F" if self.fortran_order else "C")
        return whole

    def windows(self, file: IO[bytes], chunks: Iterator[Chunk]) -> Iterator[tuple[Chunk, Any]]:
        """Each chunk with its values, a native float32 or float64 array (SPEC §1)."""
        for chunk in chunks:
            offset = self.offset + chunk.start * self.dtype.itemsize
            window = np.memmap(file, self.dtype, "r", offset, (chunk.size,))
            yield chunk, as_float_input(window.reshape(chunk.shape))
            del window


def _file_nan_error(source: NpyInput, layout: _Layout, max_elements: int) -> ValueError:
    """The error of the in-memory call: how many NaN, and the first in C order of the array."""
    count, first = 0, None
    with open(source.path, "rb") as file:
        for chunk, x in source.windows(file, layout.chunks(max_elements)):
            for local in np.argwhere(np.isnan(x)):
                count += 1
                index = layout.index(chunk, tuple(int(i) for i in local))
                first = index if first is None else min(first, index)
    assert first is not None  # called when a chunk held a NaN
    flat = int(np.ravel_multi_index(first, layout.shape)) if layout.shape else 0
    error = nan_error(layout.shape, count, flat, hint=False, groups=layout.groups)
    return ValueError(f"{source.path}: {error}; pass --nan zero to quantize NaN as 0.0")


def quantize_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    bits: int = 8,
    scheme: str = "asymmetric",
    axis: int | None = None,
    block_size: int | None = None,
    nan: str = "raise",
    rounding: str = _rounding.DEFAULT,
    seed: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Progress | None = None,
    calibration: Observer | None = None,
) -> _io.Header:
    """Quantize the ``.npy`` file ``source`` into the linquant file ``target`` (SPEC §4).

    The result is what ``lq.save(target, lq.quantize(np.load(source), ...))`` writes, in
    memory bounded by ``chunk_bytes``. Errors name the file; ``target`` is left as it was.
    ``calibration``: a new observer of the call's settings whose range over the chunks (per
    tensor, channel or block) replaces the file's (SPEC §10).
    """
    n_bits, signed, nan, _, _ = dynamic_settings(bits, scheme, nan, True, False)
    if calibration is not None and nan != "raise":
        raise ValueError("a calibration needs nan='raise' (it raises on NaN)")
    npy = NpyInput(source)
    if calibration is not None:
        settings = (npy.shape, axis, block_size, n_bits, scheme, True)
        calibration = observer_for(calibration, *settings)
    whole = _rounding.rounding(rounding, seed, None, npy.shape)
    try:
        layout = _Layout(npy.shape, npy.fortran_order, axis, block_size)
    except ValueError as error:
        raise ValueError(f"{npy.path}: {error}") from None
    wf = working_float(np.empty(0, npy.dtype.newbyteorder("=")))
    max_elements = max(1, chunk_bytes // max(npy.dtype.itemsize, np.dtype(wf).itemsize))
    report = progress or (lambda stage, done, total: None)
    total = math.prod(npy.shape)
    groups = layout.memory_groups
    with open(npy.path, "rb") as file:
        lo = np.full(() if groups is None else groups.param_shape, np.inf, wf)
        hi = np.full(lo.shape, -np.inf, wf)
        done = 0
        for chunk, x in npy.windows(file, layout.chunks(max_elements)):
            if calibration is not None:  # its range in place of the file's
                try:
                    calibration.update(*layout.in_array(chunk, x))
                except ValueError as error:  # NaN, or an infinity
                    if np.isnan(x).any():
                        raise _file_nan_error(npy, layout, max_elements) from None
                    raise ValueError(f"{npy.path}: {error}") from None
                done += chunk.size
                report("range", done, total)
                continue
            try:
                chunk_lo, chunk_hi = _finite_range(
                    x, nan, grouping(x.shape, layout.axis, layout.block_size)
                )
            except ValueError:  # the only error it raises: NaN
                raise _file_nan_error(npy, layout, max_elements) from None
            box = () if groups is None else param_slices(chunk, groups)
            lo[box] = np.minimum(lo[box], chunk_lo)
            hi[box] = np.maximum(hi[box], chunk_hi)
            done += chunk.size
            report("range", done, total)
        bounds = (layout.to_memory(lo)[()], layout.to_memory(hi)[()])  # scalars per tensor
        if calibration is not None and calibration.count:
            bounds = calibration.range()
        try:
            scale, zero_point = range_params(*bounds, n_bits, signed, True, layout.groups)
        except ValueError as error:
            raise ValueError(f"{npy.path}: {error}") from None
        header = _io.Header(
            os.fspath(target),
            npy.shape,
            storage_dtype(n_bits, signed),
            npy.fortran_order,
            scale,
            zero_point,
            n_bits,
            scheme,
            None if layout.groups is None else layout.groups.axis,
            layout.block_size,
            npy.dtype.newbyteorder("="),
            whole.mode,
            whole.seed if whole.stochastic else None,
            __version__,
            # packed as lq.save packs, but for Fortran order: packed codes are in C order
            n_bits in PACKED_BITS and bool(npy.shape) and not npy.fortran_order,
        )
        params = layout.to_memory(scale), layout.to_memory(zero_point)
        buffer = np.empty(0, header.code_dtype)  # the codes of a chunk; grows to the largest
        done = 0
        with _io.writer(target, header) as member:
            align = header.format.per_item
            for chunk, x in npy.windows(file, layout.chunks(max_elements, align)):
                if buffer.size < chunk.size:
                    buffer = np.empty(chunk.size, buffer.dtype)
                codes = quantize_given(
                    x,
                    *layout.params_of(chunk, *params),
                    layout.rounding_of(chunk, whole),
                    axis=layout.axis,
                    block_size=layout.block_size,
                    dtype=header.code_dtype,
                    bits=n_bits,
                    nan=nan,
                    out=buffer[: chunk.size].reshape(chunk.shape),
                )
                _io.write_codes(member, header, codes)
                done += chunk.size
                report("quantize", done, total)
    return header


def _dequantized(
    reader: _io.Reader, out_dtype: np.dtype, chunk_bytes: int
) -> Iterator[tuple[Chunk, np.ndarray]]:
    """The file's chunks in memory order, each with its values in ``out_dtype`` (a buffer
    reused from chunk to chunk: use them before the next)."""
    header = reader.header
    layout = _Layout(header.shape, header.fortran_order, header.axis, header.block_size)
    params = layout.to_memory(header.scale), layout.to_memory(header.zero_point)
    buffer = np.empty(0, out_dtype)  # the values of a chunk; grows to the largest
    max_elements = max(1, chunk_bytes // out_dtype.itemsize)
    for chunk in layout.chunks(max_elements, header.format.per_item):
        if buffer.size < chunk.size:
            buffer = np.empty(chunk.size, buffer.dtype)
        values = dequantize_linear(
            reader.read(chunk.shape),
            *layout.params_of(chunk, *params),
            axis=layout.axis,
            block_size=layout.block_size,
            dtype=out_dtype,
            out=buffer[: chunk.size].reshape(chunk.shape),
        )
        yield chunk, values


def dequantize_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    dtype: object = None,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Progress | None = None,
) -> _io.Header:
    """Dequantize the linquant file ``source`` into the ``.npy`` file ``target`` (SPEC §3).

    ``dtype`` float32 or float64; None: float64 for a float64 source array, else float32.
    The result is ``lq.load(source).dequantize(dtype)``, in memory bounded by ``chunk_bytes``.
    """
    report = progress or (lambda stage, done, total: None)
    with _io.Reader(source) as reader:
        header = reader.header
        if dtype is None:
            dtype = np.float64 if header.source_dtype == np.float64 else np.float32
        out_dtype = _checks.output_float(dtype)
        total = math.prod(header.shape)
        done = 0
        with replacing(target) as file:
            npy_header = {
                "descr": np.lib.format.dtype_to_descr(out_dtype),
                "fortran_order": header.fortran_order,
                "shape": header.shape,
            }
            np.lib.format.write_array_header_1_0(file, npy_header)
            for chunk, values in _dequantized(reader, out_dtype, chunk_bytes):
                file.write(values.reshape(-1).data)
                done += chunk.size
                report("dequantize", done, total)
            reader.verify()
    return header


def compare_file(
    source: str | os.PathLike[str],
    original: str | os.PathLike[str],
    chunk_bytes: int = CHUNK_BYTES,
) -> dict[str, float]:
    """Error metrics of the linquant file ``source`` against the ``.npy`` file ``original``:
    ``lq.error_metrics(np.load(original), lq.load(source).dequantize())``, the values of both
    read a chunk at a time (memory bounded by ``chunk_bytes``; sums in float64)."""
    npy = NpyInput(original)
    with _io.Reader(source) as reader, open(npy.path, "rb") as file:
        header = reader.header
        if npy.shape != header.shape:
            raise ValueError(
                f"{npy.path} has shape {npy.shape}, {os.fspath(source)} has {header.shape}"
            )
        out_dtype = np.dtype(np.float64 if header.source_dtype == np.float64 else np.float32)
        sums = ErrorSums()
        # a chunk's values and reconstruction in float64 too: a quarter of chunk_bytes each
        for chunk, x_hat in _dequantized(reader, out_dtype, max(1, chunk_bytes // 4)):
            values = npy.mapped(file)  # mapped for this chunk alone: its pages leave after
            in_memory_order = values.T if header.fortran_order else values
            x = np.asarray(in_memory_order[chunk.slices], np.float64)
            del values, in_memory_order
            if np.isnan(x).any():
                raise ValueError(f"{npy.path} contains NaN")
            sums.add(x, x_hat.astype(np.float64))
        reader.verify()
    if sums.count == 0:
        raise ValueError("error metrics of empty arrays are undefined")
    return sums.metrics()
