"""Reusable memory for large results.

A fresh multi-megabyte NumPy array comes from new pages of the operating system (glibc maps
large allocations anew each time), and faulting those pages in can cost more than the kernel
that fills them: writing 16M float32 into a new array takes about twice as long as into one
whose pages are already there. :func:`empty` therefore hands out arrays whose memory goes back
to a small pool when the last array or view of it is gone, so that repeated calls of the same
size (the batches of a pipeline) reuse it, as ONNX Runtime's arena does. The pool is bounded:
at most ``MAX_POOLED`` buffers of at least ``MIN_POOLED_BYTES``, ``MAX_POOLED_BYTES`` in all.
"""

from cpython.pythread cimport (
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)
from libc.stdlib cimport free, malloc

import numpy as np

cdef extern from *:
    """
    /* As NumPy does for its large arrays: ask Linux for transparent huge pages, which cut
       the TLB misses of a pass over tens of megabytes (without them such a pass was 30%
       slower here). Elsewhere, nothing. */
    #if defined(__linux__)
    #include <stdint.h>
    #include <sys/mman.h>
    static void lq_advise_huge_pages(void *p, size_t n)
    {
        size_t offset = 4096u - (uintptr_t)p % 4096u;
        if (n > offset)
            madvise((char *)p + offset, n - offset, MADV_HUGEPAGE);
    }
    #else
    static void lq_advise_huge_pages(void *p, size_t n) { (void)p; (void)n; }
    #endif
    """
    void lq_advise_huge_pages(void *p, size_t n) nogil

cdef enum:
    MAX_POOLED = 8
    ALIGNMENT = 64  # a cache line: full-width vector stores never straddle two

MIN_POOLED_BYTES = 256 << 10
cdef size_t MAX_POOLED_BYTES = 1 << 30

# The pool: buffers freed by their arrays, oldest first. A C-level lock, since buffers are
# freed wherever an array dies, at any time, interpreter shutdown included.
cdef PyThread_type_lock _lock = PyThread_allocate_lock()
cdef void *_pool_data[MAX_POOLED]
cdef size_t _pool_bytes[MAX_POOLED]
cdef int _pool_count = 0


cdef void _drop_oldest() noexcept nogil:
    global _pool_count
    cdef int i
    free(_pool_data[0])
    for i in range(1, _pool_count):
        _pool_data[i - 1] = _pool_data[i]
        _pool_bytes[i - 1] = _pool_bytes[i]
    _pool_count -= 1


cdef void _give_back(void *data, size_t nbytes) noexcept nogil:
    global _pool_count
    cdef size_t total = nbytes
    cdef int i
    if nbytes > MAX_POOLED_BYTES:
        free(data)
        return
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    for i in range(_pool_count):
        total += _pool_bytes[i]
    while _pool_count and (_pool_count == MAX_POOLED or total > MAX_POOLED_BYTES):
        total -= _pool_bytes[0]
        _drop_oldest()
    _pool_data[_pool_count] = data
    _pool_bytes[_pool_count] = nbytes
    _pool_count += 1
    PyThread_release_lock(_lock)


cdef void *_take(size_t nbytes) noexcept nogil:
    """A pooled buffer of exactly ``nbytes`` (the most recently freed), else a new one."""
    global _pool_count
    cdef void *data = NULL
    cdef int i, j
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    for i in range(_pool_count - 1, -1, -1):
        if _pool_bytes[i] == nbytes:
            data = _pool_data[i]
            for j in range(i + 1, _pool_count):
                _pool_data[j - 1] = _pool_data[j]
                _pool_bytes[j - 1] = _pool_bytes[j]
            _pool_count -= 1
            break
    PyThread_release_lock(_lock)
    if data == NULL:
        data = malloc(nbytes + ALIGNMENT)
        if data != NULL:
            lq_advise_huge_pages(data, nbytes + ALIGNMENT)
    return data


cdef class _PooledBuffer:
    """Owns ``nbytes`` of memory, exported as writable bytes; pooled again when freed.

    ``allocation`` is what malloc returned, ``ALIGNMENT`` bytes more than ``nbytes``;
    ``data`` is its first ``ALIGNMENT``-aligned address.
    """

    cdef char *allocation
    cdef char *data
    cdef Py_ssize_t nbytes
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer *view, int flags):
        self.shape[0] = self.nbytes
        self.strides[0] = 1
        view.buf = self.data
        view.obj = self
        view.len = self.nbytes
        view.readonly = 0
        view.itemsize = 1
        view.format = b"B"
        view.ndim = 1
        view.shape = self.shape
        view.strides = self.strides
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass

    def __dealloc__(self):
        if self.allocation != NULL:
            _give_back(self.allocation, self.nbytes)


def empty(shape: tuple[int, ...], dtype: object) -> np.ndarray:
    """An uninitialized C-contiguous array, as ``np.empty``; pooled memory when it is large."""
    dtype = np.dtype(dtype)
    cdef Py_ssize_t nbytes = dtype.itemsize
    for n in shape:
        nbytes *= n
    if nbytes < MIN_POOLED_BYTES:
        return np.empty(shape, dtype)
    cdef _PooledBuffer buffer = _PooledBuffer.__new__(_PooledBuffer)
    buffer.allocation = <char *>_take(nbytes)
    if buffer.allocation == NULL:
        raise MemoryError(f"cannot allocate {nbytes} bytes")
    buffer.data = buffer.allocation + (-<size_t>buffer.allocation) % ALIGNMENT
    buffer.nbytes = nbytes
    return np.frombuffer(buffer, np.uint8).view(dtype).reshape(shape)


def pooled_sizes() -> list[int]:
    """The sizes of the buffers waiting in the pool, oldest first."""
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    sizes = [_pool_bytes[i] for i in range(_pool_count)]
    PyThread_release_lock(_lock)
    return sizes
