"""Small ONNX models (committed) and their goldens: simple, mlp, and the extra test models.

Every model is built with onnx.helper from seeded numpy data, so a rerun writes
the very same bytes. Needs onnx, numpy and onnxruntime (for the goldens).
"""
import itertools
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import common, ortrun
from .common import BUNDLED, EXACT, EXTRA, SIMPLE_CONFIG_IO, config_text, tensor_json, write_golden

OPSET = 17
IR_VERSION = 8  # ONNX Runtime 1.31 reads IR <= 11; 8 keeps the files readable by older tools too
PRODUCER = "despina scripts/gen_models.py"

ONNX_TYPES = {
    "BOOL": TensorProto.BOOL, "UINT8": TensorProto.UINT8, "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32, "UINT64": TensorProto.UINT64, "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16, "INT32": TensorProto.INT32, "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16, "BF16": TensorProto.BFLOAT16, "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE, "BYTES": TensorProto.STRING,
}


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def value_info(name, datatype, shape):
    return helper.make_tensor_value_info(name, ONNX_TYPES[datatype], shape)


def make_model(graph, doc):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version="1",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def save_model(model, path):
    common.write_bytes(path, model.SerializeToString(deterministic=True))
    return path


def golden_from_ort(model, case, repository, model_path, inputs, tolerance, why, extra=None):
    """inputs: list of (name, datatype, array). Runs ORT and writes the golden."""
    sess = ortrun.session(model_path)
    outs = ortrun.run(sess, {n: (d, a) for n, d, a in inputs})
    out_types = {o.name: o.type for o in sess.get_outputs()}
    outputs = [tensor_json(n, ort_to_triton(out_types[n]), a) for n, a in outs.items()]
    return write_golden(
        model, case, repository,
        [tensor_json(n, d, a) for n, d, a in inputs], outputs, tolerance, why, extra,
    ), outs


ORT_TYPE_NAMES = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
    "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(bfloat16)": "BF16", "tensor(float)": "FP32",
    "tensor(double)": "FP64", "tensor(string)": "BYTES",
}


def ort_to_triton(type_name):
    return ORT_TYPE_NAMES[type_name]


# ---- simple: Triton's quick-start add/sub on INT32 [16] ---------------------

def simple_model():
    shape = ["batch", 16]
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"], name="add"),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"], name="sub"),
        ],
        "simple",
        [value_info("INPUT0", "INT32", shape), value_info("INPUT1", "INT32", shape)],
        [value_info("OUTPUT0", "INT32", shape), value_info("OUTPUT1", "INT32", shape)],
    )
    return make_model(graph, "OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (Triton quick-start 'simple')")


def gen_simple():
    name = "simple"
    path = save_model(simple_model(), BUNDLED / name / "1" / "model.onnx")
    common.write_text(
        BUNDLED / name / "config.pbtxt",
        config_text(name, *SIMPLE_CONFIG_IO, max_batch_size=8, platform="onnxruntime_onnx",
                    extra="instance_group [ { count: 1 kind: KIND_CPU } ]"),
    )
    why = "integer add/sub is exact"
    repo = "model_repository"
    # The quick-start client's request: INPUT0 = 0..15, INPUT1 = 1s.
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.int32)
    golden_from_ort(name, "quickstart", repo, path, [("INPUT0", "INT32", a), ("INPUT1", "INT32", b)], EXACT, why)
    rng = rng_for(name)
    a = rng.integers(-1000, 1000, size=(8, 16), dtype=np.int32)
    b = rng.integers(-1000, 1000, size=(8, 16), dtype=np.int32)
    golden_from_ort(name, "batch8", repo, path, [("INPUT0", "INT32", a), ("INPUT1", "INT32", b)], EXACT, why)
    golden_from_ort(name, "batch1", repo, path, [("INPUT0", "INT32", a[3:4]), ("INPUT1", "INT32", b[3:4])],
                    EXACT, why, extra={"same_as_row": {"case": "batch8", "row": 3}})
    return path


# ---- mlp: the benchmark model -----------------------------------------------

MLP_LAYERS = [64, 256, 256, 16]
MLP_TOL = {"abs": 1e-5, "rel": 1e-5}
MLP_WHY = ("float32 GEMM, outputs up to ~6: measured bit-identical here across batch sizes 1-64, intra-op "
           "threads 1/2/all and graph optimisation on/off, but other CPUs (AVX2 vs AVX-512 kernels) "
           "may round sums differently by a few ulp")


def mlp_model():
    rng = rng_for("mlp")
    nodes, inits = [], []
    x = "features"
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(MLP_LAYERS)):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"fc{i}.weight"), numpy_helper.from_array(b, f"fc{i}.bias")]
        last = i == len(MLP_LAYERS) - 2
        nodes.append(helper.make_node("MatMul", [x, f"fc{i}.weight"], [f"fc{i}.mm"], name=f"fc{i}.matmul"))
        out = "logits" if last else f"fc{i}.out"
        nodes.append(helper.make_node("Add", [f"fc{i}.mm", f"fc{i}.bias"], [out if last else f"fc{i}.pre"],
                                      name=f"fc{i}.add"))
        if not last:
            nodes.append(helper.make_node("Relu", [f"fc{i}.pre"], [out], name=f"fc{i}.relu"))
        x = out
    graph = helper.make_graph(
        nodes, "mlp",
        [value_info("features", "FP32", ["batch", MLP_LAYERS[0]])],
        [value_info("logits", "FP32", ["batch", MLP_LAYERS[-1]])],
        initializer=inits,
    )
    return make_model(graph, "MLP 64-256-256-16 with Relu, seeded random weights (benchmark model)")


MLP_EXTRA_CONFIG = """
dynamic_batching {
  preferred_batch_size: [ 16, 32, 64 ]
  max_queue_delay_microseconds: 200
}
instance_group [ { count: 2 kind: KIND_CPU } ]
parameters { key: "intra_op_thread_count" value: { string_value: "1" } }
parameters { key: "inter_op_thread_count" value: { string_value: "1" } }
"""


def gen_mlp():
    name = "mlp"
    path = save_model(mlp_model(), BUNDLED / name / "1" / "model.onnx")
    common.write_text(
        BUNDLED / name / "config.pbtxt",
        config_text(name, [("features", "FP32", [64])], [("logits", "FP32", [16])],
                    max_batch_size=64, backend="onnxruntime", extra=MLP_EXTRA_CONFIG),
    )
    repo = "model_repository"
    x = rng_for("mlp-inputs").standard_normal((64, 64)).astype(np.float32)
    _, big = golden_from_ort(name, "batch64", repo, path, [("features", "FP32", x)], MLP_TOL, MLP_WHY)
    _, five = golden_from_ort(name, "batch5", repo, path, [("features", "FP32", x[:5])], MLP_TOL, MLP_WHY,
                              extra={"same_as_row": {"case": "batch64", "rows": [0, 5]}})
    _, one = golden_from_ort(name, "batch1", repo, path, [("features", "FP32", x[2:3])], MLP_TOL, MLP_WHY,
                             extra={"same_as_row": {"case": "batch64", "row": 2}})
    diff = max(float(np.abs(one["logits"][0] - big["logits"][2]).max()),
               float(np.abs(five["logits"] - big["logits"][:5]).max()))
    print(f"  mlp: batch1/batch5 vs batch64 rows, max abs diff {diff:.3g}", file=sys.stderr)
    return path


# ---- identity models for every tensor type ----------------------------------

def identity_values(datatype, rng, rows, cols):
    """Edge values first (min, max, zero, ...), then seeded random ones."""
    n = rows * cols
    if datatype == "BOOL":
        vals = rng.integers(0, 2, size=n).astype(bool)
        vals[:2] = [True, False]
    elif datatype == "BYTES":
        fixed = ["", "hello", "h\u00e9llo w\u00f6rld \u2713", 'quote " and \\ backslash', "0", "tab\tand\nnewline"]
        words = [fixed[i] if i < len(fixed) else f"s{int(rng.integers(0, 1 << 30))}" for i in range(n)]
        # ORT's Python binding wants str objects (it would str() a bytes object)
        vals = np.array(words, dtype=object)
    elif datatype in ("FP16", "FP32", "FP64"):
        dt = np.dtype(common.TRITON_TYPES[datatype][1])
        info = np.finfo(dt)
        edge = [info.max, -info.max, info.tiny, info.smallest_subnormal, 0.0, -0.0, 1.0 / 3.0]
        vals = (rng.standard_normal(n) * 100).astype(dt)
        vals[: len(edge)] = np.array(edge, dtype=np.float64).astype(dt)[: n]
    elif datatype == "BF16":
        import ml_dtypes

        edge = np.array([3.3895314e38, -3.3895314e38, 1.1754944e-38, 0.0, 1.0 / 3.0, -2.5], dtype=np.float32)
        vals = (rng.standard_normal(n) * 100).astype(np.float32)
        vals[: len(edge)] = edge
        vals = vals.astype(ml_dtypes.bfloat16).view(np.uint16)
    else:
        dt = np.dtype(common.TRITON_TYPES[datatype][1])
        info = np.iinfo(dt)
        edge = [info.min, info.max, 0, 1] + ([-1] if info.min < 0 else [])
        vals = rng.integers(info.min, info.max, size=n, dtype=dt, endpoint=True)
        vals[: len(edge)] = np.array(edge, dtype=dt)
    return vals.reshape(rows, cols)


def identity_model(datatype, shape):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"], name="identity")],
        f"identity_{datatype.lower()}",
        [value_info("INPUT0", datatype, shape)],
        [value_info("OUTPUT0", datatype, shape)],
    )
    return make_model(graph, f"OUTPUT0 = INPUT0 ({datatype})")


def gen_identities():
    repo = "tests/models_extra"
    made = []
    for datatype in common.TRITON_TYPES:
        name = f"onnx_identity_{datatype.lower()}"
        path = save_model(identity_model(datatype, ["batch", "n"]), EXTRA / name / "1" / "model.onnx")
        common.write_text(
            EXTRA / name / "config.pbtxt",
            config_text(name, [("INPUT0", datatype, [-1])], [("OUTPUT0", datatype, [-1])],
                        max_batch_size=8, platform="onnxruntime_onnx"),
        )
        rng = rng_for(name)
        x = identity_values(datatype, rng, 3, 7)
        why = "identity returns its input bit for bit"
        golden_from_ort(name, "batch3", repo, path, [("INPUT0", datatype, x)], EXACT, why)
        golden_from_ort(name, "batch1", repo, path, [("INPUT0", datatype, x[1:2])], EXACT, why,
                        extra={"same_as_row": {"case": "batch3", "row": 1}})
        made.append(path)
    # One model without batching: both dims of the tensor are the request's own.
    name = "onnx_identity_fp32_nobatch"
    path = save_model(identity_model("FP32", ["rows", "cols"]), EXTRA / name / "1" / "model.onnx")
    common.write_text(
        EXTRA / name / "config.pbtxt",
        config_text(name, [("INPUT0", "FP32", [-1, -1])], [("OUTPUT0", "FP32", [-1, -1])],
                    max_batch_size=0, platform="onnxruntime_onnx"),
    )
    x = identity_values("FP32", rng_for(name), 2, 5)
    golden_from_ort(name, "shape2x5", repo, path, [("INPUT0", "FP32", x)], EXACT,
                    "identity returns its input bit for bit")
    made.append(path)
    return made


# ---- two dynamic dims: batch and sequence -----------------------------------

SEQ_TOL = {"abs": 1e-6, "rel": 1e-6}
SEQ_WHY = ("inputs are small integers, so CumSum is exact; ReduceMean divides once and may "
           "round by an ulp depending on the kernel")


def variable_seq_model():
    graph = helper.make_graph(
        [
            helper.make_node("CumSum", ["INPUT0", "axis"], ["OUTPUT0"], name="cumsum"),
            helper.make_node("ReduceMean", ["INPUT0"], ["OUTPUT1"], name="mean", axes=[1], keepdims=1),
        ],
        "variable_seq",
        [value_info("INPUT0", "FP32", ["batch", "seq"])],
        [value_info("OUTPUT0", "FP32", ["batch", "seq"]), value_info("OUTPUT1", "FP32", ["batch", 1])],
        initializer=[numpy_helper.from_array(np.array(1, dtype=np.int64), "axis")],
    )
    return make_model(graph, "OUTPUT0 = cumsum(INPUT0, seq axis), OUTPUT1 = mean(INPUT0, seq axis): "
                             "any padding or row mix-up changes the answer")


def gen_variable_seq():
    name = "onnx_variable_seq"
    repo = "tests/models_extra"
    path = save_model(variable_seq_model(), EXTRA / name / "1" / "model.onnx")
    common.write_text(
        EXTRA / name / "config.pbtxt",
        config_text(name, [("INPUT0", "FP32", [-1])], [("OUTPUT0", "FP32", [-1]), ("OUTPUT1", "FP32", [1])],
                    max_batch_size=8, platform="onnxruntime_onnx",
                    extra="dynamic_batching { max_queue_delay_microseconds: 2000 }"),
    )
    rng = rng_for(name)
    for rows, seq in [(1, 1), (1, 5), (3, 5), (2, 9), (4, 3)]:
        x = rng.integers(-50, 50, size=(rows, seq)).astype(np.float32)
        golden_from_ort(name, f"batch{rows}_seq{seq}", repo, path, [("INPUT0", "FP32", x)], SEQ_TOL, SEQ_WHY)
    return path


# ---- models without config.pbtxt, for auto-complete -------------------------

def autocomplete_model():
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["INPUT1"], ["input1_f"], name="cast", to=TensorProto.FLOAT),
            helper.make_node("Mul", ["INPUT0", "input1_f"], ["OUTPUT0"], name="mul"),
            helper.make_node("ReduceSum", ["INPUT1", "axes"], ["OUTPUT1"], name="sum", keepdims=1),
        ],
        "autocomplete",
        [value_info("INPUT0", "FP32", ["batch", 4]), value_info("INPUT1", "INT64", ["batch", 4])],
        [value_info("OUTPUT0", "FP32", ["batch", 4]), value_info("OUTPUT1", "INT64", ["batch", 1])],
        initializer=[numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")],
    )
    return make_model(graph, "OUTPUT0 = INPUT0 * float(INPUT1), OUTPUT1 = sum(INPUT1, axis 1)")


def autocomplete_nobatch_model():
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["INPUT0"], ["OUTPUT0"], name="transpose", perm=[1, 0])],
        "autocomplete_nobatch",
        [value_info("INPUT0", "FP32", [3, 4])],
        [value_info("OUTPUT0", "FP32", [4, 3])],
    )
    return make_model(graph, "OUTPUT0 = transpose(INPUT0), fixed shapes, so no batching")


def gen_autocomplete():
    repo = "tests/models_extra"
    name = "onnx_autocomplete"
    path = save_model(autocomplete_model(), EXTRA / name / "1" / "model.onnx")
    rng = rng_for(name)
    a = rng.standard_normal((2, 4)).astype(np.float32)
    b = rng.integers(-5, 5, size=(2, 4)).astype(np.int64)
    golden_from_ort(name, "batch2", repo, path, [("INPUT0", "FP32", a), ("INPUT1", "INT64", b)], EXACT,
                    "a product with a small integer and an integer sum are exact")
    name2 = "onnx_autocomplete_nobatch"
    path2 = save_model(autocomplete_nobatch_model(), EXTRA / name2 / "1" / "model.onnx")
    x = rng_for(name2).standard_normal((3, 4)).astype(np.float32)
    golden_from_ort(name2, "shape3x4", repo, path2, [("INPUT0", "FP32", x)], EXACT, "transpose moves bits only")
    return [path, path2]


def ragged_model():
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["INPUT0", "INPUT0"], ["OUTPUT0"], name="double"),
            helper.make_node("Reshape", ["INDEX", "column"], ["END"], name="end"),
            helper.make_node("Reshape", ["SIZES", "column"], ["SIZE"], name="size"),
        ],
        "ragged",
        [value_info("INPUT0", "FP32", ["elements"]), value_info("INDEX", "FP32", ["requests"]),
         value_info("SIZES", "INT32", ["requests"])],
        [value_info("OUTPUT0", "FP32", ["elements"]), value_info("END", "FP32", ["requests", 1]),
         value_info("SIZE", "INT32", ["requests", 1])],
        initializer=[numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "column")],
    )
    return make_model(graph, "ragged INPUT0 (1-D concatenation) -> OUTPUT0 = 2 * INPUT0, scattered back; "
                             "END = accumulated element count, SIZE = element count, one row per request")


def gen_ragged():
    name = "onnx_ragged"
    path = save_model(ragged_model(), EXTRA / name / "1" / "model.onnx")
    common.write_text(
        EXTRA / name / "config.pbtxt",
        config_text(name, [("INPUT0", "FP32", [-1])], [("OUTPUT0", "FP32", [-1]), ("END", "FP32", [1]),
                                                      ("SIZE", "INT32", [1])],
                    max_batch_size=8, platform="onnxruntime_onnx",
                    extra="\n".join([
                        "batch_input [",
                        '  { kind: BATCH_ACCUMULATED_ELEMENT_COUNT target_name: "INDEX" data_type: TYPE_FP32 source_input: "INPUT0" },',
                        '  { kind: BATCH_ELEMENT_COUNT target_name: "SIZES" data_type: TYPE_INT32 source_input: "INPUT0" }',
                        "]",
                        'batch_output [ { target_name: "OUTPUT0" kind: BATCH_SCATTER_WITH_INPUT_SHAPE source_input: "INPUT0" } ]',
                        "dynamic_batching { max_queue_delay_microseconds: 2000 }",
                    ])).replace('dims: [ -1 ] }\n]\noutput', 'dims: [ -1 ] allow_ragged_batch: true }\n]\noutput', 1),
    )
    return path


def state_model():
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["INPUT", "INPUT_STATE"], ["OUTPUT"], name="sum"),
            helper.make_node("Identity", ["OUTPUT"], ["OUTPUT_STATE"], name="keep"),
        ],
        "state_accumulate",
        [value_info("INPUT", "INT32", ["batch", 1]), value_info("INPUT_STATE", "INT32", ["batch", 1])],
        [value_info("OUTPUT", "INT32", ["batch", 1]), value_info("OUTPUT_STATE", "INT32", ["batch", 1])],
    )
    return make_model(graph, "implicit state accumulator: OUTPUT = OUTPUT_STATE = INPUT + INPUT_STATE")


def gen_state_accumulate():
    name = "onnx_state_accumulate"
    path = save_model(state_model(), EXTRA / name / "1" / "model.onnx")
    common.write_bytes(EXTRA / name / "initial_state" / "hundred", np.array([100], dtype="<i4").tobytes())
    common.write_text(
        EXTRA / name / "config.pbtxt",
        config_text(name, [("INPUT", "INT32", [1])], [("OUTPUT", "INT32", [1])],
                    max_batch_size=8, platform="onnxruntime_onnx",
                    extra="\n".join([
                        "sequence_batching {",
                        "  max_sequence_idle_microseconds: 5000000",
                        "  state [ {",
                        '    input_name: "INPUT_STATE" output_name: "OUTPUT_STATE" data_type: TYPE_INT32 dims: [ 1 ]',
                        '    initial_state: { data_type: TYPE_INT32 dims: [ 1 ] data_file: "hundred" name: "hundred" }',
                        "  } ]",
                        "}",
                    ])),
    )
    return path


ALL = [gen_simple, gen_mlp, gen_identities, gen_variable_seq, gen_autocomplete, gen_ragged,
       gen_state_accumulate]
