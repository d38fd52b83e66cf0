#!/usr/bin/env bash
# Issue 11 benchmark: validation cost before and after a change, on the same Bundles.
# Builds the `validate` bench of an earlier revision (default: 2b2cec2, before the rules were
# derived from SATUSEHAT's rule table) in a worktree and of this checkout, then measures both
# on the same files: instructions per validation with callgrind (reproducible on a noisy
# machine: (Ir at N2 − Ir at N1) / (N2 − N1), load excluded) and resources per second pinned to
# one core. Prints one table.
# Usage: benches/validate_before_after.sh [REV] [BUNDLE…]   Needs: git, cargo, valgrind, taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
REV="${1:-2b2cec2}"
shift || true
BUNDLES=("$@")
if [ ${#BUNDLES[@]} -eq 0 ]; then
  BUNDLES=(mappings/rawat-jalan/examples/abses-dm-tiga-obat.bundle.json
           mappings/posyandu.balita/examples/bayi-9-bulan-imunisasi.bundle.json)
fi
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/gerbang/target-bench}"
# The earlier revision's worktree stays (like the target directory), so a second run reuses
# its build; remove it with `git worktree remove`.
WT="${BEFORE_WORKTREE:-$HOME/.cache/gerbang/before-$REV}"
if [ ! -d "$WT" ]; then
  git worktree add --detach "$WT" "$REV" >/dev/null
fi

bench_bin() { # the validate bench binary built in $1
  (cd "$1" && CARGO_TARGET_DIR="$TARGET" cargo bench --no-run --bench validate --message-format=json 2>/dev/null) |
    grep -o '"executable":"[^"]*validate-[^"]*"' | tail -1 | cut -d'"' -f4
}
before=$(bench_bin "$WT"); cp "$before" "$TARGET/validate-before"
after=$(bench_bin "$PWD"); cp "$after" "$TARGET/validate-after"

ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$3" 2>&1 | grep -o 'Collected : [0-9]*' | awk '{print $3}'; }
per_validation() { local a b; a=$(ir "$1" "$2" 20); b=$(ir "$1" "$2" 120); echo $(( (b - a) / 100 )); }
rps() { taskset -c 0 "$1" "$2" 3000 | grep resources_per_s | awk '{print $5}'; }

printf '%-44s %14s %14s %8s %12s %12s\n' "bundle (the same file for both)" "Ir before" "Ir after" "Δ Ir" "res/s before" "res/s after"
for b in "${BUNDLES[@]}"; do
  f="$WT/$b"  # the earlier revision's file, so both validate exactly the same content
  ib=$(per_validation "$TARGET/validate-before" "$f"); ia=$(per_validation "$TARGET/validate-after" "$f")
  rb=$(rps "$TARGET/validate-before" "$f"); ra=$(rps "$TARGET/validate-after" "$f")
  printf '%-44s %14s %14s %7.1f%% %12s %12s\n' "$(basename "$b")" "$ib" "$ia" \
    "$(awk -v a="$ia" -v b="$ib" 'BEGIN {print (a - b) * 100 / b}')" "$rb" "$ra"
done
