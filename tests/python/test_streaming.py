"""The decoupled model square_int32 (IN = n gives n responses OUT = n) over gRPC streaming with
tritonclient.grpc (start_stream / async_stream_infer), the same model over HTTP (refused), and the
generate_stream server-sent events endpoint."""
import http.client
import json
import queue
import threading

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

TIMEOUT = 30


def square_input(n):
    inp = grpcclient.InferInput("IN", [1], "INT32")
    inp.set_data_from_numpy(np.array([n], dtype=np.int32))
    return [inp]


class Stream:
    """One gRPC stream whose callback results land in a queue."""

    def __init__(self, server):
        self.client = grpcclient.InferenceServerClient(server.grpc)
        self.results = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.results.put((result, error)))

    def send(self, n, request_id="", empty_final=False, model="square_int32", inputs=None):
        self.client.async_stream_infer(model, inputs or square_input(n), request_id=request_id,
                                       enable_empty_final_response=empty_final)

    def take(self, count):
        return [self.results.get(timeout=TIMEOUT) for _ in range(count)]

    def until_final(self, limit=200):
        """Responses up to and including the one flagged final (needs enable_empty_final_response)."""
        got = []
        while len(got) < limit:
            result, error = self.results.get(timeout=TIMEOUT)
            got.append((result, error))
            if error is not None or is_final(result):
                return got
        raise AssertionError("no final response")

    def close(self):
        self.client.stop_stream()
        self.client.close()


def is_final(result):
    return result.get_response().parameters["triton_final_response"].bool_param


@pytest.fixture
def stream(server):
    s = Stream(server)
    yield s
    s.close()


@pytest.mark.parametrize("n", [1, 3, 10, 64])
def test_n_responses_with_empty_final(stream, n):
    stream.send(n, request_id=f"sq{n}", empty_final=True)
    got = stream.until_final()
    assert len(got) == n + 1
    for result, error in got[:-1]:
        assert error is None
        assert result.as_numpy("OUT").tolist() == [n]
        assert result.get_response().id == f"sq{n}"
        assert is_final(result) is False
    last, error = got[-1]
    assert error is None and is_final(last)
    resp = last.get_response()
    assert resp.id == f"sq{n}" and len(resp.outputs) == 0 and len(resp.raw_output_contents) == 0


def test_n_zero_with_empty_final(stream):
    stream.send(0, request_id="zero", empty_final=True)
    got = stream.until_final()
    assert len(got) == 1
    result, error = got[0]
    assert error is None and is_final(result) and len(result.get_response().outputs) == 0


def test_without_empty_final_only_data_responses(server):
    s = Stream(server)
    s.send(3, request_id="plain")
    got = s.take(3)
    s.close()  # waits for the stream to end: nothing else arrives
    assert s.results.empty()
    for result, error in got:
        assert error is None
        assert result.as_numpy("OUT").tolist() == [3]
        assert is_final(result) is False


def test_n_zero_without_empty_final_sends_nothing(server):
    s = Stream(server)
    s.send(0, request_id="nothing")
    s.close()
    assert s.results.empty()


def test_several_requests_on_one_stream(stream):
    counts = {"a": 2, "b": 5, "c": 1}
    for rid, n in counts.items():
        stream.send(n, request_id=rid, empty_final=True)
    seen = {rid: 0 for rid in counts}
    finals = 0
    while finals < len(counts):
        result, error = stream.results.get(timeout=TIMEOUT)
        assert error is None
        rid = result.get_response().id
        if is_final(result):
            finals += 1
            assert seen[rid] == counts[rid]
        else:
            assert result.as_numpy("OUT").tolist() == [counts[rid]]
            seen[rid] += 1
    assert seen == counts


def test_concurrent_streams(server):
    errors = []

    def run(n):
        s = Stream(server)
        try:
            for rep in range(3):
                s.send(n, request_id=f"{n}-{rep}", empty_final=True)
                got = s.until_final()
                assert len(got) == n + 1
                assert all(r.as_numpy("OUT").tolist() == [n] for r, e in got[:-1])
        except Exception as e:  # noqa: BLE001  (collected and reported by the main thread)
            errors.append(e)
        finally:
            s.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in (1, 4, 7, 12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)


def test_model_error_inside_stream(stream):
    stream.send(-1, request_id="neg", empty_final=True)
    result, error = stream.results.get(timeout=TIMEOUT)
    assert result is None
    assert isinstance(error, InferenceServerException)
    assert error.message() == "IN must be in [0, 64], got -1"
    # the stream stays usable
    stream.send(2, request_id="after", empty_final=True)
    got = stream.until_final()
    assert [r.as_numpy("OUT").tolist() for r, _ in got[:-1]] == [[2], [2]]


def test_unknown_model_inside_stream(stream):
    stream.send(1, model="nope", inputs=square_input(1))
    result, error = stream.results.get(timeout=TIMEOUT)
    assert result is None
    assert error.message() == "Request for unknown model: 'nope' is not found"


def test_unknown_input_inside_stream(stream):
    bad = grpcclient.InferInput("X", [1], "INT32")
    bad.set_data_from_numpy(np.array([1], dtype=np.int32))
    stream.send(1, inputs=[bad])
    result, error = stream.results.get(timeout=TIMEOUT)
    assert result is None
    assert error.message() == "unexpected inference input 'X' for model 'square_int32'"


def test_non_decoupled_model_over_stream(stream):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = [grpcclient.InferInput("INPUT0", [1, 16], "INT32"), grpcclient.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a)
    stream.send(0, model="simple", inputs=inputs, request_id="s1")
    result, error = stream.results.get(timeout=TIMEOUT)
    assert error is None
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * a)
    assert is_final(result) is True
    assert result.get_response().id == "s1"


def test_http_infer_on_decoupled_model(http_client):
    import tritonclient.http as httpclient

    inp = httpclient.InferInput("IN", [1], "INT32")
    inp.set_data_from_numpy(np.array([2], dtype=np.int32))
    with pytest.raises(InferenceServerException) as e:
        http_client.infer("square_int32", [inp])
    assert e.value.status() == "501"
    assert e.value.message() == "HTTP end point doesn't support models with decoupled transaction policy"


def test_grpc_unary_infer_on_decoupled_model(grpc_client):
    with pytest.raises(InferenceServerException) as e:
        grpc_client.infer("square_int32", square_input(2))
    assert e.value.status() == "StatusCode.UNIMPLEMENTED"
    assert e.value.message() == "ModelInfer RPC doesn't support models with decoupled transaction policy"


# ---------------------------------------------------------------- generate_stream (server-sent events)
def post(server, path, body):
    host, port = server.http.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.getheader("Content-Type"), data


def sse_events(data):
    events = []
    for block in data.decode().split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            events.append(json.loads(block[len("data: "):]))
    return events


@pytest.mark.parametrize("n", [1, 3, 20])
def test_generate_stream_square(server, n):
    status, ctype, data = post(server, "/v2/models/square_int32/generate_stream", {"IN": n})
    assert status == 200
    assert ctype == "text/event-stream; charset=utf-8"
    assert sse_events(data) == [{"OUT": n, "model_name": "square_int32", "model_version": "1"}] * n


def test_generate_stream_zero_responses(server):
    status, ctype, data = post(server, "/v2/models/square_int32/generate_stream", {"IN": 0})
    assert status == 200 and ctype.startswith("text/event-stream")
    assert sse_events(data) == []


def test_generate_stream_model_error(server):
    status, ctype, data = post(server, "/v2/models/square_int32/generate_stream", {"IN": -1})
    assert status == 400 and ctype.startswith("text/event-stream")
    assert sse_events(data) == [{"error": "IN must be in [0, 64], got -1"}]


def test_generate_on_decoupled_model(server):
    status, _, data = post(server, "/v2/models/square_int32/generate", {"IN": 2})
    # Triton answers 200 with an error document here
    assert status == 200
    assert json.loads(data) == {"error": "generate expects model to produce exactly 1 response, use generate "
                                         "stream for model that generates various number of responses"}


def test_generate_on_plain_model(server):
    status, ctype, data = post(server, "/v2/models/add_sub/generate", {"INPUT0": [1, 2, 3, 4], "INPUT1": [0.5] * 4})
    assert status == 200 and ctype == "application/json"
    assert json.loads(data) == {"OUTPUT0": [1.5, 2.5, 3.5, 4.5], "OUTPUT1": [0.5, 1.5, 2.5, 3.5],
                                "model_name": "add_sub", "model_version": "1"}
