# The same kernels as _kernels_baseline, built for another instruction-set level.
from ._kernels_baseline import FAST_BOUND as FAST_BOUND
from ._kernels_baseline import NO_WIDTH as NO_WIDTH
from ._kernels_baseline import ROUNDING_MODES as ROUNDING_MODES
from ._kernels_baseline import block_dynamic_quantize as block_dynamic_quantize
from ._kernels_baseline import block_quantize as block_quantize
from ._kernels_baseline import dequantize as dequantize
from ._kernels_baseline import gguf_dequantize as gguf_dequantize
from ._kernels_baseline import gguf_quantize as gguf_quantize
from ._kernels_baseline import group_dequantize as group_dequantize
from ._kernels_baseline import group_minmax as group_minmax
from ._kernels_baseline import group_quantize as group_quantize
from ._kernels_baseline import histogram as histogram
from ._kernels_baseline import minmax as minmax
from ._kernels_baseline import nan_stats as nan_stats
from ._kernels_baseline import pack as pack
from ._kernels_baseline import quantize as quantize
from ._kernels_baseline import unpack as unpack
