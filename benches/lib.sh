# Shared by the benchmark scripts (sourced, not run).

wait_line() { # file prefix → rest of the first line starting with prefix
  for _ in $(seq 1 300); do
    l=$(grep -m1 "^$2" "$1" 2>/dev/null || true)
    [ -n "$l" ] && { echo "${l#"$2"}" | tr -d ' '; return; }
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1
}
