"""Array layout: normalizing inputs (SPEC §1, §5) and viewing N-d arrays as 2-D slabs.

The compiled kernels take 2-D strided views. :func:`slabs` turns any array, with any strides,
into the fewest such views without copying: axes of length 1 are dropped and neighbouring axes
that step through memory evenly are merged, so a C-contiguous, a strided or a negatively
strided array is one 2-D view, and only arrays with three or more unmergeable axes need more
than one. Row-major order of the views is C order of the array, so flat indices carry over;
element-wise work may ask for the array's own memory order instead, in which a Fortran-ordered
or transposed array is one view too.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
WORKING_FLOATS = FLOAT_DTYPES[1:]


# DLPack's device types (dlpack.h's DLDeviceType): the host ones NumPy reads, and names
DLPACK_HOST = (1, 3)  # kDLCPU, kDLCUDAHost (pinned host memory)
DLPACK_DEVICES = {2: "cuda", 4: "opencl", 7: "vulkan", 8: "metal", 9: "vpi", 10: "rocm"}
DLPACK_DEVICES |= {12: "ext_dev", 13: "cuda_managed", 14: "oneapi", 15: "webgpu", 16: "hexagon"}


def as_array(x: object) -> np.ndarray:
    """``x`` as a NumPy array: itself, or a view of a tensor in host memory (through DLPack
    where it has ``__dlpack__``, as PyTorch, JAX and CuPy's host arrays do, without a copy),
    or what ``np.asarray`` makes of it (``__array__``, sequences). A tensor in a device's
    memory raises TypeError naming the device."""
    if isinstance(x, np.ndarray) or not hasattr(x, "__dlpack__"):
        return np.asarray(x)
    device = getattr(x, "__dlpack_device__", None)
    if device is not None:
        kind, number = device()
        if kind not in DLPACK_HOST:
            name = f"{DLPACK_DEVICES.get(int(kind), f'device type {kind}')}:{number}"
            raise TypeError(
                f"x is in {name} memory; linquant reads host memory: move it there first "
                "(e.g. x.cpu() in PyTorch)"
            )
    try:
        return np.from_dlpack(x)
    except (BufferError, TypeError, ValueError, RuntimeError) as error:
        if hasattr(x, "__array__"):  # a layout or dtype DLPack cannot carry to NumPy
            return np.asarray(x)
        raise TypeError(f"x cannot be read as a NumPy array through DLPack: {error}") from None


def as_float_input(x: object) -> np.ndarray:
    """Return ``x`` as a native-order, aligned float32 or float64 array (SPEC §1).

    float16 is widened to float32 (its working float) and byte-swapped or misaligned input is
    copied; everything else is returned as it is, a view, never modified (a tensor, through
    :func:`as_array`).
    """
    arr = as_array(x)
    if arr.dtype in WORKING_FLOATS:  # the common case, first
        return native_aligned(arr)
    if arr.dtype.kind != "f" or arr.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(f"x must be a float16, float32 or float64 array, got dtype {arr.dtype}")
    if arr.dtype.itemsize == 2:
        return arr.astype(np.float32)
    return native_aligned(arr)


def native_aligned(arr: np.ndarray) -> np.ndarray:
    """``arr`` itself if the kernels can read it in place, else a native, aligned copy."""
    flags = arr.flags
    if arr.dtype.isnative and flags.aligned:
        itemsize = arr.dtype.itemsize
        if flags.c_contiguous or all(stride % itemsize == 0 for stride in arr.strides):
            return arr
    return arr.astype(arr.dtype.newbyteorder("="), order="C")


def working_float(x: np.ndarray) -> type[np.floating]:
    """The working float of SPEC §1: float64 for float64 input, float32 for the rest."""
    return np.float64 if x.dtype == np.float64 else np.float32


def collapsed(
    shape: tuple[int, ...], strides: list[tuple[int, ...]]
) -> tuple[list[int], list[list[int]]]:
    """Shape and strides of same-shaped arrays with length-1 axes dropped and neighbours that
    step evenly in every array merged (C order kept); a 0-d layout has no axes."""
    keep = [axis for axis, n in enumerate(shape) if n != 1]
    new_shape = [shape[axis] for axis in keep]
    new_strides = [[s[axis] for axis in keep] for s in strides]
    axis = len(new_shape) - 1
    while axis > 0:
        inner = new_shape[axis]
        if all(s[axis - 1] == s[axis] * inner for s in new_strides):
            new_shape[axis - 1] *= inner
            del new_shape[axis]
            for s in new_strides:
                del s[axis - 1]  # the merged axis steps like the inner one
        axis -= 1
    return new_shape, new_strides


def slabs(*arrays: np.ndarray, c_order: bool = True) -> list[tuple[int, tuple[np.ndarray, ...]]]:
    """``(offset, views)`` pairs: 2-D views of same-shaped arrays that cover them.

    In C order, ``offset`` is the C-order flat index of each slab's first element. With
    ``c_order=False`` (element-wise work, whose order does not matter) the axes may be taken
    in the order of the first array's memory, so that a Fortran-ordered or transposed array is
    one view too; offsets then count in that order. Empty arrays have none.
    """
    shape = arrays[0].shape
    if 0 in shape:
        return []
    for a in arrays:
        if not a.flags.c_contiguous:
            break
    else:  # the common case, and the cheapest
        return [(0, tuple([a.reshape(1, -1) for a in arrays]))]
    if not c_order:  # outermost in memory first: the first array's largest steps
        order = sorted(range(len(shape)), key=lambda axis: -abs(arrays[0].strides[axis]))
        arrays = tuple(a.transpose(order) for a in arrays)
        shape = arrays[0].shape
    new_shape, new_strides = collapsed(shape, [a.strides for a in arrays])
    while len(new_shape) < 2:  # a 0-d or 1-d layout is one row
        new_shape.insert(0, 1)
        for s in new_strides:
            s.insert(0, 0)
    views = [
        as_strided(a, new_shape, s, writeable=a.flags.writeable)
        for a, s in zip(arrays, new_strides, strict=True)
    ]
    slab_size = new_shape[-2] * new_shape[-1]
    return [
        (number * slab_size, tuple(v[index] for v in views))
        for number, index in enumerate(np.ndindex(*new_shape[:-2]))
    ]
