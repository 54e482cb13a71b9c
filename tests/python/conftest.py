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
