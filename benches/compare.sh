#!/usr/bin/env bash
# gerbang beside its peers, in one run on the same inputs (issue 12). Prints ONE table:
#   measure | gerbang | peer | ratio | target
#   1. map + validate records/s on one core (benches/map_validate.rs): the canonical
#      posyandu.balita record beside the Python peer (satusehat-integration builders +
#      fhir.resources, benches/peers/peer_python.py) on the same record; every record type
#      beside that Python figure; and the floor, a bare serde_json parse + serialise of the
#      same record and its Bundle ("map + validate is within N× of the floor").
#   2. validation, every layer, resources/s on one core (benches/validate.rs) beside
#      @medplum/core's validateResource (benches/peers/peer_medplum.mjs) on the same Bundles.
#   3. `gerbang serve`: time from process start until /readyz answers 200, and RSS then
#      (every profile loaded).
#   4. durable ingest (POST /ingest/posyandu.balita, 202 after the fsync'd SQLite commit)
#      records/s as a % of the same server's GET /healthz rate, while the forwarder delivers
#      to (a) a no-op upstream (benches/noop_upstream.rs) and (b) the built-in sandbox; and
#      peak RSS (VmHWM) over each run.
#   5. the zero-config gateway (built-in sandbox, SQLite) taking PUSH_COUNT records (20,000;
#      100 in smoke mode) over 8 connections and delivering them all: RSS sampled every 20 ms
#      from the first push until nothing is queued, delivering or retrying
#      (benches/push_records.rs), against the issue's 150 MiB.
# Pinning: the one-core figures (1, 2, 3) run under `taskset -c 0`, gerbang and peers alike.
# The HTTP figures (4) use both cores: the server (HTTP workers, forwarder, SQLite, and in (b)
# the built-in sandbox, which is part of it) on core 0; wrk and the no-op upstream on core 1.
#
# Usage: benches/compare.sh [--smoke] [--profile release|dev]
#   --smoke    tiny durations, a few seconds per part: proves the script and the benches
#              still work (CI runs it through tests/bench_smoke.rs), not for figures; fails
#              unless every row has its numbers.
#   --profile  cargo profile of what it builds (default release; the smoke test uses dev,
#              which `cargo test` has already built the library in).
# Environment: BENCH_GERBANG_BIN (a gerbang binary to use instead of building one; not GERBANG_…,
# which gerbang itself reads as configuration), SECONDS_PER_RUN
# (HTTP runs, default 10), CONNECTIONS (default 32), PYTHON_PEER_DIR, MEDPLUM_PEER_DIR.
# Needs: cargo, python3, node + npm (the peers are installed, pinned, by
# benches/peers/install.sh, which this script runs), wrk (Debian: apt-get install -y wrk),
# curl, taskset. Timing belongs here, never in tests.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
PROFILE=release
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --profile) PROFILE="${2:?--profile needs a name: release or dev}"; shift ;;
    --profile=*) PROFILE="${1#--profile=}" ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "benches/compare.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

missing=()
for tool in cargo python3 node npm curl taskset; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
command -v wrk >/dev/null 2>&1 || missing+=("wrk (Debian: apt-get install -y wrk)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'benches/compare.sh: missing: %s\n' "${missing[@]}" >&2
  exit 1
fi

if [ "$SMOKE" = 1 ]; then
  MV_SECONDS=0.05; PEER_SECONDS=0.5; VALIDATE_N=20; HTTP_SECONDS=1; CONNECTIONS="${CONNECTIONS:-8}"; START_RUNS=1; PUSH_COUNT=100
else
  MV_SECONDS=2; PEER_SECONDS=10; VALIDATE_N=3000; HTTP_SECONDS="${SECONDS_PER_RUN:-10}"; CONNECTIONS="${CONNECTIONS:-32}"; START_RUNS=3; PUSH_COUNT=20000
fi
CORE_A=0
CORE_B=$(( $(nproc) > 1 ? 1 : 0 ))
RECORD=mappings/posyandu.balita/examples/bayi-9-bulan-imunisasi.input.json
BUNDLES=(mappings/rawat-jalan/examples/abses-dm-tiga-obat.bundle.json
         mappings/posyandu.balita/examples/bayi-9-bulan-imunisasi.bundle.json)
PY_DIR="${PYTHON_PEER_DIR:-$HOME/.cache/gerbang/python-peer}"
NODE_DIR="${MEDPLUM_PEER_DIR:-$HOME/.cache/gerbang/medplum-peer}"
export PYTHON_PEER_DIR="$PY_DIR" MEDPLUM_PEER_DIR="$NODE_DIR"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
. benches/lib.sh
say() { echo "== $*" >&2; }

# ---- build (only what is missing: with BENCH_GERBANG_BIN, the benches alone) ----
bash benches/peers/install.sh
if [ "$PROFILE" = release ]; then profile_args=(--release); else profile_args=(--profile "$PROFILE"); fi
build_args=(--bench map_validate --bench validate --bench noop_upstream --bench push_records)
[ -n "${BENCH_GERBANG_BIN:-}" ] || build_args+=(--bin gerbang)
say "building (${PROFILE}): ${build_args[*]}"
cargo build --quiet "${profile_args[@]}" "${build_args[@]}" --message-format=json-render-diagnostics > "$work/build.json"
exe() { # target name → its executable, from cargo's build messages
  python3 - "$work/build.json" "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[2] and m.get("executable"):
        print(m["executable"])
EOF
}
BIN="${BENCH_GERBANG_BIN:-$(exe gerbang | tail -1)}"
MV_BIN=$(exe map_validate | tail -1); VALIDATE_BIN=$(exe validate | tail -1); NOOP_BIN=$(exe noop_upstream | tail -1)
PUSH_BIN=$(exe push_records | tail -1)
for b in "$BIN" "$MV_BIN" "$VALIDATE_BIN" "$NOOP_BIN" "$PUSH_BIN"; do
  [ -x "$b" ] || { echo "benches/compare.sh: no executable at '$b' after the build" >&2; exit 1; }
done

# ---- the table ----
rows=()
row() { rows+=("$1|$2|$3|$4|$5"); }   # measure gerbang peer ratio target
notes=()
get() { # file key [word…] → the value after `key` on the first RESULT line holding every word
  local file=$1 key=$2; shift 2
  awk -v key="$key" -v words="$*" '
    $1 != "RESULT" { next }
    { n = split(words, w, " "); ok = 1
      for (j = 1; j <= n; j++) { found = 0; for (i = 2; i <= NF; i++) if ($i == w[j]) found = 1; if (!found) ok = 0 }
      if (!ok) next
      for (i = 2; i < NF; i++) if ($i == key) { print $(i + 1); exit } }' "$file"
}
num() { [[ "$1" =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
ratio() { # a b → a÷b as "12.3×", or "?" without two numbers
  if num "$1" && num "$2" && [ "$2" != 0 ]; then awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f×", a / b}'; else echo "?"; fi
}
percent() { if num "$1" && num "$2" && [ "$2" != 0 ]; then awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f%%", 100 * a / b}'; else echo "?"; fi; }
meets() { # ratio-text minimum → target text with ✓ or ✗
  local r=${1%×}
  if num "$r"; then awk -v r="$r" -v m="$2" 'BEGIN {printf "≥%s× %s", m, (r >= m ? "✓" : "✗")}'; else echo "≥$2×"; fi
}
at_most() { # value maximum unit → target text with ✓ or ✗ (issue 12's ceilings)
  if num "$1"; then awk -v v="$1" -v m="$2" -v u="$3" 'BEGIN {printf "≤%s%s %s", m, u, (v <= m ? "✓" : "✗")}'; else echo "≤$2$3"; fi
}
at_least_percent() { # percent-text minimum → target text with ✓ or ✗
  local p=${1%\%}
  if num "$p"; then awk -v p="$p" -v m="$2" 'BEGIN {printf "≥%s%% %s", m, (p >= m ? "✓" : "✗")}'; else echo "≥$2%"; fi
}

# ---- 1. map + validate, the Python peer, the floor ----
say "1. map + validate (one core, ${MV_SECONDS} s a measurement) and the Python peer"
taskset -c "$CORE_A" "$MV_BIN" --seconds "$MV_SECONDS" > "$work/mv.txt"
taskset -c "$CORE_A" "$PY_DIR/bin/python" benches/peers/peer_python.py "$RECORD" --seconds "$PEER_SECONDS" > "$work/py.txt"
py=$(get "$work/py.txt" records_per_s)
one=$(get "$work/mv.txt" records_per_s map_validate_record)
r=$(ratio "$one" "$py")
row "map+validate records/s, $(basename "$RECORD") ($(get "$work/mv.txt" resources map_validate_record) res.; Python: $(get "$work/py.txt" resources))" "$one" "$py" "$r" "$(meets "$r" 10)"
while read -r rt; do
  g=$(get "$work/mv.txt" records_per_s map_validate "$rt")
  r=$(ratio "$g" "$py")
  row "  map+validate records/s, $rt (its examples in turn)" "$g" "$py" "$r" "$(meets "$r" 5)"
done < <(awk '$1 == "RESULT" && $2 == "map_validate" {print $3}' "$work/mv.txt")
for what in record bundle record+bundle; do
  f=$(get "$work/mv.txt" records_per_s floor "$what")
  # The issue asks map + validate within 10× of the floor of the record and its Bundle.
  floor_target="—"; [ "$what" = record+bundle ] && floor_target=$(at_most "$(ratio "$f" "$one" | tr -d '×')" 10 ×)
  row "  floor: serde_json parse+serialise of the $what, records/s" "$one" "$f" "$(ratio "$f" "$one")" "$floor_target"
done

# ---- 2. validation, every layer, beside @medplum/core ----
say "2. validation (one core, ${VALIDATE_N} validations; @medplum/core ${PEER_SECONDS} s)"
cp benches/peers/peer_medplum.mjs "$NODE_DIR/"   # Node resolves @medplum/* beside the script
for b in "${BUNDLES[@]}"; do
  n=$(basename "$b" .json)
  taskset -c "$CORE_A" "$VALIDATE_BIN" "$b" "$VALIDATE_N" > "$work/v-$n.txt"
  (cd "$NODE_DIR" && taskset -c "$CORE_A" node peer_medplum.mjs "$OLDPWD/$b" --seconds "$PEER_SECONDS") > "$work/m-$n.txt"
  g=$(get "$work/v-$n.txt" resources_per_s); m=$(get "$work/m-$n.txt" resources_per_s)
  r=$(ratio "$g" "$m")
  row "validation resources/s, $n ($(get "$work/v-$n.txt" entries entries) res.)" "$g" "$m" "$r" "$(meets "$r" 15)"
done

# ---- 3. start-up: time until ready, RSS once ready ----
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
say "3. start-up of gerbang serve (${START_RUNS} run(s), built-in sandbox, a fresh data folder each)"
ready_ms=(); rss=()
for i in $(seq 1 "$START_RUNS"); do
  port=$(free_port)
  t0=$(date +%s%N)
  taskset -c "$CORE_A" "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$work/start-$i" > "$work/start-$i.log" 2>&1 &
  pid=$!; pids+=("$pid")
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ]; do
    kill -0 "$pid" 2>/dev/null || { echo "gerbang serve exited during start-up:" >&2; cat "$work/start-$i.log" >&2; exit 1; }
    [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt 120 ] || { echo "gerbang serve not ready after 120 s" >&2; exit 1; }
    sleep 0.005
  done
  t1=$(date +%s%N)
  ready_ms+=($(( (t1 - t0) / 1000000 )))
  rss+=("$(status_kib "$pid" VmRSS)")
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
ready=$(echo "${ready_ms[*]}" | median); ready_rss=$(mib "$(echo "${rss[*]}" | median)")
row "gerbang serve: ms from process start until /readyz is 200 (median of $START_RUNS)" "$ready" "—" "—" "$(at_most "$ready" 300 " ms")"
row "gerbang serve: RSS once ready, every profile loaded, MiB" "$ready_rss" "—" "—" "$(at_most "$ready_rss" 100 " MiB")"

# ---- 4. durable ingest as a % of /healthz, peak RSS ----
config() { # name config-body → $work/name.toml (its own data folder, rate limits off)
  mkdir -p "$work/$1"
  printf 'data_dir = "%s"\n%s\n[limits]\nrequests_per_second = 0   # one key pushes everything; the limiter is not what is measured\n' \
    "$work/$1" "$2" > "$work/$1.toml"
}
start_gateway() { # name → sets $gw and $gw_pid
  taskset -c "$CORE_A" "$BIN" --config "$work/$1.toml" serve --listen 127.0.0.1:0 > "$work/$1.log" 2>&1 &
  gw_pid=$!; pids+=("$gw_pid")
  gw=$(wait_line "$work/$1.log" "gerbang listening on ")
}
http_run() { # name label → rows for ingest vs healthz and peak RSS (server already started)
  local h i rps_h rps_i bad out errors
  # A durable-ingest client waits for its 202: slow answers count, up to 30 s, not as errors.
  h=$(taskset -c "$CORE_B" wrk -t1 -c"$CONNECTIONS" -d"${HTTP_SECONDS}s" --timeout 30s "$gw/healthz")
  i=$(GERBANG_KEY=$(cat "$work/$1.key") RECORD="$PWD/$RECORD" taskset -c "$CORE_B" \
    wrk -t1 -c"$CONNECTIONS" -d"${HTTP_SECONDS}s" --timeout 30s -s benches/ingest.lua "$gw/ingest/posyandu.balita")
  rps_h=$(echo "$h" | awk '/Requests\/sec/ {printf "%.0f", $2}'); rps_i=$(echo "$i" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  bad=$(echo "$i" | awk '$1 == "RESULT" {for (k = 2; k < NF; k++) if ($k == "non2xx") print $(k + 1)}')
  [ "${bad:-?}" = 0 ] || notes+=("ingest, $2: ${bad:-?} answers were not 202 — the figure is not a clean durable-ingest rate")
  for out in "$h" "$i"; do
    errors=$(echo "$out" | grep -o 'Socket errors:.*' || true)
    [ -z "$errors" ] || notes+=("ingest, $2: wrk $errors — the figure is not a clean rate")
  done
  local pct peak
  pct=$(percent "$rps_i" "$rps_h"); peak=$(mib "$(status_kib "$gw_pid" VmHWM)")
  row "durable ingest records/s (peer: /healthz req/s, same server), $2" "$rps_i" "$rps_h" "$pct" "$(at_least_percent "$pct" 25)"
  row "  peak RSS (VmHWM) over the run, $2, MiB" "$peak" "—" "—" "$(at_most "$peak" 150 " MiB")"
  notes+=("$2, receipts after the run: $(curl -s "$gw/readyz")")
  kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true
}
say "4. durable ingest vs /healthz (${HTTP_SECONDS} s each, $CONNECTIONS connections; server on core $CORE_A, wrk + upstream on core $CORE_B)"
taskset -c "$CORE_B" "$NOOP_BIN" --listen 127.0.0.1:0 > "$work/noop.log" 2>&1 &
pids+=($!)
noop=$(wait_line "$work/noop.log" "noop upstream listening on ")
config noop "[upstream]
base_url = \"$noop\"
[organizations.\"1000000001\"]
client_id = \"gerbang-demo\"
client_secret = \"gerbang-demo-secret\""
"$BIN" --config "$work/noop.toml" facility add --id pkm-bench --name bench --org 1000000001 --location loc-1 2>/dev/null > "$work/noop.key"
start_gateway noop
http_run noop "(a) no-op upstream"
notes+=("(a) no-op upstream, what it answered: $(curl -s "$noop/noop/stats")")
config sandbox ""
start_gateway sandbox
wait_line "$work/sandbox.log" "demo facility API key: " > "$work/sandbox.key"
http_run sandbox "(b) built-in sandbox"

# ---- 5. zero-config: PUSH_COUNT records ingested and delivered, RSS throughout ----
say "5. zero-config gateway: $PUSH_COUNT records ingested and delivered (8 connections)"
config zeroconf ""
start_gateway zeroconf
wait_line "$work/zeroconf.log" "demo facility API key: " > "$work/zeroconf.key"
push=$(taskset -c "$CORE_B" "$PUSH_BIN" --gateway "$gw" --key "$(cat "$work/zeroconf.key")" \
  --record "$RECORD" --count "$PUSH_COUNT" --connections 8 --pid "$gw_pid")
peak_kib=$(echo "$push" | sed -n 's/.*RSS peak \([0-9]*\) KiB.*/\1/p')
left=$(echo "$push" | sed -n 's/.*still on their way: \([0-9a-z]*\)).*/\1/p')
[ "$left" = 0 ] || notes+=("zero-config run: $left records were still on their way when it stopped waiting")
echo "$push" | grep -q "other: 0)" || notes+=("zero-config run: not every push was answered 202 ($push)")
row "zero-config, $PUSH_COUNT records ingested + delivered: peak RSS (sampled every 20 ms), MiB" "$(mib "$peak_kib")" "—" "—" "$(at_most "$(mib "$peak_kib")" 150 " MiB")"
notes+=("zero-config run: $push")
kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true

# ---- print ----
{
  echo
  echo "gerbang beside its peers — $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), profile $PROFILE$([ "$SMOKE" = 1 ] && echo ', SMOKE MODE: durations too short for figures')"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); one-core figures under taskset -c $CORE_A; HTTP: server on core $CORE_A, wrk -t1 -c$CONNECTIONS -d${HTTP_SECONDS}s + upstream on core $CORE_B"
  echo "ratio = gerbang ÷ peer; floor rows: peer = the floor, ratio = floor ÷ gerbang (map+validate is within that many × of it); ingest rows: ratio = % of /healthz"
  echo
  printf '| %s | %s | %s | %s | %s |\n' measure gerbang peer ratio target
  echo "|---|---:|---:|---:|---|"
  for r in "${rows[@]}"; do IFS='|' read -r a b c d e <<< "$r"; printf '| %s | %s | %s | %s | %s |\n' "$a" "$b" "$c" "$d" "$e"; done
  echo
  echo "peers: Python = satusehat-integration 4.14.1 builders + fhir.resources 8.3.0 (R4B) on the same record; medplum = @medplum/core 4.5.2 validateResource (base R4) on the same Bundles"
  for n in "${notes[@]}"; do echo "note: $n"; done
}

# ---- smoke: every row has its numbers ----
if [ "$SMOKE" = 1 ]; then
  bad=0
  for r in "${rows[@]}"; do
    IFS='|' read -r a b c d e <<< "$r"
    num "$b" || { echo "SMOKE FAIL: no gerbang figure in row '$a' ('$b')" >&2; bad=1; }
    [ "$c" = "—" ] || num "$c" || { echo "SMOKE FAIL: no peer figure in row '$a' ('$c')" >&2; bad=1; }
    [ "$d" != "?" ] || { echo "SMOKE FAIL: no ratio in row '$a'" >&2; bad=1; }
  done
  [ ${#rows[@]} -ge 15 ] || { echo "SMOKE FAIL: ${#rows[@]} rows, expected at least 15" >&2; bad=1; }
  for n in "${notes[@]}"; do [[ "$n" != *"not a clean"* ]] || { echo "SMOKE FAIL: $n" >&2; bad=1; }; done
  [ "$bad" = 0 ] || exit 1
  echo "smoke: all ${#rows[@]} rows have their numbers"
fi
