"""The statistics extension, Prometheus metrics, and the logging and trace settings, through
tritonclient (HTTP and gRPC) and a plain scrape of the metrics endpoint."""
import re
import urllib.request

import numpy as np
import pytest
from google.protobuf import json_format
from tritonclient.utils import InferenceServerException

from conftest import SHARED_MODELS, error_status, make_input, simple_inputs, simple_pair

METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$')
INFERENCE_FAMILIES = {
    "nv_inference_request_success": "counter",
    "nv_inference_request_failure": "counter",
    "nv_inference_count": "counter",
    "nv_inference_exec_count": "counter",
    "nv_inference_request_duration_us": "counter",
    "nv_inference_queue_duration_us": "counter",
    "nv_inference_compute_input_duration_us": "counter",
    "nv_inference_compute_infer_duration_us": "counter",
    "nv_inference_compute_output_duration_us": "counter",
    "nv_inference_pending_request_count": "gauge",
}


def stats(kind, c, model, version=""):
    """The one model_stats entry of `model` as a dict with int counters, for both protocols."""
    s = c.get_inference_statistics(model, version)
    if kind != "http":
        s = json_format.MessageToDict(s, preserving_proto_field_name=True)
    entries = s["model_stats"]
    assert len(entries) == 1
    e = entries[0]
    inf = e.get("inference_stats", {})
    return {
        "name": e["name"], "version": e["version"],
        "inference_count": int(e.get("inference_count", 0)),
        "execution_count": int(e.get("execution_count", 0)),
        "success": int(inf.get("success", {}).get("count", 0)),
        "fail": int(inf.get("fail", {}).get("count", 0)),
        "queue": int(inf.get("queue", {}).get("count", 0)),
        "compute_infer": int(inf.get("compute_infer", {}).get("count", 0)),
        "last_inference": int(e.get("last_inference", 0)),
    }


def scrape(server):
    with urllib.request.urlopen(server.metrics_url, timeout=30) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return r.read().decode()


def samples(text):
    """{(name, frozenset(labels)): value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        assert m, f"unparsable metrics line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def sample(s, name, **labels):
    return s.get((name, frozenset(labels.items())))


# ---------------------------------------------------------------- statistics
def test_stats_count_exactly_the_inferences(proto):
    kind, mod, c = proto
    before = stats(kind, c, "simple")
    batches = [1, 3, 1, 8, 2]
    for b in batches:
        a, bb = simple_pair(b)
        c.infer("simple", simple_inputs(mod, a, bb))
    after = stats(kind, c, "simple")
    assert (after["name"], after["version"]) == ("simple", "1")
    assert after["success"] - before["success"] == len(batches)
    assert after["inference_count"] - before["inference_count"] == sum(batches)
    # simple has no dynamic batcher: one execution per request
    assert after["execution_count"] - before["execution_count"] == len(batches)
    assert after["queue"] - before["queue"] == len(batches)
    assert after["compute_infer"] - before["compute_infer"] == len(batches)
    assert after["fail"] == before["fail"]
    assert after["last_inference"] >= before["last_inference"] and after["last_inference"] > 0


def test_stats_unchanged_by_rejected_requests(proto):
    kind, mod, c = proto
    before = stats(kind, c, "simple")
    a, b = simple_pair(9)
    with pytest.raises(InferenceServerException):
        c.infer("simple", simple_inputs(mod, a, b))
    after = stats(kind, c, "simple")
    assert after == before


def test_stats_of_every_model(proto):
    kind, _, c = proto
    s = c.get_inference_statistics()
    if kind != "http":
        s = json_format.MessageToDict(s, preserving_proto_field_name=True)
    entries = {(e["name"], e["version"]) for e in s["model_stats"] if e["name"] in SHARED_MODELS}
    assert entries == {(m, "1") for m in SHARED_MODELS} | {("versioned", "2")}


def test_stats_per_version(proto):
    kind, mod, c = proto
    before = {v: stats(kind, c, "versioned", v) for v in ("1", "2")}
    x = np.array([[1, 2, 3]], dtype=np.int32)
    for _ in range(3):
        c.infer("versioned", [make_input(mod, "INPUT0", x)], model_version="1")
    c.infer("versioned", [make_input(mod, "INPUT0", x)])  # default: version 2
    after = {v: stats(kind, c, "versioned", v) for v in ("1", "2")}
    assert after["1"]["success"] - before["1"]["success"] == 3
    assert after["2"]["success"] - before["2"]["success"] == 1


@pytest.mark.parametrize("model,version,message", [
    ("nope", "", "requested model 'nope' is not available"),
    ("versioned", "3", "requested model version is not available for model 'versioned'"),
])
def test_stats_unknown(proto, model, version, message):
    kind, _, c = proto
    with pytest.raises(InferenceServerException) as e:
        c.get_inference_statistics(model, version)
    assert e.value.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.value.message() == message


# ---------------------------------------------------------------- Prometheus metrics
def test_metrics_count_exactly_the_inferences(server, proto):
    _, mod, c = proto
    before = samples(scrape(server))
    n, batch = 7, 2
    for _ in range(n):
        a, b = simple_pair(batch)
        c.infer("simple", simple_inputs(mod, a, b))
    after = samples(scrape(server))
    labels = {"model": "simple", "version": "1"}
    for name, delta in (("nv_inference_request_success", n), ("nv_inference_count", n * batch),
                        ("nv_inference_exec_count", n)):
        assert sample(after, name, **labels) - sample(before, name, **labels) == delta, name
    for reason in ("OTHER", "BACKEND", "REJECTED", "CANCELED"):
        key = dict(labels, reason=reason)
        failures = "nv_inference_request_failure"
        assert sample(after, failures, **key) == sample(before, failures, **key)
    assert sample(after, "nv_inference_request_duration_us", **labels) > sample(before, "nv_inference_request_duration_us", **labels)
    assert sample(after, "nv_inference_pending_request_count", **labels) == 0


def test_metrics_help_and_type_lines(server):
    text = scrape(server)
    for family, kind in INFERENCE_FAMILIES.items():
        assert re.search(rf"^# HELP {family} \S.*$", text, re.M), family
        assert f"# TYPE {family} {kind}\n" in text, family


def test_metrics_label_every_loaded_model(server):
    s = samples(scrape(server))
    for m in SHARED_MODELS:
        assert sample(s, "nv_inference_request_success", model=m, version="1") is not None, m
    assert sample(s, "nv_inference_request_success", model="versioned", version="2") is not None
    for reason in ("OTHER", "BACKEND", "REJECTED", "CANCELED"):
        assert sample(s, "nv_inference_request_failure", model="simple", reason=reason, version="1") is not None


def test_metrics_cpu_gauges(server):
    text = scrape(server)
    s = samples(text)
    for family in ("nv_cpu_utilization", "nv_cpu_memory_total_bytes", "nv_cpu_memory_used_bytes"):
        assert f"# TYPE {family} gauge\n" in text
    assert sample(s, "nv_cpu_memory_total_bytes") > 0
    assert 0.0 <= sample(s, "nv_cpu_utilization") <= 1.0


# ---------------------------------------------------------------- logging and trace settings
def log_settings(kind, c, update=None):
    s = c.update_log_settings(update) if update is not None else c.get_log_settings()
    if kind == "http":
        return s
    d = json_format.MessageToDict(s, preserving_proto_field_name=True)["settings"]
    return {k: list(v.values())[0] for k, v in d.items()}


def test_log_settings_round_trip(proto):
    kind, _, c = proto
    original = log_settings(kind, c)
    assert original == {"log_file": "", "log_info": True, "log_warning": True, "log_error": True,
                        "log_verbose_level": 0, "log_format": "default"}
    try:
        updated = log_settings(kind, c, {"log_verbose_level": 2, "log_info": False, "log_format": "ISO8601"})
        assert updated == dict(original, log_verbose_level=2, log_info=False, log_format="ISO8601")
        assert log_settings(kind, c) == updated
    finally:
        restored = log_settings(kind, c, {"log_verbose_level": 0, "log_info": True, "log_format": "default"})
    assert restored == original


def test_log_settings_bad_format(http_client):
    with pytest.raises(InferenceServerException) as e:
        http_client.update_log_settings({"log_format": "bogus"})
    assert e.value.status() == "503"
    assert e.value.message() == "invalid argument for --log_format, got: bogus"
    assert http_client.get_log_settings()["log_format"] == "default"


def trace_settings(kind, c, model_name=None, update=None):
    if update is not None:
        s = c.update_trace_settings(model_name=model_name, settings=update)
    else:
        s = c.get_trace_settings(model_name=model_name)
    if kind == "http":
        return s
    d = json_format.MessageToDict(s, preserving_proto_field_name=True)["settings"]
    return {k: (v["value"] if k == "trace_level" else v["value"][0]) for k, v in d.items()}


DEFAULT_TRACE = {"trace_level": ["OFF"], "trace_rate": "1000", "trace_count": "-1", "log_frequency": "0",
                 "trace_file": "", "trace_mode": "triton"}


def test_trace_settings_round_trip(proto):
    kind, _, c = proto
    assert trace_settings(kind, c) == DEFAULT_TRACE
    assert trace_settings(kind, c, "simple") == DEFAULT_TRACE
    try:
        updated = trace_settings(kind, c, update={"trace_rate": "50", "trace_count": "5"})
        assert updated == dict(DEFAULT_TRACE, trace_rate="50", trace_count="5")
        assert trace_settings(kind, c) == updated
        # a model without its own settings follows the global ones
        assert trace_settings(kind, c, "simple") == updated
    finally:
        restored = trace_settings(kind, c, update={"trace_rate": "1000", "trace_count": "-1"})
    assert restored == DEFAULT_TRACE


def test_trace_settings_per_model(proto):
    kind, _, c = proto
    try:
        updated = trace_settings(kind, c, "simple", update={"log_frequency": "3"})
        assert updated == dict(DEFAULT_TRACE, log_frequency="3")
        assert trace_settings(kind, c) == DEFAULT_TRACE
    finally:
        # None clears the model's own setting, so it follows the global one again
        cleared = trace_settings(kind, c, "simple", update={"log_frequency": None})
    assert cleared == DEFAULT_TRACE


def test_trace_level_needs_a_file(proto):
    kind, _, c = proto
    with pytest.raises(InferenceServerException) as e:
        c.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"], "trace_rate": "7"})
    assert e.value.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.value.message() == "Attempting to set invalid trace setting :trace file name is not given"
    assert trace_settings(kind, c) == DEFAULT_TRACE  # nothing of the refused update applied


@pytest.mark.parametrize("call", ["get", "update"])
def test_trace_settings_unknown_model(proto, call):
    kind, _, c = proto
    with pytest.raises(InferenceServerException) as e:
        if call == "get":
            c.get_trace_settings(model_name="nope")
        else:
            c.update_trace_settings(model_name="nope", settings={"trace_rate": "3"})
    assert e.value.status() == error_status(kind, 400, "INVALID_ARGUMENT")
    assert e.value.message() == "Request for unknown model : nope"


def test_trace_rate_not_a_number(http_client):
    with pytest.raises(InferenceServerException) as e:
        http_client.update_trace_settings(settings={"trace_rate": "abc"})
    assert e.value.status() == "400"
    assert e.value.message() == "Unable to parse 'trace_rate', got: abc"
