#!/usr/bin/env bash
# The test command: runs the whole suite under Deno, then under Bun, and prints
# "tests: N passed, N failed" summed over both. Exits non-zero when any test fails.
set -u
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
if ! [ -x node_modules/.bin/deno ] || ! [ -x node_modules/.bin/bun ]; then
  npm ci --no-audit --no-fund || exit 1
fi
bash scripts/ensure_chromium.sh

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
deno test -A --doc --junit-path="$reports/deno.xml" tests/ src/ mod.ts
deno_status=$?
bun test --timeout 30000 --reporter=junit --reporter-outfile="$reports/bun.xml"
bun_status=$?

count() { # runtime report status → "passed failed", one failure at least when the runner failed
  local result passed failed
  result=$( [ -f "$2" ] && node scripts/count_junit.mjs "$2" || echo "0 0")
  read -r passed failed <<<"$result"
  if [ "$3" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
  echo "$1: $passed passed, $failed failed" >&2
  echo "$passed $failed"
}
read -r deno_passed deno_failed <<<"$(count deno "$reports/deno.xml" "$deno_status")"
read -r bun_passed bun_failed <<<"$(count bun "$reports/bun.xml" "$bun_status")"
echo "tests: $((deno_passed + bun_passed)) passed, $((deno_failed + bun_failed)) failed"
[ "$deno_status" -eq 0 ] && [ "$bun_status" -eq 0 ]
