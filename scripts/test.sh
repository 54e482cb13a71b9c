#!/usr/bin/env bash
# Sets up what is missing and runs every test: cargo tests (unit + integration, with the
# TorchScript backend), `despina check` over the repositories, and the Python tritonclient suite.
# DESPINA_TORCH=0 skips libtorch and the torch tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export DESPINA_TORCH="${DESPINA_TORCH:-1}"
# A fresh CI clone never reuses incremental state, which would only take disk.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi
step() { echo; echo "==== $* ($(date +%H:%M:%S))"; }

step "set-up"
df -h . | tail -n1 | awk '{print "disk free here: " $4}'
scripts/setup.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh
echo "ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-unset} LIBTORCH=${LIBTORCH:-unset} features: ${DESPINA_FEATURES:-none}"

step "build"
# shellcheck disable=SC2086
cargo build --all-targets $DESPINA_FEATURES

step "cargo test"
# The ONNX tests must not skip here: the library comes from .venv.
export DESPINA_REQUIRE_ONNXRUNTIME=1
# shellcheck disable=SC2086
cargo test $DESPINA_FEATURES -- --test-threads 2

step "despina check"
target/debug/despina check model_repository
target/debug/despina check tests/models
if [ -d ../shared/triton-reference/model_repository ]; then
  target/debug/despina check ../shared/triton-reference/model_repository
fi

step "python client tests"
DESPINA_BIN="$ROOT/target/debug/despina" .venv/bin/python -m pytest -q tests/python

step "all tests passed"
