#!/usr/bin/env bash
# Flotilla's space flows through the @welshman libraries (flows.mjs), and zooid's README
# configuration directory served by one `highwater relay --config-dir` to nostr-tools
# (zooid.mjs), against a freshly built `highwater`; package-lock.json pins the libraries.
# Needs node and npm; installs with `npm ci`.
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "tests/flotilla: node and npm are required (the CI machine provides them)" >&2
  exit 1
}
# The executable cargo built for this checkout (not target/debug/highwater, which another
# checkout sharing the target directory may have replaced).
bin="$(cargo build --quiet --locked -p highwater-replay --bin highwater --message-format=json \
  | node -e 'let last; require("readline").createInterface({input: process.stdin}).on("line", l => { const m = JSON.parse(l); if (m.executable) last = m.executable }).on("close", () => console.log(last))')"
npm ci --no-audit --no-fund --loglevel=error
HIGHWATER_BIN="$bin" timeout 120 node flows.mjs
HIGHWATER_BIN="$bin" timeout 120 node zooid.mjs
