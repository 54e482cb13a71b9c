"""Implicit sequence state (`sequence_batching.state`) through the real server and
tritonclient: the server keeps each sequence's state between its requests
(tests/models_extra/onnx_state_accumulate: a running sum that starts at 100)."""
import os
import shutil

import numpy as np
import pytest

from conftest import ROOT, start_despina, stop

pytestmark = pytest.mark.skipif(os.environ.get("DESPINA_TEST_TARGET") == "triton",
                                reason="the reference Triton has no ONNX Runtime backend")
MODEL = ROOT / "tests" / "models_extra" / "onnx_state_accumulate"


@pytest.fixture(scope="module")
def state_server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(MODEL, repo / "acc")
    # A copy that lists the output state, so clients may ask for it.
    shutil.copytree(MODEL, repo / "acc_listed")
    for name in ("acc", "acc_listed"):
        cfg = repo / name / "config.pbtxt"
        text = cfg.read_text().replace('"onnx_state_accumulate"', f'"{name}"')
        if name == "acc_listed":
            text = text.replace('{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }',
                                '{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] },\n'
                                '  { name: "OUTPUT_STATE" data_type: TYPE_INT32 dims: [ 1 ] }')
        cfg.write_text(text)
    s = start_despina(repo)
    yield s
    stop(s)


def send(c, mod, model, seq, value, start=False, end=False, outputs=None):
    x = mod.InferInput("INPUT", [1, 1], "INT32")
    x.set_data_from_numpy(np.array([[value]], dtype=np.int32))
    requested = [mod.InferRequestedOutput(o) for o in outputs] if outputs else None
    r = c.infer(model, [x], sequence_id=seq, sequence_start=start, sequence_end=end, outputs=requested)
    return r


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_each_sequence_keeps_its_own_state(state_server, kind):
    if kind == "http":
        import tritonclient.http as mod
        c = mod.InferenceServerClient(state_server.http)
    else:
        import tritonclient.grpc as mod
        c = mod.InferenceServerClient(state_server.grpc)
    a, b = (11, 12) if kind == "http" else (21, 22)
    got = []
    for seq, value, start, end in [(a, 1, True, False), (b, 10, True, False), (a, 2, False, False),
                                   (b, 20, False, True), (a, 3, False, False)]:
        r = send(c, mod, "acc", seq, value, start, end)
        assert r.as_numpy("OUTPUT_STATE") is None, "the state output is the server's"
        got.append(int(r.as_numpy("OUTPUT")[0][0]))
    assert got == [101, 110, 103, 130, 106]
    # START again: the sequence begins from the initial state.
    assert int(send(c, mod, "acc", a, 5, start=True).as_numpy("OUTPUT")[0][0]) == 105
    assert int(send(c, mod, "acc", a, 1, end=True).as_numpy("OUTPUT")[0][0]) == 106
    c.close()


def test_a_listed_output_state_can_be_asked_for(state_server):
    import tritonclient.grpc as mod

    c = mod.InferenceServerClient(state_server.grpc)
    r = send(c, mod, "acc_listed", 31, 7, start=True)
    assert int(r.as_numpy("OUTPUT_STATE")[0][0]) == 107
    r = send(c, mod, "acc_listed", 31, 1, outputs=["OUTPUT"])
    assert r.as_numpy("OUTPUT_STATE") is None
    assert int(r.as_numpy("OUTPUT")[0][0]) == 108
    r = send(c, mod, "acc_listed", 31, 2, end=True, outputs=["OUTPUT_STATE"])
    assert int(r.as_numpy("OUTPUT_STATE")[0][0]) == 110
    c.close()


def test_concurrent_sequences_batched_together_keep_their_states(state_server):
    import threading

    import tritonclient.grpc as mod

    results, errors = {}, []

    def run(seq):
        c = mod.InferenceServerClient(state_server.grpc)
        try:
            sums = []
            for step in range(6):
                r = send(c, mod, "acc", seq, seq * 10 + step, start=step == 0, end=step == 5)
                sums.append(int(r.as_numpy("OUTPUT")[0][0]))
            results[seq] = sums
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(seq,)) for seq in range(101, 109)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for seq, sums in results.items():
        assert sums == list(100 + np.cumsum([seq * 10 + s for s in range(6)])), seq
    assert len(results) == 8
