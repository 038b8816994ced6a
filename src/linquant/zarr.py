"""The :class:`linquant.codec.Linquant` codec in Zarr version 3 arrays.

Zarr 3 runs numcodecs codecs through its ``zarr.codecs.numcodecs`` adapters; ``Linquant``
here is such an adapter, an array-to-bytes codec (a ``serializer=``) named
``"numcodecs.linquant"`` in the array's metadata. The ``zarr.codecs`` entry point registers it,
so Zarr reopens such arrays without importing linquant first. Its configuration is that of
:class:`linquant.codec.Linquant`; each chunk records its dtype (float16, float32 or float64,
the array's) and decodes to it. ``Linquant(bits=4, pack=True)`` stores each chunk's codes
packed, two a byte along the chunk's last axis (1 to 4 bits; SPEC §8).
Zarr warns (``ZarrUserWarning``) that numcodecs codecs are not in the Zarr 3 specification:
other Zarr implementations cannot read these arrays. Zarr format 2 arrays take
:class:`linquant.codec.Linquant` itself, as a filter or compressor.

Needs the ``zarr`` extra: ``pip install linquant[zarr]``.

>>> import numpy as np, warnings, zarr, linquant.zarr
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
...     z = zarr.create_array(
...         {}, shape=(4, 6), chunks=(2, 3), dtype="float32",
...         serializer=linquant.zarr.Linquant(bits=8), compressors=None,
...     )
...     x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
...     z[:] = x
...     float(np.abs(z[:] - x).max()) < 0.5 * 2 / 255  # half a step of 8-bit codes
True
"""

from __future__ import annotations

# The ignores are for type checks where zarr is not installed (it needs CPython 3.11).
try:
    from zarr.codecs.numcodecs import (  # type: ignore[import-not-found, unused-ignore]
        _NumcodecsArrayBytesCodec,
    )
    from zarr.core.common import JSON  # type: ignore[import-not-found, unused-ignore]
except ImportError as error:  # pragma: no cover - zarr is in the test extra from Python 3.11
    raise ImportError("linquant.zarr needs zarr 3: pip install 'linquant[zarr]'") from error

from . import codec as numcodecs_codec


class Linquant(  # type: ignore[misc, unused-ignore]
    _NumcodecsArrayBytesCodec, codec_name=numcodecs_codec.Linquant.codec_id
):
    """:class:`linquant.codec.Linquant` as a Zarr 3 serializer, with the same arguments."""

    def __init__(self, **codec_config: JSON) -> None:
        super().__init__(**codec_config)
        _ = self._codec  # bad arguments raise here, not at the first chunk
