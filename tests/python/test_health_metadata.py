"""Health, server metadata, model metadata and model configuration through tritonclient (HTTP and gRPC)."""
import pytest
from tritonclient.utils import InferenceServerException

from conftest import SHARED_MODELS, error_status

# Extensions both servers announce (Triton 2.51's list; despina implements the same protocol surface).
EXTENSIONS = {
    "classification", "sequence", "model_repository", "model_repository(unload_dependents)", "schedule_policy",
    "model_configuration", "system_shared_memory", "cuda_shared_memory", "binary_tensor_data", "parameters",
    "statistics", "trace", "logging",
}


def as_dict(kind, resp, field=None):
    """HTTP answers dicts; gRPC answers protobuf messages: read both as JSON-like dicts."""
    if kind == "http":
        return resp
    from google.protobuf import json_format

    d = json_format.MessageToDict(resp, preserving_proto_field_name=True)
    return d[field] if field else d


def test_server_live_and_ready(proto):
    _, _, c = proto
    assert c.is_server_live() is True
    assert c.is_server_ready() is True


@pytest.mark.parametrize("model", SHARED_MODELS)
def test_every_model_ready(proto, model):
    _, _, c = proto
    assert c.is_model_ready(model) is True


@pytest.mark.parametrize("model,version,ready", [
    ("simple", "", True), ("simple", "1", True), ("simple", "2", False), ("nope", "", False), ("nope", "1", False),
    ("versioned", "", True), ("versioned", "1", True), ("versioned", "2", True), ("versioned", "3", False),
])
def test_model_ready_versions(proto, model, version, ready):
    _, _, c = proto
    assert c.is_model_ready(model, version) is ready


def test_server_metadata(proto):
    kind, _, c = proto
    md = as_dict(kind, c.get_server_metadata())
    assert set(md) == {"name", "version", "extensions"}
    assert isinstance(md["name"], str) and md["name"]
    assert isinstance(md["version"], str) and md["version"][0].isdigit()
    assert EXTENSIONS <= set(md["extensions"])
    assert len(md["extensions"]) == len(set(md["extensions"]))


def test_model_metadata_simple(proto):
    kind, _, c = proto
    md = as_dict(kind, c.get_model_metadata("simple"))
    assert md["name"] == "simple"
    assert md["versions"] == ["1"]
    shape = [-1, 16] if kind == "http" else ["-1", "16"]  # protobuf JSON spells int64 as strings
    assert md["inputs"] == [{"name": "INPUT0", "datatype": "INT32", "shape": shape},
                            {"name": "INPUT1", "datatype": "INT32", "shape": shape}]
    assert md["outputs"] == [{"name": "OUTPUT0", "datatype": "INT32", "shape": shape},
                             {"name": "OUTPUT1", "datatype": "INT32", "shape": shape}]


@pytest.mark.parametrize("model,inputs,outputs", [
    ("add_sub", [("INPUT0", "FP32", [4]), ("INPUT1", "FP32", [4])], [("OUTPUT0", "FP32", [4]), ("OUTPUT1", "FP32", [4])]),
    ("simple_int8", [("INPUT0", "INT8", [-1, 16]), ("INPUT1", "INT8", [-1, 16])],
     [("OUTPUT0", "INT8", [-1, 16]), ("OUTPUT1", "INT8", [-1, 16])]),
    ("simple_string", [("INPUT0", "BYTES", [-1, 16]), ("INPUT1", "BYTES", [-1, 16])],
     [("OUTPUT0", "BYTES", [-1, 16]), ("OUTPUT1", "BYTES", [-1, 16])]),
    ("simple_identity", [("INPUT0", "BYTES", [-1, -1])], [("OUTPUT0", "BYTES", [-1, -1])]),
    ("identity_fp32", [("INPUT0", "FP32", [-1, -1])], [("OUTPUT0", "FP32", [-1, -1])]),
    ("classify_fp32", [("INPUT0", "FP32", [-1, 8])], [("OUTPUT0", "FP32", [-1, 8])]),
    ("square_int32", [("IN", "INT32", [1])], [("OUT", "INT32", [1])]),
    ("sequence_accumulate", [("INPUT", "INT32", [-1, 1])], [("OUTPUT", "INT32", [-1, 1])]),
    ("ensemble_simple", [("INPUT0", "INT32", [-1, 16]), ("INPUT1", "INT32", [-1, 16])],
     [("OUTPUT0", "INT32", [-1, 16]), ("OUTPUT1", "INT32", [-1, 16])]),
])
def test_model_metadata_tensors(proto, model, inputs, outputs):
    kind, _, c = proto
    md = as_dict(kind, c.get_model_metadata(model))

    def tensors(ts):
        return [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in ts]

    assert md["name"] == model
    assert tensors(md["inputs"]) == inputs
    assert tensors(md["outputs"]) == outputs


def test_ensemble_platform(proto):
    kind, _, c = proto
    assert as_dict(kind, c.get_model_metadata("ensemble_simple"))["platform"] == "ensemble"


def test_versioned_metadata(proto):
    kind, _, c = proto
    assert as_dict(kind, c.get_model_metadata("versioned"))["versions"] == ["1", "2"]
    assert as_dict(kind, c.get_model_metadata("versioned", "1"))["versions"] == ["1"]
    assert as_dict(kind, c.get_model_metadata("versioned", "2"))["versions"] == ["2"]


@pytest.mark.parametrize("call", ["get_model_metadata", "get_model_config"])
@pytest.mark.parametrize("model,version,message", [
    ("nope", "", "Request for unknown model: 'nope' is not found"),
    ("versioned", "3", "Request for unknown model: 'versioned' version 3 is not found"),
    ("simple", "7", "Request for unknown model: 'simple' version 7 is not found"),
])
def test_unknown_model_or_version(proto, call, model, version, message):
    kind, _, c = proto
    with pytest.raises(InferenceServerException) as e:
        getattr(c, call)(model, version)
    assert e.value.status() == error_status(kind, 404, "NOT_FOUND")
    assert e.value.message() == message


def test_config_simple(proto):
    kind, _, c = proto
    cfg = as_dict(kind, c.get_model_config("simple"), "config")
    assert cfg["name"] == "simple"
    assert cfg["max_batch_size"] == 8
    assert [(i["name"], i["data_type"], [int(d) for d in i["dims"]]) for i in cfg["input"]] == [
        ("INPUT0", "TYPE_INT32", [16]), ("INPUT1", "TYPE_INT32", [16])]
    assert [(o["name"], o["data_type"], [int(d) for d in o["dims"]]) for o in cfg["output"]] == [
        ("OUTPUT0", "TYPE_INT32", [16]), ("OUTPUT1", "TYPE_INT32", [16])]
    assert cfg["version_policy"] == {"latest": {"num_versions": 1}}
    groups = cfg["instance_group"]
    assert len(groups) == 1 and groups[0]["kind"] == "KIND_CPU" and groups[0]["count"] == 1
    assert groups[0]["name"] == "simple_0"


def test_config_add_sub_has_no_batching(proto):
    kind, _, c = proto
    cfg = as_dict(kind, c.get_model_config("add_sub"), "config")
    assert cfg.get("max_batch_size", 0) == 0  # protobuf JSON omits zero


def test_config_classify_labels(proto):
    kind, _, c = proto
    cfg = as_dict(kind, c.get_model_config("classify_fp32"), "config")
    assert cfg["output"][0]["label_filename"] == "labels.txt"


def test_config_decoupled(proto):
    kind, _, c = proto
    cfg = as_dict(kind, c.get_model_config("square_int32"), "config")
    assert cfg["model_transaction_policy"]["decoupled"] is True
    plain = as_dict(kind, c.get_model_config("simple"), "config")
    assert plain.get("model_transaction_policy", {}).get("decoupled", False) is False


def test_config_dynamic_batching(proto):
    kind, _, c = proto
    db = as_dict(kind, c.get_model_config("identity_fp32"), "config")["dynamic_batching"]
    assert [int(x) for x in db["preferred_batch_size"]] == [4, 8]
    assert int(db["max_queue_delay_microseconds"]) == 20000


def test_config_sequence_batching(proto):
    kind, _, c = proto
    sb = as_dict(kind, c.get_model_config("sequence_accumulate"), "config")["sequence_batching"]
    assert int(sb["max_sequence_idle_microseconds"]) == 5000000
    # protobuf JSON omits enum value 0 (CONTROL_SEQUENCE_START)
    controls = {ci["name"]: ci["control"][0].get("kind", "CONTROL_SEQUENCE_START") for ci in sb["control_input"]}
    assert controls == {"START": "CONTROL_SEQUENCE_START", "END": "CONTROL_SEQUENCE_END",
                        "READY": "CONTROL_SEQUENCE_READY", "CORRID": "CONTROL_SEQUENCE_CORRID"}
    corrid = [ci for ci in sb["control_input"] if ci["name"] == "CORRID"][0]["control"][0]
    assert corrid["data_type"] == "TYPE_UINT64"


def test_config_ensemble_steps(proto):
    kind, _, c = proto
    cfg = as_dict(kind, c.get_model_config("ensemble_simple"), "config")
    assert cfg["platform"] == "ensemble"
    steps = cfg["ensemble_scheduling"]["step"]
    assert [s["model_name"] for s in steps] == ["simple", "simple"]
    assert [int(s["model_version"]) for s in steps] == [-1, -1]
    assert steps[0]["output_map"] == {"OUTPUT0": "sum", "OUTPUT1": "diff"}
    assert steps[1]["input_map"] == {"INPUT0": "sum", "INPUT1": "diff"}


def test_config_versioned_policy(proto):
    kind, _, c = proto
    cfg = as_dict(kind, c.get_model_config("versioned"), "config")
    assert [int(v) for v in cfg["version_policy"]["specific"]["versions"]] == [1, 2]
    # The configuration is per model: asking for a served version gives the same document.
    assert as_dict(kind, c.get_model_config("versioned", "1"), "config") == cfg


def test_http_config_is_complete_json(http_client):
    """Triton's HTTP config is the full protobuf-to-JSON form, defaults included."""
    cfg = http_client.get_model_config("simple")
    assert cfg["input"][0] == {"name": "INPUT0", "data_type": "TYPE_INT32", "format": "FORMAT_NONE", "dims": [16],
                               "is_shape_tensor": False, "allow_ragged_batch": False, "optional": False,
                               "is_non_linear_format_io": False}
    assert cfg["output"][0] == {"name": "OUTPUT0", "data_type": "TYPE_INT32", "dims": [16], "label_filename": "",
                                "is_shape_tensor": False, "is_non_linear_format_io": False}
    assert cfg["batch_input"] == [] and cfg["batch_output"] == []
    assert cfg["optimization"]["priority"] == "PRIORITY_DEFAULT"
