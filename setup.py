"""Build script: the Cython kernels, with compiler flags chosen per compiler.

Environment variables read at build time:

- ``LINQUANT_DISABLE_CEXT=1``: build no extension (pure-Python install, NumPy backend).
- ``LINQUANT_CYTHON_DEBUG=1``: compile the kernels with bounds checking and no optimisation.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_build"))
from backend import cext_enabled  # noqa: E402

DEBUG = os.environ.get("LINQUANT_CYTHON_DEBUG", "0") not in ("", "0")

# SPEC §2 needs true IEEE division and no fused multiply-add: never -ffast-math, and
# -ffp-contract=off so that no compiler turns `(q - zp) * s` or `x / s` into an FMA.
UNIX_FLAGS = ["-O0", "-g"] if DEBUG else ["-O3"]
UNIX_FLAGS += ["-ffp-contract=off", "-fno-math-errno"]
MSVC_FLAGS = ["/Od"] if DEBUG else ["/O2"]
MSVC_FLAGS += ["/fp:precise"]

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}


class BuildExt(build_ext):
    """Compiler flags per compiler type.

    setuptools' build_ext cythonizes ``.pyx`` sources itself when Cython is installed (it is a
    build requirement whenever the extension is built), with each extension's
    ``cython_directives``.
    """

    def build_extensions(self) -> None:
        flags = MSVC_FLAGS if self.compiler.compiler_type == "msvc" else UNIX_FLAGS
        for ext in self.extensions:
            ext.extra_compile_args = flags + list(ext.extra_compile_args)
        super().build_extensions()


extensions = []
if cext_enabled():
    kernels = Extension("linquant._kernels", ["src/linquant/_kernels.pyx"])
    kernels.cython_directives = DIRECTIVES  # type: ignore[attr-defined]
    extensions.append(kernels)

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
