"""ONNX export (SPEC §12): DequantizeLinear models that ONNX Runtime runs to exactly
``QuantizedArray.dequantize()``, checked by ``onnx.checker``, and read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import linquant as lq

onnx = pytest.importorskip("onnx", reason="onnx, the format's own package, has no wheel here")

X = (np.random.default_rng(9).standard_normal((6, 64)) * 2 + 0.5).astype(np.float32)
ARRAYS = {
    "per_tensor": lambda: lq.quantize(X, 8),
    "blocks_int4": lambda: lq.quantize(X, 4, "symmetric", axis=1, block_size=32),
    "packed_3bit_rows": lambda: lq.quantize(X, 3, axis=0, pack=True),
    "odd_4bit": lambda: lq.quantize(X[:, :7], 4),  # packed over the flat tensor: a half byte
    "uint16": lambda: lq.quantize(X, 12, axis=0),
    "far_zero_point": lambda: lq.quantize(X + 50, 8, include_zero=False),  # zp past uint8
    "signs": lambda: lq.quantize(X, 1, "symmetric"),
    "stochastic": lambda: lq.quantize(X, 6, rounding="stochastic", seed=4),
}


def same(expected: lq.QuantizedArray, back: lq.QuantizedArray) -> None:
    assert np.array_equal(back.codes(), expected.codes()) and back.dtype == expected.dtype
    for name in ("scale", "zero_point"):
        left, right = np.asarray(getattr(expected, name)), np.asarray(getattr(back, name))
        assert left.dtype == right.dtype and left.tobytes() == right.tobytes(), name
    for name in ("bits", "scheme", "axis", "block_size", "source_dtype", "rounding", "seed"):
        assert getattr(back, name) == getattr(expected, name), name


def test_onnx_runtime_outputs_exactly_the_dequantized_arrays(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime has no wheel here")
    arrays = {name: make() for name, make in ARRAYS.items()}
    model = lq.to_onnx(arrays)
    assert model.opset_import[0].version == 21
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {}), strict=True))
    for name, qa in arrays.items():
        assert np.array_equal(outputs[name], qa.dequantize()), name
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    for source in (model, str(path)):
        back = lq.from_onnx(source)
        assert sorted(back) == sorted(arrays)
        for name, qa in arrays.items():
            same(qa, back[name])


def test_the_lowest_opset_that_holds_the_arrays() -> None:
    model = lq.to_onnx({"w": lq.quantize(X, 8, axis=0)})
    assert model.opset_import[0].version == 13
    codes = next(t for t in model.graph.initializer if t.name == "w.codes")
    assert codes.data_type == onnx.TensorProto.UINT8
    with pytest.raises(ValueError, match="need opset 21, got opset=13"):
        lq.to_onnx({"w": lq.quantize(X, 4, axis=1, block_size=32)}, opset=13)


def test_what_onnx_cannot_hold_raises() -> None:
    with pytest.raises(ValueError, match="float32 scales, got float64"):
        lq.to_onnx({"w": lq.quantize(X.astype(np.float64))})
    with pytest.raises(TypeError, match="QuantizedArray values"):
        lq.to_onnx({"w": X})  # type: ignore[dict-item]


def test_a_model_with_bad_settings_raises_naming_the_output() -> None:
    model = lq.to_onnx({"w": lq.quantize(X, 4)})
    settings = json.loads(model.metadata_props[0].value)
    for change in ({"bits": 3}, {"shape": [6, 63]}, {"scheme": "symmetric"}, {"bits": "x"}):
        damaged = onnx.ModelProto()
        damaged.CopyFrom(model)
        damaged.metadata_props[0].value = json.dumps({**settings, **change})
        with pytest.raises(ValueError, match="ONNX output 'w'"):
            lq.from_onnx(damaged)


def test_without_onnx_the_error_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'linquant\[onnx\]'"):
        lq.to_onnx({"w": lq.quantize(X)})


def test_linquant_info_lists_a_models_arrays(tmp_path: Path) -> None:
    blocks = lq.quantize(X, 4, "symmetric", axis=1, block_size=32)
    onnx.save(lq.to_onnx({"w": blocks}), str(tmp_path / "m.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 40)
    run = [sys.executable, "-m", "linquant", "info"]
    out = subprocess.run([*run, "m.onnx"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "w: (6, 64) float32 as int8 4-bit symmetric, axis 1, block size 32" in out.stdout
    bad = subprocess.run([*run, "junk.onnx"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 1 and "junk.onnx: not an ONNX model" in bad.stderr
    with pytest.raises(FileNotFoundError):
        lq.from_onnx(tmp_path / "absent.onnx")
