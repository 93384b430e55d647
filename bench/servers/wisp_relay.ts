// The relay that `--workers` runs in its supervisor, alone, for the cross-process fan-out
// benchmark (bench/fanout_redis.mjs): the two wisp_backplane.ts processes of a relay run connect
// to it as the workers of one supervisor would. Prints "listening on PORT" once up.
// Usage: deno run -A bench/servers/wisp_relay.ts PORT TOKEN
//        bun run bench/servers/wisp_relay.ts PORT TOKEN
import process from "node:process";
import { startRelayHub } from "../../src/pubsub/relay_hub.ts";

const hub = startRelayHub({
  port: Number(process.argv[2]),
  token: process.argv[3],
  onEvent: (event) => console.log(`${new Date().toISOString()} relay ${event.type}: ${event.message}`),
});
console.log(`listening on ${hub.port}`);
