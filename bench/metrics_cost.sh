#!/bin/bash
# The cost of counting (needs bench/.build/loadgen: run bench/run.sh once): 32 B echo (64 conns x 16 in flight) against `mod.ts --echo --metrics`, with and
# without a scraper polling /metrics every second, alternating, 3 rounds each.
cd "$(dirname "$0")/.."; export PATH=$PWD/node_modules/.bin:$PATH
run() { # runtime scrape
  local port=$((4100 + RANDOM % 500))
  if [ "$1" = deno ]; then taskset -c 0 deno run -A mod.ts --echo --metrics --port $port >/dev/null 2>&1 & else taskset -c 0 bun run mod.ts --echo --metrics --port $port >/dev/null 2>&1 & fi
  local pid=$!; sleep 2
  local scraper=""
  if [ "$2" = yes ]; then (while true; do curl -s -o /dev/null http://127.0.0.1:$port/metrics; sleep 1; done) & scraper=$!; fi
  local out=$(taskset -c 1 ./bench/.build/loadgen -m throughput -c 64 -f 16 -s 32 -p $port -d 3 -w 1 2>/dev/null)
  [ -n "$scraper" ] && kill $scraper
  pkill -P $pid 2>/dev/null; kill $pid 2>/dev/null; wait $pid 2>/dev/null
  echo "$1 scrape=$2 $(echo "$out" | grep -o '"msg_per_s":[0-9.]*')"
}
for r in 1 2 3; do for rt in deno bun; do run $rt no; run $rt yes; done; done
