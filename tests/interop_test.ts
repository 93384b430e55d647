/**
 * Interoperability with the runtime's own `WebSocket` client (Deno's and Bun's built-in one):
 * messages of every kind and size, subprotocols, and closing in both directions.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  firstDifference,
  Inbox,
  patternBytes,
  type RecordingServer,
  recordingServer,
  withTimeout,
} from "./helpers/events.ts";

const MiB = 1024 * 1024;

/** What a client's `close` event said. */
interface Closed {
  code: number;
  reason: string;
  wasClean: boolean;
}

/** A built-in `WebSocket` that collects its messages and its close event. */
class WebClient {
  readonly ws: WebSocket;
  readonly messages = new Inbox<string | ArrayBuffer>();
  readonly closed: Promise<Closed>;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (event) => this.messages.push(event.data));
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (event) => {
        resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean });
      });
    });
  }

  /** Connects to `port` at `path`, offering `protocols`; resolves once open. */
  static open(port: number, path: string, protocols?: string[]): Promise<WebClient> {
    const client = new WebClient(new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols));
    return withTimeout(
      new Promise((resolve, reject) => {
        client.ws.addEventListener("open", () => resolve(client));
        client.ws.addEventListener("error", () => reject(new Error(`could not connect to ${path}`)));
      }),
      5000,
      `the client at ${path} to open`,
    );
  }

  /** The next message, waiting up to `ms`. */
  next(ms = 5000): Promise<string | ArrayBuffer> {
    return this.messages.take(() => true, ms, "a message");
  }

  /** The close event, waiting up to `ms`. */
  waitClosed(ms = 5000): Promise<Closed> {
    return withTimeout(this.closed, ms, "the close event");
  }
}

/** Clients opened at paths of their own, closed at the end. */
class Clients {
  #clients: WebClient[] = [];
  #count = 0;

  async open(port: number, protocols?: string[]): Promise<{ client: WebClient; path: string }> {
    const path = `/web-${++this.#count}`;
    const client = await WebClient.open(port, path, protocols);
    this.#clients.push(client);
    return { client, path };
  }

  /** Closes every client still open and waits (bounded) for their close events. */
  async closeAll(): Promise<void> {
    const clients = this.#clients.splice(0);
    for (const client of clients) {
      if (client.ws.readyState === WebSocket.OPEN) client.ws.close();
    }
    await Promise.allSettled(clients.map((client) => client.waitClosed(2000)));
  }
}

/** A received binary message as bytes (it must be an ArrayBuffer with binaryType "arraybuffer"). */
function binary(message: string | ArrayBuffer): Uint8Array {
  assert.ok(message instanceof ArrayBuffer, `expected an ArrayBuffer, got ${typeof message}`);
  return new Uint8Array(message);
}

describe("interop: the built-in WebSocket client", () => {
  let rec: RecordingServer;
  const clients = new Clients();
  before(() => {
    rec = recordingServer({
      protocols: ["chat", "superchat"],
      closeTimeout: 1000,
      websocket: {
        message(ws, data) {
          if (data === "please close") ws.close(4002, "server says bye");
          else ws.send(data);
        },
      },
    });
  });
  after(async () => {
    await clients.closeAll();
    await rec.server.close();
  });

  it("echoes a text message, which the server receives as a string", async () => {
    const { client, path } = await clients.open(rec.port);
    client.ws.send("hello, wisp");
    assert.equal(await client.next(), "hello, wisp");
    assert.equal((await rec.next("message", path)).data, "hello, wisp");
  });

  it("echoes a binary message, which the server receives as a Uint8Array", async () => {
    const { client, path } = await clients.open(rec.port);
    client.ws.send(Uint8Array.of(0, 1, 2, 127, 128, 255));
    assert.deepEqual([...binary(await client.next())], [0, 1, 2, 127, 128, 255]);
    const event = await rec.next("message", path);
    assert.ok(event.data instanceof Uint8Array);
    assert.deepEqual([...event.data], [0, 1, 2, 127, 128, 255]);
  });

  it("echoes an empty text message", async () => {
    const { client, path } = await clients.open(rec.port);
    client.ws.send("");
    assert.equal(await client.next(), "");
    assert.equal((await rec.next("message", path)).data, "");
  });

  it("echoes an empty binary message", async () => {
    const { client, path } = await clients.open(rec.port);
    client.ws.send(new Uint8Array(0));
    assert.equal(binary(await client.next()).length, 0);
    const event = await rec.next("message", path);
    assert.ok(event.data instanceof Uint8Array);
    assert.equal(event.data.length, 0);
  });

  for (const size of [125, 126, 65535, 65536, 8 * MiB]) {
    it(`echoes a ${size}-byte binary message byte for byte`, async () => {
      const { client, path } = await clients.open(rec.port);
      const payload = patternBytes(size, size & 0xff);
      client.ws.send(payload);
      const echoed = binary(await client.next(20_000));
      assert.equal(echoed.length, size);
      assert.equal(firstDifference(echoed, payload), -1);
      const event = await rec.next("message", path);
      assert.ok(event.data instanceof Uint8Array);
      assert.equal(firstDifference(event.data, payload), -1);
    });
  }

  for (const size of [126, 65536, 8 * MiB]) {
    it(`echoes a ${size}-byte text message exactly`, async () => {
      const { client } = await clients.open(rec.port);
      // Three-byte characters and ASCII, cut to `size` bytes on a character boundary.
      const unit = "wisp€";
      const message = unit.repeat(Math.floor(size / 7)) + "x".repeat(size % 7);
      assert.equal(new TextEncoder().encode(message).length, size);
      client.ws.send(message);
      const echoed = await client.next(20_000);
      assert.equal(typeof echoed, "string");
      assert.equal((echoed as string).length, message.length);
      assert.ok(echoed === message, "the echoed text equals the text sent");
    });
  }

  it("echoes non-ASCII text: emoji, CJK, combining marks", async () => {
    const { client, path } = await clients.open(rec.port);
    const message =
      "emoji 😀🎉👩‍👩‍👧 🇯🇵 · CJK 漢字かなカナ한국어 · combining e\u0301 a\u0308\u0323 Z\u0351\u036b · \u{10FFFF}";
    client.ws.send(message);
    assert.equal(await client.next(), message);
    assert.equal((await rec.next("message", path)).data, message);
  });

  it("keeps messages in order", async () => {
    const { client } = await clients.open(rec.port);
    for (let i = 0; i < 50; i++) client.ws.send(i % 2 === 0 ? `text ${i}` : Uint8Array.of(i));
    for (let i = 0; i < 50; i++) {
      const message = await client.next();
      if (i % 2 === 0) assert.equal(message, `text ${i}`);
      else assert.deepEqual([...binary(message)], [i]);
    }
  });

  it("agrees on the subprotocol the client offers", async () => {
    const { client, path } = await clients.open(rec.port, ["superchat"]);
    assert.equal(client.ws.protocol, "superchat");
    assert.equal((await rec.next("open", path)).ws.protocol, "superchat");
  });

  it("agrees on the server's preferred subprotocol among those offered", async () => {
    const { client, path } = await clients.open(rec.port, ["superchat", "chat"]);
    assert.equal(client.ws.protocol, "chat");
    assert.equal((await rec.next("open", path)).ws.protocol, "chat");
  });

  it("agrees on no subprotocol when the client offers none", async () => {
    const { client, path } = await clients.open(rec.port);
    assert.equal(client.ws.protocol, "");
    assert.equal((await rec.next("open", path)).ws.protocol, "");
  });

  it("reports the client's close code and reason; the client closes cleanly", async () => {
    const { client, path } = await clients.open(rec.port);
    client.ws.close(4001, "é reason");
    const event = await rec.next("close", path);
    assert.equal(event.code, 4001);
    assert.equal(event.reason, "é reason");
    const closed = await client.waitClosed();
    assert.equal(closed.wasClean, true);
    assert.equal(closed.code, 4001, "the server echoes the client's code");
  });

  it("delivers the server's close code and reason to the client", async () => {
    const { client, path } = await clients.open(rec.port);
    client.ws.send("please close");
    const closed = await client.waitClosed();
    assert.equal(closed.code, 4002);
    assert.equal(closed.reason, "server says bye");
    assert.equal(closed.wasClean, true);
    await rec.next("close", path);
  });
});

describe("interop: server.close() with built-in clients open", () => {
  let rec: RecordingServer;
  const clients = new Clients();
  before(() => {
    rec = recordingServer({ closeTimeout: 2000 });
  });
  after(async () => {
    await clients.closeAll();
    await rec.server.close();
  });

  it("closes three clients with 1001 and resolves", async () => {
    const opened = [];
    for (let i = 0; i < 3; i++) opened.push(await clients.open(rec.port));
    for (const { client } of opened) {
      client.ws.send("before shutdown");
      assert.equal(await client.next(), "before shutdown");
    }
    assert.equal(rec.server.connections, 3);
    await withTimeout(rec.server.close(), 5000, "server.close() to resolve");
    assert.equal(rec.server.connections, 0);
    for (const { client, path } of opened) {
      const closed = await client.waitClosed();
      assert.equal(closed.code, 1001);
      assert.equal(closed.wasClean, true);
      assert.equal((await rec.next("close", path)).code, 1001);
    }
  });
});
