#!/usr/bin/env bash
# What two optional features cost and buy, each against itself switched off in the same run:
#  1. latency summaries (--metrics-config summary_latencies=true): mlp throughput at
#     concurrency 16 with summaries on and off, alternating rounds;
#  2. the response cache (--cache-config local,size=...): all_minilm_l6_v2 answering the
#     same request over and over, from a copy with response_cache enabled and one without.
# Load comes from despina-perf over HTTP. Prints one JSON line per measurement and the ratios.
#
# Usage: scripts/bench_features.sh [--build] [--rounds N] [--window-ms N]
# The measured part is bounded: each despina-perf level by --max-level-time and timeout(1).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
ROUNDS=2
WINDOW_MS=4000
BUILD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=1; shift ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --window-ms) WINDOW_MS="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 1 ;;
  esac
done
show() { printf '+'; printf ' %q' "$@"; printf '\n'; }
run() { show "$@"; "$@"; }
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && run cargo build --release --bin despina --bin despina-perf)
fi
for b in despina despina-perf; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b (pass --build)" >&2; exit 1; }
done
"$ROOT/scripts/setup.sh" >/dev/null
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

WORK="$(mktemp -d)"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# A repository of links to the example models, plus a MiniLM copy that opts in to the cache.
REPO="$WORK/repo"
mkdir -p "$REPO"
for m in mlp all_minilm_l6_v2; do
  mkdir -p "$REPO/$m"
  ln -s "$ROOT/model_repository/$m/1" "$REPO/$m/1"
  cp "$ROOT/model_repository/$m/config.pbtxt" "$REPO/$m/"
done
mkdir -p "$REPO/minilm_cached"
ln -s "$ROOT/model_repository/all_minilm_l6_v2/1" "$REPO/minilm_cached/1"
sed 's/^name: .*/name: "minilm_cached"/' "$ROOT/model_repository/all_minilm_l6_v2/config.pbtxt" \
  > "$REPO/minilm_cached/config.pbtxt"
echo 'response_cache { enable: true }' >> "$REPO/minilm_cached/config.pbtxt"

start() {
  "$BIN/despina" serve --model-repository "$REPO" --host 127.0.0.1 --http-port 0 --grpc-port 0 \
    --metrics-port 0 --cache-config local,size=67108864 "$@" > "$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 200); do
    HTTP="$(grep -o 'Started HTTPService at [0-9.:]*' "$WORK/server.log" | awk '{print $4}' || true)"
    [ -n "$HTTP" ] && return 0
    sleep 0.1
  done
  cat "$WORK/server.log" >&2; exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

# Prints {label, infer_per_s, p50_us, p99_us} of one window.
measure() {
  local label="$1"; shift
  show "$BIN/despina-perf" -u "$HTTP" "$@" -p "$WINDOW_MS" --warmup-time 500 --json "$WORK/p.json"
  timeout $((WINDOW_MS / 1000 + 20)) "$BIN/despina-perf" -u "$HTTP" "$@" -p "$WINDOW_MS" \
    --warmup-time 500 --max-level-time $((WINDOW_MS + 5000)) --json "$WORK/p.json" > /dev/null
  python3 - "$label" "$WORK/p.json" <<'EOF' | tee -a "$WORK/results.jsonl"
import json, sys
level = json.load(open(sys.argv[2]))["levels"][0]
lat = level["latency"]
print(json.dumps({"label": sys.argv[1], "infer_per_s": round(level["throughput_infer_per_s"], 1),
                  "p50_us": round(lat["p50_us"], 1), "p99_us": round(lat["p99_us"], 1)}))
EOF
}

MLP=(-m mlp --concurrency-range 16:16)
for r in $(seq "$ROUNDS"); do
  for mode in off on; do
    if [ "$mode" = on ]; then start --metrics-config summary_latencies=true; else start; fi
    measure "mlp c16 summaries $mode (round $r)" "${MLP[@]}"
    stop
  done
done
start
MINILM=(--input-data zero --shape input_ids:32 --shape attention_mask:32 --shape token_type_ids:32)
for c in 1 8; do
  measure "minilm c$c uncached" -m all_minilm_l6_v2 --concurrency-range "$c:$c" "${MINILM[@]}"
  measure "minilm c$c cached" -m minilm_cached --concurrency-range "$c:$c" "${MINILM[@]}"
done
stop

python3 - "$WORK/results.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def avg(prefix):
    xs = [r["infer_per_s"] for r in rows if r["label"].startswith(prefix)]
    return sum(xs) / len(xs)
print(f"summaries on/off throughput (mlp c16): {avg('mlp c16 summaries on') / avg('mlp c16 summaries off'):.3f}")
by = {r["label"]: r for r in rows}
for c in (1, 8):
    u, k = by[f"minilm c{c} uncached"], by[f"minilm c{c} cached"]
    print(f"cache hit vs execution (MiniLM c{c}): throughput x{k['infer_per_s'] / u['infer_per_s']:.1f}, "
          f"p50 {k['p50_us']:.0f} us vs {u['p50_us']:.0f} us")
EOF
