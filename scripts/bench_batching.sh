#!/usr/bin/env bash
# What dynamic batching buys on one model: throughput at concurrency 1, 8 and 32 on two
# copies of the model, one with dynamic_batching and one without, the server's queue delay
# (average and median over short intervals, from the statistics extension), the average batch
# size, and the ratios batched/unbatched. Load comes from despina-perf.
#
# Usage: scripts/bench_batching.sh [options] [-- extra despina-perf flags]
#   --server despina|triton   server to start (default despina: target/release/despina;
#                             triton: the reference Triton via $TRITON_REF/start_triton.sh)
#   --model-dir DIR           model folder to copy twice (default: a generated model on the built-in
#                             "identity" backend, FP32 [64], max_batch_size 32; for --server triton the
#                             reference's python identity_fp32). E.g. model_repository/mlp.
#   --protocol http|grpc      (default http)
#   --levels "1 8 32"         concurrency levels
#   --window-ms N             measurement window per level (default 2000)
#   --warmup-ms N             warm-up per level (default 500)
#   --batching 'TEXT'         body of the dynamic_batching block of the batched copy (default: the
#                             model's own block, else 'max_queue_delay_microseconds: 500')
#   --build                   run cargo build --release first (not counted in the time bound)
# Every step is printed before it runs. The measured part is bounded to 110 s: each level is
# bounded by despina-perf's --max-level-time and by timeout(1), and the whole run by a deadline.
# Environment: CARGO_TARGET_DIR (where release binaries are), TRITON_REF (default
# ../shared/triton-reference next to the repository root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
TRITON_REF="${TRITON_REF:-$ROOT/../shared/triton-reference}"
SERVER=despina
MODEL_DIR=""
PROTOCOL=http
LEVELS="1 8 32"
WINDOW_MS=2000
WARMUP_MS=500
BATCHING=""
BUILD=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --server) SERVER="$2"; shift 2 ;;
    --model-dir) MODEL_DIR="$2"; shift 2 ;;
    --protocol) PROTOCOL="$2"; shift 2 ;;
    --levels) LEVELS="$2"; shift 2 ;;
    --window-ms) WINDOW_MS="$2"; shift 2 ;;
    --warmup-ms) WARMUP_MS="$2"; shift 2 ;;
    --batching) BATCHING="$2"; shift 2 ;;
    --build) BUILD=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 1 ;;
  esac
done
case "$SERVER" in despina|triton) ;; *) echo "--server must be despina or triton" >&2; exit 1 ;; esac
case "$PROTOCOL" in http|grpc) ;; *) echo "--protocol must be http or grpc" >&2; exit 1 ;; esac

show() { printf '+'; printf ' %q' "$@"; printf '\n'; }
run() { show "$@"; "$@"; }

if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && run cargo build --release --bin despina --bin despina-perf)
fi
PERF="$BIN/despina-perf"
[ -x "$PERF" ] || { echo "missing $PERF; build it: cargo build --release --bin despina-perf (or pass --build)" >&2; exit 1; }
if [ "$SERVER" = despina ] && [ ! -x "$BIN/despina" ]; then
  echo "missing $BIN/despina; build it: cargo build --release --bin despina (or pass --build)" >&2; exit 1
fi

DEADLINE=$((SECONDS + 110))
WORK="$(mktemp -d /tmp/bench_batching.XXXXXX)"
REPO="$WORK/repo"
mkdir -p "$REPO"
SERVER_PID=""
TRITON_HTTP=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$TRITON_HTTP" ]; then "$TRITON_REF/stop_triton.sh" "$TRITON_HTTP" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------- the two model copies
SHAPE_ARGS=()
if [ -z "$MODEL_DIR" ]; then
  SRC="$WORK/src"
  mkdir -p "$SRC/1"
  if [ "$SERVER" = triton ]; then
    cp "$TRITON_REF/model_repository/identity_fp32/1/model.py" "$SRC/1/"
    BACKEND=python
  else
    BACKEND=identity
  fi
  cat >"$SRC/config.pbtxt" <<EOF
backend: "$BACKEND"
max_batch_size: 32
input: [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 64 ] } ]
output: [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 64 ] } ]
instance_group: [ { count: 1 kind: KIND_CPU } ]
EOF
  MODEL_DIR="$SRC"
  NAME=identity
else
  NAME="$(basename "$MODEL_DIR")"
fi
[ -f "$MODEL_DIR/config.pbtxt" ] || { echo "$MODEL_DIR has no config.pbtxt" >&2; exit 1; }
for copy in unbatched batched; do
  run cp -r "$MODEL_DIR" "$REPO/${NAME}_$copy"
  rm -rf "$REPO/${NAME}_$copy/1/__pycache__"
done
# Rewrites config.pbtxt: the copy's own name, no dynamic_batching block in the unbatched copy,
# and one in the batched copy (the model's own block unless --batching gives another).
python3 - "$REPO" "$NAME" "$BATCHING" <<'EOF'
import re, sys
repo, name, override = sys.argv[1], sys.argv[2], sys.argv[3]

def split_block(text, key):
    m = re.search(r'(?m)^\s*' + key + r'\s*:?\s*\{', text)
    if not m:
        return text, None
    depth, i = 0, m.end() - 1
    while i < len(text):
        depth += {'{': 1, '}': -1}.get(text[i], 0)
        if depth == 0:
            break
        i += 1
    return text[:m.start()] + text[i + 1:], text[m.end():i]

for copy in ("unbatched", "batched"):
    path = f"{repo}/{name}_{copy}/config.pbtxt"
    text = open(path).read()
    text = re.sub(r'(?m)^\s*name\s*:\s*"[^"]*"\s*\n?', '', text)
    text, own = split_block(text, "dynamic_batching")
    text = f'name: "{name}_{copy}"\n' + text.rstrip() + "\n"
    if copy == "batched":
        body = override or (own.strip() if own is not None else "max_queue_delay_microseconds: 500")
        text += "dynamic_batching {\n  " + body + "\n}\n"
    open(path, "w").write(text)
EOF
echo "--- $REPO/${NAME}_batched/config.pbtxt"; cat "$REPO/${NAME}_batched/config.pbtxt"

# ---------------------------------------------------------------- the server
if [ "$SERVER" = despina ]; then
  LOG="$WORK/despina.log"
  show "$BIN/despina" serve --model-repository "$REPO" --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0
  "$BIN/despina" serve --model-repository "$REPO" --host 127.0.0.1 --http-port 0 --grpc-port 0 --metrics-port 0 \
    >"$LOG" 2>&1 </dev/null &
  SERVER_PID=$!
  HTTP_ADDR="" GRPC_ADDR=""
  for _ in $(seq 1 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "despina exited:"; tail -n 30 "$LOG"; exit 1; }
    HTTP_ADDR="$(sed -n 's/.*Started HTTPService at \([0-9.:]*\).*/\1/p' "$LOG" | head -n1)"
    GRPC_ADDR="$(sed -n 's/.*Started GRPCInferenceService at \([0-9.:]*\).*/\1/p' "$LOG" | head -n1)"
    [ -n "$HTTP_ADDR" ] && [ -n "$GRPC_ADDR" ] && break
    sleep 0.1
  done
  [ -n "$HTTP_ADDR" ] || { echo "despina did not report its HTTP address in 30 s:"; tail -n 30 "$LOG"; exit 1; }
else
  PORTS="$(python3 -c 'import socket
ss=[socket.socket() for _ in range(3)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
  read -r HP GP MP <<<"$PORTS"
  show env MODEL_REPO="$REPO" CONTROL_MODE=none "$TRITON_REF/start_triton.sh" "$HP" "$GP" "$MP"
  TRITON_HTTP="$HP"
  MODEL_REPO="$REPO" CONTROL_MODE=none "$TRITON_REF/start_triton.sh" "$HP" "$GP" "$MP" >/dev/null
  HTTP_ADDR="127.0.0.1:$HP" GRPC_ADDR="127.0.0.1:$GP"
fi
for _ in $(seq 1 100); do
  [ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://$HTTP_ADDR/v2/health/ready" || true)" = 200 ] && break
  sleep 0.1
done
URL="$HTTP_ADDR"; [ "$PROTOCOL" = grpc ] && URL="$GRPC_ADDR"
echo "server $SERVER ready: http $HTTP_ADDR, grpc $GRPC_ADDR"

# ---------------------------------------------------------------- the load
LEVEL_MS=$((WARMUP_MS + WINDOW_MS + 5000))
for copy in unbatched batched; do
  for c in $LEVELS; do
    if [ $((DEADLINE - SECONDS)) -lt $((LEVEL_MS / 1000 + 5)) ]; then
      echo "stopping: the 110 s bound would be passed" >&2; exit 1
    fi
    CMD=(timeout $((LEVEL_MS / 1000 + 15)) "$PERF" -m "${NAME}_$copy" -u "$URL" -i "$PROTOCOL"
      --concurrency-range "$c" -p "$WINDOW_MS" --warmup-time "$WARMUP_MS"
      --max-level-time "$LEVEL_MS" --request-timeout 5000 --stats-interval 100
      --json "$WORK/${copy}_$c.json" ${EXTRA[@]+"${EXTRA[@]}"})
    show "${CMD[@]}"
    rc=0
    "${CMD[@]}" >"$WORK/${copy}_$c.txt" 2>&1 || rc=$?
    grep -E '^(concurrency|request rate) ' "$WORK/${copy}_$c.txt" || true
    if [ "$rc" != 0 ]; then
      echo "despina-perf exited with $rc:"; cat "$WORK/${copy}_$c.txt"; exit 1
    fi
  done
done

# ---------------------------------------------------------------- the comparison
python3 - "$WORK" "$LEVELS" "$SERVER" "$PROTOCOL" "$NAME" <<'EOF'
import json, sys
work, levels, server, proto, name = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4], sys.argv[5]
def load(copy, c):
    lv = json.load(open(f"{work}/{copy}_{c}.json"))["levels"][0]
    s = lv.get("server") or {}
    return {"tput": lv["throughput_infer_per_s"], "p50": lv["latency"]["p50_us"], "p99": lv["latency"]["p99_us"],
            "q": s.get("queue_us"), "qmed": s.get("queue_us_median_of_intervals"), "batch": s.get("avg_batch_size"),
            "fail": lv["requests_failed"], "cpu": lv["client_cpu"]["us_per_request"]}
def f(x, fmt="{:.0f}"):
    return "-" if x is None else fmt.format(x)
print(f"\n{server} over {proto}, model {name}: unbatched vs dynamic batching")
print(f"{'conc':>4} | {'unbatched/s':>11} {'batched/s':>10} {'ratio':>6} | {'p50 unb':>8} {'p50 bat':>8} | "
      f"{'queue avg':>9} {'queue med':>9} {'avg batch':>9} | {'unb queue':>9} {'unb batch':>9}")
for c in levels:
    u, b = load("unbatched", c), load("batched", c)
    ratio = b["tput"] / u["tput"] if u["tput"] else float("nan")
    print(f"{c:>4} | {u['tput']:>11.1f} {b['tput']:>10.1f} {ratio:>6.2f} | {u['p50']:>8.0f} {b['p50']:>8.0f} | "
          f"{f(b['q']):>9} {f(b['qmed']):>9} {f(b['batch'], '{:.2f}'):>9} | {f(u['q']):>9} {f(u['batch'], '{:.2f}'):>9}")
    if u["fail"] or b["fail"]:
        print(f"     failed requests in the window: unbatched {u['fail']}, batched {b['fail']}")
print("times in microseconds; queue med = median over 100 ms intervals of the average queue time (server statistics);"
      " ratio = batched/unbatched throughput")
EOF
