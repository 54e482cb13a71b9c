"""The response cache and latency summaries through tritonclient (HTTP and gRPC), on a server
started with `--cache-config local,size=...` and `--metrics-config summary_latencies=true`.
despina only: the reference Triton is started without a cache."""
import os
import shutil
import urllib.request

import numpy as np
import pytest
from google.protobuf import json_format

from conftest import TEST_REPO, make_input, simple_pair, start_despina, stop

pytestmark = pytest.mark.skipif(os.environ.get("DESPINA_TEST_TARGET") == "triton",
                                reason="needs a server started with a response cache")


@pytest.fixture(scope="module")
def cached_server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    for name, extra in (("simple", ""), ("simple_cached", "response_cache { enable: true }\n")):
        shutil.copytree(TEST_REPO / "simple", repo / name)
        cfg = (TEST_REPO / "simple" / "config.pbtxt").read_text().replace('"simple"', f'"{name}"')
        (repo / name / "config.pbtxt").write_text(cfg + extra)
    s = start_despina(repo, extra_args=["--cache-config", "local,size=1048576",
                                        "--metrics-config", "summary_latencies=true"])
    yield s
    stop(s)


def client(kind, server):
    if kind == "http":
        import tritonclient.http as mod
        return mod, mod.InferenceServerClient(server.http)
    import tritonclient.grpc as mod
    return mod, mod.InferenceServerClient(server.grpc)


def counts(kind, c, model):
    s = c.get_inference_statistics(model, "1")
    if kind != "http":
        s = json_format.MessageToDict(s, preserving_proto_field_name=True)
    e = s["model_stats"][0]
    inf = e["inference_stats"]
    n = lambda k: int(inf.get(k, {}).get("count", 0))  # noqa: E731
    return {"success": n("success"), "queue": n("queue"), "compute": n("compute_infer"),
            "hit": n("cache_hit"), "miss": n("cache_miss"),
            "inferences": int(e.get("inference_count", 0)), "executions": int(e.get("execution_count", 0))}


def infer(mod, c, model, a, b, outputs=None):
    inputs = [make_input(mod, "INPUT0", a), make_input(mod, "INPUT1", b)]
    requested = [mod.InferRequestedOutput(o) for o in outputs] if outputs else None
    r = c.infer(model, inputs, outputs=requested)
    return {o: r.as_numpy(o) for o in ("OUTPUT0", "OUTPUT1") if r.as_numpy(o) is not None}


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_repeated_requests_hit_the_cache(cached_server, kind):
    mod, c = client(kind, cached_server)
    a, b = simple_pair(1)
    a = a + (1000 if kind == "grpc" else 0)  # each protocol starts with a miss
    before = counts(kind, c, "simple_cached")
    for _ in range(3):
        out = infer(mod, c, "simple_cached", a, b)
        np.testing.assert_array_equal(out["OUTPUT0"], a + b)
        np.testing.assert_array_equal(out["OUTPUT1"], a - b)
    # Asking for one output is another request: it executes, and gets only that output.
    only = infer(mod, c, "simple_cached", a, b, outputs=["OUTPUT1"])
    assert list(only) == ["OUTPUT1"]
    np.testing.assert_array_equal(only["OUTPUT1"], a - b)
    after = counts(kind, c, "simple_cached")
    delta = {k: after[k] - before[k] for k in after}
    assert delta == {"success": 4, "queue": 4, "compute": 2, "hit": 2, "miss": 2,
                     "inferences": 2, "executions": 2}
    plain_before = counts(kind, c, "simple")
    infer(mod, c, "simple", a, b)
    infer(mod, c, "simple", a, b)
    plain = counts(kind, c, "simple")
    assert (plain["executions"] - plain_before["executions"], plain["hit"]) == (2, 0)
    c.close()


def test_summaries_count_every_success(cached_server):
    mod, c = client("http", cached_server)
    a, b = simple_pair(1)
    for i in range(5):
        infer(mod, c, "simple", a + 5000 + i, b)
    success = counts("http", c, "simple")["success"]
    c.close()
    with urllib.request.urlopen(cached_server.metrics_url, timeout=30) as r:
        text = r.read().decode()
    assert "# TYPE nv_inference_request_summary_us summary" in text
    labels = '{model="simple",version="1"}'
    assert f"nv_inference_request_summary_us_count{labels} {success}" in text
    for q in ("0.5", "0.9", "0.95", "0.99", "0.999"):
        line = next(l for l in text.splitlines()
                    if l.startswith(f'nv_inference_request_summary_us{{model="simple",version="1",quantile="{q}"}}'))
        assert 0 < float(line.rsplit(" ", 1)[1]) < 10_000_000
