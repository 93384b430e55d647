/**
 * Inbound flow control over raw TCP: `ws.pause()` / `ws.resume()` and the `awaitMessages` option.
 * A paused socket is not read, so a client that floods it is held back by TCP itself: its writes
 * pile up in its own socket (node:net's `writableLength`, the raw client's `unsent`) while the
 * server delivers nothing and holds at most a read's worth of bytes.
 *
 * What a paused socket does not do is shown without sleeping: the bytes it holds are seen to have
 * arrived (the server's count of WebSocket bytes read), a frame the server sends afterwards comes
 * first, and a flood is held back while the server reads as much from another client.
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { serve, type ServeOptions, type Server, type ServerWebSocket } from "../mod.ts";
import {
  BINARY,
  CLOSE,
  closePayload,
  concat,
  frame,
  PING,
  PONG,
  RawClient,
  TEXT,
  upgradeRequest,
} from "./helpers/raw_client.ts";
import { testConnection } from "./helpers/connection.ts";
import { Inbox, type RecordingServer, recordingServer } from "./helpers/events.ts";
import { delay, KERNEL_BOUND, MAX_READ, until } from "./helpers/server.ts";

const decoder = new TextDecoder();
/** The flood: 1,024 binary messages of 64 KiB, 64 MiB in all, far more than loopback buffers hold. */
const FLOOD_MESSAGES = 1024;
const FLOOD_SIZE = 64 * 1024;

/** Flood message `index`: its index in the first 4 bytes, then a pattern of it. */
function floodMessage(index: number): Uint8Array {
  const payload = new Uint8Array(FLOOD_SIZE).fill(index & 0xff);
  new DataView(payload.buffer).setUint32(0, index);
  return frame(BINARY, payload);
}

/** Time for a test that sends a flood, on a busy machine. */
const FLOOD_TEST = { timeout: 30_000 };

/** The whole flood as 64 writes of 1 MiB. */
function floodWrites(): Uint8Array[] {
  const writes: Uint8Array[] = [];
  for (let i = 0; i < FLOOD_MESSAGES; i += 16) {
    writes.push(concat(...Array.from({ length: 16 }, (_, k) => floodMessage(i + k))));
  }
  return writes;
}

/** Counts flood messages as a handler sees them, noting the first out of order or damaged. */
class FloodCounter {
  count = 0;
  problem: string | null = null;

  /** Checks `data` is the next flood message. */
  take(data: string | Uint8Array): void {
    const index = this.count++;
    if (this.problem !== null) return;
    if (typeof data === "string" || data.length !== FLOOD_SIZE) {
      this.problem = `message ${index} is not a ${FLOOD_SIZE}-byte binary message`;
    } else if (new DataView(data.buffer, data.byteOffset).getUint32(0) !== index) {
      this.problem = `message ${index} came as ${new DataView(data.buffer, data.byteOffset).getUint32(0)}`;
    } else if (data[FLOOD_SIZE - 1] !== (index & 0xff)) {
      this.problem = `message ${index} is damaged`;
    }
  }
}

/** Bytes of the whole flood on the wire. */
const FLOOD_BYTES = floodWrites().reduce((sum, bytes) => sum + bytes.length, 0);
/** The first 16 MiB of the flood (KERNEL_BOUND), sent by a client the server reads. */
const YARDSTICK_WRITES = 16;

/**
 * Writes the flood from `held`, whose socket the server is not to read, and its first
 * YARDSTICK_WRITES writes from `yardstick`, which it reads; resolves once the server has had every
 * message of the yardstick's (counted by `delivered`): had it read `held`'s socket, it would have
 * read about as much of it. Returns the WebSocket bytes the server read meanwhile from `held`.
 */
async function flood(server: Server, held: RawClient, yardstick: RawClient, delivered: FloodCounter) {
  const before = server.stats().bytes.received.wire;
  const writes = floodWrites();
  let measure = 0;
  for (const [i, bytes] of writes.entries()) {
    held.write(bytes);
    if (i >= YARDSTICK_WRITES) continue;
    yardstick.write(bytes);
    measure += bytes.length;
  }
  const messages = FLOOD_MESSAGES * YARDSTICK_WRITES / writes.length;
  await until(() => delivered.count === messages, "the yardstick's messages", 30_000);
  assert.equal(delivered.problem, null);
  return server.stats().bytes.received.wire - before - measure;
}

/** Waits until the server has read `bytes` WebSocket bytes in all: what was sent has arrived. */
function arrived(server: Server, bytes: number): Promise<void> {
  return until(() => server.stats().bytes.received.wire === bytes, `the server to read ${bytes} bytes`);
}

/**
 * An echo on a new connection to `server`, begun after bytes were sent on another: once it is
 * back, the server has had as much of a chance to read those (which a paused socket's transport
 * may leave in the kernel, unread and uncounted).
 */
async function echoElsewhere(server: Server): Promise<void> {
  const other = await RawClient.open(server.port, "/elsewhere");
  try {
    other.write(frame(TEXT, "elsewhere"));
    assert.equal(decoder.decode((await other.readFrame()).payload), "elsewhere");
  } finally {
    other.destroy();
  }
}

/**
 * Sends a marker frame from the server and reads it as the client's next frame: whatever the
 * server had sent before it (an echo, a pong, a ping) would come first.
 */
async function nothingBefore(ws: ServerWebSocket, client: RawClient, what: string): Promise<void> {
  ws.send("marker");
  const next = await client.readFrame();
  assert.equal(`${next.opcode} ${decoder.decode(next.payload)}`, `${TEXT} marker`, what);
}

/** The message payloads a client reads next, as text. */
async function texts(client: RawClient, count: number): Promise<string[]> {
  const received: string[] = [];
  for (let i = 0; i < count; i++) received.push(decoder.decode((await client.readFrame()).payload));
  return received;
}

/** Completes a client-initiated closing handshake. */
async function closeCleanly(client: RawClient): Promise<void> {
  client.write(frame(CLOSE, closePayload(1000)));
  assert.equal((await client.readClose()).code, 1000);
  await client.waitForEnd();
}

describe("flow control: pause and resume", () => {
  const servers: Server[] = [];
  const clients: RawClient[] = [];
  after(async () => {
    for (const client of clients) client.destroy();
    await Promise.all(servers.map((server) => server.close()));
  });

  /** A recording server (echoing unless told otherwise) whose sockets are found by path. */
  function start(options: ServeOptions = {}): RecordingServer {
    const rec = recordingServer({ closeTimeout: 1000, ...options });
    servers.push(rec.server);
    return rec;
  }

  async function open(
    rec: RecordingServer,
    path: string,
  ): Promise<{ client: RawClient; ws: ServerWebSocket }> {
    const client = await RawClient.open(rec.port, path);
    clients.push(client);
    return { client, ws: (await rec.next("open", path)).ws };
  }

  const messagesOn = (rec: RecordingServer, path: string) =>
    rec.events.items.filter((event) => event.path === path && event.type === "message").length;
  /** The handler calls on `path` since it opened (the open taken by `open`). */
  const eventsOn = (rec: RecordingServer, path: string) =>
    rec.events.items.filter((event) => event.path === path).map((event) => event.type);

  it(
    "holds a flooding client back: its writes stop going out, resume delivers all in order",
    FLOOD_TEST,
    async () => {
      const counter = new FloodCounter();
      const yardstick = new FloodCounter();
      let socket: ServerWebSocket | undefined;
      const server = serve({
        port: 0,
        closeTimeout: 1000,
        websocket: {
          open(ws) {
            if (new URL(ws.url).pathname !== "/paused") return;
            socket = ws;
            ws.pause();
          },
          message: (ws, data) => (ws === socket ? counter : yardstick).take(data),
        },
      });
      servers.push(server);
      const client = await RawClient.open(server.port, "/paused");
      const other = await RawClient.open(server.port, "/yardstick");
      clients.push(client, other);
      await until(() => socket !== undefined, "the open handler");

      const read = await flood(server, client, other, yardstick);
      assert.equal(counter.count, 0, "messages delivered while paused");
      assert.ok(read <= MAX_READ, `the server read ${read} bytes of the paused socket`);
      assert.ok(client.unsent > FLOOD_BYTES - KERNEL_BOUND, `${client.unsent} bytes unsent`);

      socket!.resume();
      await until(() => counter.count === FLOOD_MESSAGES, "every flood message", 30_000);
      assert.equal(counter.problem, null);
      assert.equal(client.unsent, 0);
      await closeCleanly(client);
    },
  );

  it("delivers no further message, ping or pong of the same read until resume", async () => {
    const rec = start({
      websocket: {
        message(ws, data) {
          if (data === "pause") ws.pause();
          ws.send(data);
        },
      },
    });
    const { client, ws } = await open(rec, "/same-read");
    const bytes = concat(frame(TEXT, "pause"), frame(PING, "p"), frame(TEXT, "two"), frame(TEXT, "three"));
    client.write(bytes);
    assert.deepEqual(await texts(client, 1), ["pause"]);
    await arrived(rec.server, bytes.length);
    await nothingBefore(ws, client, "no pong and no echo while paused");
    assert.deepEqual(eventsOn(rec, "/same-read"), ["message"], "no ping or message handler call");
    ws.resume();
    const replies = [];
    for (let i = 0; i < 3; i++) {
      const next = await client.readFrame();
      replies.push(`${next.opcode} ${decoder.decode(next.payload)}`);
    }
    assert.deepEqual(replies, [`${PONG} p`, `${TEXT} two`, `${TEXT} three`]);
    await closeCleanly(client);
  });

  it("pausing at each message of a read delivers them one per resume, in order", async () => {
    const rec = start({
      websocket: {
        message(ws, data) {
          ws.pause();
          ws.send(data);
        },
      },
    });
    const { client, ws } = await open(rec, "/each");
    const bytes = concat(...["a", "b", "c", "d"].map((text) => frame(TEXT, text)));
    client.write(bytes);
    await arrived(rec.server, bytes.length);
    for (const text of ["a", "b", "c", "d"]) {
      assert.deepEqual(await texts(client, 1), [text]);
      await nothingBefore(ws, client, `nothing after ${text} until resume`);
      ws.resume();
    }
    await closeCleanly(client);
  });

  it("a pause in the open handler holds the frames that came with the handshake", async () => {
    const rec = start({ websocket: { open: (ws) => ws.pause() } });
    const client = await RawClient.connect(rec.port);
    clients.push(client);
    const early = frame(TEXT, "early");
    client.write(concat(new TextEncoder().encode(upgradeRequest("/early")), early));
    assert.equal((await client.readResponse()).status, 101);
    const { ws } = await rec.next("open", "/early");
    await arrived(rec.server, early.length);
    await nothingBefore(ws, client, "no echo while paused");
    assert.equal(messagesOn(rec, "/early"), 0);
    ws.resume();
    assert.deepEqual(await texts(client, 1), ["early"]);
    await closeCleanly(client);
  });

  it("pause and resume are idempotent: calls do not nest, and resume without pause does nothing", async () => {
    const rec = start();
    const { client, ws } = await open(rec, "/idempotent");
    ws.resume(); // not paused: nothing changes
    client.write(frame(TEXT, "one"));
    assert.deepEqual(await texts(client, 1), ["one"]);
    ws.pause();
    ws.pause();
    client.write(frame(TEXT, "two"));
    await echoElsewhere(rec.server);
    await nothingBefore(ws, client, "paused");
    assert.equal(messagesOn(rec, "/idempotent"), 1);
    ws.resume(); // one resume ends both pauses
    assert.deepEqual(await texts(client, 1), ["two"]);
    ws.resume();
    client.write(frame(TEXT, "three"));
    assert.deepEqual(await texts(client, 1), ["three"]);
    await closeCleanly(client);
  });

  it("pause and resume are harmless on a closed socket", async () => {
    const rec = start();
    const { client, ws } = await open(rec, "/closed");
    await closeCleanly(client);
    await rec.next("close", "/closed");
    assert.equal(ws.readyState, 3);
    ws.pause();
    ws.resume();
    ws.pause();
    assert.equal(ws.readyState, 3);
  });

  it("close() on a paused socket reads on for the client's close frame, discarding messages", async () => {
    const rec = start();
    const { client, ws } = await open(rec, "/close-paused");
    ws.pause();
    client.write(frame(TEXT, "unread"));
    await echoElsewhere(rec.server); // so that it waits at the server when close() comes
    ws.close(4000, "bye");
    const close = await client.readClose();
    assert.deepEqual([close.code, close.reason, close.skipped.length], [4000, "bye", 0]);
    client.write(frame(CLOSE, closePayload(4000)));
    await client.waitForEnd();
    const event = await rec.next("close", "/close-paused");
    assert.equal(event.code, 4000, "the client's reply was read (not 1006 after closeTimeout)");
    assert.equal(messagesOn(rec, "/close-paused"), 0);
  });

  it("a paused socket is not dropped as idle; idle handling starts again on resume", async () => {
    const rec = start({ idleTimeout: 200 });
    const { client, ws } = await open(rec, "/idle");
    ws.pause();
    // A socket opened after the pause, as silent and not paused: once it has been pinged and
    // dropped, the sweep has passed the paused one as often, and it must have let it be.
    const { client: control } = await open(rec, "/idle-control");
    assert.equal((await control.readFrame(3000)).opcode, PING);
    await control.waitForEnd(3000);
    assert.equal((await rec.next("close", "/idle-control")).code, 1006);
    assert.equal(client.ended, false);
    await nothingBefore(ws, client, "no ping while paused");
    ws.resume();
    assert.equal((await client.readFrame(3000)).opcode, PING, "pinged once idle again");
    await client.waitForEnd(3000);
    assert.equal((await rec.next("close", "/idle")).code, 1006);
  });
});

describe("flow control: awaitMessages", () => {
  const servers: Server[] = [];
  const clients: RawClient[] = [];
  after(async () => {
    for (const client of clients) client.destroy();
    await Promise.all(servers.map((server) => server.close()));
  });

  async function connect(server: Server, path = "/"): Promise<RawClient> {
    const client = await RawClient.open(server.port, path);
    clients.push(client);
    return client;
  }

  it("handles one message at a time, in order, with a slow async handler", async () => {
    const log: string[] = [];
    let running = 0;
    let most = 0;
    const server = serve({
      port: 0,
      awaitMessages: true,
      closeTimeout: 1000,
      websocket: {
        async message(ws, data) {
          most = Math.max(most, ++running);
          log.push(`start ${data}`);
          await delay(10);
          log.push(`end ${data}`);
          running--;
          ws.send(data);
        },
      },
    });
    servers.push(server);
    const client = await connect(server);
    const words = Array.from({ length: 20 }, (_, i) => `m${i}`);
    client.write(concat(...words.map((word) => frame(TEXT, word))));
    assert.deepEqual(await texts(client, words.length), words);
    assert.equal(most, 1, "handler calls overlapped");
    assert.deepEqual(log, words.flatMap((word) => [`start ${word}`, `end ${word}`]));
    await closeCleanly(client);
  });

  it("holds a flooding client back while a handler's promise is pending", FLOOD_TEST, async () => {
    const counter = new FloodCounter();
    const yardstick = new FloodCounter();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const server = serve({
      port: 0,
      awaitMessages: true,
      closeTimeout: 1000,
      websocket: {
        async message(ws, data) {
          if (new URL(ws.url).pathname !== "/held") return yardstick.take(data);
          counter.take(data);
          await gate;
        },
      },
    });
    servers.push(server);
    const client = await connect(server, "/held");
    const other = await connect(server, "/yardstick");
    const read = await flood(server, client, other, yardstick);
    assert.equal(counter.count, 1, "messages delivered while the first handler is pending");
    // The first message, and what came with it or was being read when its handler paused.
    assert.ok(read <= FLOOD_SIZE + MAX_READ, `the server read ${read} bytes of the held socket`);
    assert.ok(client.unsent > FLOOD_BYTES - KERNEL_BOUND, `${client.unsent} bytes unsent`);
    release();
    await until(() => counter.count === FLOOD_MESSAGES, "every flood message", 30_000);
    assert.equal(counter.problem, null);
    await closeCleanly(client);
  });

  it("a user's resume does not start the next message while a handler's promise is pending", async () => {
    const log: string[] = [];
    let release: () => void = () => {};
    let socket: ServerWebSocket | undefined;
    const server = serve({
      port: 0,
      awaitMessages: true,
      closeTimeout: 1000,
      websocket: {
        message(ws, data) {
          socket = ws;
          log.push(String(data));
          ws.resume();
          if (data === "first") return new Promise<void>((resolve) => (release = resolve));
          ws.send(data);
        },
      },
    });
    servers.push(server);
    const client = await connect(server);
    const bytes = concat(frame(TEXT, "first"), frame(TEXT, "second"));
    client.write(bytes);
    await arrived(server, bytes.length);
    assert.deepEqual(log, ["first"]);
    socket!.resume(); // and once more from outside, after the handler returned its promise
    assert.deepEqual(log, ["first"]);
    release();
    assert.deepEqual(await texts(client, 1), ["second"]);
    await closeCleanly(client);
  });

  it("a rejected promise goes to the error handler and closes with 1011; later messages are dropped", async () => {
    const errors = new Inbox<unknown>();
    const closes = new Inbox<number>();
    const seen: string[] = [];
    const server = serve({
      port: 0,
      awaitMessages: true,
      closeTimeout: 1000,
      websocket: {
        async message(_ws, data) {
          seen.push(String(data));
          await delay(10);
          if (data === "bad") throw new Error("rejected");
        },
        error: (_ws, error) => errors.push(error),
        close: (_ws, code) => closes.push(code),
      },
    });
    servers.push(server);
    const client = await connect(server);
    client.write(concat(frame(TEXT, "good"), frame(TEXT, "bad"), frame(TEXT, "after")));
    const close = await client.readClose();
    assert.deepEqual([close.code, close.reason], [1011, "handler failed"]);
    assert.equal(((await errors.take()) as Error).message, "rejected");
    client.write(frame(CLOSE, closePayload(1011)));
    await client.waitForEnd();
    assert.equal(await closes.take(), 1011);
    assert.deepEqual(seen, ["good", "bad"]);
  });

  it("is off by default: an async handler's messages overlap", async () => {
    // Each handler waits until all three run at once: held one at a time, none would answer.
    let running = 0;
    let allRunning: () => void = () => {};
    const gate = new Promise<void>((resolve) => (allRunning = resolve));
    const server = serve({
      port: 0,
      closeTimeout: 1000,
      websocket: {
        async message(ws, data) {
          if (++running === 3) allRunning();
          await gate;
          ws.send(data);
        },
      },
    });
    servers.push(server);
    const client = await connect(server);
    client.write(concat(frame(TEXT, "a"), frame(TEXT, "b"), frame(TEXT, "c")));
    assert.deepEqual(await texts(client, 3), ["a", "b", "c"]);
    await closeCleanly(client);
  });
});

describe("flow control: the held bytes, without sockets", () => {
  const texts = (...words: string[]) => concat(...words.map((word) => frame(TEXT, word)));

  it("keeps reads that were under way when it paused, joined, and parses them first on resume", () => {
    const { conn, transport, messages } = testConnection();
    conn.pause();
    assert.equal(transport.paused, true);
    assert.equal(conn.data(texts("a", "b")), true, "the chunk is kept");
    // A split frame across the two held reads, as a runtime may cut them.
    const rest = texts("c", "d");
    assert.equal(conn.data(rest.subarray(0, 4)), true);
    assert.equal(conn.data(rest.subarray(4)), true);
    assert.deepEqual(messages, []);
    conn.resume();
    assert.deepEqual(messages, ["a", "b", "c", "d"]);
    assert.equal(transport.paused, false);
    assert.equal(conn.data(texts("e")), false, "a chunk parsed at once is not kept");
    assert.deepEqual(messages.at(-1), "e");
  });

  it("stops a chunk at the message whose handler paused; each resume goes one message further", () => {
    const { conn, transport, messages } = testConnection({ message: (ws) => ws.pause() });
    assert.equal(conn.data(texts("a", "b", "c")), true, "the rest of the chunk is kept");
    assert.deepEqual(messages, ["a"]);
    conn.resume();
    assert.deepEqual(messages, ["a", "b"]);
    assert.equal(transport.paused, true, "paused again by the handler before reading");
    conn.resume();
    assert.deepEqual(messages, ["a", "b", "c"]);
    assert.equal(transport.pauseCalls, 1, "the transport was told once");
  });

  it("with awaitMessages, delivers held messages one per settled promise, the transport paused throughout", async () => {
    const releases: (() => void)[] = [];
    const { conn, transport, messages } = testConnection(
      { message: () => new Promise<void>((resolve) => releases.push(resolve)) },
      { awaitMessages: true },
    );
    conn.data(texts("a", "b", "c"));
    for (const expected of [["a"], ["a", "b"], ["a", "b", "c"]]) {
      assert.deepEqual(messages, expected);
      assert.equal(transport.paused, true);
      releases.shift()!();
      await delay(0);
    }
    assert.equal(transport.paused, false);
    assert.equal(transport.pauseCalls, 1);
  });
});
