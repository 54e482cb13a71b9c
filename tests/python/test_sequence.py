"""Stateful sequences on sequence_accumulate (OUTPUT = running sum of INPUT per correlation id)
through tritonclient, HTTP and gRPC: integer and string ids, start/end flags, interleaving, the
errors, the idle timeout, and a sequence over a gRPC stream."""
import itertools
import os
import queue
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from conftest import error_status

MODEL = "sequence_accumulate"
# Correlation ids unique to this test process, so stale state on a long-lived server cannot interfere.
_ids = itertools.count((os.getpid() % 10000) * 1000 + 100000)


def new_id():
    return next(_ids)


def value(mod, v):
    inp = mod.InferInput("INPUT", [1, 1], "INT32")
    inp.set_data_from_numpy(np.array([[v]], dtype=np.int32))
    return [inp]


def step(c, mod, seq, v, start=False, end=False):
    r = c.infer(MODEL, value(mod, v), sequence_id=seq, sequence_start=start, sequence_end=end)
    out = r.as_numpy("OUTPUT")
    assert out.shape == (1, 1) and out.dtype == np.int32
    return int(out[0, 0])


def start_flag_error(seq):
    return (f"inference request for sequence {seq} to model 'sequence_accumulate' must specify the START flag "
            "on the first request of the sequence")


@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_running_sum(proto, id_kind):
    _, mod, c = proto
    seq = new_id() if id_kind == "int" else f"seq-{new_id()}"
    assert step(c, mod, seq, 5, start=True) == 5
    assert step(c, mod, seq, 3) == 8
    assert step(c, mod, seq, -1) == 7
    assert step(c, mod, seq, 2, end=True) == 9


def test_start_and_end_in_one_request(proto):
    _, mod, c = proto
    seq = new_id()
    assert step(c, mod, seq, 42, start=True, end=True) == 42
    assert step(c, mod, seq, 1, start=True, end=True) == 1


def test_start_again_resets(proto):
    _, mod, c = proto
    seq = new_id()
    assert step(c, mod, seq, 10, start=True) == 10
    assert step(c, mod, seq, 10) == 20
    assert step(c, mod, seq, 4, start=True) == 4
    assert step(c, mod, seq, 1, end=True) == 5


def test_interleaved_sequences(proto):
    _, mod, c = proto
    seqs = [new_id(), f"s-{new_id()}", new_id()]
    sums = {s: 0 for s in seqs}
    for i in range(5):
        for k, s in enumerate(seqs):
            v = (k + 1) * 10 + i
            sums[s] += v
            assert step(c, mod, s, v, start=(i == 0), end=(i == 4)) == sums[s]


def test_largest_unsigned_id(http_client):
    import tritonclient.http as httpclient

    assert step(http_client, httpclient, 2**64 - 1, 6, start=True, end=True) == 6


@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_unknown_sequence_without_start(proto, id_kind):
    kind, mod, c = proto
    seq = new_id() if id_kind == "int" else f"nostart-{new_id()}"
    with pytest.raises(InferenceServerException) as e:
        step(c, mod, seq, 1)
    assert e.value.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.value.message() == start_flag_error(seq)


def test_after_end_needs_start(proto):
    kind, mod, c = proto
    seq = new_id()
    step(c, mod, seq, 1, start=True, end=True)
    with pytest.raises(InferenceServerException) as e:
        step(c, mod, seq, 1)
    assert e.value.message() == start_flag_error(seq)


def test_missing_correlation_id(proto):
    kind, mod, c = proto
    with pytest.raises(InferenceServerException) as e:
        c.infer(MODEL, value(mod, 1))
    assert e.value.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.value.message() == ("inference request to model 'sequence_accumulate' must specify a non-zero or "
                                 "non-empty correlation ID")


def test_batch_of_two_refused(proto):
    kind, mod, c = proto
    inp = mod.InferInput("INPUT", [2, 1], "INT32")
    inp.set_data_from_numpy(np.array([[1], [2]], dtype=np.int32))
    with pytest.raises(InferenceServerException) as e:
        c.infer(MODEL, [inp], sequence_id=new_id(), sequence_start=True, sequence_end=True)
    assert e.value.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.value.message() == ("inference request to model 'sequence_accumulate' must specify batch-size 1 "
                                 "due to requirements of sequence batcher")


def test_failed_request_keeps_the_sequence(proto):
    _, mod, c = proto
    seq = new_id()
    assert step(c, mod, seq, 3, start=True) == 3
    bad = mod.InferInput("INPUT", [1, 2], "INT32")
    bad.set_data_from_numpy(np.array([[1, 2]], dtype=np.int32))
    with pytest.raises(InferenceServerException):
        c.infer(MODEL, [bad], sequence_id=seq)
    assert step(c, mod, seq, 4, end=True) == 7


def test_idle_sequence_is_released(http_client):
    """max_sequence_idle_microseconds is 5 s: after that the sequence is gone and needs START."""
    import tritonclient.http as httpclient

    seq = new_id()
    assert step(http_client, httpclient, seq, 1, start=True) == 1
    time.sleep(6.5)
    with pytest.raises(InferenceServerException) as e:
        step(http_client, httpclient, seq, 1)
    assert e.value.message() == start_flag_error(seq)


def test_sequence_over_grpc_stream(server):
    c = grpcclient.InferenceServerClient(server.grpc)
    results = queue.Queue()
    c.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        a, b = new_id(), f"stream-{new_id()}"
        values = [4, 5, 6]
        for i, v in enumerate(values):
            for seq, mult in ((a, 1), (b, 10)):
                c.async_stream_infer(MODEL, value(grpcclient, v * mult), request_id=f"{seq}:{i}", sequence_id=seq,
                                     sequence_start=(i == 0), sequence_end=(i == len(values) - 1))
        got = {}
        for _ in range(2 * len(values)):
            result, error = results.get(timeout=30)
            assert error is None
            got[result.get_response().id] = int(result.as_numpy("OUTPUT")[0, 0])
        assert got == {f"{a}:0": 4, f"{a}:1": 9, f"{a}:2": 15, f"{b}:0": 40, f"{b}:1": 90, f"{b}:2": 150}
    finally:
        c.stop_stream()
        c.close()
