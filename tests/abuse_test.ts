/**
 * Hardening against abusive peers, over raw TCP: frames Wisp queues on its own count toward the
 * backlog limit, and pongs do not pile up behind a peer that does not read; a socket dropped
 * inside a user's call reports its close only after that call.
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { serve, type ServeOptions, type Server, type ServerWebSocket } from "../mod.ts";
import {
  BINARY,
  CLOSE,
  closePayload,
  concat,
  CONTINUATION,
  frame,
  PING,
  PONG,
  RawClient,
  type ReceivedFrame,
  TEXT,
  upgradeRequest,
} from "./helpers/raw_client.ts";
import { Inbox, patternBytes, type RecordingServer, recordingServer } from "./helpers/events.ts";
import { delay, until } from "./helpers/server.ts";

const decoder = new TextDecoder();
const MiB = 1024 * 1024;

/**
 * A WebSocket client over node:net that only counts the frames the server sends and keeps the
 * last one: it reads tens of thousands of frames without the copying a general reader does.
 */
class CountingClient {
  readonly socket: Socket;
  /** Frames received so far. */
  count = 0;
  /** Opcodes of the frames received, each once. */
  readonly opcodes = new Set<number>();
  /** Opcodes of the frames received, in order. */
  readonly sequence: number[] = [];
  /** The last frame received. */
  last: { opcode: number; payload: Uint8Array } | null = null;
  /** The payloads of the pongs received, in order. */
  readonly pongs: Uint8Array[] = [];
  #rest: Uint8Array = new Uint8Array(0);

  private constructor(socket: Socket) {
    this.socket = socket;
  }

  /** Connects, completes the handshake, and starts counting what follows the 101 response. */
  static open(port: number): Promise<CountingClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port }, () => socket.write(upgradeRequest()));
      const client = new CountingClient(socket);
      let head: Uint8Array = new Uint8Array(0);
      const onHead = (chunk: Uint8Array) => {
        head = concat(head, chunk);
        const end = decoder.decode(head).indexOf("\r\n\r\n");
        if (end < 0) return;
        socket.off("data", onHead);
        socket.on("data", (data: Uint8Array) => client.#push(data));
        client.#push(head.subarray(end + 4));
        resolve(client);
      };
      socket.on("data", onHead);
      socket.once("error", reject);
    });
  }

  /** Writes `bytes`, waiting while node:net holds a backlog of its own. */
  async write(bytes: Uint8Array): Promise<void> {
    if (!this.socket.write(bytes)) await new Promise((resolve) => this.socket.once("drain", resolve));
  }

  #push(chunk: Uint8Array): void {
    const bytes = concat(this.#rest, chunk);
    let at = 0;
    while (bytes.length - at >= 2) {
      const len7 = bytes[at + 1] & 0x7f;
      assert.ok(len7 < 127, "only short frames expected");
      const header = len7 === 126 ? 4 : 2;
      if (bytes.length - at < header) break;
      const length = len7 === 126 ? (bytes[at + 2] << 8) | bytes[at + 3] : len7;
      if (bytes.length - at < header + length) break;
      const opcode = bytes[at] & 0x0f;
      this.count++;
      this.opcodes.add(opcode);
      this.sequence.push(opcode);
      this.last = { opcode, payload: bytes.slice(at + header, at + header + length) };
      if (opcode === PONG) this.pongs.push(this.last.payload);
      at += header + length;
    }
    this.#rest = bytes.slice(at);
  }
}

/** Reads the frames a client got before the server closed TCP. */
async function framesUntilEnd(client: RawClient): Promise<ReceivedFrame[]> {
  await client.waitForEnd();
  const frames: ReceivedFrame[] = [];
  while (client.unread > 0) frames.push(await client.readFrame());
  return frames;
}

describe("abuse: control frames and the backlog limit", () => {
  const servers: Server[] = [];
  const sockets: Array<{ destroy(): void }> = [];
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await Promise.all(servers.map((server) => server.close()));
  });

  /** A server on a free port with these handlers and options, closed after the suite. */
  function start(options: ServeOptions): Server {
    const server = serve({ port: 0, closeTimeout: 1000, ...options });
    servers.push(server);
    return server;
  }

  it("answers only the latest of the pings that came during a backlog, and queues nothing for the rest", {
    timeout: 30_000,
  }, async () => {
    let socket: ServerWebSocket | undefined;
    let pings = 0;
    /** The socket's backlog as each ping's handler saw it (after the ping was dealt with). */
    const backlogs: number[] = [];
    const server = start({
      maxBufferedAmount: 64 * MiB,
      websocket: {
        open(ws) {
          socket = ws;
        },
        message(ws) {
          // 400 frames of 60,000 bytes: far more than the loopback buffers hold, under the limit.
          for (let i = 0; i < 400; i++) ws.send(new Uint8Array(60_000));
        },
        ping(ws) {
          pings++;
          backlogs.push(ws.bufferedAmount);
        },
      },
    });
    const client = await CountingClient.open(server.port);
    sockets.push(client.socket);
    await until(() => socket !== undefined, "the open handler");
    client.socket.pause();
    await client.write(frame(TEXT, "fill"));
    await until(() => socket!.bufferedAmount > 16 * MiB, "the backlog");

    // 20,000 pings, each with its number in its payload, while the client reads nothing.
    const count = 20_000;
    const ping = (i: number) => {
      const payload = patternBytes(125, i);
      new DataView(payload.buffer).setUint32(0, i);
      return payload;
    };
    for (let i = 0; i < count; i += 1000) {
      await client.write(concat(...Array.from({ length: 1000 }, (_, k) => frame(PING, ping(i + k)))));
    }
    await until(() => pings === count, "the server to read every ping", 20_000);
    assert.ok(
      backlogs.every((backlog) => backlog <= backlogs[0]),
      `the backlog grew from ${backlogs[0]} to ${Math.max(...backlogs)} bytes while pings came`,
    );
    assert.equal(socket!.readyState, 1, "the client stays connected");

    // Once the backlog is read, a ping is answered at once: everything before its pong is what
    // the server sent for the backlog and the pings that came during it.
    client.socket.resume();
    const binaries = () => client.sequence.filter((opcode) => opcode === BINARY).length;
    await until(() => binaries() === 400 && socket!.bufferedAmount === 0, "the backlog to be read", 20_000);
    await client.write(frame(PING, "after"));
    await until(
      () => client.pongs.some((pong) => decoder.decode(pong) === "after"),
      "the pong to a later ping",
    );
    const pongs = client.pongs.slice(0, -1);
    assert.equal(pongs.length, 1, `${pongs.length} pongs for the ${count} pings during the backlog`);
    assert.deepEqual([...pongs[0]], [...ping(count - 1)], "the pong answers the latest ping");
    assert.equal(client.sequence.length, 402, "the backlog, its one pong, and the pong to the later ping");
  });

  it("answers a ping that waited behind the backlog before its close frame, when a close follows", async () => {
    const closes = new Inbox<number>();
    let pings = 0;
    // 400 frames of 60,000 bytes on open: more than the loopback buffers hold, under the limit.
    const server = start({
      maxBufferedAmount: 64 * MiB,
      websocket: {
        open(ws) {
          for (let i = 0; i < 400; i++) ws.send(new Uint8Array(60_000));
        },
        ping() {
          pings++;
        },
        close(_ws, code) {
          closes.push(code);
        },
      },
    });
    const client = await CountingClient.open(server.port);
    sockets.push(client.socket);
    client.socket.pause();
    await client.write(frame(PING, "owed"));
    await until(() => pings === 1, "the server to read the ping");
    await client.write(frame(CLOSE, closePayload(1000)));
    assert.equal(await closes.take(), 1000);
    const ended = new Promise((resolve) => client.socket.once("end", resolve));
    client.socket.resume();
    await ended;
    // RFC 6455 §5.5.2: a ping is answered unless a close frame came first; nothing follows ours.
    assert.equal(client.sequence.length, 402, `${client.sequence.length} frames`);
    assert.deepEqual(client.sequence.slice(-2), [PONG, CLOSE]);
    assert.deepEqual([...client.last!.payload], [...closePayload(1000)]);
  });

  it("drops a client whose pongs pass maxBufferedAmount, without a close frame (1006)", async () => {
    const closes = new Inbox<number>();
    const server = start({
      maxBufferedAmount: 1000,
      websocket: {
        close(_ws, code) {
          closes.push(code);
        },
      },
    });
    const client = await RawClient.open(server.port);
    sockets.push(client);
    // 100 pings of 125 bytes in one write, read 31 or more at a time (no adapter reads less than
    // 4 KiB): the 8th pong of the first read takes the backlog past 1000 bytes, and the connection
    // is dropped with that turn's pongs unsent.
    client.write(concat(...Array.from({ length: 100 }, (_, i) => frame(PING, patternBytes(125, i)))));
    const frames = await framesUntilEnd(client);
    assert.deepEqual(frames.map((received) => received.opcode), [], "neither a pong nor a close frame");
    assert.equal(await closes.take(), 1006);
    assert.equal(server.stats().drops.backlog, 1);
  });

  it("drops a client that does not read once server pings pass maxBufferedAmount (1006)", async () => {
    const statuses = new Inbox<string>();
    const closes = new Inbox<number>();
    const server = start({
      maxBufferedAmount: 64 * 1024,
      websocket: {
        async message(ws) {
          // The client has stopped reading before it sent this message.
          const data = patternBytes(125);
          // 500 pings a turn (63,500 bytes, under the limit) until the loopback buffers are full.
          for (let turn = 0; turn < 2000; turn++) {
            for (let i = 0; i < 500; i++) {
              const status = ws.ping(data);
              if (status === "dropped") {
                return statuses.push(`dropped in turn ${turn}, readyState ${ws.readyState}`);
              }
            }
            await delay(1);
          }
          statuses.push("never dropped");
        },
        close(_ws, code) {
          closes.push(code);
        },
      },
    });
    const client = await RawClient.open(server.port);
    sockets.push(client);
    client.pause();
    client.write(frame(TEXT, "go"));
    assert.match(await statuses.take(() => true, 20_000), /^dropped in turn \d+, readyState 3$/);
    assert.equal(await closes.take(), 1006);
  });

  it("drops the connection when its close frame passes maxBufferedAmount (1006)", async () => {
    const notes = new Inbox<string>();
    const closes = new Inbox<number>();
    const server = start({
      maxBufferedAmount: 1000,
      websocket: {
        message(ws) {
          const sent = ws.send(new Uint8Array(990)); // a 994-byte frame: at the limit, not over
          ws.close(1000, "bye"); // 7 more bytes
          notes.push(`${sent}, readyState ${ws.readyState}`);
        },
        close(_ws, code) {
          closes.push(code);
        },
      },
    });
    const client = await RawClient.open(server.port);
    sockets.push(client);
    client.write(frame(TEXT, "go"));
    assert.equal(await notes.take(), "sent, readyState 3");
    const frames = await framesUntilEnd(client);
    assert.deepEqual(frames.map((received) => received.opcode), [], "neither the data nor a close frame");
    assert.equal(await closes.take(), 1006);
  });
});

describe("abuse: no handler runs inside send, publish or terminate", () => {
  const servers: Server[] = [];
  const clients: RawClient[] = [];
  after(async () => {
    for (const client of clients) client.destroy();
    await Promise.all(servers.map((server) => server.close()));
  });

  const LIMIT = 256 * 1024;
  /** Big enough to take the slow socket's prepared backlog over LIMIT, small enough for the others. */
  const BIG = 150 * 1024;

  /**
   * A room like the chat demo's: every socket subscribes to "room" on open, and a close handler
   * publishes "leave NAME" to it. Opens the fast reader "a", the socket "slow" (whose client
   * never reads), then "b" and "c", in this order of subscription; `log` records the calls.
   */
  async function room() {
    const log: string[] = [];
    const sockets = new Map<string, ServerWebSocket>();
    const server = serve({
      port: 0,
      maxBufferedAmount: LIMIT,
      closeTimeout: 1000,
      websocket: {
        open(ws) {
          sockets.set(new URL(ws.url).pathname.slice(1), ws);
          ws.subscribe("room");
        },
        close(ws, code) {
          const name = new URL(ws.url).pathname.slice(1);
          log.push(`close ${name} ${code}`);
          server.publish("room", `leave ${name}`);
        },
      },
    });
    servers.push(server);
    const readers: RawClient[] = [];
    for (const name of ["a", "slow", "b", "c"]) {
      const client = await RawClient.open(server.port, `/${name}`);
      clients.push(client);
      if (name === "slow") client.pause();
      else readers.push(client);
      await until(() => sockets.has(name), `the open handler of ${name}`);
    }
    const slow = sockets.get("slow")!;
    return {
      server,
      log,
      slow,
      /** The frames each reader gets next, as text (a BIG message as its size). */
      async nextFrames(count: number): Promise<string[][]> {
        return await Promise.all(readers.map(async (client) => {
          const received: string[] = [];
          for (let i = 0; i < count; i++) {
            const { payload } = await client.readFrame();
            received.push(payload.length === BIG ? `${BIG} bytes` : decoder.decode(payload));
          }
          return received;
        }));
      },
      /** Fills the slow socket's backlog to between LIMIT / 2 and LIMIT * 3 / 4, a turn at a time. */
      async fill(): Promise<void> {
        const chunk = new Uint8Array(LIMIT / 4 - 8);
        for (let turn = 0; turn < 5000 && slow.bufferedAmount < LIMIT / 2; turn++) {
          assert.notEqual(slow.send(chunk), "dropped");
          await delay(1);
        }
        assert.ok(slow.bufferedAmount >= LIMIT / 2, `backlog of ${slow.bufferedAmount} bytes`);
      },
    };
  }

  it("a publish that drops a subscriber reaches everyone before the close handler runs", async () => {
    const { server, log, slow, nextFrames, fill } = await room();
    await fill();
    log.push("publish");
    const reached = server.publish("room", new Uint8Array(BIG));
    log.push(`returned ${reached}, readyState ${slow.readyState}, subscribed ${slow.isSubscribed("room")}`);
    assert.deepEqual(log, ["publish", "returned 3, readyState 3, subscribed false"]);
    assert.equal(server.subscriberCount("room"), 3);
    assert.deepEqual(await nextFrames(2), Array(3).fill([`${BIG} bytes`, "leave slow"]));
    assert.deepEqual(log.slice(2), ["close slow 1006"]);
  });

  it("a send that drops its socket returns before the close handler runs", async () => {
    const { server, log, slow, nextFrames, fill } = await room();
    await fill();
    log.push(`send: ${slow.send(new Uint8Array(BIG))}, readyState ${slow.readyState}`);
    server.publish("room", "after the send");
    log.push("returned");
    assert.deepEqual(log, ["send: dropped, readyState 3", "returned"]);
    assert.deepEqual(await nextFrames(2), Array(3).fill(["after the send", "leave slow"]));
    assert.deepEqual(log.slice(2), ["close slow 1006"]);
  });

  it("terminate returns before the close handler runs", async () => {
    const { server, log, slow, nextFrames } = await room();
    slow.terminate();
    log.push(`terminated: readyState ${slow.readyState}, subscribed ${slow.isSubscribed("room")}`);
    server.publish("room", "after terminate");
    log.push("returned");
    assert.deepEqual(log, ["terminated: readyState 3, subscribed false", "returned"]);
    assert.deepEqual(await nextFrames(2), Array(3).fill(["after terminate", "leave slow"]));
    assert.deepEqual(log.slice(2), ["close slow 1006"]);
  });

  it("server.close() resolves after every close handler ran, with the peers' codes", async () => {
    const codes: number[] = [];
    const server = serve({
      port: 0,
      closeTimeout: 1000,
      websocket: {
        close(_ws, code) {
          codes.push(code);
        },
      },
    });
    servers.push(server);
    const opened = await Promise.all([0, 1, 2].map(() => RawClient.open(server.port)));
    clients.push(...opened);
    await until(() => server.connections === 3, "3 connections");
    let seenWhenResolved: number[] = [];
    const closing = server.close().then(() => (seenWhenResolved = [...codes]));
    for (const client of opened) {
      assert.equal((await client.readClose()).code, 1001);
      client.write(frame(CLOSE, closePayload(4000)));
    }
    await closing;
    assert.deepEqual(seenWhenResolved, [4000, 4000, 4000]);
  });
});

describe("abuse: maxMessagesPerSecond", () => {
  const servers: RecordingServer[] = [];
  const clients: RawClient[] = [];
  after(async () => {
    for (const client of clients) client.destroy();
    await Promise.all(servers.map((rec) => rec.server.close()));
  });

  /** An echo server recording its events, with this rate limit, and a client at a path of its own. */
  async function limited(perSecond: number, burst: number) {
    const rec = recordingServer({
      maxMessagesPerSecond: perSecond,
      maxMessageBurst: burst,
      closeTimeout: 1000,
    });
    servers.push(rec);
    const path = `/limited-${servers.length}`;
    const client = await RawClient.open(rec.port, path);
    clients.push(client);
    return { rec, client, path };
  }

  /** Reads `count` frames, as "OPCODE payload". */
  async function replies(client: RawClient, count: number): Promise<string[]> {
    const received: string[] = [];
    for (let i = 0; i < count; i++) {
      const next = await client.readFrame();
      received.push(`${next.opcode} ${decoder.decode(next.payload)}`);
    }
    return received;
  }

  it("takes messages, pings and pongs up to maxMessageBurst; a fragmented message costs one", async () => {
    const { client } = await limited(1, 4);
    client.write(concat(
      frame(TEXT, "frag", { fin: false }),
      frame(CONTINUATION, "men", { fin: false }),
      frame(CONTINUATION, "ted"),
      frame(PING, "p"),
      frame(PONG, "unsolicited"),
      frame(TEXT, "fourth"),
    ));
    assert.deepEqual(await replies(client, 3), [`${TEXT} fragmented`, `${PONG} p`, `${TEXT} fourth`]);
    // The close frame is not charged: the bucket is empty, yet the handshake completes normally.
    client.write(frame(CLOSE, closePayload(1000)));
    assert.equal((await client.readClose()).code, 1000);
    await client.waitForEnd();
  });

  it("closes with 1008 and a reason naming the option when a message finds the bucket empty", async () => {
    const { rec, client, path } = await limited(1, 3);
    client.write(
      concat(frame(TEXT, "1"), frame(PING, "2"), frame(TEXT, "3"), frame(TEXT, "4"), frame(TEXT, "5")),
    );
    const close = await client.readClose();
    assert.deepEqual(close.skipped.map((f) => `${f.opcode} ${decoder.decode(f.payload)}`), [
      `${TEXT} 1`,
      `${PONG} 2`,
      `${TEXT} 3`,
    ]);
    assert.equal(close.code, 1008);
    assert.equal(close.reason, "message rate over maxMessagesPerSecond (1/s)");
    client.write(frame(CLOSE, closePayload(1008)));
    await client.waitForEnd();
    const event = await rec.next("close", path);
    assert.deepEqual([event.code, event.reason], [1008, close.reason]);
    assert.equal(
      rec.events.items.some((e) => e.path === path && e.type === "message" && e.data === "4"),
      false,
    );
  });

  it("counts pings alone against the limit too", async () => {
    const { client } = await limited(1, 2);
    client.write(concat(frame(PING, "a"), frame(PING, "b"), frame(PING, "c")));
    const close = await client.readClose();
    assert.deepEqual(close.skipped.map((f) => f.opcode), [PONG, PONG]);
    assert.equal(close.code, 1008);
  });

  it("refills the bucket over time", async () => {
    // 100 tokens a second, at most 5: 50 ms after a burst empties it, it is full again. (The rule
    // itself, to the millisecond, is tested on a fake clock in token_bucket_test.ts.)
    const { client } = await limited(100, 5);
    const five = (round: number) => concat(...[1, 2, 3, 4, 5].map((i) => frame(TEXT, `${round}.${i}`)));
    for (const round of [1, 2, 3]) {
      client.write(five(round));
      assert.deepEqual(await replies(client, 5), [1, 2, 3, 4, 5].map((i) => `${TEXT} ${round}.${i}`));
      await delay(60); // from the last echo, which left after the server took the last token
    }
    client.write(frame(CLOSE, closePayload(1000)));
    assert.equal((await client.readClose()).code, 1000);
  });

  it("sets no limit by default", async () => {
    const rec = recordingServer({ closeTimeout: 1000 });
    servers.push(rec);
    const client = await RawClient.open(rec.port);
    clients.push(client);
    client.write(concat(...Array.from({ length: 2000 }, (_, i) => frame(TEXT, `${i}`))));
    const received = await replies(client, 2000);
    assert.equal(received[1999], `${TEXT} 1999`);
    client.write(frame(CLOSE, closePayload(1000)));
    assert.equal((await client.readClose()).code, 1000);
  });

  it("refuses invalid values, naming the option", () => {
    assert.throws(() => serve({ port: 0, maxMessagesPerSecond: -1 }), /RangeError.*maxMessagesPerSecond/s);
    assert.throws(() => serve({ port: 0, maxMessagesPerSecond: 10, maxMessageBurst: 0.5 }), TypeError);
  });
});
