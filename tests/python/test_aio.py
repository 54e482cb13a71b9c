"""The asyncio clients, tritonclient.http.aio and tritonclient.grpc.aio: health, metadata,
inference (values), errors, concurrency with asyncio.gather, and decoupled streaming on grpc.aio."""
import asyncio

import numpy as np
import pytest
import tritonclient.grpc.aio as grpcaio
import tritonclient.http.aio as httpaio
from tritonclient.utils import InferenceServerException

from conftest import error_status, make_input, simple_inputs, simple_pair

pytestmark = pytest.mark.asyncio


def client_for(kind, server):
    return httpaio.InferenceServerClient(server.http) if kind == "http" else grpcaio.InferenceServerClient(server.grpc)


def module_for(kind):
    import tritonclient.grpc as grpcmod
    import tritonclient.http as httpmod

    # the aio packages re-export InferInput/InferRequestedOutput of the sync ones
    return httpmod if kind == "http" else grpcmod


@pytest.fixture(params=["http", "grpc"])
def kind(request):
    return request.param


async def test_health(server, kind):
    c = client_for(kind, server)
    try:
        assert await c.is_server_live() is True
        assert await c.is_server_ready() is True
        assert await c.is_model_ready("simple") is True
        assert await c.is_model_ready("nope") is False
        assert await c.is_model_ready("versioned", "2") is True
        assert await c.is_model_ready("versioned", "3") is False
    finally:
        await c.close()


async def test_metadata_and_config(server, kind):
    c = client_for(kind, server)
    try:
        md = await c.get_model_metadata("simple", as_json=True) if kind == "grpc" else await c.get_model_metadata("simple")
        assert md["name"] == "simple" and [i["name"] for i in md["inputs"]] == ["INPUT0", "INPUT1"]
        cfg = await c.get_model_config("simple", as_json=True) if kind == "grpc" else await c.get_model_config("simple")
        cfg = cfg["config"] if kind == "grpc" else cfg
        assert cfg["max_batch_size"] == 8
        smd = await c.get_server_metadata(as_json=True) if kind == "grpc" else await c.get_server_metadata()
        assert "binary_tensor_data" in smd["extensions"]
    finally:
        await c.close()


async def test_infer_values(server, kind):
    c, mod = client_for(kind, server), module_for(kind)
    try:
        a, b = simple_pair(4)
        r = await c.infer("simple", simple_inputs(mod, a, b), request_id="aio-1")
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
        np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
        strings = np.array([["\u00e9t\u00e9", "", "x"]], dtype=np.object_)
        r = await c.infer("simple_identity", [make_input(mod, "INPUT0", strings, "BYTES")])
        assert [x.decode() for x in r.as_numpy("OUTPUT0")[0]] == strings[0].tolist()
        x = np.array([[0.1, 0.9, 0.3, 0.7, 0.0, 0.5, -1.0, 0.2]], dtype=np.float32)
        r = await c.infer("classify_fp32", [make_input(mod, "INPUT0", x)],
                          outputs=[mod.InferRequestedOutput("OUTPUT0", class_count=2)])
        assert list(r.as_numpy("OUTPUT0")[0]) == [b"0.900000:1:bravo", b"0.700000:3:delta"]
    finally:
        await c.close()


async def test_concurrent_infers(server, kind):
    c, mod = client_for(kind, server), module_for(kind)
    try:
        pairs = [simple_pair(1 + i % 8) for i in range(16)]
        results = await asyncio.gather(*(c.infer("simple", simple_inputs(mod, a, b)) for a, b in pairs))
        for (a, b), r in zip(pairs, results):
            np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
        # the dynamic batcher may merge these; every answer must still be its own request's
        xs = [np.full((1, 5), float(i), dtype=np.float32) for i in range(8)]
        results = await asyncio.gather(*(c.infer("identity_fp32", [make_input(mod, "INPUT0", x)]) for x in xs))
        for x, r in zip(xs, results):
            np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), x)
    finally:
        await c.close()


async def test_errors(server, kind):
    c, mod = client_for(kind, server), module_for(kind)
    try:
        a, b = simple_pair(9)
        with pytest.raises(InferenceServerException) as e:
            await c.infer("simple", simple_inputs(mod, a, b))
        assert e.value.status() == error_status(kind, 400, "INVALID_ARGUMENT")
        assert e.value.message() == "[request id: <id_unknown>] inference request batch-size must be <= 8 for 'simple'"
        with pytest.raises(InferenceServerException) as e:
            await c.get_model_metadata("nope")
        assert e.value.status() == error_status(kind, 404, "NOT_FOUND")
        assert e.value.message() == "Request for unknown model: 'nope' is not found"
    finally:
        await c.close()


@pytest.mark.parametrize("alg", ["gzip", "deflate"])
async def test_http_aio_compression(server, alg):
    import tritonclient.http as httpmod

    c = httpaio.InferenceServerClient(server.http)
    try:
        a, b = simple_pair(2)
        r = await c.infer("simple", simple_inputs(httpmod, a, b),
                          request_compression_algorithm=alg, response_compression_algorithm=alg)
        np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
    finally:
        await c.close()


async def test_stats(server, kind):
    c, mod = client_for(kind, server), module_for(kind)
    try:
        def success(s):
            return int(s["model_stats"][0]["inference_stats"]["success"].get("count", 0))

        get = (lambda: c.get_inference_statistics("add_sub", as_json=True)) if kind == "grpc" else \
            (lambda: c.get_inference_statistics("add_sub"))
        before = success(await get())
        v = np.ones(4, dtype=np.float32)
        for _ in range(3):
            await c.infer("add_sub", simple_inputs(mod, v, v))
        assert success(await get()) - before == 3
    finally:
        await c.close()


# ---------------------------------------------------------------- grpc.aio streaming
# grpc.aio's stream_infer has no enable_empty_final_response and refuses the reserved "triton_"
# parameters, so these streams read until the server ends the stream after the client half-closes.
def square_request(n, request_id):
    import tritonclient.grpc as grpcmod

    inp = grpcmod.InferInput("IN", [1], "INT32")
    inp.set_data_from_numpy(np.array([n], dtype=np.int32))
    return {"model_name": "square_int32", "inputs": [inp], "request_id": request_id}


async def run_stream(server, requests):
    """Sends `requests` on one grpc.aio stream; returns [(id, OUT, final, error)] until the stream ends."""
    c = grpcaio.InferenceServerClient(server.grpc)

    async def gen():
        for r in requests:
            yield r

    got = []
    try:
        async for result, error in c.stream_infer(inputs_iterator=gen()):
            if error is not None:
                got.append((None, None, None, error.message()))
            else:
                resp = result.get_response()
                out = result.as_numpy("OUT")
                got.append((resp.id, None if out is None else out.tolist(),
                            resp.parameters["triton_final_response"].bool_param, None))
    finally:
        await c.close()
    return got


@pytest.mark.parametrize("n", [0, 1, 5])
async def test_grpc_aio_decoupled_stream(server, n):
    got = await asyncio.wait_for(run_stream(server, [square_request(n, f"aio{n}")]), 30)
    assert got == [(f"aio{n}", [n], False, None)] * n


async def test_grpc_aio_several_requests_one_stream(server):
    got = await asyncio.wait_for(run_stream(server, [square_request(2, "a"), square_request(3, "b")]), 30)
    assert sorted(got) == [("a", [2], False, None)] * 2 + [("b", [3], False, None)] * 3


async def test_grpc_aio_concurrent_streams(server):
    counts = [2, 3, 4, 6]
    runs = [run_stream(server, [square_request(n, f"c{n}")]) for n in counts]
    results = await asyncio.wait_for(asyncio.gather(*runs), 60)
    for n, got in zip(counts, results):
        assert got == [(f"c{n}", [n], False, None)] * n


async def test_grpc_aio_stream_error(server):
    got = await asyncio.wait_for(run_stream(server, [square_request(-1, "bad"), square_request(1, "ok")]), 30)
    assert got == [(None, None, None, "IN must be in [0, 64], got -1"), ("ok", [1], False, None)]
