"""System (and CUDA) shared memory through tritonclient, HTTP and gRPC: register POSIX regions made
with tritonclient.utils.shared_memory, infer with inputs and outputs in them, status, unregister,
and the errors. On a machine without GPU, CUDA shared memory is answered as Triton does there."""
import base64
import os

import numpy as np
import pytest
import tritonclient.utils.shared_memory as shm
from google.protobuf import json_format
from tritonclient.utils import InferenceServerException, serialize_byte_tensor

from conftest import error_status, simple_pair

PID = os.getpid()


@pytest.fixture
def regions(proto):
    """Creates POSIX regions on demand; unregisters (all) and destroys them afterwards."""
    _, _, c = proto
    made = []

    def make(name, size):
        key = f"/despina_test_{PID}_{name}"
        handle = shm.create_shared_memory_region(name, key, size)
        made.append(handle)
        return key, handle

    yield make
    c.unregister_system_shared_memory()
    for h in made:
        shm.destroy_shared_memory_region(h)


def status(kind, c, name=""):
    """Region status as {name: (key, offset, byte_size)} for both protocols."""
    s = c.get_system_shared_memory_status(name)
    if kind == "http":
        return {r["name"]: (r["key"], r["offset"], r["byte_size"]) for r in s}
    d = json_format.MessageToDict(s, preserving_proto_field_name=True).get("regions", {})
    return {n: (r["key"], int(r.get("offset", 0)), int(r["byte_size"])) for n, r in d.items()}


def shm_error(f):
    with pytest.raises(InferenceServerException) as e:
        f()
    return e.value


def test_register_status_unregister(proto, regions):
    kind, _, c = proto
    k_in, _ = regions("in_a", 128)
    k_out, _ = regions("out_a", 256)
    assert status(kind, c) == {}
    c.register_system_shared_memory("in_a", k_in, 128)
    c.register_system_shared_memory("out_a", k_out, 256)
    assert status(kind, c) == {"in_a": (k_in, 0, 128), "out_a": (k_out, 0, 256)}
    assert status(kind, c, "out_a") == {"out_a": (k_out, 0, 256)}
    c.unregister_system_shared_memory("in_a")
    assert status(kind, c) == {"out_a": (k_out, 0, 256)}
    c.unregister_system_shared_memory()
    assert status(kind, c) == {}


def test_infer_inputs_and_outputs_in_shm(proto, regions):
    kind, mod, c = proto
    a, b = simple_pair()
    k_in, h_in = regions("in_b", 128)
    k_out, h_out = regions("out_b", 128)
    shm.set_shared_memory_region(h_in, [a, b])
    c.register_system_shared_memory("in_b", k_in, 128)
    c.register_system_shared_memory("out_b", k_out, 128)
    i0 = mod.InferInput("INPUT0", [1, 16], "INT32")
    i0.set_shared_memory("in_b", 64)
    i1 = mod.InferInput("INPUT1", [1, 16], "INT32")
    i1.set_shared_memory("in_b", 64, offset=64)
    o0 = mod.InferRequestedOutput("OUTPUT0")
    o0.set_shared_memory("out_b", 64)
    o1 = mod.InferRequestedOutput("OUTPUT1")
    o1.set_shared_memory("out_b", 64, offset=64)
    r = c.infer("simple", [i0, i1], outputs=[o0, o1])
    np.testing.assert_array_equal(shm.get_contents_as_numpy(h_out, np.int32, [1, 16]), a + b)
    np.testing.assert_array_equal(shm.get_contents_as_numpy(h_out, np.int32, [1, 16], offset=64), a - b)
    # outputs written to shared memory carry no data in the response
    if kind == "http":
        outs = r.get_response()["outputs"]
        assert [(o["name"], o["datatype"], o["shape"]) for o in outs] == [("OUTPUT0", "INT32", [1, 16]),
                                                                          ("OUTPUT1", "INT32", [1, 16])]
        assert all("data" not in o for o in outs)
    else:
        assert [o.name for o in r.get_response().outputs] == ["OUTPUT0", "OUTPUT1"]
        # Triton keeps raw_output_contents aligned with outputs: one empty entry per shm output
        assert list(r.get_response().raw_output_contents) == [b"", b""]


def test_inputs_in_shm_outputs_inline(proto, regions):
    _, mod, c = proto
    a, b = simple_pair(3)
    k, h = regions("in_c", 3 * 64 * 2)
    shm.set_shared_memory_region(h, [a, b])
    c.register_system_shared_memory("in_c", k, 3 * 64 * 2)
    i0 = mod.InferInput("INPUT0", [3, 16], "INT32")
    i0.set_shared_memory("in_c", 3 * 64)
    i1 = mod.InferInput("INPUT1", [3, 16], "INT32")
    i1.set_shared_memory("in_c", 3 * 64, offset=3 * 64)
    r = c.infer("simple", [i0, i1])
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)


def test_region_is_read_at_infer_time(proto, regions):
    """The server reads the region's current contents on each request."""
    _, mod, c = proto
    k, h = regions("in_d", 128)
    c.register_system_shared_memory("in_d", k, 128)
    i0 = mod.InferInput("INPUT0", [1, 16], "INT32")
    i0.set_shared_memory("in_d", 64)
    i1 = mod.InferInput("INPUT1", [1, 16], "INT32")
    i1.set_shared_memory("in_d", 64, offset=64)
    for step in range(3):
        a, b = simple_pair()
        shm.set_shared_memory_region(h, [a * step, b])
        np.testing.assert_array_equal(c.infer("simple", [i0, i1]).as_numpy("OUTPUT0"), a * step + b)


def test_bytes_tensor_in_shm(proto, regions):
    _, mod, c = proto
    arr = np.array([[b"one", b"", b"\xff\x00three"]], dtype=np.object_)
    # the wire form (4-byte length + bytes per element) as a plain uint8 array
    data = np.frombuffer(serialize_byte_tensor(arr).item(), dtype=np.uint8)
    size = data.size
    k, h = regions("in_e", size)
    shm.set_shared_memory_region(h, [data])
    c.register_system_shared_memory("in_e", k, size)
    i0 = mod.InferInput("INPUT0", [1, 3], "BYTES")
    i0.set_shared_memory("in_e", size)
    r = c.infer("simple_identity", [i0])
    assert list(r.as_numpy("OUTPUT0")[0]) == list(arr[0])


def test_out_of_bound_input_offset(proto, regions):
    kind, mod, c = proto
    k, _ = regions("in_f", 128)
    c.register_system_shared_memory("in_f", k, 128)
    i0 = mod.InferInput("INPUT0", [1, 16], "INT32")
    i0.set_shared_memory("in_f", 64)
    i1 = mod.InferInput("INPUT1", [1, 16], "INT32")
    i1.set_shared_memory("in_f", 64, offset=100)
    e = shm_error(lambda: c.infer("simple", [i0, i1]))
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.message() == "Invalid offset + byte size for shared memory region: 'in_f'"


def test_out_of_bound_output_offset(proto, regions):
    kind, mod, c = proto
    a, b = simple_pair()
    k, h = regions("io_g", 128)
    shm.set_shared_memory_region(h, [a, b])
    c.register_system_shared_memory("io_g", k, 128)
    i0 = mod.InferInput("INPUT0", [1, 16], "INT32")
    i0.set_shared_memory("io_g", 64)
    i1 = mod.InferInput("INPUT1", [1, 16], "INT32")
    i1.set_shared_memory("io_g", 64, offset=64)
    o = mod.InferRequestedOutput("OUTPUT0")
    o.set_shared_memory("io_g", 64, offset=96)
    e = shm_error(lambda: c.infer("simple", [i0, i1], outputs=[o]))
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.message() == "Invalid offset + byte size for shared memory region: 'io_g'"


def test_output_region_too_small(proto, regions):
    kind, mod, c = proto
    a, b = simple_pair()
    k, h = regions("io_h", 128)
    shm.set_shared_memory_region(h, [a, b])
    c.register_system_shared_memory("io_h", k, 128)
    i0 = mod.InferInput("INPUT0", [1, 16], "INT32")
    i0.set_shared_memory("io_h", 64)
    i1 = mod.InferInput("INPUT1", [1, 16], "INT32")
    i1.set_shared_memory("io_h", 64, offset=64)
    o = mod.InferRequestedOutput("OUTPUT1")
    o.set_shared_memory("io_h", 32)
    e = shm_error(lambda: c.infer("simple", [i0, i1], outputs=[o]))
    assert e.status() == error_status(kind, 500, "INTERNAL")
    assert e.message() == ("shared memory size specified with the request for output 'OUTPUT1' (32 bytes) "
                           "should be at least 64 bytes to hold the results")


def test_input_byte_size_mismatch(proto, regions):
    kind, mod, c = proto
    k, _ = regions("in_i", 128)
    c.register_system_shared_memory("in_i", k, 128)
    i0 = mod.InferInput("INPUT0", [1, 16], "INT32")
    i0.set_shared_memory("in_i", 60)
    i1 = mod.InferInput("INPUT1", [1, 16], "INT32")
    i1.set_shared_memory("in_i", 64, offset=64)
    e = shm_error(lambda: c.infer("simple", [i0, i1]))
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.message().endswith("input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60")


def test_infer_with_unregistered_region(proto):
    kind, mod, c = proto
    i0 = mod.InferInput("INPUT0", [1, 16], "INT32")
    i0.set_shared_memory("never_registered", 64)
    i1 = mod.InferInput("INPUT1", [1, 16], "INT32")
    i1.set_data_from_numpy(np.zeros((1, 16), dtype=np.int32))
    e = shm_error(lambda: c.infer("simple", [i0, i1]))
    assert e.status() == error_status(kind, 404, "NOT_FOUND")
    assert e.message() == "Unable to find shared memory region: 'never_registered'"


def test_register_twice(proto, regions):
    kind, _, c = proto
    k, _ = regions("dup_j", 64)
    c.register_system_shared_memory("dup_j", k, 64)
    e = shm_error(lambda: c.register_system_shared_memory("dup_j", k, 64))
    assert e.status() == error_status(kind, 400, "ALREADY_EXISTS")
    assert e.message() == "shared memory region 'dup_j' already in manager"


def test_register_missing_key(proto):
    kind, _, c = proto
    e = shm_error(lambda: c.register_system_shared_memory("missing", f"/despina_test_{PID}_missing", 64))
    assert e.status() == error_status(kind, 500, "INTERNAL")
    assert e.message() == f"Unable to open shared memory region: '/despina_test_{PID}_missing'"


@pytest.mark.parametrize("size,offset", [(256, 0), (64, 100)])
def test_register_beyond_the_object(proto, regions, size, offset):
    kind, _, c = proto
    k, _ = regions("small_k", 128)
    e = shm_error(lambda: c.register_system_shared_memory("small_k", k, size, offset=offset))
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.message() == "failed to register shared memory region 'small_k': invalid args"
    assert status(kind, c) == {}


def test_status_of_unknown_region(proto):
    kind, _, c = proto
    e = shm_error(lambda: c.get_system_shared_memory_status("nope"))
    assert e.status() == error_status(kind, 404, "NOT_FOUND")
    assert e.message() == "Unable to find system shared memory region: 'nope'"


def test_unregister_unknown_region_is_ok(proto):
    _, _, c = proto
    c.unregister_system_shared_memory("nope")
    c.unregister_system_shared_memory()


# ---------------------------------------------------------------- CUDA shared memory without a GPU
def test_cuda_status_is_empty(proto):
    kind, _, c = proto
    s = c.get_cuda_shared_memory_status()
    assert (s == []) if kind == "http" else (len(s.regions) == 0)


def test_cuda_status_of_unknown_region(proto):
    kind, _, c = proto
    e = shm_error(lambda: c.get_cuda_shared_memory_status("nope"))
    assert e.status() == error_status(kind, 404, "NOT_FOUND")
    assert e.message() == "Unable to find cuda shared memory region: 'nope'"


def test_cuda_register_fails_without_gpu(proto):
    kind, _, c = proto
    handle = base64.b64encode(bytes(64)).decode()  # the size of a cudaIpcMemHandle_t
    e = shm_error(lambda: c.register_cuda_shared_memory("cuda0", handle, 0, 64))
    assert e.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.message() == "failed to register shared memory region: invalid args"
    s = c.get_cuda_shared_memory_status()
    assert (s == []) if kind == "http" else (len(s.regions) == 0)


def test_cuda_register_bad_handle_over_http(http_client):
    e = shm_error(lambda: http_client.register_cuda_shared_memory("cuda0", "AAAA", 0, 64))
    assert e.status() == "400"
    assert e.message() == "'raw_handle' must be a valid base64 encoded cudaIpcMemHandle_t"


def test_cuda_unregister_is_ok(proto):
    _, _, c = proto
    c.unregister_cuda_shared_memory("nope")
    c.unregister_cuda_shared_memory()
