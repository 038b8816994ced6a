# The kernels built for the avx2 instruction-set level (see _kernels.pxi and setup.py).
include "_kernels.pxi"
