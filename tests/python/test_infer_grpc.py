"""gRPC-only inference features through tritonclient.grpc: raw output contents, compression,
callbacks (async_infer), typed request parameters and timeouts."""
import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from conftest import make_input, simple_inputs, simple_pair


def test_outputs_travel_as_raw_contents(grpc_client):
    a, b = simple_pair(2)
    resp = grpc_client.infer("simple", simple_inputs(grpcclient, a, b)).get_response()
    assert [o.name for o in resp.outputs] == ["OUTPUT0", "OUTPUT1"]
    assert [list(o.shape) for o in resp.outputs] == [[2, 16], [2, 16]]
    assert [o.datatype for o in resp.outputs] == ["INT32", "INT32"]
    assert resp.raw_output_contents[0] == (a + b).astype("<i4").tobytes()
    assert resp.raw_output_contents[1] == (a - b).astype("<i4").tobytes()
    # tensor contents fields stay empty when raw contents are used
    assert not resp.outputs[0].HasField("contents")


def test_bytes_output_wire_form(grpc_client):
    arr = np.array([[b"ab", b"", b"\xff"]], dtype=np.object_)
    resp = grpc_client.infer("simple_identity", [make_input(grpcclient, "INPUT0", arr, "BYTES")]).get_response()
    assert resp.raw_output_contents[0] == b"\x02\x00\x00\x00ab\x00\x00\x00\x00\x01\x00\x00\x00\xff"


@pytest.mark.parametrize("alg", [None, "gzip", "deflate"])
def test_compression(grpc_client, alg):
    a, b = simple_pair(8)
    r = grpc_client.infer("simple", simple_inputs(grpcclient, a, b), compression_algorithm=alg)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)


def test_async_infer_callbacks(grpc_client):
    done = queue.Queue()
    sent = {}
    for i in range(10):
        a, b = simple_pair(1 + i % 8)
        sent[str(i)] = (a, b)
        grpc_client.async_infer("simple", simple_inputs(grpcclient, a, b), request_id=str(i),
                                callback=lambda result, error: done.put((result, error)))
    for _ in range(10):
        result, error = done.get(timeout=30)
        assert error is None
        a, b = sent.pop(result.get_response().id)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    assert not sent


def test_async_infer_error_goes_to_callback(grpc_client):
    done = queue.Queue()
    a, b = simple_pair(9)
    grpc_client.async_infer("simple", simple_inputs(grpcclient, a, b), callback=lambda result, error: done.put((result, error)))
    result, error = done.get(timeout=30)
    assert result is None
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "inference request batch-size must be <= 8 for 'simple'" in error.message()


def test_typed_parameters(grpc_client):
    a, b = simple_pair()
    r = grpc_client.infer("simple", simple_inputs(grpcclient, a, b),
                          parameters={"s": "text", "i": 7, "b": False, "d": 1.5})
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)


def test_client_timeout_generous_enough(grpc_client):
    a, b = simple_pair()
    r = grpc_client.infer("simple", simple_inputs(grpcclient, a, b), client_timeout=30)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)


def test_as_json_response(grpc_client):
    a, b = simple_pair()
    resp = grpc_client.infer("simple", simple_inputs(grpcclient, a, b), request_id="j1").get_response(as_json=True)
    assert resp["model_name"] == "simple" and resp["model_version"] == "1" and resp["id"] == "j1"
    assert [o["shape"] for o in resp["outputs"]] == [["1", "16"], ["1", "16"]]
