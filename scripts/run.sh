#!/usr/bin/env bash
# Sets up what is missing and starts despina on the bundled model_repository/.
# Extra arguments go to `despina serve` (e.g. --http-port 9000 --log-verbose 1).
# DESPINA_TORCH=0 skips libtorch and the TorchScript backend (its model then fails to load).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export DESPINA_TORCH="${DESPINA_TORCH:-1}"
scripts/setup.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh
# shellcheck disable=SC2086
cargo build --release $DESPINA_FEATURES
exec target/release/despina serve --model-repository "$ROOT/model_repository" "$@"
