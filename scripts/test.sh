#!/usr/bin/env bash
# The test command: runs the whole suite under Deno, then Bun, then Node, and prints
# "tests: N passed, N failed, N skipped" summed over the three (after a line for each). Exits
# non-zero when any test fails.
set -u
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
if ! [ -x node_modules/.bin/deno ] || ! [ -x node_modules/.bin/bun ] || ! [ -x node_modules/.bin/esbuild ]; then
  npm ci --no-audit --no-fund || exit 1
fi
bash scripts/ensure_tools.sh

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
deno test -A --doc --junit-path="$reports/deno.xml" tests/ src/ mod.ts
deno_status=$?
bun test --timeout 30000 --reporter=junit --reporter-outfile="$reports/bun.xml"
bun_status=$?
# Node 20 runs TypeScript through scripts/node_ts.mjs and has its WebSocket client behind a flag.
# Each file runs in a process of its own, and the runner waits for each to exit: the timeout
# bounds a run that a handle left open would otherwise hold forever. Node 20 applies --test-timeout to
# each file as a whole, and the browser file takes over a minute.
timeout 900 node --import ./scripts/node_ts.mjs --experimental-websocket --disable-warning=ExperimentalWarning \
  --test --test-timeout=180000 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="$reports/node.xml" tests/*_test.ts
node_status=$?

count() { # runtime report status → "passed failed skipped", one failure at least when the runner failed
  local result passed failed skipped
  result=$( [ -f "$2" ] && node scripts/count_junit.mjs "$2" || echo "0 0 0")
  read -r passed failed skipped <<<"$result"
  if [ "$3" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
  echo "$1: $passed passed, $failed failed, $skipped skipped" >&2
  echo "$passed $failed $skipped"
}
read -r deno_passed deno_failed deno_skipped <<<"$(count deno "$reports/deno.xml" "$deno_status")"
read -r bun_passed bun_failed bun_skipped <<<"$(count bun "$reports/bun.xml" "$bun_status")"
read -r node_passed node_failed node_skipped <<<"$(count node "$reports/node.xml" "$node_status")"
echo "tests: $((deno_passed + bun_passed + node_passed)) passed, $((deno_failed + bun_failed + node_failed)) failed, $((deno_skipped + bun_skipped + node_skipped)) skipped"
[ "$deno_status" -eq 0 ] && [ "$bun_status" -eq 0 ] && [ "$node_status" -eq 0 ]
