#!/usr/bin/env python3
"""Check every generated model against its goldens: the Python-side proof for despina's Rust tests.

    .venv/bin/python scripts/check_models.py          # ONNX models (ONNX Runtime, CPU)
    /tmp/torch213/bin/python scripts/check_models.py  # TorchScript models (torch 2.13.0)

For each tests/data/goldens/<model>/<case>.json it runs the model file under the runtime this
interpreter has (the others are reported as skipped) and compares every output:
same datatype and shape, and |got - want| <= abs + rel * |want| elementwise (tolerance 0 means
bit-for-bit, -0.0 and NaN payloads included). It also checks:
- `same_as_row`: a batch-1 (or smaller) golden equals those rows of the bigger batch's golden;
- all_minilm_l6_v2: ONNX Runtime against the stored sentence-transformers reference;
- config.pbtxt against the model's own signature for every good ONNX model;
- the auto-complete expectations of tests/models_extra/manifest.json against the ONNX signature;
- that every model the manifest marks loads=false really fails (or really disagrees with its config).
Exits 1 on any failure.
"""
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import common
from models.common import ROOT, TRITON_TYPES

try:
    import onnxruntime  # noqa: F401
    from models import ortrun
except ImportError:
    ortrun = None
try:
    import torch
except ImportError:
    torch = None

FAILURES = []
SKIPPED = []


def fail(msg):
    FAILURES.append(msg)
    print(f"FAIL {msg}")


def to_numpy(t):
    """Golden tensor JSON -> numpy array in the model's dtype (BF16 as uint16 bits)."""
    dt, shape, data = t["datatype"], t["shape"], t["data"]
    if dt == "BYTES":
        return np.array(data, dtype=object).reshape(shape)
    if dt == "BF16":
        import ml_dtypes

        return np.array(data, dtype=np.float32).astype(ml_dtypes.bfloat16).view(np.uint16).reshape(shape)
    return np.array(data, dtype=TRITON_TYPES[dt][1]).reshape(shape)


def compare(label, got, want, datatype, tol):
    """Returns the max abs difference; records a failure when out of tolerance."""
    if got.shape != want.shape:
        fail(f"{label}: shape {list(got.shape)} != golden {list(want.shape)}")
        return float("inf")
    if datatype in ("BYTES", "BOOL") or np.issubdtype(want.dtype, np.integer) and datatype != "BF16":
        if not np.array_equal(got, want):
            fail(f"{label}: values differ from the golden")
        return 0.0
    if datatype == "BF16":
        import ml_dtypes

        g = got.view(ml_dtypes.bfloat16).astype(np.float64)
        w = want.view(ml_dtypes.bfloat16).astype(np.float64)
        bits_equal = np.array_equal(got, want)
    else:
        g, w = got.astype(np.float64), want.astype(np.float64)
        ubits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[want.dtype.itemsize]
        bits_equal = np.array_equal(np.ascontiguousarray(got).view(ubits), np.ascontiguousarray(want).view(ubits))
    diff = float(np.abs(g - w).max()) if g.size else 0.0
    if tol["abs"] == 0 and tol["rel"] == 0:
        if not bits_equal:
            fail(f"{label}: not bit-for-bit equal to the golden (max abs diff {diff:.3g})")
    elif not np.all(np.abs(g - w) <= tol["abs"] + tol["rel"] * np.abs(w)):
        fail(f"{label}: max abs diff {diff:.3g} exceeds abs {tol['abs']} + rel {tol['rel']}")
    return diff


def model_file(golden):
    version = ROOT / golden["repository"] / golden["model"] / "1"
    for name in ("model.onnx", "model.pt"):
        if (version / name).exists():
            return version / name
    return None


SESSIONS = {}


def run_model(path, golden):
    if (ortrun if path.suffix == ".onnx" else torch) is None:
        return None
    inputs = [(t["name"], t["datatype"], to_numpy(t)) for t in golden["inputs"]]
    if path.suffix == ".onnx":
        sess = SESSIONS.get(path) or SESSIONS.setdefault(path, ortrun.session(path))
        return ortrun.run(sess, {n: (d, a) for n, d, a in inputs})
    from models import torchscript

    torchscript.check_version()
    return {n: a for n, _, a in torchscript.run(path, inputs)}


def check_goldens():
    goldens = {}
    for path in sorted(common.GOLDENS.glob("*/*.json")):
        if path.name == "reference.json":
            continue
        goldens[(path.parent.name, path.stem)] = (path, json.loads(path.read_text()))
    results = {}
    for (model, case), (path, g) in goldens.items():
        label = f"{model}/{case}"
        mfile = model_file(g)
        if mfile is None:
            if model == "all_minilm_l6_v2":
                SKIPPED.append(f"{label} (model.onnx not generated yet: run scripts/gen_models.py)")
            else:
                fail(f"{label}: no model file under {g['repository']}/{model}/1")
            continue
        try:
            outs = run_model(mfile, g)
        except Exception as err:  # noqa: BLE001 (a broken golden or model is a failure, not a crash)
            fail(f"{label}: {type(err).__name__}: {err}")
            continue
        if outs is None:
            SKIPPED.append(f"{label} ({mfile.suffix} needs {'onnxruntime' if mfile.suffix == '.onnx' else 'torch'})")
            continue
        results[(model, case)] = outs
        names = [t["name"] for t in g["outputs"]]
        if sorted(names) != sorted(outs):
            fail(f"{label}: outputs {sorted(outs)} != golden {sorted(names)}")
            continue
        worst = 0.0
        for t in g["outputs"]:
            worst = max(worst, compare(f"{label} {t['name']}", outs[t["name"]], to_numpy(t), t["datatype"],
                                       g["tolerance"]))
        note = ""
        if "reference" in g:
            ref = g["reference"]
            for t in ref["outputs"]:
                d = compare(f"{label} {t['name']} vs sentence-transformers", outs[t["name"]], to_numpy(t),
                            t["datatype"], ref["tolerance"])
                note += f", vs sentence-transformers {d:.3g}"
        print(f"ok   {label} ({mfile.suffix[1:]}, max abs diff {worst:.3g}{note})")
    # Batching must not change answers: the small golden equals rows of the big one.
    for (model, case), (path, g) in goldens.items():
        row = g.get("same_as_row")
        if not row or (model, case) not in results:
            continue
        other = goldens[(model, row["case"])][1]
        rows = slice(row["row"], row["row"] + 1) if "row" in row else slice(*row["rows"])
        for t in g["outputs"]:
            big = next(o for o in other["outputs"] if o["name"] == t["name"])
            d = compare(f"{model}/{case} {t['name']} vs {row['case']} rows {rows.start}..{rows.stop}",
                        to_numpy(t), to_numpy(big)[rows], t["datatype"], g["tolerance"])
        for t in g["inputs"]:
            big = next(o for o in other["inputs"] if o["name"] == t["name"])
            a, b = to_numpy(t), to_numpy(big)[rows]
            if model != "all_minilm_l6_v2" and not np.array_equal(a, b):
                fail(f"{model}/{case}: input {t['name']} is not rows {rows} of {row['case']}")
        print(f"ok   {model}/{case} equals rows {rows.start}..{rows.stop} of {row['case']} (max abs diff {d:.3g})")


# ---- config.pbtxt and manifest ----------------------------------------------

TENSOR_RE = re.compile(r'\{\s*name:\s*"([^"]+)"\s+data_type:\s*(TYPE_\w+)\s+dims:\s*\[([^\]]*)\]\s*\}')
ONNX_TO_CONFIG = {f"tensor({k})": v for k, v in {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
    "int64": "TYPE_INT64", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16", "float": "TYPE_FP32",
    "double": "TYPE_FP64", "string": "TYPE_STRING"}.items()}


def parse_config(text):
    """Just enough of config.pbtxt for the files this project writes."""
    mbs = int(re.search(r"max_batch_size:\s*(\d+)", text).group(1))
    sections = {}
    for key in ("input", "output"):
        m = re.search(rf"^{key} \[(.*?)^\]", text, re.DOTALL | re.MULTILINE)
        sections[key] = [(n, t, [int(x) for x in d.replace(",", " ").split()])
                         for n, t, d in TENSOR_RE.findall(m.group(1))]
    return mbs, sections


def onnx_signature(path):
    sess = ortrun.session(path)
    sig = {}
    for key, metas in (("input", sess.get_inputs()), ("output", sess.get_outputs())):
        sig[key] = [(m.name, ONNX_TO_CONFIG[m.type], [d if isinstance(d, int) else -1 for d in m.shape])
                    for m in metas]
    return sig


def config_mismatches(cfg_text, sig):
    """Differences between config.pbtxt and the ONNX signature, by Triton's rules."""
    mbs, cfg = parse_config(cfg_text)
    problems = []
    for key in ("input", "output"):
        model = {n: (t, s) for n, t, s in sig[key]}
        for name, dtype, dims in cfg[key]:
            if name not in model:
                problems.append(f"{key} {name} not in the model")
                continue
            mtype, mshape = model[name]
            if dtype != mtype:
                problems.append(f"{key} {name}: config {dtype}, model {mtype}")
            full = ([-1] if mbs > 0 else []) + dims
            if len(full) != len(mshape) or any(m != -1 and m != c for m, c in zip(mshape, full)):
                problems.append(f"{key} {name}: config shape {full}, model {mshape}")
    return problems


def check_pbtxt_syntax():
    """Parse every config.pbtxt with Triton's own ModelConfig message (from tritonclient), if present."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        SKIPPED.append("config.pbtxt syntax (needs tritonclient)")
        return
    files = sorted(common.BUNDLED.glob("*/config.pbtxt")) + sorted(common.EXTRA.glob("*/config.pbtxt"))
    for f in files:
        try:
            cfg = text_format.Parse(f.read_text(), model_config_pb2.ModelConfig())
        except text_format.ParseError as err:
            fail(f"{common.rel(f)}: not a valid ModelConfig: {err}")
            continue
        if cfg.name != f.parent.name:
            fail(f"{common.rel(f)}: name {cfg.name!r} differs from its folder")
    print(f"ok   {len(files)} config.pbtxt files parse as Triton ModelConfig, names match folders")


def check_configs_and_manifest():
    manifest = json.loads((common.EXTRA / "manifest.json").read_text())["models"]
    dirs = [p.parent for p in sorted(common.BUNDLED.glob("*/config.pbtxt"))]
    dirs += [common.EXTRA / n for n, e in manifest.items() if e["loads"] and e["config"]]
    for d in dirs:
        f = d / "1" / "model.onnx"
        if not f.exists() or ortrun is None:
            continue
        problems = config_mismatches((d / "config.pbtxt").read_text(), onnx_signature(f))
        if problems:
            fail(f"{common.rel(d)}/config.pbtxt disagrees with its model: {problems}")
        else:
            print(f"ok   {common.rel(d)}/config.pbtxt matches the ONNX signature")
    for d in dirs:
        f = d / "1" / "model.pt"
        if not f.exists() or torch is None:
            continue
        _, cfg = parse_config((d / "config.pbtxt").read_text())
        args = [a.name for a in torch.jit.load(str(f)).forward.schema.arguments[1:]]
        if args != [n for n, _, _ in cfg["input"]]:
            fail(f"{common.rel(d)}/config.pbtxt inputs differ from forward() arguments {args}")
        else:
            print(f"ok   {common.rel(d)}/config.pbtxt inputs are forward()'s arguments, in order")
    for name, e in manifest.items():
        d = common.EXTRA / name
        f = d / (e["file"] or "missing")
        if not f.exists():
            fail(f"{name}: model file {e['file']} missing")
            continue
        if e["config"] != (d / "config.pbtxt").exists():
            fail(f"{name}: config.pbtxt presence disagrees with the manifest")
        if "autocomplete" in e and ortrun is not None:
            sig, want = onnx_signature(f), e["autocomplete"]
            batching = all(s and s[0] == -1 for k in ("input", "output") for _, _, s in sig[k])
            got = {k: [{"name": n, "data_type": t, "dims": s[1:] if batching else s} for n, t, s in sig[k]]
                   for k in ("input", "output")}
            if batching != (want["max_batch_size"] > 0) or got["input"] != want["input"] \
                    or got["output"] != want["output"]:
                fail(f"{name}: auto-complete expectation {want} does not follow from the model {got}")
            else:
                print(f"ok   {name}: auto-complete expectation follows from the ONNX signature")
        if not e["loads"]:
            check_broken(name, f, d)


def check_broken(name, f, d):
    if f.suffix == ".onnx" and ortrun is not None:
        try:
            sig = onnx_signature(f)
        except Exception as err:  # noqa: BLE001 (any load failure is the expected outcome)
            print(f"ok   {name}: ONNX Runtime refuses it ({str(err).splitlines()[0][:90]})")
            return
        problems = config_mismatches((d / "config.pbtxt").read_text(), sig)
        if problems:
            print(f"ok   {name}: config.pbtxt disagrees with the model: {'; '.join(problems)}")
        else:
            fail(f"{name}: loads and matches its config, but the manifest says it must be refused")
    elif f.suffix == ".pt" and torch is not None:
        try:
            torch.jit.load(str(f))
        except Exception as err:  # noqa: BLE001
            print(f"ok   {name}: torch.jit.load refuses it ({str(err).splitlines()[0][:90]})")
            return
        fail(f"{name}: torch.jit.load accepted it")
    else:
        SKIPPED.append(f"{name} (refusal check needs {'onnxruntime' if f.suffix == '.onnx' else 'torch'})")


def main():
    runtimes = [r for r, m in (("onnxruntime", ortrun), ("torch", torch)) if m is not None]
    print(f"runtimes: {', '.join(runtimes) or 'none'} ({sys.executable})")
    check_goldens()
    check_pbtxt_syntax()
    check_configs_and_manifest()
    for s in SKIPPED:
        print(f"skip {s}")
    print(f"{len(FAILURES)} failures, {len(SKIPPED)} skipped")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
