#!/usr/bin/env bash
# Runs the Flotilla app itself (a copy of coracle-social/flotilla, its dependencies from
# npm) in headless Chromium against a fresh `highwater relay`: open the app, log in with
# a key, join the space, see its rooms, create a room, post, reload, open the room in a
# new browser profile, check the group list (10009). A screenshot of each step, the
# WebSocket frames and the result go to docs/flotilla/ (RESULT.md). Outside CI.
#
#   scripts/flotilla-e2e.sh FLOTILLA_CHECKOUT
#
# FLOTILLA_CHECKOUT is a copy of Flotilla's repository (made once; the script installs
# and builds in it):
#   with GitHub access:  git clone https://github.com/coracle-social/flotilla target/flotilla
#   from a bare mirror:  git --git-dir=MIRROR archive HEAD | tar -x -C target/flotilla
#                        git --git-dir=MIRROR rev-parse HEAD > target/flotilla/.commit
# Needs node and npm, and Chromium (Debian: apt-get install chromium; CHROMIUM=path to
# use another). npm serves none of the @welshman 0.8.1 packages Flotilla's lockfile pins,
# so the install pins @welshman/* to 0.8.3 (as tests/flotilla does) and re-resolves the
# rest of the lockfile; install scripts are skipped (sharp's downloads libvips from
# GitHub, and only Flotilla's icon generation uses it). FLOTILLA_REBUILD=1 builds again.
# HIGHWATER_BIN=path runs that executable instead of building one (HIGHWATER_COMMIT=what
# it was built from, for RESULT.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -eq 1 ] || { sed -n 8,22p "$0" >&2; exit 2; }
flotilla="$(cd "$1" && pwd)"
out="$root/docs/flotilla"
chromium="${CHROMIUM:-$(command -v chromium || true)}"
[ -x "$chromium" ] || { echo "chromium is required (apt-get install chromium)" >&2; exit 1; }
[ -f "$flotilla/package.json" ] || { echo "$flotilla is not a Flotilla checkout" >&2; exit 1; }
# Its commit: .commit (the mirror route), else its own git repository (a clone; not the
# repository it may sit inside, such as this one's target/).
if [ -f "$flotilla/.commit" ]; then
  flotilla_commit="$(cat "$flotilla/.commit")"
elif [ "$(git -C "$flotilla" rev-parse --show-toplevel 2>/dev/null)" = "$flotilla" ]; then
  flotilla_commit="$(git -C "$flotilla" rev-parse HEAD)"
else
  flotilla_commit=unknown
fi

# Flotilla: dependencies and a production build (vite build, as its build.sh does before
# its Capacitor steps).
if [ ! -d "$flotilla/node_modules" ]; then
  (cd "$flotilla" && node -e '
    const fs = require("fs")
    const p = JSON.parse(fs.readFileSync("package.json"))
    p.pnpm = p.pnpm || {}
    p.pnpm.overrides = p.pnpm.overrides || {}
    for (const n of ["app", "content", "editor", "feeds", "lib", "net", "router", "signer", "store", "util"])
      p.pnpm.overrides["@welshman/" + n] = "0.8.3"
    fs.writeFileSync("package.json", JSON.stringify(p, null, 2) + "\n")' &&
    npx --yes pnpm@9 install --no-frozen-lockfile --ignore-scripts --config.engine-strict=false)
fi
if [ ! -f "$flotilla/build/index.html" ] || [ -n "${FLOTILLA_REBUILD:-}" ]; then
  (cd "$flotilla" && set -a && . ./.env.template && set +a &&
    VITE_BUILD_HASH="${flotilla_commit:0:7}" npx vite build)
fi

# highwater: the executable cargo builds for this checkout, copied (another checkout
# sharing the target directory may replace target/debug/highwater while this runs).
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -z "${HIGHWATER_BIN:-}" ]; then
  built="$(cd "$root" && cargo build --quiet --locked -p highwater-replay --bin highwater --message-format=json |
    node -e 'let last; require("readline").createInterface({input: process.stdin}).on("line", l => { const m = JSON.parse(l); if (m.executable) last = m.executable }).on("close", () => console.log(last))')"
  cp "$built" "$work/highwater"
  HIGHWATER_BIN="$work/highwater"
fi
highwater_commit="${HIGHWATER_COMMIT:-$(git -C "$root" describe --always --dirty --abbrev=12)}"

# The driver (puppeteer-core on the system's Chromium; no browser download).
(cd "$root/scripts/flotilla-e2e" && npm ci --no-audit --no-fund --loglevel=error)
mkdir -p "$out"
rm -f "$out"/[0-9][0-9]-*.png
node "$root/scripts/flotilla-e2e/driver.mjs" --build "$flotilla/build" --highwater "$HIGHWATER_BIN" \
  --out "$out" --chromium "$chromium" --flotilla-commit "$flotilla_commit" \
  --highwater-commit "$highwater_commit"
