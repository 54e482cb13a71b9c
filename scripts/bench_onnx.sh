#!/usr/bin/env bash
# The serving overhead and batched throughput of despina on model_repository/mlp (ONNX), against
# raw ONNX Runtime on the same model with the same threads, measured in one run:
#   1. raw ORT (cargo bench --bench raw_ort): batch-1 p50 of one session, and the best batched
#      throughput of 2 sessions (the model's 2 instances) over batch sizes 1..64;
#   2. despina, p50 at batch 1 and concurrency 1 over HTTP and gRPC, on a copy of mlp without the
#      dynamic batcher's queue delay (the delay is a latency the config asks for, not overhead);
#   3. despina, throughput at concurrency 32 over HTTP and gRPC with the model's own dynamic batching.
# Client (despina-perf) and server share this machine's cores; the report says so.
# Usage: scripts/bench_onnx.sh [--build] [--window-ms 3000]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WINDOW_MS=3000
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
show() { printf '+'; printf ' %q' "$@"; printf '\n'; }
if [ "$BUILD" = 1 ]; then show cargo build --release --bin despina --bin despina-perf; cargo build --release --bin despina --bin despina-perf; fi
[ -x "$BIN/despina" ] && [ -x "$BIN/despina-perf" ] || { echo "build first: $0 --build" >&2; exit 1; }
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

echo "== raw ONNX Runtime"
show cargo bench --bench raw_ort -- --threads 2 --seconds 2
RAW="$(cargo bench -q --bench raw_ort -- --threads 2 --seconds 2 2>/dev/null | tail -n 1)"
echo "$RAW"

# A repository with mlp as configured, and mlp_nodelay: the same model without queue delay.
mkdir -p "$WORK/repo"
cp -r model_repository/mlp "$WORK/repo/mlp"
cp -r model_repository/mlp "$WORK/repo/mlp_nodelay"
sed -i -e 's/name: "mlp"/name: "mlp_nodelay"/' -e 's/max_queue_delay_microseconds: [0-9]*/max_queue_delay_microseconds: 0/' "$WORK/repo/mlp_nodelay/config.pbtxt"

show "$BIN/despina" serve --model-repository "$WORK/repo" --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 --log-info=false
"$BIN/despina" serve --model-repository "$WORK/repo" --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 200); do grep -q "Started Metrics Service" "$WORK/server.log" && break; sleep 0.05; done
HTTP="$(grep -o 'Started HTTPService at [0-9.:]*' "$WORK/server.log" | awk '{print $4}')"
GRPC="$(grep -o 'Started GRPCInferenceService at [0-9.:]*' "$WORK/server.log" | awk '{print $4}')"
[ -n "$HTTP" ] && [ -n "$GRPC" ] || { cat "$WORK/server.log"; exit 1; }

perf() { # protocol url model concurrency out [batch]
  local args=(-m "$3" -u "$2" -i "$1" -b "${6:-1}" --concurrency-range "$4:$4:1" -p "$WINDOW_MS" --warmup-time 500 --max-level-time 20000 --json "$5")
  show "$BIN/despina-perf" "${args[@]}"
  timeout 60 "$BIN/despina-perf" "${args[@]}" >/dev/null
}
perf http "$HTTP" mlp_nodelay 1 "$WORK/http_c1.json"
perf grpc "$GRPC" mlp_nodelay 1 "$WORK/grpc_c1.json"
perf http "$HTTP" mlp 32 "$WORK/http_c32.json"
perf grpc "$GRPC" mlp 32 "$WORK/grpc_c32.json"
# Clients that send 64 rows per request: what the server reaches when per-request costs are shared.
perf http "$HTTP" mlp 4 "$WORK/http_b64.json" 64
perf grpc "$GRPC" mlp 4 "$WORK/grpc_b64.json" 64

python3 - "$RAW" "$WORK" <<'PY'
import json, sys
raw = json.loads(sys.argv[1]); work = sys.argv[2]
def level(name):
    return json.load(open(f"{work}/{name}.json"))["levels"][0]
print()
print(f"raw ONNX Runtime (mlp, intra-op 1): batch-1 p50 {raw['batch1_p50_us']:.1f} us; "
      f"best batched throughput {raw['best_infer_per_s']:.0f} infer/s (batch {raw['best_batch']}, {raw['threads']} sessions)")
for proto in ("http", "grpc"):
    c1, c32, b64 = level(f"{proto}_c1"), level(f"{proto}_c32"), level(f"{proto}_b64")
    p50 = c1["latency"]["p50_us"]
    srv = c1["server"]
    inside = srv["request_us"] - raw["batch1_p50_us"]
    tput = c32["throughput_infer_per_s"]
    print(f"{proto:4}: batch 1, concurrency 1: client p50 {p50:.0f} us = raw + {p50 - raw['batch1_p50_us']:.0f} us "
          f"(inside the server: {srv['request_us']:.0f} us per request = raw + {inside:.0f} us; "
          f"queue {srv['queue_us']:.0f}, compute {srv['compute_input_us'] + srv['compute_infer_us'] + srv['compute_output_us']:.0f})")
    print(f"      concurrency 32, 1 row per request: {tput:.0f} infer/s = {100 * tput / raw['best_infer_per_s']:.1f}% of raw best "
          f"(average server batch {c32['server']['avg_batch_size']:.1f})")
    t64 = b64["throughput_infer_per_s"]
    print(f"      concurrency 4, 64 rows per request: {t64:.0f} infer/s = {100 * t64 / raw['best_infer_per_s']:.1f}% of raw best")
print("client and server share the same cores: the client's own CPU time is part of both figures")
PY
