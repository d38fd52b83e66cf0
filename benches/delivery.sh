#!/usr/bin/env bash
# Issue 5 benchmarks. Prints one table:
#   - delivered transaction Bundles per second to a standalone sandbox over loopback, on
#     SQLite and on PostgreSQL: wrk pushes posyandu.balita records for INGEST_SECONDS (faster
#     than they can be delivered, so a backlog builds), then the backlog's drain rate is
#     measured with no ingest competing — pure delivery: lease, NIK look-ups (cached), POST,
#     durable completion;
#   - the request rate against an upstream that fails 100% of the time (503), per
#     organization, once the circuit breaker has opened (default breaker settings).
# Needs: cargo, wrk; PostgreSQL at POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test)
# for the PostgreSQL row (skipped with a notice when unreachable).
set -euo pipefail
cd "$(dirname "$0")/.."
INGEST_SECONDS="${INGEST_SECONDS:-8}"
FAIL_SECONDS="${FAIL_SECONDS:-60}"
POSTGRES_URL="${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet --bin gerbang
BIN="${CARGO_TARGET_DIR:-target}/release/gerbang"
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

. benches/lib.sh
stat() { curl -s "$1/sandbox/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
now() { date +%s.%N; }

start_sandbox() { # name → sets $sb (run in this shell, not in $(…), so its pid is kept for the trap)
  "$BIN" sandbox --listen 127.0.0.1:0 > "$work/$1.log" 2>&1 &
  pids+=($!)
  sb=$(wait_line "$work/$1.log" "SATUSEHAT sandbox listening on ")
}

start_gateway() { # name sandbox-url store-toml → sets $gw (config in $work/name.toml)
  mkdir -p "$work/$1"
  cat > "$work/$1.toml" <<EOF
data_dir = "$work/$1"
[upstream]
base_url = "$2"
[organizations."1000000001"]
client_id = "gerbang-demo"
client_secret = "gerbang-demo-secret"
[limits]
requests_per_second = 0   # one key pushes everything; the limiter is not what is measured
$3
EOF
  GERBANG_KEY=$("$BIN" --config "$work/$1.toml" facility add --id pkm-bench --name bench --org 1000000001 --location loc-1 2>/dev/null)
  echo "$GERBANG_KEY" > "$work/$1.key"
  "$BIN" --config "$work/$1.toml" serve --listen 127.0.0.1:0 > "$work/$1.log" 2>&1 &
  pids+=($!)
  gw=$(wait_line "$work/$1.log" "gerbang listening on ")
}

export RECORD="$PWD/mappings/posyandu.balita/examples/bayi-9-bulan-imunisasi.input.json"

drain() { # name store-toml → prints "records drained seconds rate"
  local sb gw accepted_before t0 t1 backlog
  start_sandbox "sb-$1"
  start_gateway "$1" "$sb" "$2"
  GERBANG_KEY=$(cat "$work/$1.key") wrk -t2 -c32 -d"${INGEST_SECONDS}s" -s benches/ingest.lua \
    "$gw/ingest/posyandu.balita" > "$work/$1.wrk"
  # Acknowledged records, as the gateway counts them (every receipt, whatever its status).
  local pushed; pushed=$(curl -s "$gw/readyz" | python3 -c "import json,sys; print(sum(json.load(sys.stdin)['receipts'].values()))")
  t0=$(now); accepted_before=$(stat "$sb" transactions_accepted)
  backlog=$((pushed - accepted_before))
  while [ "$(stat "$sb" transactions_accepted)" -lt "$pushed" ]; do sleep 0.05; done
  t1=$(now)
  awk -v n="$backlog" -v a="$t0" -v b="$t1" -v p="$pushed" \
    'BEGIN {printf "%d %d %.2f %.0f\n", p, n, b - a, n / (b - a)}'
}

echo "delivery on SQLite …" >&2
drain sqlite "" > "$work/sqlite.result"   # not in $(…): its processes stay ours to stop
sqlite=$(cat "$work/sqlite.result")
pg="skipped (PostgreSQL unreachable at $POSTGRES_URL)"
if psql "$POSTGRES_URL" -c 'select 1' >/dev/null 2>&1; then
  schema="bench_$(date +%s)"
  echo "delivery on PostgreSQL (schema $schema) …" >&2
  drain postgres "[store]
backend = \"postgres\"
postgres_url = \"$POSTGRES_URL\"
postgres_schema = \"$schema\"" > "$work/pg.result"
  pg=$(cat "$work/pg.result")
  psql "$POSTGRES_URL" -q -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true
fi

echo "request rate against a 100%-failing upstream ($FAIL_SECONDS s) …" >&2
start_sandbox sb-failing
curl -s -X PUT -H 'Content-Type: application/json' -d '{"error_rate": 1.0}' "$sb/sandbox/faults" >/dev/null
start_gateway failing "$sb" ""
key=$(cat "$work/failing.key")
r0=$(stat "$sb" requests); t0=$(now)
for i in $(seq 1 200); do
  sed "s/\"id_kunjungan\": \"[^\"]*\"/\"id_kunjungan\": \"FAIL-$i\"/" "$RECORD" |
    curl -s -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
      --data-binary @- "$gw/ingest/posyandu.balita"
done
sleep 10; r10=$(stat "$sb" requests); t10=$(now)
sleep "$FAIL_SECONDS"; r1=$(stat "$sb" requests)

row() { printf '%-62s %12s %10s %10s\n' "$@"; }
echo
echo "machine: $(nproc) cores; gateway, sandbox and wrk share them; default [deliver] settings (concurrency 8, 4 per organization)"
row "measure" "per second" "records" "seconds"
read -r p n s r <<< "$sqlite"
row "delivered Bundles, SQLite (drain of a $n-record backlog)" "$r" "$n" "$s"
if [[ "$pg" == skipped* ]]; then echo "PostgreSQL: $pg"; else
  read -r p n s r <<< "$pg"
  row "delivered Bundles, PostgreSQL (drain of a $n-record backlog)" "$r" "$n" "$s"
fi
awk -v a="$r0" -v b="$r10" -v c="$r1" -v t="$FAIL_SECONDS" -v s0="$t0" -v s10="$t10" 'BEGIN {
  printf "%-62s %12.2f %10s %10.1f\n", "requests to a 100%-failing upstream, pushing + 10 s (1 org)", (b - a) / (s10 - s0), "200", s10 - s0;
  printf "%-62s %12.2f %10s %10s\n", "requests to a 100%-failing upstream, next " t " s (breaker open)", (c - b) / t, "200", t }'
