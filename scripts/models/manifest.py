"""tests/models_extra/manifest.json: what each extra model is and what loading it must give.

Data-driven tests read it instead of hard-coding the list. Needs no libraries.
"""
import json

from . import common
from .broken import CASES as BROKEN
from .common import EXTRA, GOLDENS

GOOD = {
    **{f"onnx_identity_{t.lower()}": f"OUTPUT0 = INPUT0, {t}, dims [-1], max_batch_size 8"
       for t in common.TRITON_TYPES},
    "onnx_identity_fp32_nobatch": "OUTPUT0 = INPUT0, FP32, dims [-1, -1], max_batch_size 0",
    "onnx_variable_seq": "INPUT0 FP32 [batch, seq]: OUTPUT0 = cumsum over seq, OUTPUT1 = mean over seq ([batch, 1])",
    "onnx_ragged": "ragged INPUT0 FP32 (allow_ragged_batch) with batch inputs INDEX (accumulated element "
                   "count, FP32) and SIZES (element count, INT32): OUTPUT0 = 2 * INPUT0 scattered by "
                   "INPUT0's shape, END/SIZE = INDEX/SIZES one row per request",
    "onnx_state_accumulate": "sequence model with implicit state INPUT_STATE/OUTPUT_STATE (INT32 [1], "
                             "initial state 100 from initial_state/hundred): OUTPUT = OUTPUT_STATE = "
                             "INPUT + INPUT_STATE, a running sum per sequence",
    "onnx_autocomplete": "no config.pbtxt: OUTPUT0 = INPUT0 * float(INPUT1), OUTPUT1 = sum(INPUT1) over axis 1",
    "onnx_autocomplete_nobatch": "no config.pbtxt: OUTPUT0 = transpose(INPUT0), fixed shapes [3,4] -> [4,3]",
    "torch_multi_dtype": "TorchScript, 4 inputs (FP32, INT64, BOOL, UINT8) and 4 outputs (FP64, INT32, BOOL, FP16)",
    "torch_identity_fp32": "TorchScript returning a bare tensor (not a tuple), max_batch_size 0, dims [-1, -1]",
}

# What Triton's onnxruntime backend derives (AutoCompleteMaxBatch / AutoCompleteIO in
# onnxruntime_backend src/onnxruntime.cc): batching when every input and output has a
# dynamic first dim; max_batch_size = --backend-config default-max-batch-size (4);
# dynamic_batching {} added when max_batch_size > 1; dims without the batch dim.
AUTOCOMPLETE = {
    "onnx_autocomplete": {
        "platform": "onnxruntime_onnx",
        "max_batch_size": 4,
        "dynamic_batching": True,
        "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [4]},
                  {"name": "INPUT1", "data_type": "TYPE_INT64", "dims": [4]}],
        "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [4]},
                   {"name": "OUTPUT1", "data_type": "TYPE_INT64", "dims": [1]}],
    },
    "onnx_autocomplete_nobatch": {
        "platform": "onnxruntime_onnx",
        "max_batch_size": 0,
        "dynamic_batching": False,
        "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [3, 4]}],
        "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [4, 3]}],
    },
}


def model_file(name):
    files = sorted(p.name for p in (EXTRA / name / "1").glob("model.*"))
    return f"1/{files[0]}" if files else None


def goldens(name):
    return [common.rel(p) for p in sorted((GOLDENS / name).glob("*.json"))]


def gen_manifest():
    models = {}
    for name, what in GOOD.items():
        entry = {"what": what, "loads": True, "config": (EXTRA / name / "config.pbtxt").exists(),
                 "file": model_file(name), "goldens": goldens(name)}
        if name in AUTOCOMPLETE:
            entry["autocomplete"] = AUTOCOMPLETE[name]
        models[name] = entry
    for name, (what, mentions, triton) in BROKEN.items():
        entry = {"what": what, "loads": False, "config": True, "file": model_file(name),
                 "reason_mentions": mentions}
        if triton:
            entry["triton_reason"] = triton
        models[name] = entry
    doc = {
        "about": "Extra models for the backend tests; written by scripts/gen_models.py. "
                 "loads=false models must fail to load with a reason containing every reason_mentions string.",
        "models": models,
    }
    path = EXTRA / "manifest.json"
    common.write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path
