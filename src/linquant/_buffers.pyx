"""Reusable memory for large results.

A fresh multi-megabyte NumPy array comes from new pages of the operating system, and faulting
those pages in can cost more than the kernel that fills them. :func:`empty` therefore hands
out arrays whose memory goes back to a small pool when the last array or view of it is gone,
so that repeated calls of the same size (the batches of a pipeline) reuse it, as ONNX
Runtime's arena does. The pool is bounded: at most ``MAX_POOLED`` buffers of at least
``MIN_POOLED_BYTES``, at most the limit in bytes in all (:func:`set_limit`; 0 turns it off).
Memory that leaves the pool goes straight back to the operating system (it is mapped for
each buffer on POSIX systems, so no allocator keeps it).

An array's memory is owned by a ``_PooledBuffer``, the array's base: NumPy holds the only
reference to it through ``__array_interface__``, with no buffer export that a caller could
release (a ``memoryview`` base could be released while the array lives, freeing its memory).
"""

from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.pythread cimport (
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)

import math

import numpy as np

cdef extern from *:
    """
    /* Large buffers from the operating system and back: on POSIX systems each one its own
       mapping, so that freeing it returns its pages at once (glibc's malloc may keep freed
       memory in its heap, where the resident size never shrinks), and on Linux with
       transparent huge pages, as NumPy asks for its large arrays (they cut the TLB misses of
       a pass over tens of megabytes). Mappings are page-aligned; malloc's blocks elsewhere
       are aligned by the caller. */
    #include <stdlib.h>
    #if defined(__unix__) || defined(__APPLE__)
    #include <sys/mman.h>
    static void *lq_map(size_t n)
    {
        void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        madvise(p, n, MADV_HUGEPAGE);
    #endif
        return p;
    }
    static void lq_unmap(void *p, size_t n) { munmap(p, n); }
    #else
    static void *lq_map(size_t n) { return malloc(n); }
    static void lq_unmap(void *p, size_t n) { (void)n; free(p); }
    #endif
    """
    void *lq_map(size_t n) nogil
    void lq_unmap(void *p, size_t n) nogil

cdef enum:
    MAX_POOLED = 8
    ALIGNMENT = 64  # a cache line: full-width vector stores never straddle two

MIN_POOLED_BYTES = 256 << 10

# The pool: buffers freed by their arrays, oldest first, each for arrays of `_pool_bytes`
# (mapped ALIGNMENT bytes longer: see _map).
# A C-level lock, since buffers are freed wherever an array dies, at any time, interpreter
# shutdown included. It is only taken by a thread attached to the interpreter (holding the GIL,
# or attached on free-threaded builds) and released before that thread can detach, while
# os.fork runs with the GIL held or (free-threaded) the world stopped: no thread holds it at a
# fork, and a child never inherits it taken. (Holding it across the fork instead deadlocked: a
# thread waiting for it with the GIL kept the parent from taking the GIL back after the fork.)
cdef PyThread_type_lock _lock = PyThread_allocate_lock()
cdef void *_pool_data[MAX_POOLED]
cdef size_t _pool_bytes[MAX_POOLED]
cdef int _pool_count = 0
cdef size_t _limit = 1 << 30


cdef void _unmap(void *data, size_t nbytes) noexcept nogil:
    """Give back a buffer for arrays of ``nbytes``: ``ALIGNMENT`` more were mapped, so that
    an aligned start exists where the system's allocator aligns less."""
    lq_unmap(data, nbytes + ALIGNMENT)


cdef void _remove(int i) noexcept nogil:
    """Take entry ``i`` out of the pool (the lock held)."""
    global _pool_count
    cdef int j
    for j in range(i + 1, _pool_count):
        _pool_data[j - 1] = _pool_data[j]
        _pool_bytes[j - 1] = _pool_bytes[j]
    _pool_count -= 1


cdef size_t _shrink(size_t room, size_t limit) noexcept nogil:
    """Unmap the oldest buffers until ``room`` more bytes fit within ``limit`` and a slot is
    free (the lock held); returns the bytes unmapped."""
    cdef size_t total = room, freed = 0
    cdef int i
    for i in range(_pool_count):
        total += _pool_bytes[i]
    while _pool_count and (_pool_count == MAX_POOLED or total > limit):
        total -= _pool_bytes[0]
        freed += _pool_bytes[0]
        _unmap(_pool_data[0], _pool_bytes[0])
        _remove(0)
    return freed


cdef void _give_back(void *data, size_t nbytes) noexcept nogil:
    global _pool_count
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    if nbytes > _limit:
        PyThread_release_lock(_lock)
        _unmap(data, nbytes)
        return
    _shrink(nbytes, _limit)
    _pool_data[_pool_count] = data
    _pool_bytes[_pool_count] = nbytes
    _pool_count += 1
    PyThread_release_lock(_lock)


cdef void *_take(size_t nbytes) noexcept nogil:
    """A pooled buffer of exactly ``nbytes`` (the most recently freed), else a new one."""
    cdef void *data = NULL
    cdef int i
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    for i in range(_pool_count - 1, -1, -1):
        if _pool_bytes[i] == nbytes:
            data = _pool_data[i]
            _remove(i)
            break
    PyThread_release_lock(_lock)
    if data == NULL:
        data = lq_map(nbytes + ALIGNMENT)
    return data


cdef class _PooledBuffer:
    """Owns ``allocation``, mapped for an array of ``nbytes`` that starts at ``data``, its
    first ``ALIGNMENT``-aligned address; pooled again when freed."""

    cdef char *allocation
    cdef char *data
    cdef size_t nbytes
    cdef dict interface

    @property
    def __array_interface__(self):
        return self.interface

    def __dealloc__(self):
        if self.allocation != NULL:
            _give_back(self.allocation, self.nbytes)


def empty(shape: tuple[int, ...], dtype: object) -> np.ndarray:
    """An uninitialized C-contiguous array, as ``np.empty``; pooled memory when it is large."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize * math.prod(shape)  # Python ints: a claim past memory cannot wrap
    if nbytes < MIN_POOLED_BYTES or nbytes > PY_SSIZE_T_MAX:
        return np.empty(shape, dtype)  # NumPy raises for the too large
    cdef _PooledBuffer buffer = _PooledBuffer.__new__(_PooledBuffer)
    buffer.nbytes = nbytes
    buffer.allocation = <char *>_take(nbytes)
    if buffer.allocation == NULL:
        raise MemoryError(f"cannot allocate {nbytes} bytes")
    buffer.data = buffer.allocation + (-<size_t>buffer.allocation) % ALIGNMENT
    buffer.interface = {
        "shape": tuple(shape),
        "typestr": dtype.str,
        "data": (<size_t>buffer.data, False),
        "strides": None,
        "version": 3,
    }
    return np.asarray(buffer)


def pooled_sizes() -> list[int]:
    """The sizes of the buffers waiting in the pool, oldest first."""
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    sizes = [_pool_bytes[i] for i in range(_pool_count)]
    PyThread_release_lock(_lock)
    return sizes


def get_limit() -> int:
    """The most bytes the pool keeps."""
    return _limit


def set_limit(nbytes: int) -> int:
    """Keep at most ``nbytes`` in the pool (0: none); returns the bytes unmapped to fit."""
    global _limit
    cdef size_t limit = nbytes  # converted (or OverflowError) before the lock is taken
    cdef size_t freed
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    _limit = limit
    freed = _shrink(0, limit)
    PyThread_release_lock(_lock)
    return freed


def clear() -> int:
    """Unmap every pooled buffer now; returns the bytes unmapped."""
    cdef size_t freed
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    freed = _shrink(0, 0)
    PyThread_release_lock(_lock)
    return freed
