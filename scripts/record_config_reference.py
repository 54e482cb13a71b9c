#!/usr/bin/env python3
"""Record what the real Triton serves for each config of tests/data/config.

Every folder under tests/data/config holding a config.pbtxt is a case; its
folder name is the model name. The script builds a temporary model repository
with each case beside a trivial 1/model.py, starts the reference Triton
(/work/shared/triton-reference/start_triton.sh) on its own ports with a
backend folder where every backend name the corpus uses (onnxruntime,
pytorch, llm, identity, ...) is a Python-based stand-in, loads each model
through the repository API and writes, next to the config:

  triton.json        what GET /v2/models/<m>/config returned, or
  triton_error.txt   why the load was refused (with the protobuf parser's
                     message from the server log when the config did not parse)

Optional files in a case folder:
  versions       version folder names (default: 1)
  version_files  entries of each version folder, `name/` for a folder
                 (default: model.py); replaces the default list
  anything else  (labels.txt, warmup/, initial_state/) is copied into the model folder

Usage: scripts/record_config_reference.py [--ports 18100 18101 18102] [--only NAME ...]
Only the standard library is needed; run it with /usr/bin/python3.
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "data" / "config"
TRITON_REF = pathlib.Path("/work/shared/triton-reference")
TRITON_HOME = pathlib.Path(os.environ.get("TRITON_REF_HOME", "/tmp/triton_ref"))
PYTHON_BACKEND = TRITON_HOME / "venv/lib/python3.11/site-packages/pytriton/tritonserver/backends/python"

# Backend names served by a Python-based stand-in (backends/<name>/model.py).
STAND_INS = ["onnxruntime", "pytorch", "tensorflow", "tensorrt", "openvino", "llm",
             "identity", "square", "add_sub", "sequence"]
RECORDS = {"triton.json", "triton_error.txt"}
NOT_COPIED = RECORDS | {"config.pbtxt", "versions", "version_files", "despina_error.txt", "note.txt"}

MODEL_PY = '''import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Stand-in: the recorder only needs the model to load."""

    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[]) for _ in requests]
'''


def find_cases(only):
    cases = sorted(p.parent for p in CASES.rglob("config.pbtxt"))
    names = [c.name for c in cases]
    dups = {n for n in names if names.count(n) > 1}
    if dups:
        sys.exit(f"duplicate model names in the corpus: {sorted(dups)}")
    if only:
        cases = [c for c in cases if c.name in only]
    return cases


def build_repo(cases, tmp):
    repo = tmp / "repo"
    for case in cases:
        model = repo / case.name
        model.mkdir(parents=True)
        shutil.copy(case / "config.pbtxt", model / "config.pbtxt")
        for extra in case.iterdir():
            if extra.name in NOT_COPIED:
                continue
            if extra.is_dir():
                shutil.copytree(extra, model / extra.name)
            else:
                shutil.copy(extra, model / extra.name)
        versions = read_list(case / "versions", ["1"])
        entries = read_list(case / "version_files", ["model.py"])
        for v in versions:
            vdir = model / v
            vdir.mkdir()
            for e in entries:
                if e.endswith("/"):
                    (vdir / e.rstrip("/")).mkdir()
                elif e == "model.py":
                    (vdir / e).write_text(MODEL_PY)
                else:
                    (vdir / e).write_bytes(b"")
    backends = tmp / "backends"
    backends.mkdir()
    (backends / "python").symlink_to(PYTHON_BACKEND)
    for name in STAND_INS:
        (backends / name).mkdir()
        (backends / name / "model.py").write_text(MODEL_PY)
    return repo, backends


def read_list(path, default):
    if not path.exists():
        return default
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def request(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (ConnectionError, urllib.error.URLError) as e:
        raise ServerDied(str(e)) from e


def logged_errors(log, offset, model):
    """What the server logged since `offset` about why `model` did not load:
    the protobuf parser's message, or the poll failure (the HTTP answer only
    says "failed to poll from model repository")."""
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    poll = f"Poll failed for model directory '{model}': "
    out = []
    for line in text.splitlines():
        if "Error parsing text-format" in line:
            out.append(line.split("] ", 1)[-1])
        elif poll in line and "failed to read text proto" not in line:
            out.append(line.split(poll, 1)[1].rstrip('"'))
    return out


def record(case, http, log):
    for name in RECORDS:
        (case / name).unlink(missing_ok=True)
    base = f"http://127.0.0.1:{http}/v2"
    offset = log.stat().st_size
    status, body = request("POST", f"{base}/repository/models/{case.name}/load")
    if status == 200:
        status, body = request("GET", f"{base}/models/{case.name}/config")
        if status != 200:
            sys.exit(f"{case.name}: loaded but config answered {status}: {body}")
        config = json.loads(body)
        (case / "triton.json").write_text(json.dumps(config, indent=2) + "\n")
        request("POST", f"{base}/repository/models/{case.name}/unload")
        return "ok"
    error = json.loads(body).get("error", body)
    details = logged_errors(log, offset, case.name)
    text = error if not details else error + "\n" + "\n".join(details)
    (case / "triton_error.txt").write_text(text + "\n")
    return "refused"


class ServerDied(Exception):
    pass


def start(repo, backends, ports):
    env = dict(os.environ, MODEL_REPO=str(repo), LOAD_MODELS=" ",
               EXTRA_ARGS=f"--backend-directory={backends}")
    subprocess.run([str(TRITON_REF / "start_triton.sh"), *ports], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ports", nargs=3, default=["18100", "18101", "18102"])
    ap.add_argument("--only", nargs="*", default=[])
    args = ap.parse_args()
    cases = find_cases(set(args.only))
    http = args.ports[0]
    with tempfile.TemporaryDirectory(prefix="config_reference_") as tmp:
        repo, backends = build_repo(cases, pathlib.Path(tmp))
        start(repo, backends, args.ports)
        log = TRITON_HOME / "logs" / f"tritonserver.{http}.log"
        try:
            status, version = request("GET", f"http://127.0.0.1:{http}/v2")
            print(f"server: {version}")
            for case in cases:
                try:
                    result = record(case, http, log)
                except ServerDied:
                    # Recorded as a refusal; start a fresh server for the rest.
                    (case / "triton_error.txt").write_text("the server crashed while loading this model\n")
                    result = "crashed the server"
                    subprocess.run([str(TRITON_REF / "stop_triton.sh"), http], check=False)
                    start(repo, backends, args.ports)
                print(f"{case.relative_to(CASES)}: {result}", flush=True)
        finally:
            subprocess.run([str(TRITON_REF / "stop_triton.sh"), http], check=False)


if __name__ == "__main__":
    main()
