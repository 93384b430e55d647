/**
 * The transport adapter of the runtime running the tests (Deno's, Bun's or Node's), over real
 * loopback sockets with a node:net client: chunks arrive as plain `Uint8Array`s, a backlog queues
 * and drains in order, `end` half-closes after the queue and reading goes on, a peer that ended
 * first is closed once its reply is out, `pause` holds the peer back through TCP, and `destroy`
 * reports `close` once.
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { runtimeConnect, runtimeListen } from "../src/runtime/mod.ts";
import type { Transport, TransportListener } from "../src/runtime/types.ts";
import { freePort, until } from "./helpers/server.ts";

/** One accepted connection, with what its events reported. */
interface Accepted {
  transport: Transport;
  chunks: Uint8Array[];
  received: number;
  drains: number;
  closes: number;
}

/** The client's side: what it read, and whether the server's FIN or close arrived. */
interface Client {
  socket: Socket;
  received: number;
  chunks: Uint8Array[];
  ended: boolean;
  closed: boolean;
}

const accepted: Accepted[] = [];
const listener: TransportListener = runtimeListen()({ hostname: "127.0.0.1", port: 0 }, (transport) => {
  const entry: Accepted = { transport, chunks: [], received: 0, drains: 0, closes: 0 };
  transport.events = {
    data(chunk) {
      entry.chunks.push(chunk);
      entry.received += chunk.length;
      return true;
    },
    drain: () => void entry.drains++,
    closed: () => void entry.closes++,
  };
  accepted.push(entry);
});
after(() => listener.close());

/** Connects a client (reading unless told `paused`) and waits for the server to accept it. */
async function pair(paused = false): Promise<{ server: Accepted; client: Client }> {
  const count = accepted.length;
  const socket = connect({ host: "127.0.0.1", port: listener.port, allowHalfOpen: true });
  const client: Client = { socket, received: 0, chunks: [], ended: false, closed: false };
  if (paused) socket.pause();
  socket.on("data", (chunk: Uint8Array) => {
    client.chunks.push(chunk);
    client.received += chunk.length;
  });
  socket.on("end", () => (client.ended = true));
  socket.on("close", () => (client.closed = true));
  socket.on("error", () => {});
  await until(() => accepted.length > count, "the server to accept the connection");
  return { server: accepted[accepted.length - 1], client };
}

/** `length` bytes of a pattern that shows misplaced bytes. */
const pattern = (length: number) => Uint8Array.from({ length }, (_, i) => (i * 7 + (i >>> 10)) & 0xff);

/** Writes 1 MiB pieces of `total` bytes to the server's side; returns them joined. */
function writePieces(transport: Transport, total: number): Uint8Array {
  const all = pattern(total);
  for (let at = 0; at < total; at += 1 << 20) transport.write(all.subarray(at, at + (1 << 20)));
  return all;
}

/** The client's received bytes joined. */
function joined(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** Enough to fill loopback's socket buffers on both sides, so that writes back up. */
const LARGE = 48 << 20;

describe(`runtime adapter (${"Bun" in globalThis ? "Bun" : "Deno" in globalThis ? "Deno" : "Node"})`, () => {
  it("hands the core plain Uint8Array chunks, in order", async () => {
    const { server, client } = await pair();
    const sent = pattern(300_000);
    client.socket.write(sent);
    await until(() => server.received === sent.length, "the bytes to arrive");
    for (const chunk of server.chunks) assert.equal(Object.getPrototypeOf(chunk), Uint8Array.prototype);
    assert.deepEqual(joined(server.chunks), sent);
    assert.equal(server.transport.remoteAddress, "127.0.0.1");
    assert.equal(server.transport.remotePort, client.socket.localPort);
    server.transport.destroy();
  });

  it(
    "brings chunks that are whole buffers of their own where the adapter says so",
    { skip: !("Bun" in globalThis) && "only Bun's adapter declares readChunks.ownBuffers" },
    async () => {
      // The HTTP phase's memory budget counts such a chunk by its length (src/byte_queue.ts).
      const { server, client } = await pair();
      assert.equal(server.transport.readChunks.ownBuffers, true);
      let sent = 0;
      for (const size of [5, 150, 4096, 70_000, 600_000]) {
        client.socket.write(pattern(size));
        sent += size;
        await until(() => server.received === sent, `${size} bytes to arrive`);
      }
      for (const chunk of server.chunks) {
        assert.equal(chunk.byteOffset, 0);
        assert.equal(chunk.buffer.byteLength, chunk.length);
      }
      server.transport.destroy();
    },
  );

  it("queues what the kernel does not take, counts it as pending, and drains it in order", async () => {
    const { server, client } = await pair(true);
    const sent = writePieces(server.transport, LARGE);
    assert.ok(server.transport.pending > 0, "a paused reader backs the writes up");
    assert.equal(server.transport.write(pattern(10)), true, "a write behind a backlog is kept");
    client.socket.resume();
    await until(() => server.drains > 0, "drain", 20_000);
    assert.equal(server.transport.pending, 0);
    await until(() => client.received === LARGE + 10, "every byte", 20_000);
    assert.deepEqual(joined(client.chunks).subarray(0, LARGE), sent);
    server.transport.destroy();
  });

  it("end sends FIN after the queue, and reading goes on until the peer closes", async () => {
    const { server, client } = await pair(true);
    writePieces(server.transport, LARGE);
    server.transport.end();
    assert.equal(server.transport.write(pattern(1)), false, "nothing is taken after end");
    client.socket.resume();
    await until(() => client.ended, "the server's FIN", 20_000);
    assert.equal(client.received, LARGE, "FIN comes after every queued byte");
    assert.equal(server.closes, 0, "half-closed, not closed");
    client.socket.write(pattern(1000));
    await until(() => server.received === 1000, "the client's bytes after the server's FIN");
    client.socket.end();
    await until(() => server.closes === 1, "close once the client ends too");
    await until(() => client.closed, "the connection to close");
  });

  it("a peer that ended first still gets the queued reply, then the connection closes", async () => {
    const { server, client } = await pair(true);
    client.socket.end();
    writePieces(server.transport, LARGE);
    server.transport.end();
    client.socket.resume();
    await until(() => client.closed, "the connection to close", 20_000);
    assert.equal(client.received, LARGE);
    assert.equal(server.closes, 1);
  });

  it("a peer that ends while the server is not ending closes the connection", async () => {
    const { server, client } = await pair();
    client.socket.end();
    await until(() => server.closes === 1, "close");
    await until(() => client.closed, "the connection to close");
  });

  it("pause holds the peer back through TCP until resume", async () => {
    const { server, client } = await pair();
    client.socket.write(pattern(10));
    await until(() => server.received === 10, "the first bytes");
    server.transport.pause();
    // A read already under way may still deliver one chunk; after that, nothing.
    client.socket.write(pattern(LARGE));
    await until(() => client.socket.writableLength > 0, "the client's writes to back up", 20_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const whilePaused = server.received;
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(server.received, whilePaused, "no data while paused");
    assert.ok(whilePaused < 10 + LARGE);
    server.transport.resume();
    await until(() => server.received === 10 + LARGE, "every byte after resume", 20_000);
    server.transport.destroy();
  });

  it("destroy drops the queue, reports close once, and the peer sees the connection end", async () => {
    const { server, client } = await pair(true);
    writePieces(server.transport, LARGE);
    server.transport.destroy();
    server.transport.destroy();
    assert.equal(server.transport.pending, 0);
    assert.equal(server.transport.write(pattern(1)), false);
    client.socket.resume();
    await until(() => client.ended || client.closed, "the connection to end", 20_000);
    assert.ok(client.received < LARGE, "queued bytes are dropped");
    assert.equal(server.closes, 1);
  });

  it("connects out: bytes both ways, then the peer's FIN closes the connection", async () => {
    let peer: Socket | null = null;
    const echo = createServer({ allowHalfOpen: true }, (socket) => {
      peer = socket;
      socket.on("data", (chunk) => socket.write(chunk));
    });
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    const port = (echo.address() as { port: number }).port;
    const chunks: Uint8Array[] = [];
    let closes = 0;
    const events = {
      data(chunk: Uint8Array) {
        chunks.push(chunk.slice());
        return false;
      },
      drain() {},
      closed: () => void closes++,
    };
    try {
      const transport = await runtimeConnect()({ hostname: "127.0.0.1", port }, events);
      assert.equal(transport.remotePort, port);
      const sent = pattern(100_000);
      transport.write(sent);
      await until(() => chunks.reduce((sum, chunk) => sum + chunk.length, 0) === sent.length, "the echo");
      assert.deepEqual(joined(chunks), sent);
      peer!.end();
      await until(() => closes === 1, "close after the peer's FIN");
    } finally {
      echo.close();
    }
  });

  it("refuses to connect where nothing listens", async () => {
    const port = await freePort();
    await assert.rejects(
      runtimeConnect()({ hostname: "127.0.0.1", port }, { data: () => false, drain() {}, closed() {} }),
    );
  });
});
