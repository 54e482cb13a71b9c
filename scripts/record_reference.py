#!/usr/bin/env python3
"""Record what the real NVIDIA Triton answers to a catalogue of raw HTTP and gRPC requests.

The answers become the reference that tests/python/test_reference_parity.py replays against despina.
Run it against a Triton started on the reference repository (explicit mode, every model but
fail_init loaded), freshly started so that no sequence or shared-memory state is left over:

    ../shared/triton-reference/start_triton.sh 18200 18201 18202
    /work/main/.venv/bin/python scripts/record_reference.py --http 127.0.0.1:18200 --grpc 127.0.0.1:18201

Writes tests/data/triton_reference/http_cases.json and grpc_cases.json (pretty-printed, in
catalogue order, which is also the replay order: some sequence cases depend on the one before).
Only models that tests/models also has are used. The recording fails loudly when the server does
not look like Triton or a case cannot be sent.
"""
import argparse
import base64
import gzip
import http.client
import json
import struct
import sys
import zlib
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "tests" / "data" / "triton_reference"
SHARED_MODELS = sorted(p.name for p in (ROOT / "tests" / "models").iterdir() if (p / "config.pbtxt").is_file())
# Response headers worth comparing; everything else (Date, Content-Length, chunking) is transport.
RELEVANT_HEADERS = ("content-type", "inference-header-content-length", "content-encoding")


# ---------------------------------------------------------------- HTTP catalogue
def t(name, datatype, shape, data=None, **params):
    """One tensor of a KServe v2 JSON request."""
    d = {"name": name, "datatype": datatype, "shape": shape}
    if data is not None:
        d["data"] = data
    if params:
        d["parameters"] = params
    return d


def http_json(name, path, body, method="POST", headers=None, note=""):
    return {"name": name, "note": note, "method": method, "path": path, "headers": headers or {}, "body_json": body}


def http_raw(name, path, raw, method="POST", headers=None, note=""):
    return {"name": name, "note": note, "method": method, "path": path, "headers": headers or {},
            "body_b64": base64.b64encode(raw).decode()}


def http_get(name, path, note="", method="GET"):
    return {"name": name, "note": note, "method": method, "path": path, "headers": {}}


def binary_body(header, *chunks, header_len=None):
    """Binary tensor extension: JSON header then raw tensor bytes; returns (body, headers)."""
    h = json.dumps(header, separators=(",", ":")).encode()
    n = len(h) if header_len is None else header_len
    return h + b"".join(chunks), {"Inference-Header-Content-Length": str(n), "Content-Type": "application/octet-stream"}


def bytes_elems(*items):
    """BYTES tensor in the binary form: each element a 4-byte little-endian length then its bytes."""
    return b"".join(struct.pack("<I", len(x)) + x for x in items)


A16 = list(range(16))
B16 = [1] * 16
I32 = lambda xs: np.asarray(xs, dtype=np.int32).tobytes()  # noqa: E731
F32 = lambda xs: np.asarray(xs, dtype=np.float32).tobytes()  # noqa: E731
SIMPLE = "/v2/models/simple/infer"


def simple_inputs(batch=1, a=A16, b=B16):
    return [t("INPUT0", "INT32", [batch, 16], a * batch), t("INPUT1", "INT32", [batch, 16], b * batch)]


def http_catalogue():
    cases = []
    add = cases.append

    # -- health, server metadata, unknown routes and methods
    add(http_get("health_live", "/v2/health/live"))
    add(http_get("health_ready", "/v2/health/ready"))
    add(http_get("server_metadata", "/v2", note="name and version are normalised"))
    add(http_get("unknown_path", "/v2/nope"))
    add(http_get("unknown_path_root", "/"))
    add(http_get("unknown_path_v1", "/v1/models/simple"))
    add(http_get("method_post_health_live", "/v2/health/live", method="POST"))
    add(http_get("method_put_health_ready", "/v2/health/ready", method="PUT"))
    add(http_get("method_get_infer", SIMPLE))
    add(http_get("method_delete_model", "/v2/models/simple", method="DELETE"))
    add(http_get("method_post_metadata", "/v2/models/simple", method="POST"))
    add(http_get("method_get_repository_index", "/v2/repository/index"))
    add(http_get("method_get_load", "/v2/repository/models/simple/load"))

    # -- model readiness (unknown model/version: 400, not 404)
    add(http_get("ready_simple", "/v2/models/simple/ready"))
    add(http_get("ready_simple_v1", "/v2/models/simple/versions/1/ready"))
    add(http_get("ready_simple_v2_unknown", "/v2/models/simple/versions/2/ready"))
    add(http_get("ready_unknown_model", "/v2/models/nope/ready"))
    add(http_get("ready_versioned_v1", "/v2/models/versioned/versions/1/ready"))
    add(http_get("ready_versioned_v2", "/v2/models/versioned/versions/2/ready"))
    add(http_get("ready_versioned_v3_not_served", "/v2/models/versioned/versions/3/ready"))
    add(http_get("ready_version_not_a_number", "/v2/models/versioned/versions/x/ready"))
    add(http_get("ready_version_negative", "/v2/models/versioned/versions/-1/ready"))

    # -- model metadata and configuration for every shared model
    for m in SHARED_MODELS:
        add(http_get(f"metadata_{m}", f"/v2/models/{m}", note="platform normalised except ensemble"))
    for m in SHARED_MODELS:
        add(http_get(f"config_{m}", f"/v2/models/{m}/config", note="backend-specific fields normalised"))
    add(http_get("metadata_simple_v1", "/v2/models/simple/versions/1"))
    add(http_get("metadata_versioned_v2", "/v2/models/versioned/versions/2"))
    add(http_get("metadata_versioned_v3_not_served", "/v2/models/versioned/versions/3"))
    add(http_get("metadata_unknown_model", "/v2/models/nope"))
    add(http_get("metadata_unknown_version", "/v2/models/simple/versions/7"))
    add(http_get("config_unknown_model", "/v2/models/nope/config"))
    add(http_get("config_versioned_v3", "/v2/models/versioned/versions/3/config"))
    add(http_get("config_versioned_v1", "/v2/models/versioned/versions/1/config"))

    # -- repository index and model control errors (no state change)
    add(http_json("repository_index", "/v2/repository/index", None, note="entries filtered to tests/models names"))
    add(http_json("repository_index_empty_object", "/v2/repository/index", {}))
    add(http_json("repository_index_ready", "/v2/repository/index", {"ready": True}))
    add(http_json("repository_index_not_ready", "/v2/repository/index", {"ready": False}))
    add(http_raw("repository_index_invalid_json", "/v2/repository/index", b"{not json"))
    add(http_json("load_missing_model", "/v2/repository/models/does_not_exist/load", None))
    add(http_json("unload_unknown_model", "/v2/repository/models/does_not_exist/unload", None))
    add(http_raw("load_invalid_json", "/v2/repository/models/simple/load", b"{oops"))
    add(http_json("load_config_not_string", "/v2/repository/models/does_not_exist/load",
                  {"parameters": {"config": {"name": "x"}}}))

    # -- statistics (numbers normalised: they depend on what ran before)
    add(http_get("stats_all", "/v2/models/stats", note="entries filtered to tests/models names"))
    add(http_get("stats_simple", "/v2/models/simple/stats"))
    add(http_get("stats_simple_v1", "/v2/models/simple/versions/1/stats"))
    add(http_get("stats_versioned", "/v2/models/versioned/stats"))
    add(http_get("stats_unknown_model", "/v2/models/nope/stats"))
    add(http_get("stats_versioned_v3", "/v2/models/versioned/versions/3/stats"))

    # -- shared memory without any region, and CUDA shared memory on a machine without GPU
    add(http_get("shm_status_empty", "/v2/systemsharedmemory/status"))
    add(http_get("shm_region_status_unknown", "/v2/systemsharedmemory/region/nope/status"))
    add(http_json("shm_register_missing_key", "/v2/systemsharedmemory/region/r0/register",
                  {"key": "/despina_ref_does_not_exist", "offset": 0, "byte_size": 64}))
    add(http_json("shm_register_no_fields", "/v2/systemsharedmemory/region/r0/register", {}))
    add(http_raw("shm_register_invalid_json", "/v2/systemsharedmemory/region/r0/register", b"[1,"))
    add(http_json("shm_unregister_unknown", "/v2/systemsharedmemory/region/nope/unregister", None))
    add(http_json("shm_unregister_all", "/v2/systemsharedmemory/unregister", None))
    add(http_json("shm_infer_unknown_region", SIMPLE, {"inputs": [
        t("INPUT0", "INT32", [1, 16], shared_memory_region="nope", shared_memory_byte_size=64),
        t("INPUT1", "INT32", [1, 16], B16)]}))
    add(http_get("cudashm_status_empty", "/v2/cudasharedmemory/status"))
    add(http_get("cudashm_region_status_unknown", "/v2/cudasharedmemory/region/nope/status"))
    add(http_json("cudashm_register_bad_handle", "/v2/cudasharedmemory/region/c0/register",
                  {"raw_handle": {"b64": "AAAA"}, "device_id": 0, "byte_size": 64}))
    add(http_json("cudashm_register_64_byte_handle", "/v2/cudasharedmemory/region/c0/register",
                  {"raw_handle": {"b64": base64.b64encode(bytes(64)).decode()}, "device_id": 0, "byte_size": 64}))
    add(http_json("cudashm_unregister_all", "/v2/cudasharedmemory/unregister", None))

    # -- trace and logging settings (read only here; the client tests update them)
    add(http_get("trace_setting", "/v2/trace/setting"))
    add(http_get("trace_setting_model", "/v2/models/simple/trace/setting"))
    add(http_get("trace_setting_unknown_model", "/v2/models/nope/trace/setting"))
    add(http_get("logging_setting", "/v2/logging"))

    # -- infer: good requests
    add(http_json("infer_simple_json", SIMPLE, {"inputs": simple_inputs()}))
    add(http_json("infer_simple_json_nested_data", SIMPLE, {"inputs": [
        t("INPUT0", "INT32", [1, 16], [A16]), t("INPUT1", "INT32", [1, 16], [B16])]}))
    add(http_json("infer_simple_json_deeply_nested_data", SIMPLE, {"inputs": [
        t("INPUT0", "INT32", [1, 16], [[[x] for x in A16]]), t("INPUT1", "INT32", [1, 16], B16)]}))
    add(http_json("infer_simple_explicit_output", SIMPLE, {"inputs": simple_inputs(), "outputs": [{"name": "OUTPUT1"}]}))
    add(http_json("infer_simple_explicit_outputs_order", SIMPLE,
                  {"inputs": simple_inputs(), "outputs": [{"name": "OUTPUT1"}, {"name": "OUTPUT0"}]}))
    add(http_json("infer_simple_request_id", SIMPLE, {"id": "my-request-42", "inputs": simple_inputs()}))
    add(http_json("infer_simple_empty_request_id", SIMPLE, {"id": "", "inputs": simple_inputs()}))
    add(http_json("infer_simple_parameters", SIMPLE,
                  {"id": "p1", "parameters": {"custom_string": "x", "custom_int": 3, "custom_bool": True},
                   "inputs": simple_inputs()}))
    add(http_json("infer_simple_binary_output_all", SIMPLE,
                  {"inputs": simple_inputs(), "parameters": {"binary_data_output": True}}))
    add(http_json("infer_simple_binary_output_one", SIMPLE, {"inputs": simple_inputs(), "outputs": [
        {"name": "OUTPUT0", "parameters": {"binary_data": True}}, {"name": "OUTPUT1", "parameters": {"binary_data": False}}]}))
    add(http_json("infer_simple_binary_output_override", SIMPLE, {
        "inputs": simple_inputs(), "parameters": {"binary_data_output": True},
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": False}}, {"name": "OUTPUT1"}]}))
    body, hdr = binary_body({"inputs": [t("INPUT0", "INT32", [1, 16], binary_data_size=64),
                                        t("INPUT1", "INT32", [1, 16], binary_data_size=64)]}, I32(A16), I32(B16))
    add(http_raw("infer_simple_binary_input", SIMPLE, body, headers=hdr))
    body, hdr = binary_body({"inputs": [t("INPUT0", "INT32", [1, 16], binary_data_size=64),
                                        t("INPUT1", "INT32", [1, 16], B16)],
                             "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]}, I32(A16))
    add(http_raw("infer_simple_mixed_binary_json_input", SIMPLE, body, headers=hdr))
    body, hdr = binary_body({"inputs": [t("INPUT0", "INT32", [1, 16], binary_data_size=64),
                                        t("INPUT1", "INT32", [1, 16], binary_data_size=64)]}, I32(A16), I32(B16))
    hdr = dict(hdr, **{"Content-Type": "application/json"})
    add(http_raw("infer_simple_binary_input_json_content_type", SIMPLE, body, headers=hdr))
    for n in (2, 8):
        add(http_json(f"infer_simple_batch_{n}", SIMPLE, {"inputs": simple_inputs(n)}))
    add(http_json("infer_simple_int32_wraps", SIMPLE, {"inputs": simple_inputs(1, [2**31 - 1] * 16, [1] * 16)}))
    add(http_json("infer_simple_versioned_path", "/v2/models/simple/versions/1/infer", {"inputs": simple_inputs()}))
    add(http_json("infer_simple_int8", "/v2/models/simple_int8/infer", {"inputs": [
        t("INPUT0", "INT8", [1, 16], [127, -128] + list(range(14))), t("INPUT1", "INT8", [1, 16], [1] * 16)]}))
    add(http_json("infer_add_sub_fp32", "/v2/models/add_sub/infer", {"inputs": [
        t("INPUT0", "FP32", [4], [1.5, 2.25, -3.0, 0.1]), t("INPUT1", "FP32", [4], [0.5, 0.25, 1.0, 0.2])]}))
    add(http_json("infer_add_sub_fp32_int_literals", "/v2/models/add_sub/infer", {"inputs": [
        t("INPUT0", "FP32", [4], [1, 2, 3, 4]), t("INPUT1", "FP32", [4], [1, 1, 1, 1])]}))
    body, hdr = binary_body({"inputs": [t("INPUT0", "FP32", [4], binary_data_size=16),
                                        t("INPUT1", "FP32", [4], binary_data_size=16)],
                             "parameters": {"binary_data_output": True}}, F32([1, 2, 3, 4]), F32([0.5] * 4))
    add(http_raw("infer_add_sub_binary", "/v2/models/add_sub/infer", body, headers=hdr))
    add(http_json("infer_identity_fp32_dynamic_3", "/v2/models/identity_fp32/infer",
                  {"inputs": [t("INPUT0", "FP32", [1, 3], [0.5, -1.0, 3.25])]}))
    add(http_json("infer_identity_fp32_dynamic_2x5", "/v2/models/identity_fp32/infer",
                  {"inputs": [t("INPUT0", "FP32", [2, 5], [float(i) for i in range(10)])]}))
    add(http_json("infer_identity_fp32_zero_length", "/v2/models/identity_fp32/infer",
                  {"inputs": [t("INPUT0", "FP32", [1, 0], [])]}))
    body = F32([1.0, 2.0, 3.0, 4.0])
    add(http_raw("infer_identity_fp32_header_length_zero", "/v2/models/identity_fp32/infer", body,
                 headers={"Inference-Header-Content-Length": "0", "Content-Type": "application/octet-stream"},
                 note="0-length header: the whole body is the single input's raw bytes"))
    add(http_raw("infer_add_sub_header_length_zero", "/v2/models/add_sub/infer", F32([1.0] * 4),
                 headers={"Inference-Header-Content-Length": "0", "Content-Type": "application/octet-stream"}))
    add(http_json("infer_simple_string_json", "/v2/models/simple_string/infer", {"inputs": [
        t("INPUT0", "BYTES", [1, 16], [str(x) for x in A16]), t("INPUT1", "BYTES", [1, 16], ["1"] * 16)]}))
    body, hdr = binary_body({"inputs": [t("INPUT0", "BYTES", [1, 16], binary_data_size=len(bytes_elems(*[str(x).encode() for x in A16]))),
                                        t("INPUT1", "BYTES", [1, 16], ["2"] * 16)],
                             "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}, {"name": "OUTPUT1"}]},
                            bytes_elems(*[str(x).encode() for x in A16]))
    add(http_raw("infer_simple_string_binary", "/v2/models/simple_string/infer", body, headers=hdr))
    add(http_json("infer_simple_string_not_a_number", "/v2/models/simple_string/infer", {"inputs": [
        t("INPUT0", "BYTES", [1, 16], ["x"] * 16), t("INPUT1", "BYTES", [1, 16], ["1"] * 16)]},
        note="the model's own error (non-integer string); despina's text may differ"))
    add(http_json("infer_simple_identity_unicode", "/v2/models/simple_identity/infer", {"inputs": [
        t("INPUT0", "BYTES", [1, 4], ["héllo", "", "日本語", "a b\tc\n"])]}))
    add(http_json("infer_simple_identity_binary_output", "/v2/models/simple_identity/infer", {
        "inputs": [t("INPUT0", "BYTES", [2, 2], ["a", "", "ünï", "zz"])],
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]}))
    raw = bytes_elems(b"\x00\xff\xfe", b"", b"plain")
    body, hdr = binary_body({"inputs": [t("INPUT0", "BYTES", [1, 3], binary_data_size=len(raw))],
                             "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]}, raw)
    add(http_raw("infer_simple_identity_raw_bytes", "/v2/models/simple_identity/infer", body, headers=hdr))
    body, hdr = binary_body({"inputs": [t("INPUT0", "BYTES", [1, 3], binary_data_size=len(raw))]}, raw)
    add(http_raw("infer_simple_identity_raw_bytes_json_output", "/v2/models/simple_identity/infer", body, headers=hdr,
                 note="non-UTF-8 BYTES element asked back as JSON"))
    add(http_json("infer_simple_identity_number_elements", "/v2/models/simple_identity/infer",
                  {"inputs": [t("INPUT0", "BYTES", [1, 2], [1, 2])]}))
    scores = [0.1, 0.9, 0.3, 0.7, 0.0, 0.5, -1.0, 0.2]
    classify = "/v2/models/classify_fp32/infer"
    add(http_json("infer_classify_3", classify, {
        "inputs": [t("INPUT0", "FP32", [1, 8], scores)],
        "outputs": [{"name": "OUTPUT0", "parameters": {"classification": 3}}]},
        note="tritonclient's class_count travels as the output parameter 'classification'"))
    add(http_json("infer_classify_batch_2", classify, {
        "inputs": [t("INPUT0", "FP32", [2, 8], scores + [8, 7, 6, 5, 4, 3, 2, 1])],
        "outputs": [{"name": "OUTPUT0", "parameters": {"classification": 2}}]}))
    add(http_json("infer_classify_binary", classify, {
        "inputs": [t("INPUT0", "FP32", [1, 8], scores)],
        "outputs": [{"name": "OUTPUT0", "parameters": {"classification": 2, "binary_data": True}}]}))
    add(http_json("infer_classify_over_size", classify, {
        "inputs": [t("INPUT0", "FP32", [1, 8], scores)],
        "outputs": [{"name": "OUTPUT0", "parameters": {"classification": 20}}]}))
    add(http_json("infer_classify_ties", classify, {
        "inputs": [t("INPUT0", "FP32", [1, 8], [1.0, 2.0, 2.0, 1.0, 0.0, 2.0, 0.0, 0.0])],
        "outputs": [{"name": "OUTPUT0", "parameters": {"classification": 4}}]}))
    add(http_json("infer_classify_zero", classify, {
        "inputs": [t("INPUT0", "FP32", [1, 8], scores)],
        "outputs": [{"name": "OUTPUT0", "parameters": {"classification": 0}}]}))
    add(http_json("infer_classify_negative", classify, {
        "inputs": [t("INPUT0", "FP32", [1, 8], scores)],
        "outputs": [{"name": "OUTPUT0", "parameters": {"classification": -1}}]}))
    add(http_json("infer_classify_not_int", classify, {
        "inputs": [t("INPUT0", "FP32", [1, 8], scores)],
        "outputs": [{"name": "OUTPUT0", "parameters": {"classification": "3"}}]}))
    add(http_json("infer_classify_class_count_key_ignored", classify, {
        "inputs": [t("INPUT0", "FP32", [1, 8], scores)],
        "outputs": [{"name": "OUTPUT0", "parameters": {"class_count": 3}}]},
        note="'class_count' is not the wire name: Triton ignores it and returns the raw tensor"))
    add(http_json("infer_classify_unlabelled_output", SIMPLE, {
        "inputs": simple_inputs(), "outputs": [{"name": "OUTPUT0", "parameters": {"classification": 2}}]},
        note="classification of an output without labels: 'value:index' strings"))
    add(http_json("infer_ensemble_simple", "/v2/models/ensemble_simple/infer", {"inputs": simple_inputs(1, A16, [3] * 16)}))
    add(http_json("infer_ensemble_simple_batch_2", "/v2/models/ensemble_simple/infer", {"inputs": simple_inputs(2, A16, [3] * 16)}))
    add(http_json("infer_ensemble_simple_wrong_shape", "/v2/models/ensemble_simple/infer", {"inputs": [
        t("INPUT0", "INT32", [1, 8], A16[:8]), t("INPUT1", "INT32", [1, 8], A16[:8])]}))
    for v in (1, 2):
        add(http_json(f"infer_versioned_v{v}", f"/v2/models/versioned/versions/{v}/infer",
                      {"inputs": [t("INPUT0", "INT32", [1, 3], [10, 20, 30])]}))
    add(http_json("infer_versioned_v3_not_served", "/v2/models/versioned/versions/3/infer",
                  {"inputs": [t("INPUT0", "INT32", [1, 3], [10, 20, 30])]}))

    # -- sequences (replayed in order; each sequence is closed by its last case)
    seq = "/v2/models/sequence_accumulate/infer"
    one = lambda v: [t("INPUT", "INT32", [1, 1], [v])]  # noqa: E731
    add(http_json("sequence_start", seq, {"inputs": one(5), "parameters": {"sequence_id": 7001, "sequence_start": True}}))
    add(http_json("sequence_continue", seq, {"inputs": one(3), "parameters": {"sequence_id": 7001}}))
    add(http_json("sequence_end", seq, {"inputs": one(2), "parameters": {"sequence_id": 7001, "sequence_end": True}}))
    add(http_json("sequence_after_end_without_start", seq, {"inputs": one(1), "parameters": {"sequence_id": 7001}}))
    add(http_json("sequence_string_id_start_end", seq, {"inputs": one(4), "parameters": {
        "sequence_id": "ref-seq-a", "sequence_start": True, "sequence_end": True}}))
    add(http_json("sequence_unknown_id_without_start", seq, {"inputs": one(1), "parameters": {"sequence_id": 7999}}))
    add(http_json("sequence_missing_id", seq, {"inputs": one(1)}))
    add(http_json("sequence_id_zero_with_start", seq, {"inputs": one(1), "parameters": {"sequence_id": 0, "sequence_start": True}}))
    add(http_json("sequence_id_wrong_type", seq, {"inputs": one(1), "parameters": {"sequence_id": 1.5, "sequence_start": True}}))
    add(http_json("sequence_start_wrong_type", seq, {"inputs": one(1), "parameters": {"sequence_id": 7002, "sequence_start": "yes"}}))
    add(http_json("sequence_id_on_non_sequence_model", SIMPLE, {"inputs": simple_inputs(), "parameters": {
        "sequence_id": 11, "sequence_start": True, "sequence_end": True}}))

    # -- infer: errors through the request validation
    bad = lambda name, body, path=SIMPLE, note="": add(http_json(name, path, body, note=note))  # noqa: E731
    bad("infer_wrong_shape", {"inputs": [t("INPUT0", "INT32", [1, 15], A16[:15]), t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_wrong_rank", {"inputs": [t("INPUT0", "INT32", [1, 4, 4], A16), t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_wrong_dtype", {"inputs": [t("INPUT0", "FP32", [1, 16], [float(x) for x in A16]),
                                         t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_unknown_dtype", {"inputs": [t("INPUT0", "INT31", [1, 16], A16), t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_bool_to_int32", {"inputs": [t("INPUT0", "BOOL", [1, 16], [True, False] * 8),
                                           t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_fp16_to_fp32", {"inputs": [t("INPUT0", "FP16", [4], [1.0, 2.0, 3.0, 4.0]),
                                          t("INPUT1", "FP32", [4], [1.0] * 4)]}, "/v2/models/add_sub/infer")
    bad("infer_bytes_to_int32", {"inputs": [t("INPUT0", "BYTES", [1, 16], [str(x) for x in A16]),
                                            t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_missing_input", {"inputs": [t("INPUT0", "INT32", [1, 16], A16)]})
    bad("infer_no_inputs", {"inputs": []})
    bad("infer_inputs_absent", {"outputs": [{"name": "OUTPUT0"}]})
    bad("infer_unknown_input", {"inputs": simple_inputs() + [t("INPUT2", "INT32", [1, 16], B16)]})
    bad("infer_duplicate_input", {"inputs": simple_inputs() + [t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_unknown_output", {"inputs": simple_inputs(), "outputs": [{"name": "OUTPUT9"}]})
    bad("infer_batch_over_max", {"inputs": simple_inputs(9)})
    bad("infer_batch_zero", {"inputs": [t("INPUT0", "INT32", [0, 16], []), t("INPUT1", "INT32", [0, 16], [])]})
    bad("infer_unbatched_shape_to_batching_model", {"inputs": [t("INPUT0", "INT32", [16], A16), t("INPUT1", "INT32", [16], B16)]},
        note="[16] reads as batch 16 > max_batch_size 8")
    bad("infer_batched_shape_to_non_batching_model", {"inputs": [
        t("INPUT0", "FP32", [1, 4], [1.0] * 4), t("INPUT1", "FP32", [1, 4], [1.0] * 4)]}, "/v2/models/add_sub/infer")
    bad("infer_negative_dim", {"inputs": [t("INPUT0", "FP32", [1, -1], [])]}, "/v2/models/identity_fp32/infer")
    bad("infer_batch_mismatch_between_inputs", {"inputs": [t("INPUT0", "INT32", [1, 16], A16), t("INPUT1", "INT32", [2, 16], B16 * 2)]})
    bad("infer_data_count_short", {"inputs": [t("INPUT0", "INT32", [1, 16], A16[:15]), t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_data_count_long", {"inputs": [t("INPUT0", "INT32", [1, 16], A16 + [16]), t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_data_missing", {"inputs": [t("INPUT0", "INT32", [1, 16]), t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_data_string_for_int32", {"inputs": [t("INPUT0", "INT32", [1, 16], ["AAAA"] * 16), t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_data_base64_string", {"inputs": [t("INPUT0", "INT32", [1, 16], base64.b64encode(I32(A16)).decode()),
                                                t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_data_float_for_int32", {"inputs": [t("INPUT0", "INT32", [1, 16], [0.5] * 16), t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_data_bool_for_int32", {"inputs": [t("INPUT0", "INT32", [1, 16], [True] * 16), t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_data_null_element", {"inputs": [t("INPUT0", "INT32", [1, 16], [None] * 16), t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_data_int32_out_of_range", {"inputs": [t("INPUT0", "INT32", [1, 16], [2**31] * 16), t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_data_int8_out_of_range", {"inputs": [t("INPUT0", "INT8", [1, 16], [200] * 16),
                                                    t("INPUT1", "INT8", [1, 16], [1] * 16)]}, "/v2/models/simple_int8/infer")
    bad("infer_data_negative_for_uint", {"inputs": [t("INPUT0", "UINT8", [1, 16], [-1] * 16),
                                                    t("INPUT1", "INT8", [1, 16], [1] * 16)]}, "/v2/models/simple_int8/infer")
    bad("infer_data_string_for_fp32", {"inputs": [t("INPUT0", "FP32", [4], ["1.0"] * 4),
                                                  t("INPUT1", "FP32", [4], [1.0] * 4)]}, "/v2/models/add_sub/infer")
    bad("infer_input_missing_name", {"inputs": [{"datatype": "INT32", "shape": [1, 16], "data": A16}, t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_input_missing_datatype", {"inputs": [{"name": "INPUT0", "shape": [1, 16], "data": A16}, t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_input_missing_shape", {"inputs": [{"name": "INPUT0", "datatype": "INT32", "data": A16}, t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_shape_not_array", {"inputs": [t("INPUT0", "INT32", "1,16", A16), t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_inputs_not_array", {"inputs": {"name": "INPUT0"}})
    bad("infer_output_missing_name", {"inputs": simple_inputs(), "outputs": [{"parameters": {"binary_data": True}}]})
    bad("infer_binary_data_size_without_header", {"inputs": [t("INPUT0", "INT32", [1, 16], binary_data_size=64),
                                                            t("INPUT1", "INT32", [1, 16], B16)]})
    bad("infer_json_top_level_array", [1, 2, 3])
    add(http_raw("infer_json_null_body", SIMPLE, b"null"))
    bad("infer_unknown_model", {"inputs": simple_inputs()}, "/v2/models/nope/infer")
    bad("infer_unknown_version", {"inputs": simple_inputs()}, "/v2/models/simple/versions/9/infer")
    bad("infer_decoupled_model", {"inputs": [t("IN", "INT32", [1], [2])]}, "/v2/models/square_int32/infer",
        note="HTTP infer on a decoupled model: 501")
    bad("infer_decoupled_model_wrong_input", {"inputs": [t("X", "INT32", [1], [2])]}, "/v2/models/square_int32/infer")
    bad("infer_priority_parameter", {"inputs": simple_inputs(), "parameters": {"priority": 1}})
    bad("infer_timeout_parameter", {"inputs": simple_inputs(), "parameters": {"timeout": 10000000}})
    bad("infer_reserved_parameter_sequence_on_input", {"inputs": [
        t("INPUT0", "INT32", [1, 16], A16, custom=1), t("INPUT1", "INT32", [1, 16], B16)]})

    # -- infer: malformed bodies
    add(http_raw("infer_invalid_json", SIMPLE, b'{"inputs": [', headers={"Content-Type": "application/json"}))
    add(http_raw("infer_empty_body", SIMPLE, b""))
    add(http_raw("infer_not_utf8_bytes_element", "/v2/models/simple_identity/infer",
                 b'{"inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [1, 1], "data": ["a\xff\xfeb"]}]}'))
    add(http_raw("infer_not_utf8_input_name", "/v2/models/simple_identity/infer",
                 b'{"inputs": [{"name": "INPUT\xff", "datatype": "BYTES", "shape": [1, 1], "data": ["a"]}]}'))
    add(http_raw("infer_json_trailing_garbage", SIMPLE, json.dumps({"inputs": simple_inputs()}).encode() + b" xyz"))
    body, hdr = binary_body({"inputs": [t("INPUT0", "INT32", [1, 16], binary_data_size=64),
                                        t("INPUT1", "INT32", [1, 16], binary_data_size=64)]}, I32(A16), I32(B16)[:32])
    add(http_raw("infer_binary_truncated", SIMPLE, body, headers=hdr))
    body, hdr = binary_body({"inputs": [t("INPUT0", "INT32", [1, 16], binary_data_size=64),
                                        t("INPUT1", "INT32", [1, 16], binary_data_size=64)]}, I32(A16), I32(B16), b"\x00" * 8)
    add(http_raw("infer_binary_trailing_bytes", SIMPLE, body, headers=hdr))
    body, hdr = binary_body({"inputs": [t("INPUT0", "INT32", [1, 16], binary_data_size=60),
                                        t("INPUT1", "INT32", [1, 16], binary_data_size=68)]}, I32(A16), I32(B16))
    add(http_raw("infer_binary_size_mismatch", SIMPLE, body, headers=hdr, note="byte size does not match the shape"))
    body, hdr = binary_body({"inputs": [t("INPUT0", "INT32", [1, 16], binary_data_size=60),
                                        t("INPUT1", "INT32", [1, 16], binary_data_size=60)]}, I32(A16)[:60], I32(B16)[:60])
    add(http_raw("infer_binary_size_short_consistent", SIMPLE, body, headers=hdr))
    body, hdr = binary_body({"inputs": [t("INPUT0", "INT32", [1, 16], binary_data_size=64),
                                        t("INPUT1", "INT32", [1, 16], binary_data_size=64)]}, I32(A16), I32(B16), header_len=100000)
    add(http_raw("infer_header_length_beyond_body", SIMPLE, body, headers=hdr))
    body, hdr = binary_body({"inputs": [t("INPUT0", "INT32", [1, 16], binary_data_size=64),
                                        t("INPUT1", "INT32", [1, 16], binary_data_size=64)]}, I32(A16), I32(B16), header_len=20)
    add(http_raw("infer_header_length_too_short", SIMPLE, body, headers=hdr))
    body, hdr = binary_body({"inputs": simple_inputs()})
    hdr["Inference-Header-Content-Length"] = "abc"
    add(http_raw("infer_header_length_not_a_number", SIMPLE, body, headers=hdr))
    hdr = dict(hdr, **{"Inference-Header-Content-Length": "-5"})
    add(http_raw("infer_header_length_negative", SIMPLE, body, headers=hdr))
    body, hdr = binary_body({"inputs": [t("INPUT0", "INT32", [1, 16], binary_data_size=64, binary_data=True),
                                        t("INPUT1", "INT32", [1, 16], B16)]}, I32(A16))
    add(http_raw("infer_binary_data_flag_on_input", SIMPLE, body, headers=hdr))
    body, hdr = binary_body({"inputs": [t("INPUT0", "INT32", [1, 16], A16, binary_data_size=64),
                                        t("INPUT1", "INT32", [1, 16], B16)]}, I32(A16))
    add(http_raw("infer_binary_and_json_data_both", SIMPLE, body, headers=hdr))
    raw = struct.pack("<I", 10) + b"abc"
    body, hdr = binary_body({"inputs": [t("INPUT0", "BYTES", [1, 1], binary_data_size=len(raw))]}, raw)
    add(http_raw("infer_bytes_element_length_overrun", "/v2/models/simple_identity/infer", body, headers=hdr))
    raw = bytes_elems(b"a", b"b")
    body, hdr = binary_body({"inputs": [t("INPUT0", "BYTES", [1, 3], binary_data_size=len(raw))]}, raw)
    add(http_raw("infer_bytes_element_count_short", "/v2/models/simple_identity/infer", body, headers=hdr))

    # -- compression of request and response bodies
    plain = json.dumps({"inputs": simple_inputs()}).encode()
    add(http_raw("infer_request_gzip", SIMPLE, gzip.compress(plain, mtime=0), headers={"Content-Encoding": "gzip"}))
    add(http_raw("infer_request_deflate", SIMPLE, zlib.compress(plain), headers={"Content-Encoding": "deflate"}))
    add(http_raw("infer_request_bad_gzip", SIMPLE, b"not gzip at all", headers={"Content-Encoding": "gzip"}))
    add(http_raw("infer_request_unknown_encoding", SIMPLE, plain, headers={"Content-Encoding": "br"}))
    add(http_raw("infer_response_gzip", SIMPLE, plain, headers={"Accept-Encoding": "gzip"}))
    add(http_raw("infer_response_deflate", SIMPLE, plain, headers={"Accept-Encoding": "deflate"}))
    add(http_raw("infer_response_identity_encoding", SIMPLE, plain, headers={"Accept-Encoding": "identity"}))

    # -- generate extension (decoupled model streams over SSE)
    add(http_json("generate_simple", "/v2/models/simple/generate", {"INPUT0": A16, "INPUT1": B16}))
    add(http_json("generate_add_sub", "/v2/models/add_sub/generate", {"INPUT0": [1, 2, 3, 4], "INPUT1": [0.5] * 4}))
    add(http_json("generate_decoupled_non_stream", "/v2/models/square_int32/generate", {"IN": 3}))
    add(http_json("generate_stream_square_3", "/v2/models/square_int32/generate_stream", {"IN": 3}))
    add(http_json("generate_stream_square_0", "/v2/models/square_int32/generate_stream", {"IN": 0}))
    add(http_json("generate_stream_square_error", "/v2/models/square_int32/generate_stream", {"IN": -1}))
    add(http_json("generate_stream_simple", "/v2/models/simple/generate_stream", {"INPUT0": A16, "INPUT1": B16}))
    add(http_json("generate_missing_input", "/v2/models/simple/generate", {"INPUT0": A16}))
    add(http_json("generate_unknown_model", "/v2/models/nope/generate", {"IN": 1}))
    return cases


# ---------------------------------------------------------------- gRPC catalogue
def g_tensor(name, datatype, shape, contents=None):
    d = {"name": name, "datatype": datatype, "shape": shape}
    if contents is not None:
        d["contents"] = contents
    return d


def g_infer(model, inputs, raw=(), outputs=None, version="", rid="", params=None):
    d = {"model_name": model, "model_version": version, "inputs": inputs}
    if rid:
        d["id"] = rid
    if outputs is not None:
        d["outputs"] = outputs
    if params:
        d["parameters"] = params
    if raw:
        d["raw_input_contents"] = [base64.b64encode(r).decode() for r in raw]
    return d


def gcase(name, rpc, request, note=""):
    return {"name": name, "note": note, "rpc": rpc, "request": request}


def g_simple(batch=1, a=A16, b=B16):
    return [g_tensor("INPUT0", "INT32", [batch, 16], {"int_contents": a * batch}),
            g_tensor("INPUT1", "INT32", [batch, 16], {"int_contents": b * batch})]


def grpc_catalogue():
    c = []
    add = c.append
    add(gcase("server_live", "ServerLive", {}))
    add(gcase("server_ready", "ServerReady", {}))
    add(gcase("server_metadata", "ServerMetadata", {}))
    for name, v in (("simple", ""), ("simple", "1"), ("simple", "2"), ("nope", ""),
                    ("versioned", "1"), ("versioned", "2"), ("versioned", "3")):
        add(gcase(f"model_ready_{name}_{v or 'default'}", "ModelReady", {"name": name, "version": v}))
    for m in SHARED_MODELS:
        add(gcase(f"model_metadata_{m}", "ModelMetadata", {"name": m}))
    add(gcase("model_metadata_unknown", "ModelMetadata", {"name": "nope"}))
    add(gcase("model_metadata_versioned_v3", "ModelMetadata", {"name": "versioned", "version": "3"}))
    add(gcase("model_metadata_versioned_v2", "ModelMetadata", {"name": "versioned", "version": "2"}))
    for m in SHARED_MODELS:
        add(gcase(f"model_config_{m}", "ModelConfig", {"name": m}))
    add(gcase("model_config_unknown", "ModelConfig", {"name": "nope"}))
    add(gcase("model_config_versioned_v3", "ModelConfig", {"name": "versioned", "version": "3"}))
    add(gcase("repository_index", "RepositoryIndex", {}))
    add(gcase("repository_index_ready", "RepositoryIndex", {"ready": True}))
    add(gcase("load_missing_model", "RepositoryModelLoad", {"model_name": "does_not_exist"}))
    add(gcase("unload_unknown_model", "RepositoryModelUnload", {"model_name": "does_not_exist"}))
    add(gcase("stats_simple", "ModelStatistics", {"name": "simple"}))
    add(gcase("stats_unknown", "ModelStatistics", {"name": "nope"}))
    add(gcase("stats_versioned_v3", "ModelStatistics", {"name": "versioned", "version": "3"}))
    add(gcase("stats_all", "ModelStatistics", {}))
    add(gcase("shm_status", "SystemSharedMemoryStatus", {}))
    add(gcase("shm_status_unknown", "SystemSharedMemoryStatus", {"name": "nope"}))
    add(gcase("shm_register_missing_key", "SystemSharedMemoryRegister",
              {"name": "r0", "key": "/despina_ref_does_not_exist", "offset": "0", "byte_size": "64"}))
    add(gcase("shm_unregister_unknown", "SystemSharedMemoryUnregister", {"name": "nope"}))
    add(gcase("cudashm_status", "CudaSharedMemoryStatus", {}))
    add(gcase("cudashm_register", "CudaSharedMemoryRegister",
              {"name": "c0", "raw_handle": base64.b64encode(bytes(64)).decode(), "device_id": 0, "byte_size": "64"}))
    add(gcase("cudashm_unregister_unknown", "CudaSharedMemoryUnregister", {"name": "nope"}))
    add(gcase("trace_setting", "TraceSetting", {}))
    add(gcase("trace_setting_unknown_model", "TraceSetting", {"model_name": "nope"}))
    add(gcase("log_settings", "LogSettings", {}))

    gi = lambda name, req, note="": add(gcase(name, "ModelInfer", req, note))  # noqa: E731
    gi("infer_simple_contents", g_infer("simple", g_simple()))
    gi("infer_simple_raw", g_infer("simple", [g_tensor("INPUT0", "INT32", [1, 16]), g_tensor("INPUT1", "INT32", [1, 16])],
                                   raw=(I32(A16), I32(B16))))
    gi("infer_simple_request_id", g_infer("simple", g_simple(), rid="grpc-id-1"))
    gi("infer_simple_explicit_output", g_infer("simple", g_simple(), outputs=[{"name": "OUTPUT1"}]))
    gi("infer_simple_batch_8", g_infer("simple", g_simple(8)))
    gi("infer_simple_parameters", g_infer("simple", g_simple(), params={"custom": {"string_param": "x"}, "n": {"int64_param": "3"}}))
    gi("infer_simple_versioned_v1", g_infer("versioned", [g_tensor("INPUT0", "INT32", [1, 2], {"int_contents": [5, 6]})], version="1"))
    gi("infer_simple_versioned_v2", g_infer("versioned", [g_tensor("INPUT0", "INT32", [1, 2], {"int_contents": [5, 6]})], version="2"))
    gi("infer_add_sub", g_infer("add_sub", [g_tensor("INPUT0", "FP32", [4], {"fp32_contents": [1.5, 2, 3, 4]}),
                                            g_tensor("INPUT1", "FP32", [4], {"fp32_contents": [0.5, 1, 1, 1]})]))
    gi("infer_simple_int8", g_infer("simple_int8", [g_tensor("INPUT0", "INT8", [1, 16], {"int_contents": [127] + list(range(15))}),
                                                    g_tensor("INPUT1", "INT8", [1, 16], {"int_contents": [1] * 16})]))
    gi("infer_simple_string", g_infer("simple_string", [
        g_tensor("INPUT0", "BYTES", [1, 16], {"bytes_contents": [base64.b64encode(str(x).encode()).decode() for x in A16]}),
        g_tensor("INPUT1", "BYTES", [1, 16], {"bytes_contents": [base64.b64encode(b"1").decode()] * 16})]))
    gi("infer_simple_identity_bytes", g_infer("simple_identity", [
        g_tensor("INPUT0", "BYTES", [1, 3], {"bytes_contents": [base64.b64encode(x).decode() for x in (b"\x00\xff", b"", "é".encode())]})]))
    gi("infer_identity_fp32_dynamic", g_infer("identity_fp32", [g_tensor("INPUT0", "FP32", [1, 5], {"fp32_contents": [1, 2, 3, 4, 5]})]))
    gi("infer_classify_class_count", g_infer("classify_fp32", [g_tensor("INPUT0", "FP32", [1, 8], {"fp32_contents": [0.1, 0.9, 0.3, 0.7, 0, 0.5, -1, 0.2]})],
                                             outputs=[{"name": "OUTPUT0", "parameters": {"classification": {"int64_param": "3"}}}]))
    gi("infer_ensemble_simple", g_infer("ensemble_simple", g_simple(1, A16, [3] * 16)))
    gi("infer_sequence_start_end", g_infer("sequence_accumulate", [g_tensor("INPUT", "INT32", [1, 1], {"int_contents": [9]})],
                                           params={"sequence_id": {"int64_param": "8001"}, "sequence_start": {"bool_param": True},
                                                   "sequence_end": {"bool_param": True}}))
    gi("infer_sequence_string_id", g_infer("sequence_accumulate", [g_tensor("INPUT", "INT32", [1, 1], {"int_contents": [9]})],
                                           params={"sequence_id": {"string_param": "ref-grpc-seq"}, "sequence_start": {"bool_param": True},
                                                   "sequence_end": {"bool_param": True}}))
    gi("infer_sequence_unknown_without_start", g_infer("sequence_accumulate", [g_tensor("INPUT", "INT32", [1, 1], {"int_contents": [1]})],
                                                       params={"sequence_id": {"int64_param": "8999"}}))
    gi("infer_sequence_missing_id", g_infer("sequence_accumulate", [g_tensor("INPUT", "INT32", [1, 1], {"int_contents": [1]})]))
    # errors
    gi("infer_unknown_model", g_infer("nope", g_simple()))
    gi("infer_unknown_version", g_infer("simple", g_simple(), version="9"))
    gi("infer_versioned_v3_not_served", g_infer("versioned", [g_tensor("INPUT0", "INT32", [1, 2], {"int_contents": [5, 6]})], version="3"))
    gi("infer_wrong_shape", g_infer("simple", [g_tensor("INPUT0", "INT32", [1, 15], {"int_contents": A16[:15]}),
                                               g_tensor("INPUT1", "INT32", [1, 16], {"int_contents": B16})]))
    gi("infer_wrong_dtype", g_infer("simple", [g_tensor("INPUT0", "FP32", [1, 16], {"fp32_contents": A16}),
                                               g_tensor("INPUT1", "INT32", [1, 16], {"int_contents": B16})]))
    gi("infer_dtype_contents_mismatch", g_infer("simple", [g_tensor("INPUT0", "INT32", [1, 16], {"fp32_contents": A16}),
                                                           g_tensor("INPUT1", "INT32", [1, 16], {"int_contents": B16})]))
    gi("infer_missing_input", g_infer("simple", g_simple()[:1]))
    gi("infer_unknown_input", g_infer("simple", g_simple() + [g_tensor("INPUT2", "INT32", [1, 16], {"int_contents": B16})]))
    gi("infer_unknown_output", g_infer("simple", g_simple(), outputs=[{"name": "OUTPUT9"}]))
    gi("infer_batch_over_max", g_infer("simple", g_simple(9)))
    gi("infer_unbatched_shape", g_infer("simple", [g_tensor("INPUT0", "INT32", [16], {"int_contents": A16}),
                                                   g_tensor("INPUT1", "INT32", [16], {"int_contents": B16})]))
    gi("infer_contents_count_short", g_infer("simple", [g_tensor("INPUT0", "INT32", [1, 16], {"int_contents": A16[:10]}),
                                                        g_tensor("INPUT1", "INT32", [1, 16], {"int_contents": B16})]))
    gi("infer_no_data", g_infer("simple", [g_tensor("INPUT0", "INT32", [1, 16]), g_tensor("INPUT1", "INT32", [1, 16], {"int_contents": B16})]))
    gi("infer_raw_size_mismatch", g_infer("simple", [g_tensor("INPUT0", "INT32", [1, 16]), g_tensor("INPUT1", "INT32", [1, 16])],
                                          raw=(I32(A16)[:60], I32(B16))))
    gi("infer_raw_count_mismatch", g_infer("simple", [g_tensor("INPUT0", "INT32", [1, 16]), g_tensor("INPUT1", "INT32", [1, 16])],
                                           raw=(I32(A16),)))
    gi("infer_raw_and_contents_mixed", g_infer("simple", [g_tensor("INPUT0", "INT32", [1, 16], {"int_contents": A16}),
                                                          g_tensor("INPUT1", "INT32", [1, 16])], raw=(I32(B16),)))
    gi("infer_decoupled_unary", g_infer("square_int32", [g_tensor("IN", "INT32", [1], {"int_contents": [2]})]),
       note="unary ModelInfer on a decoupled model")
    gi("infer_bytes_raw_bad_length", g_infer("simple_identity", [g_tensor("INPUT0", "BYTES", [1, 1])],
                                             raw=(struct.pack("<I", 10) + b"abc",)))

    gs = lambda name, reqs, note="": add(gcase(name, "ModelStreamInfer", reqs, note))  # noqa: E731
    sq = lambda n, rid="": g_infer("square_int32", [g_tensor("IN", "INT32", [1], {"int_contents": [n]})], rid=rid)  # noqa: E731
    gs("stream_square_2", [sq(2, "s2")])
    gs("stream_square_0", [sq(0, "s0")])
    gs("stream_square_error", [sq(-1, "neg")], note="the model's own error inside the stream; text is model-specific")
    gs("stream_square_two_requests", [sq(1, "a"), sq(2, "b")])
    gs("stream_unknown_model", [g_infer("nope", g_simple(), rid="u")])
    gs("stream_wrong_input", [g_infer("square_int32", [g_tensor("X", "INT32", [1], {"int_contents": [2]})], rid="w")])
    gs("stream_simple_non_decoupled", [g_infer("simple", g_simple(), rid="plain")])
    gs("stream_square_empty_final", [dict(sq(2, "e"), parameters={"triton_enable_empty_final_response": {"bool_param": True}})])
    gs("stream_square_0_empty_final", [dict(sq(0, "e0"), parameters={"triton_enable_empty_final_response": {"bool_param": True}})])
    return c


# ---------------------------------------------------------------- recording
def send_http(host, case):
    h, p = host.rsplit(":", 1)
    conn = http.client.HTTPConnection(h, int(p), timeout=30)
    if "body_json" in case:
        body = json.dumps(case["body_json"]).encode() if case["body_json"] is not None else None
    elif "body_b64" in case:
        body = base64.b64decode(case["body_b64"])
    else:
        body = None
    conn.request(case["method"], case["path"], body=body, headers=case["headers"])
    r = conn.getresponse()
    raw = r.read()
    headers = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, headers, raw


def decode_http_body(headers, raw):
    """The answer's body in comparable form: decompressed, split at the binary header, JSON parsed."""
    enc = headers.get("content-encoding", "")
    if enc == "gzip":
        raw = gzip.decompress(raw)
    elif enc == "deflate":
        raw = zlib.decompress(raw)
    out = {}
    if "inference-header-content-length" in headers:
        n = int(headers["inference-header-content-length"])
        out["json"] = json.loads(raw[:n])
        out["binary_b64"] = base64.b64encode(raw[n:]).decode()
        return out
    if headers.get("content-type", "").startswith("text/event-stream"):
        events = []
        for block in raw.decode().split("\n\n"):
            if block.strip():
                assert block.startswith("data: "), block
                events.append(json.loads(block[len("data: "):]))
        out["sse"] = events
        return out
    if not raw:
        out["text"] = ""
        return out
    try:
        out["json"] = json.loads(raw)
    except ValueError:
        try:
            out["text"] = raw.decode()
        except UnicodeDecodeError:
            out["b64"] = base64.b64encode(raw).decode()
    return out


def record_http(host):
    out = []
    for case in http_catalogue():
        status, headers, raw = send_http(host, case)
        rec = dict(case)
        rec["response"] = {"status": status,
                           "headers": {k: headers[k] for k in RELEVANT_HEADERS if k in headers},
                           "body": sorted_keys(decode_http_body(headers, raw))}
        out.append(rec)
        print(f"http {case['name']}: {status}", file=sys.stderr)
    return out


def grpc_request(rpc, request):
    cls = {"ModelStreamInfer": pb.ModelInferRequest}.get(rpc) or getattr(pb, rpc + "Request")
    if rpc == "ModelStreamInfer":
        return [json_format.ParseDict(r, pb.ModelInferRequest()) for r in request]
    return json_format.ParseDict(request, cls())


def sorted_keys(value):
    """Protobuf maps have no order; sorting keeps the recording stable between runs."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value


def grpc_message_dict(msg):
    return sorted_keys(json_format.MessageToDict(msg, preserving_proto_field_name=True))


def call_grpc(stub, case, timeout=30):
    """Runs one gRPC case; returns {"code", "details", "response"} or {"code", "details", "responses"}."""
    req = grpc_request(case["rpc"], case["request"])
    method = getattr(stub, case["rpc"])
    if case["rpc"] == "ModelStreamInfer":
        responses = []
        try:
            for r in method(iter(req), timeout=timeout):
                responses.append(grpc_message_dict(r))
                if stream_finished(responses, len(req)):
                    break
        except grpc.RpcError as e:
            return {"code": e.code().name, "details": e.details(), "responses": responses}
        return {"code": "OK", "details": "", "responses": responses}
    try:
        resp = method(req, timeout=timeout)
    except grpc.RpcError as e:
        return {"code": e.code().name, "details": e.details()}
    return {"code": "OK", "details": "", "response": grpc_message_dict(resp)}


def stream_finished(responses, n_requests):
    """True once every request of the stream has had its final response (or an error)."""
    finals = 0
    for r in responses:
        if r.get("error_message"):
            finals += 1
            continue
        params = r.get("infer_response", {}).get("parameters", {})
        final = params.get("triton_final_response", {}).get("bool_param")
        if final is None or final:
            finals += 1
    return finals >= n_requests


def record_grpc(target):
    channel = grpc.insecure_channel(target)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    out = []
    for case in grpc_catalogue():
        rec = dict(case)
        rec["response"] = call_grpc(stub, case)
        out.append(rec)
        print(f"grpc {case['name']}: {rec['response']['code']}", file=sys.stderr)
    channel.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--http", default="127.0.0.1:18200")
    ap.add_argument("--grpc", default="127.0.0.1:18201")
    ap.add_argument("--out", default=str(OUT_DIR))
    args = ap.parse_args()
    status, _, raw = send_http(args.http, {"method": "GET", "path": "/v2", "headers": {}})
    meta = json.loads(raw)
    if status != 200 or meta.get("name") != "triton":
        sys.exit(f"{args.http} is not a Triton server: {status} {raw[:200]!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for fname, cases in (("http_cases.json", record_http(args.http)), ("grpc_cases.json", record_grpc(args.grpc))):
        doc = {"recorded_from": {"server": meta["name"], "version": meta["version"]}, "cases": cases}
        names = [c["name"] for c in cases]
        assert len(names) == len(set(names)), "duplicate case names"
        (out / fname).write_text(json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=False) + "\n")
        print(f"wrote {out / fname} ({len(cases)} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()
