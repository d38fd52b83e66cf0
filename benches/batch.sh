#!/usr/bin/env bash
# Issue 10 benchmark: a posyandu's day pushed as one NDJSON batch against the same records
# pushed one request each, one after another over one keep-alive connection (what an app
# without batches does). Both are durable pushes (202 after the commit) of posyandu.balita
# records with fresh local ids, to a gateway delivering to a standalone sandbox. Prints one
# table: records per second, and the ratio.
# Needs: cargo, python3. RECORDS (default 500) records per run, ROUNDS (default 3) runs each.
# UPSTREAM=down measures ingest alone: the upstream refuses connections, so the forwarder
# backs off instead of competing for the cores (the default delivers to the sandbox).
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${RECORDS:-500}"
ROUNDS="${ROUNDS:-3}"

cargo build --release --quiet --bin gerbang
BIN="${CARGO_TARGET_DIR:-target}/release/gerbang"
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

. benches/lib.sh

if [ "${UPSTREAM:-sandbox}" = down ]; then
  sb="http://127.0.0.1:9"   # discard port: nothing listens
else
  "$BIN" sandbox --listen 127.0.0.1:0 > "$work/sb.log" 2>&1 &
  pids+=($!)
  sb=$(wait_line "$work/sb.log" "SATUSEHAT sandbox listening on ")
fi
cat > "$work/gw.toml" <<EOF
data_dir = "$work/data"
[upstream]
base_url = "$sb"
[organizations."1000000001"]
client_id = "gerbang-demo"
client_secret = "gerbang-demo-secret"
[limits]
requests_per_second = 0   # single pushes are many requests; the limiter is not what is measured
EOF
KEY=$("$BIN" --config "$work/gw.toml" facility add --id posyandu-bench --name bench --org 1000000001 --location loc-1 2>/dev/null)
"$BIN" --config "$work/gw.toml" serve --listen 127.0.0.1:0 > "$work/gw.log" 2>&1 &
pids+=($!)
gw=$(wait_line "$work/gw.log" "gerbang listening on ")

python3 - "$gw" "$KEY" "$RECORDS" "$ROUNDS" <<'EOF'
import http.client, json, sys, time, urllib.parse
url, key, n, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host = urllib.parse.urlparse(url).netloc
record = json.load(open("mappings/posyandu.balita/examples/bayi-9-bulan-imunisasi.input.json"))
def records(tag):
    out = []
    for i in range(n):
        r = dict(record); r["id_kunjungan"] = f"{tag}-{i:05d}"; out.append(json.dumps(r))
    return out
def single(tag):
    conn = http.client.HTTPConnection(host)
    body = records(tag)
    t0 = time.perf_counter()
    for b in body:
        conn.request("POST", "/ingest/posyandu.balita", b, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        r = conn.getresponse(); r.read()
        assert r.status == 202, r.status
    return n / (time.perf_counter() - t0)
def batch(tag):
    conn = http.client.HTTPConnection(host)
    body = "\n".join(records(tag)) + "\n"
    t0 = time.perf_counter()
    conn.request("POST", "/ingest/posyandu.balita", body, {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"})
    r = conn.getresponse(); lines = [json.loads(l) for l in r.read().decode().splitlines() if l.strip()]
    dt = time.perf_counter() - t0
    assert r.status == 200 and len(lines) == n and all(l["http_status"] == 202 for l in lines), lines[:2]
    return n / dt
s = [single(f"S{k}") for k in range(rounds)]
b = [batch(f"B{k}") for k in range(rounds)]
med = lambda v: sorted(v)[len(v) // 2]
print(f"| {n} posyandu.balita records, durable push | records/s (median of {rounds}) | runs |")
print("|---|---|---|")
print(f"| one request each, sequential, keep-alive | {med(s):.0f} | {', '.join(f'{x:.0f}' for x in s)} |")
print(f"| one NDJSON request | {med(b):.0f} | {', '.join(f'{x:.0f}' for x in b)} |")
print(f"| ratio | {med(b) / med(s):.2f}× | |")
EOF
