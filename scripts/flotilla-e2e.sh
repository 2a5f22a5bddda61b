#!/usr/bin/env bash
# Runs the Flotilla app itself (a copy of coracle-social/flotilla, its dependencies from
# npm) in headless Chromium against `highwater relay`, taking a screenshot of each step
# into docs/flotilla/ and the result into docs/flotilla/RESULT.md. Outside CI: it needs
# Chromium (Debian: apt-get install chromium), pnpm and network access to GitHub/npm.
#
#   scripts/flotilla-e2e.sh [FLOTILLA_CHECKOUT]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
flotilla="${1:-$root/target/flotilla}"
out="$root/docs/flotilla"
command -v chromium >/dev/null || { echo "chromium is required (apt-get install chromium)" >&2; exit 1; }
[ -d "$flotilla" ] || git clone --depth 1 https://github.com/coracle-social/flotilla "$flotilla"
(cd "$flotilla" && npx --yes pnpm@9 install --frozen-lockfile && npx --yes pnpm@9 run build)
cargo build --quiet -p highwater-replay --bin highwater
db="$(mktemp -d)"
port=7791
HIGHWATER_RELAY_SECRET_KEY="$(openssl rand -hex 32)" "$root/target/debug/highwater" relay \
  --db "$db/db" --create --bind "127.0.0.1:$port" &
relay=$!
(cd "$flotilla" && npx --yes pnpm@9 run preview --port 4173 --host 127.0.0.1) &
app=$!
trap 'kill $relay $app; rm -rf "$db"' EXIT
sleep 5
mkdir -p "$out"
shot() { chromium --headless=new --no-sandbox --window-size=1000,700 --screenshot="$out/$1.png" "$2"; }
shot 1-landing "http://127.0.0.1:4173/"
shot 2-space "http://127.0.0.1:4173/spaces/$(node -e "console.log(encodeURIComponent('ws://127.0.0.1:$port'))")"
printf '# Flotilla against highwater\n\nLast run: %s\n\nScreenshots: %s\n' "$(date -u +%FT%TZ)" \
  "$(cd "$out" && ls *.png | tr '\n' ' ')" > "$out/RESULT.md"
