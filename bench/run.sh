#!/usr/bin/env bash
# The whole benchmark in one command: bash bench/run.sh [--rounds N] [--quick]
# [--servers ids] [--scenarios ids].  Builds the C tools, then bench/run.mjs
# runs the rounds and prints and saves the tables (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cc taskset node; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
[ -x node_modules/.bin/deno ] && [ -x node_modules/.bin/bun ] && [ -d node_modules/ws ] ||
  { echo "bench: run 'npm ci' first (deno, bun and ws come from package.json)" >&2; exit 1; }

mkdir -p bench/.build
# The load generator deflates and inflates with zlib (scenario g).
if ! printf '#include <zlib.h>\nint main(void) { return !zlibVersion(); }\n' |
  cc -x c -o bench/.build/zlib-check - -lz 2>/dev/null; then
  if ! printf '#include <zlib.h>\n' | cc -x c -E - >/dev/null 2>&1; then
    echo "bench: zlib.h is missing: install zlib's development files" \
      "(Debian/Ubuntu: apt-get install -y zlib1g-dev; Fedora: dnf install zlib-devel)" >&2
  else
    echo "bench: zlib.h is there but linking with -lz fails: install zlib's development files" \
      "(Debian/Ubuntu: apt-get install -y zlib1g-dev; Fedora: dnf install zlib-devel)" >&2
  fi
  exit 1
fi
cc -O2 -Wall -o bench/.build/loadgen bench/loadgen.c -lz
cc -O2 -Wall -o bench/.build/rawecho bench/rawecho.c

# 10,000 idle connections take 10,000 descriptors on each side; go as high as allowed.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10100 ]; then
  echo "bench: warning: open-file limit $(ulimit -n) is too low for scenario (e)" >&2
fi

# run.mjs kills its servers itself; this catches any left if it dies abruptly.
cleanup() {
  local pgid
  if [ -f bench/.build/servers.pgids ]; then
    while read -r pgid; do kill -KILL -- "-$pgid" 2>/dev/null || true; done < bench/.build/servers.pgids
    rm -f bench/.build/servers.pgids
  fi
}
trap cleanup EXIT

BENCH_CMD="bash bench/run.sh${*:+ $*}" node bench/run.mjs "$@"
