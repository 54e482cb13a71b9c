"""Shared helpers: tensor type tables, Triton config text, golden files.

Nothing here needs onnx, onnxruntime or torch, so every generator (and
check_models.py) can import it under any of the project's interpreters.
"""
import json
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "model_repository"
EXTRA = ROOT / "tests" / "models_extra"
GOLDENS = ROOT / "tests" / "data" / "goldens"

# Triton datatype -> (config.pbtxt enum, numpy dtype name). BF16 has no numpy
# dtype of its own here: it travels as its bit pattern in uint16.
TRITON_TYPES = {
    "BOOL": ("TYPE_BOOL", "bool"),
    "UINT8": ("TYPE_UINT8", "uint8"),
    "UINT16": ("TYPE_UINT16", "uint16"),
    "UINT32": ("TYPE_UINT32", "uint32"),
    "UINT64": ("TYPE_UINT64", "uint64"),
    "INT8": ("TYPE_INT8", "int8"),
    "INT16": ("TYPE_INT16", "int16"),
    "INT32": ("TYPE_INT32", "int32"),
    "INT64": ("TYPE_INT64", "int64"),
    "FP16": ("TYPE_FP16", "float16"),
    "BF16": ("TYPE_BF16", "uint16"),
    "FP32": ("TYPE_FP32", "float32"),
    "FP64": ("TYPE_FP64", "float64"),
    "BYTES": ("TYPE_STRING", "object"),
}

EXACT = {"abs": 0.0, "rel": 0.0}

# Triton's quick-start `simple`: its tensors, shared by the model and the broken copies of it.
SIMPLE_CONFIG_IO = (
    [("INPUT0", "INT32", [16]), ("INPUT1", "INT32", [16])],
    [("OUTPUT0", "INT32", [16]), ("OUTPUT1", "INT32", [16])],
)


def rel(path):
    return str(Path(path).resolve().relative_to(ROOT))


def write_bytes(path, data):
    """Write only when the content changed, so regeneration never touches mtimes needlessly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == data:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def write_text(path, text):
    return write_bytes(path, text.encode("utf-8"))


def reset_dir(path):
    """Remove a generated model folder so stale files from older layouts do not linger."""
    if Path(path).exists():
        shutil.rmtree(path)


# ---- config.pbtxt ---------------------------------------------------------

def tensor_lines(tensors):
    """tensors: list of (name, triton_datatype, dims)."""
    rows = []
    for name, dtype, dims in tensors:
        d = ", ".join(str(x) for x in dims)
        rows.append(f'  {{ name: "{name}" data_type: {TRITON_TYPES[dtype][0]} dims: [ {d} ] }}')
    return ",\n".join(rows)


def config_text(name, inputs, outputs, max_batch_size, platform=None, backend=None, extra=""):
    head = [f'name: "{name}"']
    if platform:
        head.append(f'platform: "{platform}"')
    if backend:
        head.append(f'backend: "{backend}"')
    head.append(f"max_batch_size: {max_batch_size}")
    text = "\n".join(head) + "\n"
    text += "input [\n" + tensor_lines(inputs) + "\n]\n"
    text += "output [\n" + tensor_lines(outputs) + "\n]\n"
    if extra:
        text += extra.strip("\n") + "\n"
    return text


# ---- goldens --------------------------------------------------------------

def tensor_json(name, datatype, array):
    """A KServe-style tensor: flat row-major data, Triton datatype name.

    Floats are written as the exact value of the float32/16 number (Python's
    shortest repr of the widened double), so parsing the JSON as f64 and then
    narrowing gives back the very same bits.
    """
    import numpy as np

    shape = [int(x) for x in array.shape]
    if datatype == "BYTES":
        data = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in array.reshape(-1)]
    elif datatype == "BF16":
        import ml_dtypes

        data = array.reshape(-1).view(ml_dtypes.bfloat16).astype(np.float32).tolist()
    else:
        data = array.reshape(-1).tolist()
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def _dump(value, indent):
    """json.dumps with indentation, but lists of scalars kept on one line."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f'{pad}  {json.dumps(k)}: {_dump(v, indent + 1)}' for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return json.dumps(value, ensure_ascii=False)
        items = [f"{pad}  {_dump(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False)


def within(got, want, tol):
    """Golden outputs (JSON form) agree: same tensors, values within |g - w| <= abs + rel * |w|."""
    if [(t["name"], t["datatype"], t["shape"]) for t in got] != [(t["name"], t["datatype"], t["shape"]) for t in want]:
        return False
    for g, w in zip(got, want):
        for a, b in zip(g["data"], w["data"]):
            if isinstance(b, float) and not isinstance(a, bool):
                if abs(a - b) > tol["abs"] + tol["rel"] * abs(b):
                    return False
            elif a != b or type(a) is not type(b):
                return False
    return True


def write_golden(model, case, repository, inputs, outputs, tolerance, why, extra=None):
    """Writes tests/data/goldens/<model>/<case>.json.

    An existing file is kept when everything but the outputs is identical and its outputs
    agree with the fresh ones within the tolerance: another CPU may round float kernels
    differently, and that must not dirty git (nor is it a change worth recording).
    """
    doc = {
        "model": model,
        "repository": repository,
        "case": case,
        "tolerance": dict(tolerance, why=why),
        "inputs": inputs,
        "outputs": outputs,
    }
    if extra:
        doc.update(extra)
    path = GOLDENS / model / f"{case}.json"
    text = _dump(doc, 0) + "\n"
    if path.exists():
        old = json.loads(path.read_text())
        fresh = json.loads(text)
        same_rest = {k: v for k, v in old.items() if k != "outputs"} == {k: v for k, v in fresh.items() if k != "outputs"}
        if same_rest and within(fresh["outputs"], old["outputs"], tolerance):
            return path
    write_text(path, text)
    return path
