/**
 * What happens to messages while Redis restarts: two Wisp processes (Deno and Bun) on one
 * `redis-server`, a publisher on the first sending a numbered message every 10 ms, a subscriber on
 * each; Redis is killed for 2 s mid-stream and started again. Counts, per subscriber, the messages
 * delivered, lost, and delivered late (after Redis came back, having waited for it).
 *
 * `deno run -A bench/redis_restart.ts [--down-ms 2000]`
 */

import { frame, RawClient, TEXT } from "../tests/helpers/raw_client.ts";
import { RedisServer, startWisp } from "../tests/helpers/redis.ts";
import { delay } from "../tests/helpers/server.ts";

const downMs = Number(Deno.args[Deno.args.indexOf("--down-ms") + 1] || 2000);
const INTERVAL_MS = 10;
const BEFORE_MS = 2000;
const AFTER_MS = 4000;

const redis = await RedisServer.start();
const [a, b] = await Promise.all([startWisp("deno", redis.url), startWisp("bun", redis.url)]);
const decoder = new TextDecoder();

/** A subscriber that records when each numbered message arrived. */
async function subscriber(port: number): Promise<Map<number, number>> {
  const client = await RawClient.open(port, "/?topic=restart");
  const arrived = new Map<number, number>();
  (async () => {
    while (true) {
      const received = await client.readFrame(60_000).catch(() => null);
      if (received === null) return;
      arrived.set(Number(decoder.decode(received.payload)), Date.now());
    }
  })();
  return arrived;
}

const publisher = await RawClient.open(a.port, "/?topic=restart");
const [local, remote] = await Promise.all([subscriber(a.port), subscriber(b.port)]);
await delay(500);

const sentAt: number[] = [];
let downAt = 0;
let upAt = 0;
const started = Date.now();
let n = 0;
while (Date.now() - started < BEFORE_MS + downMs + AFTER_MS) {
  const elapsed = Date.now() - started;
  if (downAt === 0 && elapsed >= BEFORE_MS) {
    await redis.kill();
    downAt = Date.now();
  }
  if (downAt !== 0 && upAt === 0 && Date.now() - downAt >= downMs) {
    await redis.restart();
    upAt = Date.now();
  }
  sentAt[n] = Date.now();
  publisher.write(frame(TEXT, String(n++)));
  await delay(INTERVAL_MS);
}
await delay(1000);

for (const [name, arrived] of [["same process (A)", local], ["other process (B)", remote]] as const) {
  let lost = 0, late = 0, onTime = 0;
  for (let i = 0; i < n; i++) {
    const at = arrived.get(i);
    if (at === undefined) lost++;
    else if (sentAt[i] >= downAt && sentAt[i] < upAt && at >= upAt) late++;
    else onTime++;
  }
  console.log(
    `${name}: ${n} published, ${onTime} delivered at once, ${late} delivered late (after Redis was back), ${lost} lost`,
  );
}
console.log(`Redis down ${upAt - downAt} ms; publisher every ${INTERVAL_MS} ms`);
publisher.destroy();
await Promise.all([a.stop(), b.stop()]);
await redis.stop();
Deno.exit(0);
