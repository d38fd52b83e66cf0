#!/usr/bin/env bash
# gerbang benchmarks (issue 2). Prints one table:
#   - map + validate throughput of posyandu.balita records, one core (benches/map_validate.rs)
#   - acknowledged records per second at POST /ingest over loopback, each a durable SQLite
#     commit (wrk, benches/ingest.lua), while the forwarder delivers to the built-in sandbox
#   - GET /healthz on the same server: the HTTP ceiling of this machine
# Needs: cargo, wrk (Debian: apt-get install wrk). Timing belongs here, never in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/gerbang"
cargo bench --quiet --bench map_validate -- --seconds 5 | tee /tmp/gerbang-bench-map.txt

work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
# Rate limiting off: one demo key pushes everything, and the limiter is not what is measured.
GERBANG_LIMITS__REQUESTS_PER_SECOND=0 "$BIN" serve --listen 127.0.0.1:0 --data-dir "$work/data" > "$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "gerbang listening on" "$work/log" && break; sleep 0.1; done
url=$(grep -o 'gerbang listening on http://[0-9.:]*' "$work/log" | sed 's/gerbang listening on //')
export GERBANG_KEY; GERBANG_KEY=$(grep -o 'demo facility API key: .*' "$work/log" | sed 's/demo facility API key: //')
export RECORD="$PWD/mappings/posyandu.balita/examples/bayi-9-bulan-imunisasi.input.json"

ingest=$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" -s benches/ingest.lua "$url/ingest/posyandu.balita")
health=$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" "$url/healthz")
stored=$(curl -s "$url/readyz")

rps() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
p99() { echo "$1" | awk '/Latency/ {print $2}'; }
mv_rate=$(awk '/^RESULT posyandu.balita/ {print $4}' /tmp/gerbang-bench-map.txt)

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); wrk -t2 -c$CONNECTIONS -d${SECONDS_PER_RUN}s on loopback"
printf '%-58s %14s %12s\n' "measure" "per second" "avg latency"
printf '%-58s %14s %12s\n' "map + validate posyandu.balita (1 core, in process)" "$mv_rate" "-"
printf '%-58s %14s %12s\n' "POST /ingest/posyandu.balita, 202 after durable commit" "$(rps "$ingest")" "$(p99 "$ingest")"
printf '%-58s %14s %12s\n' "GET /healthz (ceiling, same server)" "$(rps "$health")" "$(p99 "$health")"
echo
echo "non-2xx during ingest: $(echo "$ingest" | awk '/RESULT/ {print $7}')"
echo "receipts after the run: $stored"
