"""Models the backends must refuse to load, made by copying or cutting the good files.

Needs no libraries: it only copies bytes, so it runs under any interpreter once the
good files exist (the .pt sources are committed, the .onnx ones are generated).
"""
from . import common
from .common import BUNDLED, EXTRA, SIMPLE_CONFIG_IO, config_text

SIMPLE_ONNX = BUNDLED / "simple" / "1" / "model.onnx"
MLP_ONNX = BUNDLED / "mlp" / "1" / "model.onnx"
SIMPLE_PT = BUNDLED / "simple_torch" / "1" / "model.pt"

# name -> (what it is, words a clear refusal must contain, Triton's own reason where its
# onnxruntime backend source states one). tests/models_extra/manifest.json carries this table.
CASES = {
    "onnx_truncated": (
        "model.onnx is the first 4096 bytes of mlp's model.onnx",
        ["model.onnx"],
        None,
    ),
    "onnx_dtype_mismatch": (
        "simple's model (INT32) with INPUT0 declared TYPE_FP32 in config.pbtxt",
        ["INPUT0", "TYPE_FP32", "TYPE_INT32"],
        ("unable to load model 'onnx_dtype_mismatch', configuration expects datatype TYPE_FP32 for input "
         "'INPUT0', model provides TYPE_INT32"),
    ),
    "onnx_dims_mismatch": (
        "simple's model ([-1,16]) with dims [ 8 ] in config.pbtxt",
        ["INPUT0", "[-1,16]", "[-1,8]"],
        ("model 'onnx_dims_mismatch', tensor 'INPUT0': the model expects 2 dimensions (shape [-1,16]) but the "
         "model configuration specifies 2 dimensions (an initial batch dimension because max_batch_size > 0 "
         "followed by the explicit tensor shape, making complete shape [-1,8])"),
    ),
    "onnx_name_mismatch": (
        "simple's model with an input named INPUT9 in config.pbtxt, which the model does not have",
        ["INPUT9", "INPUT1"],
        "unexpected inference input 'INPUT9', allowed inputs are: INPUT0, INPUT1",
    ),
    "onnx_torchscript_file": (
        "simple_torch's TorchScript archive (a zip) renamed to model.onnx",
        ["model.onnx"],
        None,
    ),
    "torch_onnx_file": (
        "simple's ONNX file renamed to model.pt for the pytorch_libtorch platform",
        ["model.pt"],
        None,
    ),
    "torch_truncated": (
        "model.pt is the first half of simple_torch's model.pt",
        ["model.pt"],
        None,
    ),
}

TORCH_IO = (
    [("INPUT__0", "FP32", [16]), ("INPUT__1", "FP32", [16])],
    [("OUTPUT__0", "FP32", [16]), ("OUTPUT__1", "FP32", [16])],
)


def _copy(src, dst, size=None):
    data = src.read_bytes()
    common.write_bytes(dst, data if size is None else data[:size])


def gen_broken():
    made = []
    onnx_cfg = {"max_batch_size": 8, "platform": "onnxruntime_onnx"}
    if MLP_ONNX.exists():
        name = "onnx_truncated"
        _copy(MLP_ONNX, EXTRA / name / "1" / "model.onnx", 4096)
        common.write_text(EXTRA / name / "config.pbtxt",
                          config_text(name, [("features", "FP32", [64])], [("logits", "FP32", [16])],
                                      max_batch_size=64, platform="onnxruntime_onnx"))
        made.append(name)
    if SIMPLE_ONNX.exists():
        inputs, outputs = SIMPLE_CONFIG_IO
        variants = {
            "onnx_dtype_mismatch": ([("INPUT0", "FP32", [16]), inputs[1]], outputs),
            "onnx_dims_mismatch": ([("INPUT0", "INT32", [8]), ("INPUT1", "INT32", [8])], outputs),
            "onnx_name_mismatch": ([inputs[0], ("INPUT9", "INT32", [16])], outputs),
        }
        for name, (ins, outs) in variants.items():
            _copy(SIMPLE_ONNX, EXTRA / name / "1" / "model.onnx")
            common.write_text(EXTRA / name / "config.pbtxt", config_text(name, ins, outs, **onnx_cfg))
            made.append(name)
        name = "torch_onnx_file"
        _copy(SIMPLE_ONNX, EXTRA / name / "1" / "model.pt")
        common.write_text(EXTRA / name / "config.pbtxt",
                          config_text(name, *TORCH_IO, max_batch_size=8, platform="pytorch_libtorch"))
        made.append(name)
    if SIMPLE_PT.exists():
        name = "onnx_torchscript_file"
        _copy(SIMPLE_PT, EXTRA / name / "1" / "model.onnx")
        common.write_text(EXTRA / name / "config.pbtxt", config_text(name, *SIMPLE_CONFIG_IO, **onnx_cfg))
        made.append(name)
        name = "torch_truncated"
        _copy(SIMPLE_PT, EXTRA / name / "1" / "model.pt", SIMPLE_PT.stat().st_size // 2)
        common.write_text(EXTRA / name / "config.pbtxt",
                          config_text(name, *TORCH_IO, max_batch_size=8, platform="pytorch_libtorch"))
        made.append(name)
    return made
