"""In-tree PEP 517 backend: setuptools, plus Cython only when the extension is built.

``LINQUANT_DISABLE_CEXT=1`` skips the extension; then nothing beyond setuptools is needed,
neither Cython nor a C compiler, and the package runs on its NumPy backend.
"""

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (re-export the PEP 517 hooks)

CEXT_REQUIRES = ["Cython>=3.1"]


def cext_enabled() -> bool:
    return os.environ.get("LINQUANT_DISABLE_CEXT", "0").strip().lower() in ("", "0", "false", "no")


def get_requires_for_build_wheel(config_settings=None):
    extra = CEXT_REQUIRES if cext_enabled() else []
    return _setuptools.get_requires_for_build_wheel(config_settings) + extra


def get_requires_for_build_editable(config_settings=None):
    extra = CEXT_REQUIRES if cext_enabled() else []
    return _setuptools.get_requires_for_build_editable(config_settings) + extra
