#!/usr/bin/env bash
# Lifecycle figures, in one run:
#   1. start-to-ready: seconds from exec to the first 200 on /v2/health/ready, for despina on the
#      example repository (model_repository/: MiniLM, the MLP, simple, TorchScript) and on
#      tests/models (the reference Triton's 11 shared test models), and, when the reference Triton
#      is available (../shared/triton-reference), for Triton on its 12-model repository;
#   2. p99 latency during version swaps vs steady state: despina-perf at concurrency 8 on mlp over
#      HTTP for a window, then the same window while a new version is loaded every 250 ms.
# Usage: scripts/bench_lifecycle.sh [--build] [--window-ms 5000]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WINDOW_MS=5000
BUILD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=1; shift ;;
    --window-ms) WINDOW_MS="$2"; shift 2 ;;
    *) echo "usage: $0 [--build] [--window-ms N]" >&2; exit 1 ;;
  esac
done
source scripts/env.sh
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
TRITON_REF="${TRITON_REF:-$ROOT/../shared/triton-reference}"
show() { printf '+'; printf ' %q' "$@"; printf '\n'; }
if [ "$BUILD" = 1 ]; then
  # shellcheck disable=SC2086
  show cargo build --release $DESPINA_FEATURES --bin despina --bin despina-perf
  # shellcheck disable=SC2086
  cargo build --release $DESPINA_FEATURES --bin despina --bin despina-perf
fi
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Prints seconds from now until GET url answers 200 (bounded to 120 s).
time_to_ready() {
  python3 - "$1" <<'PY'
import sys, time, urllib.request
url, t0 = sys.argv[1], time.monotonic()
while time.monotonic() - t0 < 120:
    try:
        if urllib.request.urlopen(url, timeout=1).status == 200:
            print(f"{time.monotonic() - t0:.3f}"); sys.exit(0)
    except Exception:
        pass
    time.sleep(0.01)
print("timeout"); sys.exit(1)
PY
}

echo "== start-to-ready"
for repo in model_repository tests/models; do
  port=$(free_port)
  show "$BIN/despina" serve --model-repository "$repo" --host 127.0.0.1 --http-port "$port" --grpc-port 0 --metrics-port 0
  "$BIN/despina" serve --model-repository "$repo" --host 127.0.0.1 --http-port "$port" --grpc-port 0 --metrics-port 0 2>"$WORK/start.log" &
  pid=$!
  t=$(time_to_ready "http://127.0.0.1:$port/v2/health/ready")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  models=$(ls -d "$repo"/*/ | wc -l)
  echo "despina, $repo ($models models): ready after $t s"
done
if [ -x "$TRITON_REF/start_triton.sh" ]; then
  hp=$(free_port); gp=$(free_port); mp=$(free_port)
  show env CONTROL_MODE=none MODEL_REPO=... "$TRITON_REF/start_triton.sh" "$hp" "$gp" "$mp"
  # The reference repository without fail_init (which fails on purpose), in "none" mode: load everything.
  mkdir -p "$WORK/triton_repo"
  for m in "$TRITON_REF"/model_repository/*/; do [ "$(basename "$m")" = fail_init ] || cp -r "$m" "$WORK/triton_repo/"; done
  t0=$(date +%s.%N)
  if CONTROL_MODE=none MODEL_REPO="$WORK/triton_repo" "$TRITON_REF/start_triton.sh" "$hp" "$gp" "$mp" >/dev/null 2>&1; then
    t1=$(date +%s.%N)
    echo "Triton 2.51, reference repository ($(ls -d "$WORK"/triton_repo/*/ | wc -l) models): ready after $(python3 -c "print(f'{$t1-$t0:.3f}')") s (start_triton.sh polls every 0.5 s)"
    "$TRITON_REF/stop_triton.sh" "$hp" >/dev/null 2>&1 || true
  else
    echo "Triton did not start; skipped"
  fi
fi

echo "== p99 latency while swapping versions"
mkdir -p "$WORK/repo"
cp -r model_repository/mlp "$WORK/repo/mlp"
port=$(free_port)
show "$BIN/despina" serve --model-repository "$WORK/repo" --model-control-mode explicit --load-model mlp --host 127.0.0.1 --http-port "$port"
"$BIN/despina" serve --model-repository "$WORK/repo" --model-control-mode explicit --load-model mlp --host 127.0.0.1 --http-port "$port" --grpc-port 0 --metrics-port 0 2>"$WORK/swap.log" &
PIDS+=($!)
time_to_ready "http://127.0.0.1:$port/v2/health/ready" >/dev/null
perf() {
  local args=(-m mlp -u "127.0.0.1:$port" -i http --concurrency-range 8:8:1 -p "$WINDOW_MS" --warmup-time 500 --max-level-time 30000 --json "$1")
  show "$BIN/despina-perf" "${args[@]}"
  timeout 60 "$BIN/despina-perf" "${args[@]}" >/dev/null
}
perf "$WORK/steady.json"
# Swapper: a new version folder and a load request every 250 ms while the window runs.
python3 - "$WORK/repo/mlp" "$port" "$(( WINDOW_MS + 1500 ))" >"$WORK/swaps.txt" <<'PY' &
import os, shutil, sys, time, urllib.request
model, port, ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline, v, swaps = time.monotonic() + ms / 1000, 1, 0
while time.monotonic() < deadline:
    time.sleep(0.25)
    v += 1
    shutil.copytree(os.path.join(model, "1"), os.path.join(model, str(v)))
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/repository/models/mlp/load", data=b"", method="POST")
    urllib.request.urlopen(req, timeout=30).read()
    swaps += 1
print(swaps)
PY
SWAPPER=$!
perf "$WORK/swapping.json"
wait "$SWAPPER"
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
lv = lambda n: json.load(open(f"{w}/{n}.json"))["levels"][0]
s, d = lv("steady"), lv("swapping")
swaps = open(f"{w}/swaps.txt").read().strip()
print(f"steady:   p50 {s['latency']['p50_us']:.0f} us, p99 {s['latency']['p99_us']:.0f} us, {s['throughput_infer_per_s']:.0f} infer/s, {s['requests_failed']} failed")
print(f"swapping: p50 {d['latency']['p50_us']:.0f} us, p99 {d['latency']['p99_us']:.0f} us, {d['throughput_infer_per_s']:.0f} infer/s, {d['requests_failed']} failed, {swaps} version swaps")
print(f"p99 during swaps / steady p99 = {d['latency']['p99_us'] / s['latency']['p99_us']:.2f}")
PY
