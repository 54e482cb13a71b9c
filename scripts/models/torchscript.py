"""TorchScript models (committed .pt files, KBs) and their goldens.

Regenerating them needs the full PyPI torch==2.13.0 (the libtorch that tch 0.26 links),
with its dependencies, since `import torch` loads the CUDA libraries:
    python3 -m venv /tmp/torch213 && /tmp/torch213/bin/pip install torch==2.13.0 numpy
    /tmp/torch213/bin/python scripts/gen_models.py
An archive saved by a newer torch may not load in libtorch 2.13, so the version is checked.
"""
import linecache
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import torch

from . import common
from .common import BUNDLED, EXACT, EXTRA, config_text, tensor_json, write_golden

TORCH_VERSION = "2.13.0"
DEFS = Path(__file__).with_name("torch_defs.py")
DEFS_NAME = "despina/scripts/models/torch_defs.py"  # recorded in the archives' debug info

TORCH_DTYPES = {
    torch.bool: "BOOL", torch.uint8: "UINT8", torch.int8: "INT8", torch.int16: "INT16",
    torch.int32: "INT32", torch.int64: "INT64", torch.float16: "FP16", torch.float32: "FP32",
    torch.float64: "FP64",
}


def check_version():
    if torch.__version__.split("+")[0] != TORCH_VERSION:
        raise SystemExit(f"torch {torch.__version__} found; the .pt files must be written by torch {TORCH_VERSION} "
                         f"(libtorch of tch 0.26)")


def load_defs():
    """Compile torch_defs.py under a fixed file name (kept in linecache for TorchScript's source lookup)."""
    src = DEFS.read_text()
    linecache.cache[DEFS_NAME] = (len(src), None, src.splitlines(True), DEFS_NAME)
    mod = types.ModuleType("despina_torch_defs")
    mod.__file__ = DEFS_NAME
    sys.modules[mod.__name__] = mod
    exec(compile(src, DEFS_NAME, "exec"), mod.__dict__)
    return mod


def save(module, path):
    import io

    scripted = torch.jit.script(module.eval())
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    common.write_bytes(path, buf.getvalue())
    return path


def run(path, inputs):
    """inputs: list of (name, datatype, array) in forward() order. Runs the saved file, as libtorch will."""
    torch.set_num_threads(1)
    m = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        out = m(*[torch.from_numpy(np.ascontiguousarray(a)) for _, _, a in inputs])
    if isinstance(out, torch.Tensor):
        out = (out,)
    return [(f"OUTPUT__{i}", TORCH_DTYPES[t.dtype], t.numpy()) for i, t in enumerate(out)]


def golden(model, case, repository, path, inputs, tol, why, extra=None):
    outs = run(path, inputs)
    write_golden(model, case, repository, [tensor_json(n, d, a) for n, d, a in inputs],
                 [tensor_json(n, d, a) for n, d, a in outs], tol, why, extra)
    return outs


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def gen_simple_torch(defs):
    name = "simple_torch"
    path = save(defs.AddSub(), BUNDLED / name / "1" / "model.pt")
    extra = """
dynamic_batching { max_queue_delay_microseconds: 100 }
instance_group [ { count: 1 kind: KIND_CPU } ]
"""
    common.write_text(
        BUNDLED / name / "config.pbtxt",
        config_text(name, [("INPUT__0", "FP32", [16]), ("INPUT__1", "FP32", [16])],
                    [("OUTPUT__0", "FP32", [16]), ("OUTPUT__1", "FP32", [16])],
                    max_batch_size=8, platform="pytorch_libtorch", extra=extra),
    )
    repo = "model_repository"
    why = "one float32 add or subtract per element is correctly rounded, so exact"
    rng = rng_for(name)
    a = rng.standard_normal((8, 16)).astype(np.float32)
    b = rng.standard_normal((8, 16)).astype(np.float32)
    golden(name, "batch8", repo, path, [("INPUT__0", "FP32", a), ("INPUT__1", "FP32", b)], EXACT, why)
    golden(name, "batch1", repo, path, [("INPUT__0", "FP32", a[5:6]), ("INPUT__1", "FP32", b[5:6])], EXACT, why,
           extra={"same_as_row": {"case": "batch8", "row": 5}})
    return [path]


def gen_extra(defs):
    repo = "tests/models_extra"
    made = []
    name = "torch_multi_dtype"
    path = save(defs.MultiDtype(), EXTRA / name / "1" / "model.pt")
    ins = [("INPUT__0", "FP32", [4]), ("INPUT__1", "INT64", [4]), ("INPUT__2", "BOOL", [4]), ("INPUT__3", "UINT8", [4])]
    outs = [("OUTPUT__0", "FP64", [4]), ("OUTPUT__1", "INT32", [4]), ("OUTPUT__2", "BOOL", [4]),
            ("OUTPUT__3", "FP16", [4])]
    common.write_text(EXTRA / name / "config.pbtxt",
                      config_text(name, ins, outs, max_batch_size=4, platform="pytorch_libtorch"))
    rng = rng_for(name)
    data = [
        ("INPUT__0", "FP32", (rng.standard_normal((3, 4)) * 10).astype(np.float32)),
        ("INPUT__1", "INT64", rng.integers(-1000, 1000, size=(3, 4)).astype(np.int64)),
        ("INPUT__2", "BOOL", rng.integers(0, 2, size=(3, 4)).astype(bool)),
        ("INPUT__3", "UINT8", rng.integers(0, 256, size=(3, 4)).astype(np.uint8)),
    ]
    why = "doubling, integer sums, logic and float16 rounding are all exact operations"
    golden(name, "batch3", repo, path, data, EXACT, why)
    golden(name, "batch1", repo, path, [(n, d, a[2:3]) for n, d, a in data], EXACT, why,
           extra={"same_as_row": {"case": "batch3", "row": 2}})
    made.append(path)

    name = "torch_identity_fp32"
    path = save(defs.Identity(), EXTRA / name / "1" / "model.pt")
    common.write_text(EXTRA / name / "config.pbtxt",
                      config_text(name, [("INPUT__0", "FP32", [-1, -1])], [("OUTPUT__0", "FP32", [-1, -1])],
                                  max_batch_size=0, platform="pytorch_libtorch"))
    x = rng_for(name).standard_normal((2, 3)).astype(np.float32)
    golden(name, "shape2x3", repo, path, [("INPUT__0", "FP32", x)], EXACT, "identity returns its input bit for bit")
    made.append(path)
    return made


def gen_all():
    check_version()
    defs = load_defs()
    return gen_simple_torch(defs) + gen_extra(defs)
