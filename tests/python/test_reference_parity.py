"""Replays the raw requests recorded from the real Triton (scripts/record_reference.py) against the
server under test and checks that it answers the same: status code (HTTP) or status code name and
details (gRPC), the relevant headers and the body.

What legitimately differs between the two servers is removed by the normaliser below, and only that:
  * server identity: `name` and `version` of server metadata;
  * the backend: model metadata `platform` (Triton says "python" for its Python stand-ins; despina
    names its built-in backends), and model config `backend`, `platform`, `runtime` and
    `default_model_filename` ("model.py" on Triton), except for ensembles whose platform is compared;
  * history: statistics counters, durations and timestamps depend on what ran before, so each
    counter becomes a marker and `batch_stats`/`response_stats` (keyed by the batch sizes and response
    indices seen so far) are not compared; the names, versions and field layout are;
  * repository content: Triton's reference repository also holds `fail_init` and `simple_sequence`,
    which tests/models does not: index and statistics entries are filtered to the shared model names;
  * order of outputs: an infer response's outputs are compared by name (Triton lists an ensemble's
    outputs in its internal map order); binary output bytes travel with their output;
  * `Inference-Header-Content-Length` is compared for presence only: its value is the byte length of
    the JSON header, which depends on JSON formatting, and the body is split with it on both sides;
  * messages written by Triton's Python test models themselves (not by Triton) are compared by a
    prefix, listed in MESSAGE_PREFIX with the reason.
Against Triton itself (DESPINA_TEST_TARGET=triton) every case must pass, which checks the recording
and this normaliser.
"""
import base64
import copy
import json
import sys
from pathlib import Path

import grpc
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import record_reference as rec  # noqa: E402  (the recorder's own send/decode, so both sides read alike)

DATA = ROOT / "tests" / "data" / "triton_reference"
HTTP_CASES = json.loads((DATA / "http_cases.json").read_text())["cases"]
GRPC_CASES = json.loads((DATA / "grpc_cases.json").read_text())["cases"]
SHARED_MODELS = set(rec.SHARED_MODELS)

# Cases whose error text is written by a reference Python model, not by Triton: only the prefix is
# part of the contract (the rest is a Python exception text).
MESSAGE_PREFIX = {
    "infer_simple_string_not_a_number": "non-integer string input: ",
}
BACKEND_CONFIG_KEYS = ("backend", "runtime", "default_model_filename")

# Cases where despina answers differently on purpose: why, and what despina answers instead
# (checked when the server under test is despina; against Triton the recording is checked).
NOT_UTF8 = ("JSON must be UTF-8: Triton copies the bytes into its answer, making that invalid JSON; despina "
            "refuses the request with a clear 400 that points to the binary tensor data extension")
DESPINA_DIFFERS = {
    "infer_simple_identity_raw_bytes_json_output": (
        "Triton writes non-UTF-8 BYTES into a JSON body, which is then not valid JSON; despina sends that "
        "output as binary data instead, which tritonclient reads transparently",
        {"status": 200, "binary_output": "OUTPUT0"}),
    "infer_fp16_to_fp32": (
        "despina accepts FP16 and BF16 as JSON numbers (Triton refuses them); here the datatype then simply "
        "does not match the model's",
        {"status": 400, "error": "[request id: <id_unknown>] inference input 'INPUT0' data-type is 'FP16', "
                                 "but model 'add_sub' expects 'FP32'"}),
    "infer_not_utf8_bytes_element": (NOT_UTF8, {"status": 400, "error_prefix": "failed to parse the request JSON buffer: the request is not valid UTF-8"}),
    "infer_not_utf8_input_name": (NOT_UTF8, {"status": 400, "error_prefix": "failed to parse the request JSON buffer: the request is not valid UTF-8"}),
    "infer_header_length_not_a_number": (
        "Triton 2.51 reads a non-numeric Inference-Header-Content-Length as 0 and then fails on a raw request; "
        "despina says what is wrong, with newer Triton releases' message",
        {"status": 400, "error": "Unable to parse Inference-Header-Content-Length, got: abc"}),
    "infer_bytes_element_length_overrun": (
        "same status and message; despina checks BYTES framing in its shared validation, whose errors carry a "
        "JSON content type, where Triton's HTTP parser answers text/plain",
        {"status": 400, "error": "incomplete string data for inference input 'INPUT0', expecting string of length 10 but only 3 bytes available"}),
    "infer_request_bad_gzip": (
        "Triton 2.51 turns an undecodable gzip body into an empty raw request; despina says the body cannot be decompressed",
        {"status": 400, "error": "failed to decompress the request body (gzip): invalid gzip header"}),
}


# ---------------------------------------------------------------- normaliser
def norm_metadata(doc):
    if isinstance(doc, dict) and doc.get("platform") not in (None, "ensemble"):
        doc["platform"] = "<backend>"
    return doc


def norm_config(cfg):
    if isinstance(cfg, dict):
        for k in BACKEND_CONFIG_KEYS:
            cfg.pop(k, None)
        if cfg.get("platform") != "ensemble":
            cfg.pop("platform", None)
    return cfg


def norm_stats(doc):
    if not isinstance(doc, dict) or "model_stats" not in doc:
        return doc
    out = []
    for m in doc["model_stats"]:
        if m.get("name") not in SHARED_MODELS:
            continue
        m = dict(m)
        for k in ("last_inference", "inference_count", "execution_count"):
            m.pop(k, None)  # gRPC omits zeros; the values are history
        m["inference_stats"] = sorted(m.get("inference_stats", {}))
        for k in ("batch_stats", "response_stats"):
            m.pop(k, None)
        out.append(m)
    return {"model_stats": out}


def norm_index(entries):
    return [e for e in entries if e.get("name") in SHARED_MODELS]


def outputs_by_name(outputs, chunks):
    """Pairs each output with its bytes (binary tail or raw_output_contents) and sorts by name."""
    paired = []
    for i, o in enumerate(outputs):
        o = dict(o)
        if chunks is not None and i < len(chunks):
            o["<bytes>"] = chunks[i]
        paired.append(o)
    return sorted(paired, key=lambda o: o.get("name", ""))


def split_binary_tail(outputs, tail_b64):
    tail = base64.b64decode(tail_b64)
    chunks, pos = [], 0
    for o in outputs:
        n = o.get("parameters", {}).get("binary_data_size")
        if n is None:
            chunks.append(None)
            continue
        chunks.append(base64.b64encode(tail[pos:pos + n]).decode())
        pos += n
    assert pos == len(tail), f"binary tail has {len(tail)} bytes, outputs claim {pos}"
    return chunks


def norm_http_body(name, body):
    body = copy.deepcopy(body)
    if "b64" in body:
        # JSON that carries raw non-UTF-8 bytes (BYTES elements echoed as-is): parse it byte-transparently.
        raw = base64.b64decode(body.pop("b64"))
        try:
            body["json_bytes"] = json.loads(raw.decode("utf-8", "surrogateescape"))
        except ValueError:
            body["b64"] = base64.b64encode(raw).decode()
    for key in ("json", "json_bytes"):
        doc = body.get(key)
        if doc is None:
            continue
        if name == "server_metadata":
            doc["name"], doc["version"] = "<server>", "<version>"
        elif name.startswith("metadata_"):
            norm_metadata(doc)
        elif name.startswith("config_"):
            norm_config(doc)
        elif name.startswith("stats_"):
            body[key] = norm_stats(doc)
        elif name.startswith("repository_index") and isinstance(doc, list):
            body[key] = norm_index(doc)
        elif isinstance(doc, dict) and isinstance(doc.get("outputs"), list):
            chunks = split_binary_tail(doc["outputs"], body.pop("binary_b64")) if "binary_b64" in body else None
            doc["outputs"] = outputs_by_name(doc["outputs"], chunks)
        if name in MESSAGE_PREFIX and isinstance(doc, dict) and "error" in doc:
            prefix = MESSAGE_PREFIX[name]
            assert doc["error"].startswith(prefix), f"error {doc['error']!r} lacks the prefix {prefix!r}"
            doc["error"] = prefix + "..."
    return body


def norm_http_response(name, resp):
    headers = dict(resp["headers"])
    if "inference-header-content-length" in headers:
        headers["inference-header-content-length"] = "<present>"
    return {"status": resp["status"], "headers": headers, "body": norm_http_body(name, resp["body"])}


def norm_infer_response(r):
    if not isinstance(r, dict):
        return r
    r = dict(r)
    chunks = r.pop("raw_output_contents", None)
    if "outputs" in r:
        r["outputs"] = outputs_by_name(r["outputs"], chunks)
    elif chunks is not None:
        r["raw_output_contents"] = chunks
    return r


def norm_grpc_response(case, resp):
    resp = copy.deepcopy(resp)
    rpc, body = case["rpc"], resp.get("response")
    if rpc == "ServerMetadata" and body:
        body["name"], body["version"] = "<server>", "<version>"
    elif rpc == "ModelMetadata" and body:
        norm_metadata(body)
    elif rpc == "ModelConfig" and body:
        norm_config(body.get("config"))
    elif rpc == "ModelStatistics" and body:
        resp["response"] = norm_stats(body)
    elif rpc == "RepositoryIndex" and body:
        body["models"] = norm_index(body.get("models", []))
    elif rpc == "ModelInfer" and body:
        resp["response"] = norm_infer_response(body)
    elif rpc == "ModelStreamInfer":
        resp["responses"] = [dict(r, infer_response=norm_infer_response(r["infer_response"]))
                             if "infer_response" in r else r for r in resp["responses"]]
    return resp


# ---------------------------------------------------------------- the replay
@pytest.mark.parametrize("case", HTTP_CASES, ids=[c["name"] for c in HTTP_CASES])
def test_http_case(server, case):
    status, headers, raw = rec.send_http(server.http, case)
    got = {"status": status,
           "headers": {k: headers[k] for k in rec.RELEVANT_HEADERS if k in headers},
           "body": rec.decode_http_body(headers, raw)}
    if server.kind == "despina" and case["name"] in DESPINA_DIFFERS:
        _, expect = DESPINA_DIFFERS[case["name"]]
        assert status == expect["status"], got
        body = got["body"].get("json", {})
        if "error" in expect:
            assert body.get("error") == expect["error"], got
        if "error_prefix" in expect:
            assert body.get("error", "").startswith(expect["error_prefix"]), got
        if "binary_output" in expect:
            out = [o for o in body["outputs"] if o["name"] == expect["binary_output"]]
            assert out and "binary_data_size" in out[0].get("parameters", {}), got
        return
    want = norm_http_response(case["name"], case["response"])
    assert norm_http_response(case["name"], got) == want


@pytest.fixture(scope="module")
def grpc_stub(server):
    channel = grpc.insecure_channel(server.grpc)
    yield rec.pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


@pytest.mark.parametrize("case", GRPC_CASES, ids=[c["name"] for c in GRPC_CASES])
def test_grpc_case(grpc_stub, case):
    got = rec.call_grpc(grpc_stub, case)
    assert norm_grpc_response(case, got) == norm_grpc_response(case, case["response"])


def test_catalogue_covers_every_shared_model():
    """The recording must stay in step with tests/models: every shared model has metadata and config cases."""
    names = {c["name"] for c in HTTP_CASES}
    for m in SHARED_MODELS:
        assert f"metadata_{m}" in names and f"config_{m}" in names, m
    used = {c["path"].split("/")[3] for c in HTTP_CASES if c["path"].startswith("/v2/models/") and c["path"].count("/") > 3}
    assert used - SHARED_MODELS <= {"nope", "stats", "does_not_exist"}, used - SHARED_MODELS
