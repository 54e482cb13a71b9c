"""Fixtures shared by the Python client tests.

By default each test session starts the real `despina` binary on ephemeral loopback ports with
`tests/models` in explicit control mode, every model loaded (as the reference Triton is started).
With DESPINA_TEST_TARGET=triton the same tests run against the real NVIDIA Triton started by
`../shared/triton-reference/start_triton.sh` on the ports given by TRITON_PORTS (default
"18000 18001 18002"), serving the reference repository; this is how the tests themselves are
checked against the reference behaviour.
"""
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_REPO = ROOT / "tests" / "models"
REF_DIR = (ROOT / ".." / "shared" / "triton-reference").resolve()
STARTED = re.compile(r"Started (HTTPService|GRPCInferenceService|Metrics Service) at ([0-9.]+:[0-9]+)")


@dataclass
class Server:
    """Where a running server listens. `kind` is "despina" or "triton"."""

    kind: str
    http: str  # "127.0.0.1:PORT", the form tritonclient takes
    grpc: str
    metrics: str
    proc: subprocess.Popen | None = None
    log: list = field(default_factory=list)

    @property
    def http_url(self):
        return "http://" + self.http

    @property
    def metrics_url(self):
        return "http://" + self.metrics + "/metrics"


def despina_bin():
    return os.environ.get("DESPINA_BIN", str(ROOT / "target" / "debug" / "despina"))


def start_despina(repo=TEST_REPO, extra_args=(), timeout=60.0):
    """Start despina on ephemeral loopback ports and wait until it has announced every listener."""
    cmd = [
        despina_bin(), "serve",
        "--model-repository", str(repo),
        "--host", "127.0.0.1",
        "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0",
        *extra_args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found, log = {}, []
    done = threading.Event()

    def pump():
        for line in proc.stderr:
            log.append(line)
            m = STARTED.search(line)
            if m:
                found[m.group(1)] = m.group(2)
                if len(found) == 3:
                    done.set()
        done.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not done.wait(0.05):
        if time.monotonic() > deadline:
            break
    if len(found) < 3:
        proc.kill()
        raise RuntimeError("despina did not start:\n" + "".join(log[-50:]))
    return Server("despina", found["HTTPService"], found["GRPCInferenceService"], found["Metrics Service"], proc, log)


def stop(server, timeout=20.0):
    if server.proc is None:
        return
    server.proc.terminate()
    try:
        server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="session")
def server():
    """The server under test, with every test model loaded (explicit control mode)."""
    if os.environ.get("DESPINA_TEST_TARGET") == "triton":
        http, grpc, metrics = os.environ.get("TRITON_PORTS", "18000 18001 18002").split()
        yield Server("triton", f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", f"127.0.0.1:{metrics}")
        return
    s = start_despina(extra_args=["--model-control-mode", "explicit", "--load-model", "*"])
    yield s
    stop(s)


# ---------------------------------------------------------------- clients and helpers for the tests
# Imported by the test modules (`from conftest import ...`); pytest puts this folder on sys.path.
import numpy as np  # noqa: E402

# Model names both repositories serve (tests/models and the reference repository).
SHARED_MODELS = sorted(p.name for p in TEST_REPO.iterdir() if (p / "config.pbtxt").is_file())


@pytest.fixture(scope="module")
def http_client(server):
    import tritonclient.http as httpclient

    c = httpclient.InferenceServerClient(server.http, connection_timeout=30, network_timeout=30)
    yield c
    c.close()


@pytest.fixture(scope="module")
def grpc_client(server):
    import tritonclient.grpc as grpcclient

    c = grpcclient.InferenceServerClient(server.grpc)
    yield c
    c.close()


@pytest.fixture(params=["http", "grpc"])
def proto(request, server):
    """(module, client) for each protocol, so one test body covers HTTP and gRPC."""
    if request.param == "http":
        import tritonclient.http as mod

        c = mod.InferenceServerClient(server.http, connection_timeout=30, network_timeout=30)
    else:
        import tritonclient.grpc as mod

        c = mod.InferenceServerClient(server.grpc)
    yield request.param, mod, c
    c.close()


def make_input(mod, name, array, datatype=None, binary=True):
    """An InferInput holding `array` (BYTES when datatype says so); `binary` only matters for HTTP."""
    from tritonclient.utils import np_to_triton_dtype

    dt = datatype or np_to_triton_dtype(array.dtype)
    inp = mod.InferInput(name, list(array.shape), dt)
    if mod.__name__.endswith("http"):
        inp.set_data_from_numpy(array, binary_data=binary)
    else:
        inp.set_data_from_numpy(array)
    return inp


def simple_pair(batch=1, dtype=np.int32):
    """INPUT0 = 0..15 per row (row r offset by r*100), INPUT1 = row-dependent small values."""
    a = (np.arange(16)[None, :] + 100 * np.arange(batch)[:, None]).astype(dtype)
    b = ((np.arange(16)[None, :] % 5) - 2 + np.arange(batch)[:, None]).astype(dtype)
    return a, b


def simple_inputs(mod, a, b, binary=True):
    return [make_input(mod, "INPUT0", a, binary=binary), make_input(mod, "INPUT1", b, binary=binary)]


def error_status(proto_name, http_status, grpc_code):
    """The status() an InferenceServerException carries for each protocol."""
    return str(http_status) if proto_name == "http" else f"StatusCode.{grpc_code}"


def wait_until(predicate, timeout=30.0, interval=0.1):
    """Polls `predicate` until it returns truthy or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
