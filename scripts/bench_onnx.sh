#!/usr/bin/env bash
# The serving overhead and batched throughput of despina on model_repository/mlp (ONNX), against
# raw ONNX Runtime on the same model with the same threads, measured in one run:
#   1. raw ORT (cargo bench --bench raw_ort): batch-1 p50 of one session (back to back, and
#      after 100 us asleep), and the best batched throughput of 2 sessions (the model's 2
#      instances) over batch sizes 1..64;
#   2. despina, p50 at batch 1 and concurrency 1 over HTTP and gRPC, on a copy of mlp without the
#      dynamic batcher's queue delay (the delay is a latency the config asks for, not overhead);
#   3. despina, throughput at concurrency 32 over HTTP and gRPC with the model's own dynamic batching.
#   4. the same comparison at concurrency 32 on all_minilm_l6_v2 (32 tokens), a model whose
#      compute per request outweighs the per-request path: raw ORT with the config's one
#      instance against despina's dynamic batching;
#   5. the transport floor (cargo bench --bench transport_floor): the same client and server
#      stacks with a server that does no work, so the report can tell the machine's price of a
#      request from what despina adds to it.
# Client (despina-perf) and server share this machine's cores; the report says so.
# --halt-poll-ns N sets the guest kernel's cpuidle-haltpoll window for the run (root, KVM guests
# with the haltpoll driver; restored on exit): the usual latency tuning of a virtual machine,
# where an idle vCPU otherwise halts and every cross-CPU wake-up pays a VM exit.
# Usage: scripts/bench_onnx.sh [--build] [--window-ms 3000] [--halt-poll-ns N]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WINDOW_MS=3000
BUILD=0
HALT_POLL=""
HALT_POLL_FILE=/sys/module/haltpoll/parameters/guest_halt_poll_ns
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=1; shift ;;
    --window-ms) WINDOW_MS="$2"; shift 2 ;;
    --halt-poll-ns) HALT_POLL="$2"; shift 2 ;;
    *) echo "usage: $0 [--build] [--window-ms N] [--halt-poll-ns N]" >&2; exit 1 ;;
  esac
done
source scripts/env.sh
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
show() { printf '+'; printf ' %q' "$@"; printf '\n'; }
if [ "$BUILD" = 1 ]; then show cargo build --release --bin despina --bin despina-perf; cargo build --release --bin despina --bin despina-perf; fi
[ -x "$BIN/despina" ] && [ -x "$BIN/despina-perf" ] || { echo "build first: $0 --build" >&2; exit 1; }
WORK="$(mktemp -d)"
SERVER_PID=""
HALT_POLL_OLD=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  wait 2>/dev/null
  [ -n "$HALT_POLL_OLD" ] && echo "$HALT_POLL_OLD" > "$HALT_POLL_FILE"
  rm -rf "$WORK"
}
trap cleanup EXIT
if [ -n "$HALT_POLL" ]; then
  [ -w "$HALT_POLL_FILE" ] || { echo "--halt-poll-ns needs root and the cpuidle-haltpoll driver ($HALT_POLL_FILE)" >&2; exit 1; }
  HALT_POLL_OLD="$(cat "$HALT_POLL_FILE")"
  echo "$HALT_POLL" > "$HALT_POLL_FILE"
fi
HALT_POLL_NOW="$(cat "$HALT_POLL_FILE" 2>/dev/null || echo n/a)"
echo "== machine: $(nproc) CPUs, cpuidle $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo n/a), guest_halt_poll_ns $HALT_POLL_NOW"

# Runs one of benches/ and prints the JSON line it ends with (the command goes to stderr).
bench_json() { # bench [args...]
  local name="$1"; shift
  show cargo bench --bench "$name" -- "$@" >&2
  cargo bench -q --bench "$name" -- "$@" 2>/dev/null | tail -n 1
}
echo "== raw ONNX Runtime"
RAW="$(bench_json raw_ort --threads 2 --seconds 2 --gap-us 100)"
echo "$RAW"
RAW_MINILM="$(bench_json raw_ort --model all_minilm_l6_v2 --threads 1 --seconds 2 --max-batch 32 --seq 32)"
echo "$RAW_MINILM"

echo "== transport floor"
FLOOR="$(bench_json transport_floor --requests 10000 --seconds 2)"
echo "$FLOOR"

# A repository with mlp as configured, and mlp_nodelay: the same model without queue delay.
mkdir -p "$WORK/repo"
cp -r model_repository/mlp "$WORK/repo/mlp"
cp -r model_repository/mlp "$WORK/repo/mlp_nodelay"
cp -r model_repository/all_minilm_l6_v2 "$WORK/repo/all_minilm_l6_v2"
sed -i -e 's/name: "mlp"/name: "mlp_nodelay"/' -e 's/max_queue_delay_microseconds: [0-9]*/max_queue_delay_microseconds: 0/' "$WORK/repo/mlp_nodelay/config.pbtxt"

show "$BIN/despina" serve --model-repository "$WORK/repo" --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 --log-info=false
"$BIN/despina" serve --model-repository "$WORK/repo" --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 200); do grep -q "Started Metrics Service" "$WORK/server.log" && break; sleep 0.05; done
HTTP="$(grep -o 'Started HTTPService at [0-9.:]*' "$WORK/server.log" | awk '{print $4}')"
GRPC="$(grep -o 'Started GRPCInferenceService at [0-9.:]*' "$WORK/server.log" | awk '{print $4}')"
[ -n "$HTTP" ] && [ -n "$GRPC" ] || { cat "$WORK/server.log"; exit 1; }

perf() { # protocol url model concurrency out [batch] [extra despina-perf flags...]
  local args=(-m "$3" -u "$2" -i "$1" -b "${6:-1}" --concurrency-range "$4:$4:1" -p "${LEVEL_WINDOW_MS:-$WINDOW_MS}" --warmup-time 500 --max-level-time 60000 --json "$5" "${@:7}")
  show "$BIN/despina-perf" "${args[@]}"
  timeout 150 "$BIN/despina-perf" "${args[@]}" >/dev/null
}
perf http "$HTTP" mlp_nodelay 1 "$WORK/http_c1.json"
perf grpc "$GRPC" mlp_nodelay 1 "$WORK/grpc_c1.json"
perf http "$HTTP" mlp 32 "$WORK/http_c32.json"
perf grpc "$GRPC" mlp 32 "$WORK/grpc_c32.json"
# Clients that send 64 rows per request: what the server reaches when per-request costs are shared.
perf http "$HTTP" mlp 4 "$WORK/http_b64.json" 64
perf grpc "$GRPC" mlp 4 "$WORK/grpc_b64.json" 64
# Batches of ~16 MiniLM rows finish every ~0.1 s: windows of 10 s keep the count's rounding small.
TOKENS=(--input-data zero --shape input_ids:32 --shape attention_mask:32 --shape token_type_ids:32)
LEVEL_WINDOW_MS=10000 perf http "$HTTP" all_minilm_l6_v2 32 "$WORK/http_minilm.json" 1 "${TOKENS[@]}"
LEVEL_WINDOW_MS=10000 perf grpc "$GRPC" all_minilm_l6_v2 32 "$WORK/grpc_minilm.json" 1 "${TOKENS[@]}"

python3 - "$RAW" "$WORK" "$FLOOR" "$HALT_POLL_NOW" "$RAW_MINILM" <<'PY'
import json, sys
raw = json.loads(sys.argv[1]); work = sys.argv[2]; floor = json.loads(sys.argv[3]); halt_poll = sys.argv[4]
raw_minilm = json.loads(sys.argv[5])
def level(name):
    return json.load(open(f"{work}/{name}.json"))["levels"][0]
print()
print(f"guest_halt_poll_ns: {halt_poll}")
print(f"raw ONNX Runtime (mlp, intra-op 1): batch-1 p50 {raw['batch1_p50_us']:.1f} us; "
      f"best batched throughput {raw['best_infer_per_s']:.0f} infer/s (batch {raw['best_batch']}, {raw['threads']} sessions); "
      f"batch-1 p50 after {raw['gap_us']} us asleep (a cold start, as at concurrency 1): {raw['batch1_after_gap_p50_us']:.1f} us")
for proto in ("http", "grpc"):
    c1, c32, b64 = level(f"{proto}_c1"), level(f"{proto}_c32"), level(f"{proto}_b64")
    p50 = c1["latency"]["p50_us"]
    srv = c1["server"]
    inside = srv["request_us"] - raw["batch1_p50_us"]
    tput = c32["throughput_infer_per_s"]
    fp50, frate = floor[f"{proto}_p50_us"], floor[f"{proto}_c32_per_s"]
    print(f"{proto:4}: batch 1, concurrency 1: client p50 {p50:.0f} us = raw + {p50 - raw['batch1_p50_us']:.0f} us "
          f"(inside the server: {srv['request_us']:.0f} us per request = raw + {inside:.0f} us; "
          f"queue {srv['queue_us']:.0f}, compute {srv['compute_input_us'] + srv['compute_infer_us'] + srv['compute_output_us']:.0f})")
    print(f"      transport floor (a server that does nothing): p50 {fp50:.0f} us; despina = floor + {p50 - fp50:.0f} us")
    print(f"      concurrency 32, 1 row per request: {tput:.0f} infer/s = {100 * tput / raw['best_infer_per_s']:.1f}% of raw best "
          f"(average server batch {c32['server']['avg_batch_size']:.1f}); the floor answers {frate:.0f} requests/s "
          f"= {100 * frate / raw['best_infer_per_s']:.1f}% of raw best, despina reaches {100 * tput / frate:.0f}% of it")
    t64 = b64["throughput_infer_per_s"]
    print(f"      concurrency 4, 64 rows per request: {t64:.0f} infer/s = {100 * t64 / raw['best_infer_per_s']:.1f}% of raw best")
print(f"all_minilm_l6_v2, 32 tokens: raw ONNX Runtime batch-1 p50 {raw_minilm['batch1_p50_us'] / 1000:.1f} ms; "
      f"best batched throughput {raw_minilm['best_infer_per_s']:.1f} infer/s (batch {raw_minilm['best_batch']}, 1 session)")
for proto in ("http", "grpc"):
    m = level(f"{proto}_minilm")
    t = m["throughput_infer_per_s"]
    print(f"{proto:4}: concurrency 32, 1 request of 32 tokens each: {t:.1f} infer/s = {100 * t / raw_minilm['best_infer_per_s']:.1f}% of raw best "
          f"(average server batch {m['server']['avg_batch_size']:.1f})")
print("client and server share the same cores: the client's own CPU time is part of both figures")
PY
