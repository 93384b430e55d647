/**
 * The Redis backplane's streams mode against a real `redis-server`: messages of other processes
 * delivered once, in order, with their offsets; history (append, position, read) with epochs that
 * change when Redis lost a stream; the set of streams read changed at once; memory bounded; and
 * processes on Deno and Bun that lose nothing when Redis is SIGKILLed and restarted on its data,
 * or when their connections to it are cut.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, Socket } from "node:net";
import {
  fixtureStats,
  PERSISTENT,
  redisCommand,
  RedisProxy,
  RedisServer,
  redisSkipReason,
  replyText,
  twoProcesses,
} from "./helpers/redis.ts";
import { freePort, until } from "./helpers/server.ts";
import { type Backplane, type BackplaneEvent, redisBackplane, type RedisBackplaneOptions } from "../mod.ts";
import { compareOffsets, isOffset } from "../src/pubsub/offset.ts";
import { ResendFilter } from "../src/pubsub/resend_filter.ts";
import { openEntry, topicKeys } from "../src/pubsub/stream_script.ts";
import { RespReader, type RespValue } from "../src/pubsub/resp.ts";

const skip = redisSkipReason;
const WAIT = 5000;
/** Tests that start processes and restart Redis take longer than a runner's default timeout. */
const SLOW = { timeout: 30_000 };
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A message a backplane handed to `deliver`. */
interface Delivered {
  topic: string;
  data: string | Uint8Array;
  offset: string | undefined;
  /** The epoch told with it. */
  epoch: string | undefined;
}

/** A streams backplane on `url`, attached as a server would, recording what it delivers and tells. */
function attached(url: string, options: RedisBackplaneOptions = {}) {
  const got: Delivered[] = [];
  const events: BackplaneEvent[] = [];
  const backplane = redisBackplane({
    url,
    mode: "streams",
    onEvent: (event) => events.push(event),
    ...options,
  });
  backplane.attach(
    (topic, data, at) => got.push({ topic, data, offset: at?.offset, epoch: at?.epoch }),
    () => {},
  );
  return { backplane, got, events };
}

/** Publishes probes from `from` until `to` delivers one: `to` reads `topic` then. */
async function reading(from: Backplane, to: { got: Delivered[] }, topic: string): Promise<void> {
  await until(
    () => {
      if (to.got.some((message) => message.topic === topic && message.data === PROBE)) return true;
      from.publish(topic, PROBE);
      return false;
    },
    `a probe on ${topic}`,
    WAIT,
  );
}

const PROBE = "probe";

/** What `backplane` delivered, probes left out. */
function messages({ got }: { got: Delivered[] }): Delivered[] {
  return got.filter((message) => message.data !== PROBE);
}

describe("streams backplane: backplanes of two processes on one Redis", { skip }, () => {
  let redis: RedisServer;
  const open: Backplane[] = [];
  /** A backplane that is closed after the tests. */
  const make = (options: RedisBackplaneOptions = {}) => {
    const made = attached(redis.url, options);
    open.push(made.backplane);
    return made;
  };
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await Promise.all(open.map((backplane) => backplane.close()));
    await redis?.stop();
  });

  it("delivers another's messages once, in order, text as text and bytes as bytes, each with its offset", async () => {
    const a = make(), b = make();
    a.backplane.subscribe("room");
    b.backplane.subscribe("room");
    await reading(a.backplane, b, "room");
    const sent = Array.from(
      { length: 200 },
      (_, i) => i % 3 === 0 ? Uint8Array.of(i, 0, 13, 10, 255) : `m${i}`,
    );
    for (const data of sent) a.backplane.publish("room", data);
    await until(() => messages(b).length >= sent.length, "every message", WAIT);
    const got = messages(b);
    assert.deepEqual(got.map((message) => message.data), sent);
    assert.ok(got.every((message) => message.topic === "room" && isOffset(message.offset)));
    assert.ok(got.every((message, i) => i === 0 || compareOffsets(got[i - 1].offset!, message.offset!) < 0));
    await until(() => a.backplane.stats().bufferedBytes === 0, "the publishes to be acknowledged", WAIT);
    assert.equal(a.got.length, 0, "a backplane never hands back its own messages");
    assert.equal(b.backplane.stats().received, b.got.length);
  });

  it("append resolves with the offset the other process is given, and the appender does not get it back", async () => {
    const a = make(), b = make();
    a.backplane.subscribe("appended");
    b.backplane.subscribe("appended");
    await reading(a.backplane, b, "appended");
    const appended = [];
    for (let i = 0; i < 5; i++) appended.push(await a.backplane.append!("appended", `a${i}`));
    const offsets = appended.map((at) => at.offset);
    await until(() => messages(b).length >= 5, "the appended messages", WAIT);
    assert.deepEqual(
      messages(b).map((message) => [message.data, message.offset]),
      offsets.map((offset, i) => [`a${i}`, offset]),
    );
    const position = await a.backplane.position!("appended");
    assert.equal(position.offset, offsets[4]);
    // The epoch: the same in every append's answer, in the position, and told with every delivery.
    assert.deepEqual([...new Set(appended.map((at) => at.epoch))], [position.epoch]);
    assert.deepEqual([...new Set(messages(b).map((message) => message.epoch))], [position.epoch]);
    assert.equal(a.got.length, 0);
  });

  it("delivers every entry after a position taken once subscribed, while another process appends", async () => {
    const a = make({ pingInterval: 60_000 }), b = make();
    a.backplane.subscribe("busy"); // a read blocked on another topic, to be interrupted for this one
    await reading(b.backplane, a, "busy");
    const appended: string[] = [];
    let appending = true;
    const appender = (async () => {
      while (appending) {
        const batch = Array.from(
          { length: 20 },
          (_, i) => b.backplane.append!("joined", `j${appended.length + i}`).then((at) => at.offset),
        );
        appended.push(...await Promise.all(batch));
      }
    })();
    await until(() => appended.length >= 20, "appends before the subscription", WAIT);
    a.backplane.subscribe("joined");
    const start = await a.backplane.position!("joined");
    await until(() => appended.length >= 2000, "appends after it", WAIT);
    appending = false;
    await appender;
    const after = appended.filter((offset) => compareOffsets(offset, start.offset) > 0);
    await until(
      () => messages(a).filter((m) => m.topic === "joined").length >= after.length,
      "them all",
      WAIT,
    );
    const got = messages(a).filter((message) =>
      message.topic === "joined" && compareOffsets(message.offset!, start.offset) > 0
    );
    assert.deepEqual(got.map((message) => message.offset), after);
  });

  it("position: a topic without entries is at 0-0 of an epoch that its first entry keeps", async () => {
    const { backplane } = make();
    const empty = await backplane.position!("fresh topic");
    assert.equal(empty.offset, "0-0");
    assert.deepEqual(await backplane.position!("fresh topic"), empty, "asking again changes nothing");
    const { offset } = await backplane.append!("fresh topic", "first");
    assert.deepEqual(await backplane.position!("fresh topic"), { epoch: empty.epoch, offset });
    const page = await backplane.read!("fresh topic", empty, 10);
    assert.deepEqual(page, {
      epoch: empty.epoch,
      last: offset,
      status: "ok",
      entries: [{ offset, data: "first" }],
    });
  });

  it("read: the entries after a position, oldest first, at most the limit; other epochs and future offsets refused", async () => {
    const { backplane } = make();
    const start = await backplane.position!("history");
    const offsets = [];
    for (let i = 0; i < 20; i++) {
      offsets.push((await backplane.append!("history", i % 2 ? `h${i}` : encoder.encode(`b${i}`))).offset);
    }
    const page = await backplane.read!("history", { epoch: start.epoch, offset: offsets[14] }, 3);
    assert.equal(page.status, "ok");
    assert.equal(page.last, offsets[19]);
    assert.deepEqual(page.entries.map((entry) => entry.offset), offsets.slice(15, 18));
    assert.deepEqual(page.entries.map((entry) => entry.data), ["h15", encoder.encode("b16"), "h17"]);
    const all = await backplane.read!("history", start, 100);
    assert.deepEqual(all.entries.map((entry) => entry.offset), offsets);
    const none = await backplane.read!("history", { epoch: start.epoch, offset: offsets[19] }, 100);
    assert.deepEqual([none.status, none.entries], ["ok", []]);
    const other = await backplane.read!("history", { epoch: "another", offset: offsets[3] }, 100);
    assert.deepEqual([other.status, other.epoch, other.entries], ["epoch", start.epoch, []]);
    const [ms] = offsets[19].split("-");
    const future = await backplane.read!(
      "history",
      { epoch: start.epoch, offset: `${BigInt(ms) + 1n}-0` },
      100,
    );
    assert.deepEqual([future.status, future.entries], ["future", []]);
  });

  it("read: refuses malformed positions and limits with a TypeError or RangeError", () => {
    const { backplane } = make();
    const epoch = "e";
    for (
      const offset of [
        "",
        "1",
        "1-",
        "-1",
        "01-1",
        "1-01",
        "1-2-3",
        "18446744073709551616-0",
        " 1-1",
        "1.5-0",
      ]
    ) {
      assert.throws(() => backplane.read!("t", { epoch, offset }, 1), RangeError, offset);
    }
    assert.throws(() => backplane.read!("t", { epoch, offset: 5 as unknown as string }, 1), RangeError);
    assert.throws(() => backplane.read!("t", null as never, 1), TypeError);
    assert.throws(() => backplane.read!("t", { epoch: 1 } as never, 1), TypeError);
    for (const limit of [0, -1, 1.5, 10_001, NaN]) {
      assert.throws(() => backplane.read!("t", { epoch, offset: "0-0" }, limit), RangeError);
    }
    assert.throws(() => backplane.read!(7 as never, { epoch, offset: "0-0" }, 1), TypeError);
    assert.throws(() => backplane.append!("t", 7 as never), TypeError);
    assert.ok(isOffset("18446744073709551615-18446744073709551615"));
  });

  it("read: an offset whose entries maxLen trimmed away cannot be filled", async () => {
    const { backplane } = make({ maxLen: 10 });
    const start = await backplane.position!("trimmed");
    const offsets = [];
    for (let i = 0; i < 250; i++) offsets.push((await backplane.append!("trimmed", `t${i}`)).offset);
    const length = await redisCommand(redis.port, [
      "XLEN",
      topicKeys(encoder.encode("wisp:"), 16, "trimmed").stream,
    ]);
    assert.ok(typeof length === "number" && length >= 10 && length < 250, `XLEN ${length}`);
    assert.equal((await backplane.read!("trimmed", start, 10)).status, "trimmed");
    assert.equal(
      (await backplane.read!("trimmed", { epoch: start.epoch, offset: offsets[100] }, 10)).status,
      "trimmed",
    );
    const recent = await backplane.read!("trimmed", { epoch: start.epoch, offset: offsets[244] }, 10);
    assert.equal(recent.status, "ok");
    assert.deepEqual(recent.entries.map((entry) => entry.data), ["t245", "t246", "t247", "t248", "t249"]);
  });

  it("a stream Redis lost (FLUSHALL, or its key removed) gets a new epoch: old positions are refused", async () => {
    const { backplane } = make();
    const keys = topicKeys(encoder.encode("wisp:"), 16, "lost");
    await backplane.append!("lost", "before");
    const before = await backplane.position!("lost");
    await redisCommand(redis.port, ["FLUSHALL"]);
    await backplane.append!("lost", "after");
    const flushed = await backplane.position!("lost");
    assert.notEqual(flushed.epoch, before.epoch);
    assert.equal((await backplane.read!("lost", before, 10)).status, "epoch");
    await redisCommand(redis.port, ["DEL", keys.stream]); // the epoch key stays: it must not be taken over
    await backplane.append!("lost", "again");
    const removed = await backplane.position!("lost");
    assert.notEqual(removed.epoch, flushed.epoch);
    assert.equal((await backplane.read!("lost", flushed, 10)).status, "epoch");
    const page = await backplane.read!("lost", { epoch: removed.epoch, offset: "0-0" }, 10);
    assert.deepEqual(page.entries.map((entry) => entry.data), ["again"]);
  });

  it("keys expire streamTtl after the last append (both the stream and its epoch), or never with 0", async () => {
    const lasting = make({ streamTtl: 60_000, channelPrefix: "ttl:" }).backplane;
    const forever = make({ streamTtl: 0, channelPrefix: "forever:" }).backplane;
    await lasting.append!("t", "x");
    await forever.append!("t", "x");
    for (
      const [prefix, check] of [["ttl:", (ms: number) => ms > 0 && ms <= 60_000], [
        "forever:",
        (ms: number) => ms === -1,
      ]] as const
    ) {
      const keys = topicKeys(encoder.encode(prefix), 16, "t");
      for (const key of [keys.stream, keys.epoch]) {
        const ms = await redisCommand(redis.port, ["PTTL", key]);
        assert.ok(typeof ms === "number" && check(ms), `${prefix} PTTL ${ms}`);
      }
    }
  });

  it("changes the streams it reads at once (CLIENT UNBLOCK), reading exactly its topics' streams", async () => {
    // A read blocks for half the ping interval: 30 s here, far longer than any wait below.
    const a = make({ pingInterval: 60_000 }), b = make({ pingInterval: 60_000 });
    const monitor = await Monitor.open(redis.port);
    try {
      b.backplane.subscribe("one");
      await reading(a.backplane, b, "one");
      b.backplane.subscribe("two");
      await reading(a.backplane, b, "two");
      const keys = (topic: string) => decoder.decode(topicKeys(encoder.encode("wisp:"), 16, topic).stream);
      b.backplane.unsubscribe("one");
      await until(
        () => monitor.xreads().some((read) => read.join() === keys("two")),
        "a read of two alone",
        WAIT,
      );
      b.backplane.subscribe("three");
      await until(
        () =>
          monitor.xreads().some((read) => read.sort().join() === [keys("three"), keys("two")].sort().join()),
        "a read of two and three",
        WAIT,
      );
      // MONITOR leaves out CLIENT commands; the command statistics count them.
      const unblocks = /cmdstat_client\|unblock:calls=(\d+)/.exec(
        replyText(await redisCommand(redis.port, ["INFO", "commandstats"])),
      );
      assert.ok(Number(unblocks?.[1]) >= 2, "the blocked reads were interrupted");
    } finally {
      monitor.close();
    }
  });

  it("holds publishes while Redis is away, up to maxBufferedBytes (the rest dropped, counted); they go out in order", async () => {
    const port = await freePort();
    const { backplane } = attached(`redis://127.0.0.1:${port}`, { maxBufferedBytes: 2000 });
    open.push(backplane);
    for (let i = 0; i < 20; i++) backplane.publish("held", `${i}`.padEnd(200, "."));
    const stats = backplane.stats();
    assert.ok(stats.dropped > 0 && stats.dropped < 20, `${stats.dropped} dropped`);
    assert.ok(
      stats.bufferedBytes! <= 2000 && stats.bufferedBytes! > 1000,
      `${stats.bufferedBytes} bytes held`,
    );
    await assert.rejects(backplane.append!("held", "x".repeat(2000)), /maxBufferedBytes/);
    const kept = 20 - stats.dropped;
    const late = new RedisServer(port, []);
    await late.restart();
    try {
      await until(() => backplane.stats().bufferedBytes === 0, "the held publishes to go out", 10_000);
      const start = { epoch: (await backplane.position!("held")).epoch, offset: "0-0" };
      const page = await backplane.read!("held", start, 100);
      assert.deepEqual(
        page.entries.map((entry) => (entry.data as string).replace(/\.+$/, "")),
        Array.from({ length: kept }, (_, i) => `${i}`),
      );
      assert.equal(backplane.stats().published, kept);
    } finally {
      await backplane.close();
      await late.stop();
    }
  });
});

describe(
  "streams backplane: Deno and Bun processes through a Redis restart and lost connections",
  { skip },
  () => {
    it(
      "Redis SIGKILLed mid-stream, restarted on its data (appendonly, fsync always): all arrive once, in order",
      SLOW,
      async () => {
        const redis = await RedisServer.start(PERSISTENT);
        try {
          await twoProcesses(redis.url, async (send, processes, subscribers) => {
            await send(0, 30);
            // Publishes in flight when Redis dies: written to it while it is frozen, so it never takes them.
            redis.freeze();
            await send(30, 50, 0);
            await until(
              () => subscribers[0].includes("deno 49") && subscribers[1].includes("bun 49"),
              "local delivery of the last one (so both processes have written it to Redis)",
              WAIT,
            );
            await redis.kill();
            await until(
              async () =>
                (await Promise.all(processes.map(fixtureStats))).every((s) => s.state !== "connected"),
              "both processes to notice",
              WAIT,
            );
            await send(50, 100); // published while Redis is down
            await redis.restart();
            await send(100, 140);
          });
        } finally {
          await redis.stop();
        }
      },
    );

    it(
      "connections lost after Redis took publishes but before they were acknowledged: copies skipped",
      SLOW,
      async () => {
        const redis = await RedisServer.start();
        const proxy = await RedisProxy.start(redis.port);
        try {
          await twoProcesses(proxy.url, async (send, processes) => {
            await send(0, 30);
            proxy.holdReplies();
            await send(30, 70, 0);
            await until(
              async () => {
                const texts = await streamTexts(redis.port, "outage");
                return texts.includes("deno 69") && texts.includes("bun 69");
              },
              "Redis to take every publish",
              WAIT,
            );
            const before = await Promise.all(processes.map(fixtureStats));
            proxy.cut();
            await until(
              async () =>
                (await Promise.all(processes.map(fixtureStats))).every((s, i) =>
                  s.reconnects > before[i].reconnects
                ),
              "both processes to reconnect",
              10_000,
            );
            await send(70, 100);
            const copies = (await streamTexts(redis.port, "outage")).filter((text) => text === "deno 50");
            assert.equal(copies.length, 2, "the unacknowledged publish reached Redis twice");
          });
        } finally {
          proxy.close();
          await redis.stop();
        }
      },
    );
  },
);

/** The texts of every message in `topic`'s stream, oldest first (copies sent again included). */
async function streamTexts(port: number, topic: string): Promise<string[]> {
  const keys = topicKeys(encoder.encode("wisp:"), 16, topic);
  const entries = await redisCommand(port, ["XRANGE", keys.stream, "-", "+"]) as RespValue[][];
  return entries.map((entry) => openEntry(entry[1])?.data).filter((data) => typeof data === "string");
}

describe("streams backplane: a Redis that answers garbage", { skip }, () => {
  it("reports a clear error and does not crash", async () => {
    const garbage = createServer((socket) => socket.on("data", () => socket.write("?this is not RESP\r\n")));
    await new Promise<void>((resolve) => garbage.listen(0, "127.0.0.1", resolve));
    const port = (garbage.address() as { port: number }).port;
    const { backplane, events } = attached(`redis://127.0.0.1:${port}`);
    try {
      backplane.subscribe("t");
      backplane.publish("t", "x");
      await until(
        () => events.some((event) => /malformed reply from Redis/.test(event.message)),
        "the error",
        WAIT,
      );
      assert.ok(backplane.stats().errors >= 1);
      assert.equal(backplane.stats().state, "connecting");
    } finally {
      await backplane.close();
      garbage.close();
    }
  });
});

describe("streams backplane: options and pure parts", () => {
  it("refuses bad options with a TypeError or RangeError naming the option", () => {
    assert.throws(() => redisBackplane({ mode: "kafka" as never }), /option "mode"/);
    assert.throws(() => redisBackplane({ maxLen: 10 }), /option "maxLen" needs mode "streams"/);
    assert.throws(
      () => redisBackplane({ mode: "streams", sharded: true }),
      /option "sharded" is for mode "classic"/,
    );
    assert.throws(() => redisBackplane({ mode: "streams", maxLen: 0 }), RangeError);
    assert.throws(() => redisBackplane({ mode: "streams", streamTtl: -1 }), /option "streamTtl"/);
    assert.throws(() => redisBackplane({ mode: "streams", streamSlots: 16385 }), /option "streamSlots"/);
    assert.throws(() => redisBackplane({ url: [] }), /option "url"/);
    assert.throws(() => redisBackplane({ url: ["redis://a:1", 5 as never] }), /option "url"/);
  });

  it("skips a copy sent again when its publisher's message of that number or later came already", () => {
    const filter = new ResendFilter();
    const a = Uint8Array.of(1), b = Uint8Array.of(2);
    assert.deepEqual(
      [[a, 1, false], [a, 2, false], [b, 1, false], [a, 2, true], [a, 1, true], [a, 3, true], [b, 1, true], [
        b,
        4,
        false,
      ]]
        .map(([origin, seq, resent]) => filter.admit(origin as Uint8Array, seq as number, resent as boolean)),
      [true, true, true, false, false, true, false, true],
    );
    // A message refused once and sent again later (not a second copy) is delivered, even out of order.
    assert.equal(filter.admit(a, 2, false), true);
  });

  it("orders offsets numerically, part by part", () => {
    const sorted = ["0-0", "0-1", "9-0", "10-0", "10-2", "10-10", "18446744073709551615-0"];
    assert.deepEqual([...sorted].reverse().sort(compareOffsets), sorted);
    assert.equal(compareOffsets("5-5", "5-5"), 0);
  });
});

/** A `MONITOR` connection that records the commands Redis runs. */
class Monitor {
  readonly lines: string[] = [];
  readonly #socket: Socket;

  private constructor(socket: Socket) {
    this.#socket = socket;
  }

  static async open(port: number): Promise<Monitor> {
    const socket = new Socket();
    const monitor = new Monitor(socket);
    const reader = new RespReader({ maxBulkLength: 1 << 20, maxElements: 16, maxDepth: 1 });
    socket.on("data", (chunk: Uint8Array) => {
      for (const reply of reader.push(new Uint8Array(chunk)) as RespValue[]) {
        monitor.lines.push(replyText(reply));
      }
    });
    await new Promise<void>((resolve) => socket.connect(port, "127.0.0.1", resolve));
    socket.write("MONITOR\r\n");
    await until(() => monitor.lines.includes("OK"), "MONITOR to start", WAIT);
    return monitor;
  }

  /** The stream names of every `XREAD` run since it started. */
  xreads(): string[][] {
    return this.lines.filter((line) => / "XREAD" /.test(line)).map((line) => {
      const args = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((match) => match[1]);
      const streams = args.slice(args.indexOf("STREAMS") + 1);
      return streams.slice(0, streams.length / 2);
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}
