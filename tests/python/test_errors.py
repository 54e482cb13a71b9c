"""Bad requests through tritonclient (HTTP and gRPC): the client raises InferenceServerException
with Triton's status and message. The exact texts are also pinned by test_reference_parity."""
import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from conftest import error_status, make_input, simple_inputs, simple_pair

NOTE = ("NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be "
        "prepended to each input shape.")


def infer_error(c, model, inputs, **kw):
    with pytest.raises(InferenceServerException) as e:
        c.infer(model, inputs, **kw)
    return e.value


def test_wrong_shape(proto):
    kind, mod, c = proto
    a = np.zeros((1, 15), dtype=np.int32)
    b = np.zeros((1, 16), dtype=np.int32)
    e = infer_error(c, "simple", simple_inputs(mod, a, b))
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert "unexpected shape for input 'INPUT0' for model 'simple'. Expected [-1,16], got [1,15]. " + NOTE in e.message()


def test_wrong_shape_without_batching(proto):
    kind, mod, c = proto
    a = np.zeros((1, 4), dtype=np.float32)
    e = infer_error(c, "add_sub", simple_inputs(mod, a, a))
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.message().endswith("unexpected shape for input 'INPUT1' for model 'add_sub'. Expected [4], got [1,4]. ")


def test_wrong_dtype(proto):
    kind, mod, c = proto
    a, b = simple_pair()
    e = infer_error(c, "simple", simple_inputs(mod, a.astype(np.float32), b))
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.message().endswith("inference input 'INPUT0' data-type is 'FP32', but model 'simple' expects 'INT32'")


def test_missing_input(proto):
    kind, mod, c = proto
    a, _ = simple_pair()
    e = infer_error(c, "simple", [make_input(mod, "INPUT0", a)])
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.message().endswith(
        "expected 2 inputs but got 1 inputs for model 'simple'. Got input(s) ['INPUT0'], but missing required "
        "input(s) ['INPUT1']. Please provide all required input(s).")


def test_unknown_input(proto):
    kind, mod, c = proto
    a, b = simple_pair()
    e = infer_error(c, "simple", simple_inputs(mod, a, b) + [make_input(mod, "INPUT2", b)])
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert "expected 2 inputs but got 3 inputs for model 'simple'" in e.message()


def test_unknown_output(proto):
    kind, mod, c = proto
    a, b = simple_pair()
    e = infer_error(c, "simple", simple_inputs(mod, a, b), outputs=[mod.InferRequestedOutput("OUTPUT9")])
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.message() == "unexpected inference output 'OUTPUT9' for model 'simple'"


@pytest.mark.parametrize("batch", [9, 16])
def test_batch_over_max(proto, batch):
    kind, mod, c = proto
    a, b = simple_pair(batch)
    e = infer_error(c, "simple", simple_inputs(mod, a, b))
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.message() == "[request id: <id_unknown>] inference request batch-size must be <= 8 for 'simple'"


def test_unbatched_shape_reads_as_batch(proto):
    """[16] sent to a max_batch_size-8 model is batch 16 of shape []."""
    kind, mod, c = proto
    a = np.arange(16, dtype=np.int32)
    e = infer_error(c, "simple", simple_inputs(mod, a, a))
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert "inference request batch-size must be <= 8 for 'simple'" in e.message()


def test_request_id_in_error(proto):
    kind, mod, c = proto
    a, b = simple_pair(9)
    e = infer_error(c, "simple", simple_inputs(mod, a, b), request_id="bad-1")
    assert e.message() == "[request id: bad-1] inference request batch-size must be <= 8 for 'simple'"


def test_batch_mismatch_between_inputs(proto):
    kind, mod, c = proto
    a, _ = simple_pair(1)
    _, b = simple_pair(2)
    e = infer_error(c, "simple", simple_inputs(mod, a, b))
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.message().endswith("input 'INPUT0' batch size does not match other inputs for 'simple'")


@pytest.mark.parametrize("model,version,message", [
    ("nope", "", "Request for unknown model: 'nope' is not found"),
    ("simple", "9", "Request for unknown model: 'simple' version 9 is not found"),
    ("versioned", "3", "Request for unknown model: 'versioned' version 3 is not found"),
])
def test_unknown_model_or_version(proto, model, version, message):
    kind, mod, c = proto
    a, b = simple_pair()
    e = infer_error(c, model, simple_inputs(mod, a, b), model_version=version)
    assert e.status() == error_status(kind, 404, "NOT_FOUND")
    assert e.message() == message


def test_error_does_not_break_the_connection(proto):
    _, mod, c = proto
    a, b = simple_pair(9)
    infer_error(c, "simple", simple_inputs(mod, a, b))
    a, b = simple_pair(1)
    np.testing.assert_array_equal(c.infer("simple", simple_inputs(mod, a, b)).as_numpy("OUTPUT0"), a + b)


def test_non_integer_string_is_a_model_error(proto):
    """simple_string fails the request inside the model (Triton: 500 / INTERNAL)."""
    kind, mod, c = proto
    bad = np.array([["x"] * 16], dtype=np.object_)
    good = np.array([["1"] * 16], dtype=np.object_)
    e = infer_error(c, "simple_string", [make_input(mod, "INPUT0", bad, "BYTES"), make_input(mod, "INPUT1", good, "BYTES")])
    assert e.status() == error_status(kind, 500, "INTERNAL")
    assert e.message().startswith("non-integer string input: ")
