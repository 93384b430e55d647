/**
 * What happens to messages while Redis restarts, in each mode of the Redis backplane (classic
 * pub/sub, streams) and each way between the runtimes: two Wisp processes on one `redis-server`
 * that keeps its data (appendonly, fsync always), a publisher on process A sending a numbered
 * message every 10 ms, a subscriber on A and one on B; Redis is SIGKILLed for `--down-ms`
 * mid-stream and started again on its data. Counts, per subscriber, the messages delivered at
 * once, late (published while Redis was down, delivered once it was back), lost and duplicated,
 * and those that came out of order.
 *
 * `deno run -A bench/redis_restart.ts [--down-ms 2000] [--runs 1] [--modes classic,streams]`
 */

import { frame, RawClient, TEXT } from "../tests/helpers/raw_client.ts";
import { type BackplaneMode, PERSISTENT, RedisServer, startWisp } from "../tests/helpers/redis.ts";
import { delay } from "../tests/helpers/server.ts";

const flag = (name: string, fallback: string) => {
  const at = Deno.args.indexOf(name);
  return at >= 0 && at + 1 < Deno.args.length ? Deno.args[at + 1] : fallback;
};
const downMs = Number(flag("--down-ms", "2000"));
const runs = Number(flag("--runs", "1"));
const modes = flag("--modes", "classic,streams").split(",") as BackplaneMode[];
const INTERVAL_MS = 10;
const BEFORE_MS = 2000;
const AFTER_MS = 4000;
/** How long the last messages get to arrive after the publisher stops. */
const SETTLE_MS = 2000;
const decoder = new TextDecoder();

/** A subscriber that records when each numbered message arrived (every arrival, duplicates too). */
async function subscriber(port: number) {
  const client = await RawClient.open(port, "/?topic=restart");
  const heard = { arrivals: new Map<number, number[]>(), order: [] as number[], probed: false, client };
  (async () => {
    while (true) {
      const received = await client.readFrame(60_000).catch(() => null);
      if (received === null) return;
      const text = decoder.decode(received.payload);
      if (text === "probe") {
        heard.probed = true;
        continue;
      }
      const n = Number(text);
      heard.order.push(n);
      heard.arrivals.set(n, [...heard.arrivals.get(n) ?? [], Date.now()]);
    }
  })();
  return heard;
}

/** One run: the counts of each subscriber. */
async function run(mode: BackplaneMode, publisherOn: "deno" | "bun", otherOn: "deno" | "bun") {
  const redis = await RedisServer.start(PERSISTENT);
  const [a, b] = await Promise.all([
    startWisp(publisherOn, redis.url, mode),
    startWisp(otherOn, redis.url, mode),
  ]);
  try {
    const publisher = await RawClient.open(a.port, "/?topic=restart");
    const [local, remote] = await Promise.all([subscriber(a.port), subscriber(b.port)]);
    // B listens once a probe from A has come through.
    while (!remote.probed) {
      publisher.write(frame(TEXT, "probe"));
      await delay(50);
    }
    const sentAt: number[] = [];
    let downAt = 0, upAt = 0, n = 0;
    const started = Date.now();
    while (Date.now() - started < BEFORE_MS + downMs + AFTER_MS) {
      if (downAt === 0 && Date.now() - started >= BEFORE_MS) {
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
    await delay(SETTLE_MS);
    const counts = [local, remote].map(({ arrivals, order }) => {
      let onTime = 0, late = 0, lost = 0, duplicated = 0;
      for (let i = 0; i < n; i++) {
        const at = arrivals.get(i);
        if (at === undefined) {
          lost++;
          continue;
        }
        duplicated += at.length - 1;
        if (sentAt[i] >= downAt && sentAt[i] < upAt && at[0] >= upAt) late++;
        else onTime++;
      }
      const reordered = order.filter((m, i) => i > 0 && m < order[i - 1]).length;
      return { published: n, onTime, late, lost, duplicated, reordered };
    });
    publisher.destroy();
    local.client.destroy();
    remote.client.destroy();
    return { counts, downMs: upAt - downAt };
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    await redis.stop();
  }
}

const rows: string[] = [];
for (const mode of modes) {
  for (const [publisherOn, otherOn] of [["deno", "bun"], ["bun", "deno"]] as const) {
    for (let i = 1; i <= runs; i++) {
      const { counts, downMs: down } = await run(mode, publisherOn, otherOn);
      for (const [k, c] of counts.entries()) {
        const where = k === 0 ? `${publisherOn} (same process)` : `${otherOn} (other process)`;
        rows.push(
          `| ${mode} | ${publisherOn} → ${where} | ${i} | ${c.published} | ${c.onTime} | ${c.late} | ${c.lost} | ${c.duplicated} | ${c.reordered} | ${down} |`,
        );
      }
      console.error(`${mode}, publisher on ${publisherOn}, run ${i}: done`);
    }
  }
}
console.log(
  `Redis SIGKILLed and restarted on its data (appendonly yes, appendfsync always); publisher every ${INTERVAL_MS} ms.

| mode | publisher → subscriber | run | published | at once | late (after Redis was back) | lost | duplicated | out of order | Redis down (ms) |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join("\n")}`,
);
Deno.exit(0);
