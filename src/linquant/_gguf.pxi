# GGUF blocks (SPEC §9): the kernels over _c/lq_gguf.h, included by _kernels.pxi. Rows of
# 32-value blocks, C-contiguous; the GIL is released.

cdef extern from "lq_gguf.h" nogil:
    enum:
        LQ_GGUF_BLOCK
    Py_ssize_t lq_gguf_type_size(int type)
    Py_ssize_t lq_gguf_quantize(int type, const float *x, Py_ssize_t n_blocks, uint8_t *out)
    void lq_gguf_dequantize(int type, const uint8_t *blocks, Py_ssize_t n_blocks, float *out)


cdef Py_ssize_t _gguf_blocks(
    int ggml_type, Py_ssize_t rows, Py_ssize_t values, const Py_ssize_t *bytes_shape
) except -1:
    """The blocks of a row, once the shapes agree: ``values`` floats and ``bytes_shape`` bytes
    a row, for ``rows`` rows."""
    cdef Py_ssize_t size = lq_gguf_type_size(ggml_type)
    if size == 0:
        raise ValueError(f"ggml_type must be a GGUF block type linquant knows, got {ggml_type}")
    if values % LQ_GGUF_BLOCK:
        raise ValueError(f"rows must hold whole blocks of {LQ_GGUF_BLOCK} values, got {values}")
    if bytes_shape[0] != rows or bytes_shape[1] != values // LQ_GGUF_BLOCK * size:
        raise ValueError(
            f"blocks must have shape ({rows}, {values // LQ_GGUF_BLOCK * size}), got "
            f"({bytes_shape[0]}, {bytes_shape[1]})"
        )
    return values // LQ_GGUF_BLOCK


def gguf_quantize(
    const float[:, ::1] x,  # IN, (rows, 32 * blocks)
    int ggml_type,  # a GGUF block type's number (lq_gguf.h)
    uint8_t[:, ::1] out,  # OUT, (rows, blocks * type size)
):
    """Quantize the rows of ``x`` to GGUF blocks; return the row-major index of the first block
    that ggml's reference leaves undefined (where the kernel stops), else -1 (SPEC §9)."""
    cdef Py_ssize_t blocks = _gguf_blocks(ggml_type, x.shape[0], x.shape[1], out.shape)
    cdef Py_ssize_t i, bad = -1
    if blocks == 0:
        return -1
    with nogil:
        for i in range(x.shape[0]):
            bad = lq_gguf_quantize(ggml_type, &x[i, 0], blocks, &out[i, 0])
            if bad >= 0:
                bad += i * blocks
                break
    return bad


def gguf_dequantize(
    const uint8_t[:, ::1] blocks,  # IN, (rows, blocks * type size)
    int ggml_type,  # a GGUF block type's number (lq_gguf.h)
    float[:, ::1] out,  # OUT, (rows, 32 * blocks)
):
    """Dequantize rows of GGUF blocks into ``out`` (SPEC §9)."""
    cdef Py_ssize_t n = _gguf_blocks(ggml_type, out.shape[0], out.shape[1], blocks.shape)
    cdef Py_ssize_t i
    if n == 0:
        return
    with nogil:
        for i in range(out.shape[0]):
            lq_gguf_dequantize(ggml_type, &blocks[i, 0], n, &out[i, 0])
