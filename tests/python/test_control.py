"""Model control in explicit mode through tritonclient (HTTP and gRPC): the repository index (and
its `ready` filter), unload then load, a load with a configuration override, errors, and the
ensemble's dependency on its composing model. Every test leaves each model loaded from disk again."""
import http.client
import json

import grpc
import numpy as np
import pytest
from google.protobuf import json_format
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from conftest import SHARED_MODELS, error_status, make_input, simple_inputs, simple_pair, wait_until

SETTLE = 60.0  # seconds an unload may take to finish in the background


def index(kind, c):
    """{(name, version): (state, reason)} for the shared models, for both protocols."""
    if kind == "http":
        entries = c.get_model_repository_index()
    else:
        entries = json_format.MessageToDict(c.get_model_repository_index(), preserving_proto_field_name=True)["models"]
    return {(e["name"], e.get("version", "")): (e.get("state", ""), e.get("reason", ""))
            for e in entries if e["name"] in SHARED_MODELS}


def settled_state(kind, c, name):
    """Waits until `name` is no longer UNLOADING/LOADING and returns its index entry."""
    def entry():
        states = {k: v for k, v in index(kind, c).items() if k[0] == name}
        return states if states and all(s not in ("UNLOADING", "LOADING") for s, _ in states.values()) else None

    states = wait_until(entry, SETTLE)
    assert states, f"{name} did not settle"
    return states


def restore(kind, c, name):
    """Unload then load from disk, so no override or unloaded state leaks into other tests."""
    c.unload_model(name)
    settled_state(kind, c, name)
    c.load_model(name)
    assert c.is_model_ready(name)


def test_index_lists_every_model(proto):
    kind, _, c = proto
    idx = index(kind, c)
    expect = {(m, "1"): ("READY", "") for m in SHARED_MODELS}
    expect[("versioned", "2")] = ("READY", "")
    assert idx == expect


def raw_index_http(server, body):
    host, port = server.http.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/v2/repository/index", body=json.dumps(body))
    r = conn.getresponse()
    data = json.loads(r.read())
    conn.close()
    assert r.status == 200
    return {(e["name"], e.get("version", "")): e.get("state", "") for e in data if e["name"] in SHARED_MODELS}


def raw_index_grpc(server, ready):
    with grpc.insecure_channel(server.grpc) as ch:
        resp = service_pb2_grpc.GRPCInferenceServiceStub(ch).RepositoryIndex(
            service_pb2.RepositoryIndexRequest(ready=ready), timeout=30)
    return {(m.name, m.version): m.state for m in resp.models if m.name in SHARED_MODELS}


def test_unload_then_load(proto, server):
    kind, mod, c = proto
    name = "simple_int8"
    try:
        c.unload_model(name)
        states = settled_state(kind, c, name)
        assert states == {(name, "1"): ("UNAVAILABLE", "unloaded")}
        assert c.is_model_ready(name) is False
        for call in (lambda: c.get_model_metadata(name), lambda: c.get_model_config(name)):
            with pytest.raises(InferenceServerException) as e:
                call()
            assert e.value.status() == error_status(kind, 404, "NOT_FOUND")
            assert e.value.message() == f"Request for unknown model: '{name}' has no available versions"
        a = np.zeros((1, 16), dtype=np.int8)
        with pytest.raises(InferenceServerException) as e:
            c.infer(name, simple_inputs(mod, a, a))
        assert e.value.message() == f"Request for unknown model: '{name}' has no available versions"
        # the `ready` filter leaves the unloaded model out; the full index keeps it
        for ready_index in (raw_index_http(server, {"ready": True}), raw_index_grpc(server, True)):
            assert (name, "1") not in ready_index and ("simple", "1") in ready_index
        assert raw_index_http(server, {"ready": False})[(name, "1")] == "UNAVAILABLE"
        assert raw_index_grpc(server, False)[(name, "1")] == "UNAVAILABLE"
        c.load_model(name)
        assert c.is_model_ready(name) is True
        assert index(kind, c)[(name, "1")] == ("READY", "")
        a = np.full((1, 16), 100, dtype=np.int8)
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(c.infer(name, simple_inputs(mod, a, a)).as_numpy("OUTPUT0"), a + a)
    finally:
        if not c.is_model_ready(name):
            c.load_model(name)


def test_load_loaded_model_is_ok(proto):
    _, mod, c = proto
    c.load_model("add_sub")
    assert c.is_model_ready("add_sub")
    a = np.ones(4, dtype=np.float32)
    np.testing.assert_array_equal(c.infer("add_sub", simple_inputs(mod, a, a)).as_numpy("OUTPUT0"), 2 * a)


def test_load_with_config_override(proto, http_client):
    kind, mod, c = proto
    name = "identity_fp32"
    original = http_client.get_model_config(name)
    override = dict(original, max_batch_size=2)
    override.pop("dynamic_batching")
    try:
        c.load_model(name, config=json.dumps(override))
        assert c.is_model_ready(name)
        cfg = http_client.get_model_config(name)
        assert cfg["max_batch_size"] == 2 and "dynamic_batching" not in cfg
        x = np.ones((2, 3), dtype=np.float32)
        np.testing.assert_array_equal(c.infer(name, [make_input(mod, "INPUT0", x)]).as_numpy("OUTPUT0"), x)
        with pytest.raises(InferenceServerException) as e:
            c.infer(name, [make_input(mod, "INPUT0", np.ones((3, 3), dtype=np.float32))])
        assert e.value.message() == "[request id: <id_unknown>] inference request batch-size must be <= 2 for 'identity_fp32'"
    finally:
        restore(kind, c, name)
    cfg = http_client.get_model_config(name)
    assert cfg["max_batch_size"] == 8 and cfg["dynamic_batching"]["preferred_batch_size"] == [4, 8]
    assert cfg == original


def test_load_with_invalid_config_json(proto, server):
    kind, _, c = proto
    with pytest.raises(InferenceServerException) as e:
        c.load_model("identity_fp32", config="{not json")
    if server.kind == "triton":
        assert e.value.status() == error_status(kind, 500, "INTERNAL")
        assert e.value.message() == "failed to load 'identity_fp32', failed to poll from model repository"
    else:
        # despina says what is wrong with the override, as a client error.
        assert e.value.status() == error_status(kind, 400, "INVALID_ARGUMENT")
        assert e.value.message().startswith(
            "failed to load 'identity_fp32': the 'config' parameter is not a valid model configuration: ")
    assert c.is_model_ready("identity_fp32")


def test_load_missing_model(proto):
    kind, _, c = proto
    with pytest.raises(InferenceServerException) as e:
        c.load_model("does_not_exist")
    assert e.value.status() == error_status(kind, 500, "INTERNAL")
    assert e.value.message() == "failed to load 'does_not_exist', failed to poll from model repository"
    assert ("does_not_exist", "") not in index(kind, c)


def test_unload_unknown_model_is_ok(proto):
    kind, _, c = proto
    c.unload_model("does_not_exist")
    assert all(state == "READY" for state, _ in index(kind, c).values())


def test_unloading_a_composing_model_unloads_the_ensemble(proto):
    kind, mod, c = proto
    try:
        c.unload_model("simple")
        settled_state(kind, c, "simple")
        settled = settled_state(kind, c, "ensemble_simple")
        assert settled == {("ensemble_simple", "1"): ("UNAVAILABLE", "unloaded")}
        assert index(kind, c)[("simple", "1")] == ("UNAVAILABLE", "unloaded")
        c.load_model("simple")
        # loading the composing model brings the ensemble back
        assert wait_until(lambda: c.is_model_ready("ensemble_simple"), SETTLE)
        a, b = simple_pair()
        np.testing.assert_array_equal(c.infer("ensemble_simple", simple_inputs(mod, a, b)).as_numpy("OUTPUT0"), 2 * a)
    finally:
        for m in ("simple", "ensemble_simple"):
            if not c.is_model_ready(m):
                c.load_model(m)


def test_unloading_the_ensemble_keeps_explicitly_loaded_models(proto):
    kind, mod, c = proto
    try:
        c.unload_model("ensemble_simple", unload_dependents=True)
        assert settled_state(kind, c, "ensemble_simple") == {("ensemble_simple", "1"): ("UNAVAILABLE", "unloaded")}
        assert c.is_model_ready("simple")
        c.load_model("ensemble_simple")
        a, b = simple_pair()
        np.testing.assert_array_equal(c.infer("ensemble_simple", simple_inputs(mod, a, b)).as_numpy("OUTPUT1"), 2 * b)
    finally:
        if not c.is_model_ready("ensemble_simple"):
            c.load_model("ensemble_simple")


def test_unload_versioned_unloads_every_version(proto):
    kind, mod, c = proto
    try:
        c.unload_model("versioned")
        states = settled_state(kind, c, "versioned")
        assert states == {("versioned", "1"): ("UNAVAILABLE", "unloaded"), ("versioned", "2"): ("UNAVAILABLE", "unloaded")}
        assert not c.is_model_ready("versioned", "1") and not c.is_model_ready("versioned", "2")
        c.load_model("versioned")
        assert c.is_model_ready("versioned", "1") and c.is_model_ready("versioned", "2")
        assert not c.is_model_ready("versioned", "3")
    finally:
        if not c.is_model_ready("versioned"):
            c.load_model("versioned")
