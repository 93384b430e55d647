/**
 * Topics across processes through a real `redis-server`: Wisp processes on Deno and Bun, mixed,
 * publishing to each other's subscribers exactly once, in order, text as text and bytes as
 * bytes; channels subscribed only while a process has subscribers; Redis killed and restarted
 * mid-stream; a Redis that answers garbage.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { BINARY, frame, RawClient, TEXT } from "./helpers/raw_client.ts";
import { redisCommand, RedisServer, redisSkipReason, startWisp, type WispProcess } from "./helpers/redis.ts";
import { delay, freePort, until } from "./helpers/server.ts";
import { redisBackplane, serve } from "../mod.ts";

const skip = redisSkipReason;
const WAIT = 5000;
const decoder = new TextDecoder();

/** The Redis channels that have subscribers, as text, sorted. */
async function channels(redis: RedisServer, sharded = false): Promise<string[]> {
  const reply = await redisCommand(
    redis.port,
    sharded ? ["PUBSUB", "SHARDCHANNELS"] : ["PUBSUB", "CHANNELS"],
  );
  return (reply as Uint8Array[]).map((name) => decoder.decode(name)).sort();
}

/** The backplane stats a fixture process serves at `GET /stats`. */
async function stats(process: WispProcess): Promise<{ state: string; reconnects: number; dropped: number }> {
  return await (await fetch(`http://127.0.0.1:${process.port}/stats`)).json();
}

/** Reads frames until `count` have come or `ms` passes; returns their kinds and payloads. */
async function frames(
  client: RawClient,
  count: number,
  ms = WAIT,
): Promise<{ opcode: number; payload: Uint8Array }[]> {
  const got = [];
  for (let i = 0; i < count; i++) got.push(await client.readFrame(ms));
  return got;
}

describe("backplane: two processes on one Redis (Deno and Bun)", { skip }, () => {
  let redis: RedisServer;
  let deno: WispProcess;
  let bun: WispProcess;
  before(async () => {
    redis = await RedisServer.start();
    [deno, bun] = await Promise.all([startWisp("deno", redis.url), startWisp("bun", redis.url)]);
  });
  after(async () => {
    await Promise.all([deno?.stop(), bun?.stop()]);
    await redis?.stop();
  });

  it("reaches every other subscriber in both processes exactly once, and not the sender", async () => {
    const [sender, near, far] = await Promise.all([
      RawClient.open(deno.port, "/?topic=room"),
      RawClient.open(deno.port, "/?topic=room"),
      RawClient.open(bun.port, "/?topic=room"),
    ]);
    try {
      await waitForChannel(redis, "wisp:room");
      sender.write(frame(TEXT, "hello"));
      for (const client of [near, far]) {
        const [message] = await frames(client, 1);
        assert.equal(message.opcode, TEXT);
        assert.equal(decoder.decode(message.payload), "hello");
      }
      await delay(200);
      for (const client of [sender, near, far]) {
        assert.equal(client.unread, 0, "a second copy, or the sender's own");
      }
    } finally {
      for (const client of [sender, near, far]) client.destroy();
    }
  });

  it("keeps binary binary, byte for byte, and server.publish reaches the sender too", async () => {
    const [sender, far] = await Promise.all([
      RawClient.open(bun.port, "/all?topic=bytes"),
      RawClient.open(deno.port, "/?topic=bytes"),
    ]);
    try {
      await waitForChannel(redis, "wisp:bytes");
      const payload = Uint8Array.from({ length: 1000 }, (_, i) => [13, 10, 0, 255, 36][i % 5] ^ (i & 0x70));
      sender.write(frame(BINARY, payload));
      for (const client of [sender, far]) {
        const [message] = await frames(client, 1);
        assert.equal(message.opcode, BINARY);
        assert.deepEqual(message.payload, payload);
      }
    } finally {
      sender.destroy();
      far.destroy();
    }
  });

  it("delivers one publisher's messages in the order published", async () => {
    const [sender, far] = await Promise.all([
      RawClient.open(deno.port, "/?topic=ordered"),
      RawClient.open(bun.port, "/?topic=ordered"),
    ]);
    try {
      await waitForChannel(redis, "wisp:ordered");
      const sent = Array.from({ length: 300 }, (_, i) => `message ${i}`);
      for (const text of sent) sender.write(frame(TEXT, text));
      const got = (await frames(far, sent.length)).map((message) => decoder.decode(message.payload));
      assert.deepEqual(got, sent);
    } finally {
      sender.destroy();
      far.destroy();
    }
  });

  it("subscribes to a topic's channel only while the process has subscribers of it", async () => {
    const client = await RawClient.open(bun.port, "/?topic=passing");
    await waitForChannel(redis, "wisp:passing", false, 1);
    client.destroy();
    await until(async () => !(await channels(redis)).includes("wisp:passing"), "the channel to go", WAIT);
  });

  it("goes on delivering locally while Redis is down, and carries messages again once it is back", async () => {
    const [sender, near, far] = await Promise.all([
      RawClient.open(deno.port, "/?topic=restart"),
      RawClient.open(deno.port, "/?topic=restart"),
      RawClient.open(bun.port, "/?topic=restart"),
    ]);
    try {
      await waitForChannel(redis, "wisp:restart");
      await redis.kill();
      await until(async () => (await stats(deno)).state !== "connected", "Deno's backplane to notice", WAIT);
      sender.write(frame(TEXT, "while down"));
      assert.equal(
        decoder.decode((await frames(near, 1))[0].payload),
        "while down",
        "local delivery goes on",
      );

      await redis.restart();
      await until(
        async () => (await stats(deno)).state === "connected",
        "Deno's backplane to reconnect",
        10_000,
      );
      await until(
        async () => (await stats(bun)).state === "connected",
        "Bun's backplane to reconnect",
        10_000,
      );
      await waitForChannel(redis, "wisp:restart");
      assert.ok((await stats(deno)).reconnects >= 1);
      sender.write(frame(TEXT, "after restart"));
      const afterRestart = (await frames(near, 1))[0];
      assert.equal(decoder.decode(afterRestart.payload), "after restart");
      // The message published while Redis was down was sent once the publisher was back: the far
      // side gets it if it had resubscribed by then, and the one after the restart for certain.
      const farTexts: string[] = [];
      while (!farTexts.includes("after restart")) {
        farTexts.push(decoder.decode((await frames(far, 1))[0].payload));
      }
      assert.ok(farTexts.every((text) => text === "while down" || text === "after restart"), farTexts.join());
    } finally {
      for (const client of [sender, near, far]) client.destroy();
    }
  });
});

describe("backplane: sharded pub/sub (SSUBSCRIBE/SPUBLISH)", { skip }, () => {
  let redis: RedisServer;
  let deno: WispProcess;
  let bun: WispProcess;
  before(async () => {
    redis = await RedisServer.start();
    [deno, bun] = await Promise.all([
      startWisp("deno", redis.url, "sharded"),
      startWisp("bun", redis.url, "sharded"),
    ]);
  });
  after(async () => {
    await Promise.all([deno?.stop(), bun?.stop()]);
    await redis?.stop();
  });

  it("carries a message between the processes on a shard channel", async () => {
    const [sender, far] = await Promise.all([
      RawClient.open(bun.port, "/?topic=shard"),
      RawClient.open(deno.port, "/?topic=shard"),
    ]);
    try {
      await waitForChannel(redis, "wisp:shard", true);
      sender.write(frame(TEXT, "sharded"));
      assert.equal(decoder.decode((await frames(far, 1))[0].payload), "sharded");
    } finally {
      sender.destroy();
      far.destroy();
    }
  });
});

describe("backplane: a Redis that answers garbage, refuses us or is not there", { skip }, () => {
  it("reports a clear error and keeps delivering locally, without crashing", async () => {
    const garbage = createServer((socket) => socket.on("data", () => socket.write("?this is not RESP\r\n")));
    await new Promise<void>((resolve) => garbage.listen(0, "127.0.0.1", resolve));
    const port = (garbage.address() as { port: number }).port;
    const events: string[] = [];
    const backplane = redisBackplane({
      url: `redis://127.0.0.1:${port}`,
      onEvent: (event) => events.push(event.message),
    });
    const server = serve<undefined>({
      port: 0,
      backplane,
      websocket: {
        open: (ws) => ws.subscribe("t"),
        message: (ws, data) => void ws.publish("t", data),
      },
    });
    const [sender, near] = await Promise.all([RawClient.open(server.port), RawClient.open(server.port)]);
    try {
      sender.write(frame(TEXT, "local"));
      assert.equal(decoder.decode((await near.readFrame(WAIT)).payload), "local");
      await until(
        () => events.some((event) => /malformed reply from Redis/.test(event)),
        "the error event",
        WAIT,
      );
      assert.ok(backplane.stats().errors >= 1);
    } finally {
      sender.destroy();
      near.destroy();
      await server.close();
      garbage.close();
    }
  });

  it("counts each refusal of a Redis that accepts and then refuses (maxclients), as no reconnect", async () => {
    // One client slot: one of the two links gets it, the other is refused on every attempt (the
    // backoff between attempts is tested exactly, on a fake clock, in redis_link_test.ts).
    const redis = await RedisServer.start(["--maxclients", "1"]);
    try {
      const events: string[] = [];
      const backplane = redisBackplane({ url: redis.url, onEvent: (event) => events.push(event.message) });
      const server = serve<undefined>({ port: 0, backplane, websocket: {} });
      try {
        await until(() => backplane.stats().errors >= 3, "three refused attempts", WAIT);
      } finally {
        await server.close();
      }
      const { lastError, reconnects } = backplane.stats();
      assert.match(lastError, /refused the connection: ERR max number of clients reached/);
      assert.equal(reconnects, 0, "a refused connection is no reconnect");
      assert.equal(events.filter((event) => / connected to /.test(event)).length, 1, events.join("\n"));
    } finally {
      await redis.stop();
    }
  });

  it("takes a Redis that stops answering (frozen) for lost within two pingIntervals, and comes back", async () => {
    const redis = await RedisServer.start();
    const events: string[] = [];
    const backplane = redisBackplane({
      url: redis.url,
      pingInterval: 200,
      onEvent: (event) => events.push(event.message),
    });
    const server = serve<undefined>({ port: 0, backplane, websocket: {} });
    try {
      await until(() => backplane.stats().state === "connected", "the backplane to connect", WAIT);
      redis.freeze();
      const frozen = Date.now();
      await until(() => backplane.stats().state === "connecting", "the backplane to notice", WAIT);
      assert.ok(Date.now() - frozen < 1000, `noticed after ${Date.now() - frozen} ms`);
      assert.ok(events.some((event) => /no answer from Redis in 200 ms/.test(event)), events.join("\n"));
      redis.thaw();
      await until(() => backplane.stats().state === "connected", "the backplane to reconnect", 10_000);
      assert.ok(backplane.stats().reconnects >= 1);
    } finally {
      redis.thaw();
      await server.close();
      await redis.stop();
    }
  });

  it("connects with a password to a Redis that has none, telling of it once", async () => {
    const redis = await RedisServer.start();
    const events: string[] = [];
    const backplane = redisBackplane({
      url: `redis://:secret@127.0.0.1:${redis.port}`,
      onEvent: (event) => events.push(event.message),
    });
    const server = serve<undefined>({ port: 0, backplane, websocket: {} });
    try {
      await until(() => backplane.stats().state === "connected", "the backplane to connect", WAIT);
      assert.ok(events.some((event) => /without any password configured/.test(event)), events.join("\n"));
      assert.equal(backplane.stats().reconnects, 0);
    } finally {
      await server.close();
      await redis.stop();
    }
  });

  it("counts every connection that cannot be made as an error", async () => {
    const backplane = redisBackplane({ url: `redis://127.0.0.1:${await freePort()}` });
    const server = serve<undefined>({ port: 0, backplane, onEvent: () => {}, websocket: {} });
    try {
      await until(() => backplane.stats().errors >= 2, "two failed attempts", WAIT);
      assert.match(backplane.stats().lastError, /cannot connect to 127\.0\.0\.1/);
      assert.equal(backplane.stats().state, "connecting");
    } finally {
      await server.close();
    }
  });

  it("refuses a url that is not redis:// with a TypeError naming the option", () => {
    assert.throws(() => redisBackplane({ url: "http://127.0.0.1" }), /option "url"/);
    assert.throws(() => redisBackplane({ pingInterval: -1 }), RangeError);
    assert.throws(() => redisBackplane({ pingInterval: 0.5 }), /option "pingInterval"/);
    assert.throws(() => redisBackplane({ pingInterval: 2 ** 31 }), /option "pingInterval"/);
    assert.throws(() => serve({ port: 0, backplane: {} as never }), /option "backplane"/);
  });
});

/**
 * Waits until Redis has `subscribers` connections subscribed to `channel` (by default one of each
 * of the two processes: a message published before both listen would be lost, pub/sub keeps nothing).
 */
async function waitForChannel(
  redis: RedisServer,
  channel: string,
  sharded = false,
  subscribers = 2,
): Promise<void> {
  await until(
    async () => {
      const reply = await redisCommand(redis.port, ["PUBSUB", sharded ? "SHARDNUMSUB" : "NUMSUB", channel]);
      return Array.isArray(reply) && reply[1] === subscribers;
    },
    `${subscribers} subscribers on ${channel}`,
    WAIT,
  );
}
