"""Inference value flows through tritonclient, each run over HTTP and gRPC: every datatype the test
models give, batches, explicit and default outputs, request ids, classification, the ensemble and
model versions."""
import numpy as np
import pytest

from conftest import make_input, simple_inputs, simple_pair


def outputs_of(kind, result):
    """Names of the outputs in a response, in response order."""
    resp = result.get_response()
    return [o["name"] for o in resp["outputs"]] if kind == "http" else [o.name for o in resp.outputs]


def test_simple_int32(proto):
    kind, mod, c = proto
    a, b = simple_pair()
    r = c.infer("simple", simple_inputs(mod, a, b))
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
    assert r.as_numpy("OUTPUT0").dtype == np.int32
    resp = r.get_response()
    if kind == "http":
        assert resp["model_name"] == "simple" and resp["model_version"] == "1"
    else:
        assert resp.model_name == "simple" and resp.model_version == "1"


def test_simple_int32_wraps_on_overflow(proto):
    _, mod, c = proto
    a = np.full((1, 16), 2**31 - 1, dtype=np.int32)
    b = np.ones((1, 16), dtype=np.int32)
    r = c.infer("simple", simple_inputs(mod, a, b))
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), np.full((1, 16), -(2**31), dtype=np.int32))
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), np.full((1, 16), 2**31 - 2, dtype=np.int32))


@pytest.mark.parametrize("batch", range(1, 9))
def test_simple_batches(proto, batch):
    _, mod, c = proto
    a, b = simple_pair(batch)
    r = c.infer("simple", simple_inputs(mod, a, b))
    assert r.as_numpy("OUTPUT0").shape == (batch, 16)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)


def test_default_outputs_are_all_outputs(proto):
    kind, mod, c = proto
    a, b = simple_pair()
    r = c.infer("simple", simple_inputs(mod, a, b), outputs=None)
    assert sorted(outputs_of(kind, r)) == ["OUTPUT0", "OUTPUT1"]


@pytest.mark.parametrize("wanted", [["OUTPUT0"], ["OUTPUT1"], ["OUTPUT1", "OUTPUT0"]])
def test_explicit_outputs(proto, wanted):
    kind, mod, c = proto
    a, b = simple_pair()
    r = c.infer("simple", simple_inputs(mod, a, b), outputs=[mod.InferRequestedOutput(n) for n in wanted])
    assert sorted(outputs_of(kind, r)) == sorted(wanted)
    expect = {"OUTPUT0": a + b, "OUTPUT1": a - b}
    for n in ("OUTPUT0", "OUTPUT1"):
        if n in wanted:
            np.testing.assert_array_equal(r.as_numpy(n), expect[n])
        else:
            assert r.as_numpy(n) is None


def test_request_id_echo(proto):
    kind, mod, c = proto
    a, b = simple_pair()
    r = c.infer("simple", simple_inputs(mod, a, b), request_id="req-\u00e9-42")
    resp = r.get_response()
    assert (resp["id"] if kind == "http" else resp.id) == "req-\u00e9-42"


def test_no_request_id_means_no_id(proto):
    kind, mod, c = proto
    a, b = simple_pair()
    resp = c.infer("simple", simple_inputs(mod, a, b)).get_response()
    assert ("id" not in resp) if kind == "http" else (resp.id == "")


def test_request_parameters_are_accepted(proto):
    _, mod, c = proto
    a, b = simple_pair()
    r = c.infer("simple", simple_inputs(mod, a, b), parameters={"note": "x", "count": 3, "flag": True})
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)


def test_int8_wraps(proto):
    _, mod, c = proto
    a = np.array([[127, -128, 100, -100, 0, 1, -1, 50, 60, 70, 80, 90, 5, 6, 7, 8]], dtype=np.int8)
    b = np.array([[1, 1, 100, 100, 0, -1, -1, 50, 60, 70, 80, 90, -5, -6, -7, -8]], dtype=np.int8)
    r = c.infer("simple_int8", simple_inputs(mod, a, b))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), (a + b).astype(np.int8))
        np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), (a - b).astype(np.int8))
    assert r.as_numpy("OUTPUT0").dtype == np.int8
    assert r.as_numpy("OUTPUT0")[0, 0] == -128 and r.as_numpy("OUTPUT1")[0, 1] == 127


def test_add_sub_fp32_no_batch(proto):
    _, mod, c = proto
    a = np.array([1.5, 2.25, -3.0, 0.1], dtype=np.float32)
    b = np.array([0.5, 0.25, 1.0, 0.2], dtype=np.float32)
    r = c.infer("add_sub", simple_inputs(mod, a, b))
    assert r.as_numpy("OUTPUT0").shape == (4,)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
    assert r.as_numpy("OUTPUT0").dtype == np.float32


@pytest.mark.parametrize("batch", [1, 3])
def test_simple_string(proto, batch):
    _, mod, c = proto
    a, b = simple_pair(batch)
    sa, sb = a.astype(str).astype(np.object_), b.astype(str).astype(np.object_)
    r = c.infer("simple_string", [make_input(mod, "INPUT0", sa, "BYTES"), make_input(mod, "INPUT1", sb, "BYTES")])
    out0, out1 = r.as_numpy("OUTPUT0"), r.as_numpy("OUTPUT1")
    assert out0.shape == (batch, 16) and out0.dtype == np.object_
    assert [[int(x) for x in row] for row in out0] == (a + b).tolist()
    assert [[int(x) for x in row] for row in out1] == (a - b).tolist()
    assert isinstance(out0[0, 0], bytes)


@pytest.mark.parametrize("values", [
    ["h\u00e9llo", "", "\u65e5\u672c\u8a9e", "tab\tnew\nline"],
    [""],
    ["x" * 1000, "y"],
])
def test_simple_identity_unicode(proto, values):
    _, mod, c = proto
    arr = np.array([values], dtype=np.object_)
    r = c.infer("simple_identity", [make_input(mod, "INPUT0", arr, "BYTES")])
    out = r.as_numpy("OUTPUT0")
    assert out.shape == (1, len(values))
    assert [x.decode("utf-8") for x in out[0]] == values


def test_simple_identity_binary_bytes(proto):
    _, mod, c = proto
    values = [b"\x00\xff\xfe", b"", b"\x80abc\x00", bytes(range(256))]
    arr = np.array([values], dtype=np.object_)
    r = c.infer("simple_identity", [make_input(mod, "INPUT0", arr, "BYTES")])
    assert list(r.as_numpy("OUTPUT0")[0]) == values


def test_simple_identity_batch(proto):
    _, mod, c = proto
    arr = np.array([["a", "bb"], ["", "\u00fc"], ["c", "d"]], dtype=np.object_)
    r = c.infer("simple_identity", [make_input(mod, "INPUT0", arr, "BYTES")])
    assert [[x.decode() for x in row] for row in r.as_numpy("OUTPUT0")] == arr.tolist()


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 2), (8, 1), (2, 33), (1, 0)])
def test_identity_fp32_dynamic_shapes(proto, shape):
    _, mod, c = proto
    x = (np.arange(np.prod(shape), dtype=np.float32).reshape(shape) - 3.5) / 7
    r = c.infer("identity_fp32", [make_input(mod, "INPUT0", x)])
    out = r.as_numpy("OUTPUT0")
    assert out.shape == shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, x)


def test_identity_fp32_special_values(proto):
    _, mod, c = proto
    x = np.array([[np.inf, -np.inf, -0.0, 1e-38, 3.4e38]], dtype=np.float32)
    out = c.infer("identity_fp32", [make_input(mod, "INPUT0", x)]).as_numpy("OUTPUT0")
    np.testing.assert_array_equal(out, x)
    assert np.signbit(out[0, 2])


SCORES = np.array([[0.1, 0.9, 0.3, 0.7, 0.0, 0.5, -1.0, 0.2]], dtype=np.float32)


@pytest.mark.parametrize("count,expect", [
    (1, [b"0.900000:1:bravo"]),
    (3, [b"0.900000:1:bravo", b"0.700000:3:delta", b"0.500000:5:foxtrot"]),
    (8, [b"0.900000:1:bravo", b"0.700000:3:delta", b"0.500000:5:foxtrot", b"0.300000:2:charlie",
         b"0.200000:7:hotel", b"0.100000:0:alpha", b"0.000000:4:echo", b"-1.000000:6:golf"]),
    (20, [b"0.900000:1:bravo", b"0.700000:3:delta", b"0.500000:5:foxtrot", b"0.300000:2:charlie",
          b"0.200000:7:hotel", b"0.100000:0:alpha", b"0.000000:4:echo", b"-1.000000:6:golf"]),
])
def test_classification(proto, count, expect):
    _, mod, c = proto
    r = c.infer("classify_fp32", [make_input(mod, "INPUT0", SCORES)],
                outputs=[mod.InferRequestedOutput("OUTPUT0", class_count=count)])
    out = r.as_numpy("OUTPUT0")
    assert out.shape == (1, len(expect))
    assert list(out[0]) == expect


def test_classification_batch_and_ties(proto):
    _, mod, c = proto
    x = np.array([[1.0, 2.0, 2.0, 1.0, 0.0, 2.0, 0.0, 0.0], [8, 7, 6, 5, 4, 3, 2, 1]], dtype=np.float32)
    r = c.infer("classify_fp32", [make_input(mod, "INPUT0", x)],
                outputs=[mod.InferRequestedOutput("OUTPUT0", class_count=4)])
    # ties keep index order
    assert r.as_numpy("OUTPUT0").tolist() == [
        [b"2.000000:1:bravo", b"2.000000:2:charlie", b"2.000000:5:foxtrot", b"1.000000:0:alpha"],
        [b"8.000000:0:alpha", b"7.000000:1:bravo", b"6.000000:2:charlie", b"5.000000:3:delta"]]


def test_classification_without_labels(proto):
    """An INT32 output without label file classifies to "value:index"."""
    _, mod, c = proto
    a, b = simple_pair()
    r = c.infer("simple", simple_inputs(mod, a, b), outputs=[mod.InferRequestedOutput("OUTPUT0", class_count=2)])
    s = a + b
    top = np.argsort(-s[0], kind="stable")[:2]
    assert list(r.as_numpy("OUTPUT0")[0]) == [f"{s[0, i]}:{i}".encode() for i in top]


@pytest.mark.parametrize("batch", [1, 2, 8])
def test_ensemble_simple_doubles(proto, batch):
    """Two `simple` steps: (a, b) -> (a+b, a-b) -> (2a, 2b)."""
    _, mod, c = proto
    a, b = simple_pair(batch)
    r = c.infer("ensemble_simple", simple_inputs(mod, a, b))
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), 2 * a)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), 2 * b)


def test_ensemble_explicit_output(proto):
    kind, mod, c = proto
    a, b = simple_pair()
    r = c.infer("ensemble_simple", simple_inputs(mod, a, b), outputs=[mod.InferRequestedOutput("OUTPUT1")])
    assert outputs_of(kind, r) == ["OUTPUT1"]
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), 2 * b)


@pytest.mark.parametrize("version,added", [("1", 1), ("2", 2), ("", 2)])
def test_versioned_model(proto, version, added):
    """OUTPUT0 = INPUT0 + version; no version means the highest served version (2)."""
    kind, mod, c = proto
    x = np.array([[10, 20, 30]], dtype=np.int32)
    r = c.infer("versioned", [make_input(mod, "INPUT0", x)], model_version=version)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), x + added)
    resp = r.get_response()
    assert (resp["model_version"] if kind == "http" else resp.model_version) == str(added)
