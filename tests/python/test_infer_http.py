"""HTTP-only inference features through tritonclient.http: JSON versus binary tensor data, the
`binary_data` choice per output, compression of requests and responses, and async_infer."""
import numpy as np
import pytest
import tritonclient.http as httpclient

from conftest import make_input, simple_inputs, simple_pair


def test_json_inputs_and_json_outputs(http_client):
    a, b = simple_pair()
    r = http_client.infer("simple", simple_inputs(httpclient, a, b, binary=False),
                          outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=False),
                                   httpclient.InferRequestedOutput("OUTPUT1", binary_data=False)])
    resp = r.get_response()
    assert resp["outputs"] == [
        {"name": "OUTPUT0", "datatype": "INT32", "shape": [1, 16], "data": (a + b).ravel().tolist()},
        {"name": "OUTPUT1", "datatype": "INT32", "shape": [1, 16], "data": (a - b).ravel().tolist()},
    ]


def test_binary_inputs_and_binary_outputs(http_client):
    a, b = simple_pair(2)
    r = http_client.infer("simple", simple_inputs(httpclient, a, b, binary=True),
                          outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=True),
                                   httpclient.InferRequestedOutput("OUTPUT1", binary_data=True)])
    for o in r.get_response()["outputs"]:
        assert o["parameters"] == {"binary_data_size": 2 * 16 * 4}
        assert "data" not in o
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)


def test_binary_data_per_output(http_client):
    a, b = simple_pair()
    r = http_client.infer("simple", simple_inputs(httpclient, a, b),
                          outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=True),
                                   httpclient.InferRequestedOutput("OUTPUT1", binary_data=False)])
    out0, out1 = r.get_response()["outputs"]
    assert out0["name"] == "OUTPUT0" and out0["parameters"] == {"binary_data_size": 64} and "data" not in out0
    assert out1["name"] == "OUTPUT1" and out1["data"] == (a - b).ravel().tolist() and "parameters" not in out1
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)


def test_default_outputs_come_back_binary(http_client):
    """Without explicit outputs tritonclient asks for `binary_data_output`: every output is binary."""
    a, b = simple_pair()
    r = http_client.infer("simple", simple_inputs(httpclient, a, b))
    assert [o["parameters"] for o in r.get_response()["outputs"]] == [{"binary_data_size": 64}] * 2
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)


def test_mixed_json_and_binary_inputs(http_client):
    a, b = simple_pair()
    inputs = [make_input(httpclient, "INPUT0", a, binary=True), make_input(httpclient, "INPUT1", b, binary=False)]
    r = http_client.infer("simple", inputs)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)


def test_bytes_json_and_binary(http_client):
    arr = np.array([["a", "", "\u00fcn\u00ef", "zz"]], dtype=np.object_)
    for in_bin in (False, True):
        for out_bin in (False, True):
            r = http_client.infer("simple_identity", [make_input(httpclient, "INPUT0", arr, "BYTES", binary=in_bin)],
                                  outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=out_bin)])
            got = r.as_numpy("OUTPUT0")[0]
            # tritonclient gives bytes for binary BYTES outputs and str for JSON ones
            assert [x.decode() if out_bin else x for x in got] == arr[0].tolist(), (in_bin, out_bin)
            o = r.get_response()["outputs"][0]
            if out_bin:
                # 4-byte length prefix per element
                assert o["parameters"] == {"binary_data_size": sum(4 + len(x.encode()) for x in arr[0])}
            else:
                assert o["data"] == arr[0].tolist()


def test_fp32_json_round_trip(http_client):
    x = np.array([[0.1, -2.5, 1e-7, 123456.78]], dtype=np.float32)
    r = http_client.infer("identity_fp32", [make_input(httpclient, "INPUT0", x, binary=False)],
                          outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=False)])
    # JSON carries FP32 values as doubles; converting back must give the same floats
    np.testing.assert_array_equal(np.array(r.get_response()["outputs"][0]["data"], dtype=np.float32), x.ravel())


def test_classification_as_json(http_client):
    x = np.array([[0.1, 0.9, 0.3, 0.7, 0.0, 0.5, -1.0, 0.2]], dtype=np.float32)
    r = http_client.infer("classify_fp32", [make_input(httpclient, "INPUT0", x)],
                          outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=False, class_count=2)])
    assert r.get_response()["outputs"] == [
        {"name": "OUTPUT0", "datatype": "BYTES", "shape": [1, 2], "data": ["0.900000:1:bravo", "0.700000:3:delta"]}]


@pytest.mark.parametrize("request_alg", [None, "gzip", "deflate"])
@pytest.mark.parametrize("response_alg", [None, "gzip", "deflate"])
def test_compression(http_client, request_alg, response_alg):
    a, b = simple_pair(4)
    r = http_client.infer("simple", simple_inputs(httpclient, a, b),
                          request_compression_algorithm=request_alg, response_compression_algorithm=response_alg)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)


@pytest.mark.parametrize("alg", ["gzip", "deflate"])
def test_compression_of_bytes_and_json(http_client, alg):
    arr = np.array([["compress me " * 20, "\u00e9"]], dtype=np.object_)
    r = http_client.infer("simple_identity", [make_input(httpclient, "INPUT0", arr, "BYTES", binary=False)],
                          outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=False)],
                          request_compression_algorithm=alg, response_compression_algorithm=alg)
    assert r.get_response()["outputs"][0]["data"] == arr[0].tolist()


def test_async_infer_many(server):
    c = httpclient.InferenceServerClient(server.http, concurrency=4)
    try:
        pending = []
        for i in range(12):
            a, b = simple_pair(1 + i % 8)
            pending.append((a, b, c.async_infer("simple", simple_inputs(httpclient, a, b), request_id=str(i))))
        for i, (a, b, p) in enumerate(pending):
            r = p.get_result(timeout=30)
            assert r.get_response()["id"] == str(i)
            np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    finally:
        c.close()


def test_custom_headers_are_accepted(http_client):
    a, b = simple_pair()
    r = http_client.infer("simple", simple_inputs(httpclient, a, b), headers={"X-Despina-Test": "1"})
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)


def test_infer_on_versioned_path(http_client):
    x = np.array([[1, 2]], dtype=np.int32)
    for v in ("1", "2"):
        r = http_client.infer("versioned", [make_input(httpclient, "INPUT0", x)], model_version=v)
        assert r.get_response()["model_version"] == v
