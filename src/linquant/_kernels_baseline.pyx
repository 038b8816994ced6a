# The kernels built for the baseline instruction-set level (see _kernels.pxi and setup.py).
include "_kernels.pxi"


def cpu_level():
    """The widest kernel build this CPU can run: 0 baseline, 1 AVX2, 2 AVX-512."""
    return lq_cpu_level()
