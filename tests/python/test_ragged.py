"""Ragged batching through the real server and tritonclient: requests of different lengths
share one execution of an ONNX model that takes them as one 1-D concatenation, with
Triton's batch inputs and a scattered batch output (tests/models_extra/onnx_ragged)."""
import os
import shutil
import threading

import numpy as np
import pytest

from conftest import ROOT, start_despina, stop

pytestmark = pytest.mark.skipif(os.environ.get("DESPINA_TEST_TARGET") == "triton",
                                reason="the reference Triton has no ONNX Runtime backend")
MODEL = ROOT / "tests" / "models_extra" / "onnx_ragged"


@pytest.fixture(scope="module")
def ragged_server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(MODEL, repo / "onnx_ragged")
    cfg = repo / "onnx_ragged" / "config.pbtxt"
    # A long queue delay so that requests sent together are batched together.
    cfg.write_text(cfg.read_text().replace("max_queue_delay_microseconds: 2000",
                                           "max_queue_delay_microseconds: 300000"))
    s = start_despina(repo)
    yield s
    stop(s)


def test_requests_of_different_lengths_share_an_execution(ragged_server):
    import tritonclient.grpc as grpcclient

    lengths = [3, 4, 5, 1]
    results, errors = {}, []

    def send(i, n):
        c = grpcclient.InferenceServerClient(ragged_server.grpc)
        try:
            x = (np.arange(n, dtype=np.float32) + 100 * i).reshape(1, n)
            inp = grpcclient.InferInput("INPUT0", [1, n], "FP32")
            inp.set_data_from_numpy(x)
            r = c.infer("onnx_ragged", [inp])
            results[i] = (x, r.as_numpy("OUTPUT0"), r.as_numpy("END"), r.as_numpy("SIZE"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=send, args=(i, n)) for i, n in enumerate(lengths)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    spans = []
    for i, n in enumerate(lengths):
        x, out, end, size = results[i]
        np.testing.assert_array_equal(out, 2 * x)
        assert out.shape == (1, n)
        assert size.tolist() == [[n]]
        spans.append((int(end[0][0]) - n, int(end[0][0])))
    # Each request's END is where its elements end in the concatenation: together they tile it.
    spans.sort()
    assert spans[0][0] == 0 and spans[-1][1] == sum(lengths)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), spans

    c = grpcclient.InferenceServerClient(ragged_server.grpc)
    stats = c.get_inference_statistics("onnx_ragged", as_json=True)["model_stats"][0]
    c.close()
    assert int(stats["inference_count"]) == len(lengths)
    assert int(stats["execution_count"]) < len(lengths), "the requests were not batched"
