# Sourced by scripts/run.sh and scripts/test.sh after scripts/setup.sh: where the project-local
# libraries are. Safe to source from an interactive shell too.
DESPINA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ort_lib="$(ls "$DESPINA_ROOT"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n 1)"
if [ -n "$ort_lib" ] && [ -z "${ORT_DYLIB_PATH:-}" ]; then
  export ORT_DYLIB_PATH="$ort_lib"
fi
if [ -d "$DESPINA_ROOT/.libtorch/torch/lib" ] && [ -z "${LIBTORCH:-}" ]; then
  export LIBTORCH="$DESPINA_ROOT/.libtorch/torch"
fi
# Cargo features: the TorchScript backend needs libtorch at build time.
DESPINA_FEATURES=""
if [ "${DESPINA_TORCH:-1}" = "1" ] && [ -n "${LIBTORCH:-}" ]; then
  DESPINA_FEATURES="--features torch"
fi
export DESPINA_FEATURES
