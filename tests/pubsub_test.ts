import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { serve, type Server, type ServerWebSocket } from "../mod.ts";
import { frame, RawClient, upgradeRequest } from "./helpers/raw_client.ts";
import { delay, until } from "./helpers/server.ts";

/** Opens a built-in WebSocket client and collects the text messages it receives. */
async function openClient(port: number, path = "/"): Promise<{ ws: WebSocket; received: string[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
  const received: string[] = [];
  ws.onmessage = (event) => received.push(String(event.data));
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("client failed to connect"));
  });
  return { ws, received };
}

/** Completes a handshake over plain TCP, then stops reading, like a peer that stalled. */
async function openStalledClient(port: number): Promise<Socket> {
  const socket: Socket = await new Promise((resolve) => {
    const opened = connect({ host: "127.0.0.1", port }, () => resolve(opened));
  });
  socket.write(upgradeRequest());
  await new Promise((resolve) => socket.once("data", resolve));
  socket.pause();
  return socket;
}

describe("publish/subscribe", () => {
  const servers: Server[] = [];
  const clients: WebSocket[] = [];
  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(servers.map((server) => server.close()));
  });

  /** A server whose sockets subscribe to "news" on open, and publish what they receive. */
  function newsServer(options: { maxBufferedAmount?: number } = {}) {
    const closes: number[] = [];
    const sockets: ServerWebSocket[] = [];
    const server = serve({
      port: 0,
      ...options,
      websocket: {
        open(ws) {
          sockets.push(ws);
          ws.subscribe("news");
        },
        message(ws, data) {
          if (data === "leave") {
            ws.unsubscribe("news");
            ws.send("left");
          } else {
            const reached = ws.publish("news", data);
            ws.send(`published to ${reached}`);
          }
        },
        close(_ws, code) {
          closes.push(code);
        },
      },
    });
    servers.push(server);
    return { server, closes, sockets };
  }

  it("server.publish reaches every subscriber once and counts them", async () => {
    const { server } = newsServer();
    const opened = await Promise.all(Array.from({ length: 40 }, () => openClient(server.port)));
    clients.push(...opened.map((client) => client.ws));
    await until(() => server.subscriberCount("news") === 40, "40 subscriptions");
    assert.equal(server.publish("news", "hello all"), 40);
    assert.equal(server.publish("nobody-listens", "x"), 0);
    await until(() => opened.every((client) => client.received.length === 1), "every delivery");
    for (const client of opened) assert.deepEqual(client.received, ["hello all"]);
  });

  it("ws.publish goes to the other subscribers, not to the publisher", async () => {
    const { server } = newsServer();
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => openClient(server.port)));
    clients.push(a.ws, b.ws, c.ws);
    await until(() => server.subscriberCount("news") === 3, "3 subscriptions");
    a.ws.send("from a");
    await until(
      () => a.received.length === 1 && b.received.length === 1 && c.received.length === 1,
      "delivery",
    );
    assert.deepEqual(a.received, ["published to 2"]);
    assert.deepEqual(b.received, ["from a"]);
    assert.deepEqual(c.received, ["from a"]);
  });

  it("unsubscribing and closing stop delivery and update the count", async () => {
    const { server, sockets } = newsServer();
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => openClient(server.port)));
    clients.push(a.ws, b.ws, c.ws);
    await until(() => server.subscriberCount("news") === 3, "3 subscriptions");
    b.ws.send("leave");
    await until(() => b.received.includes("left"), "the unsubscribe");
    assert.equal(server.subscriberCount("news"), 2);
    assert.equal(sockets.filter((ws) => ws.isSubscribed("news")).length, 2);
    c.ws.close();
    await until(() => server.subscriberCount("news") === 1, "the closed socket to unsubscribe");
    assert.equal(server.publish("news", "only a"), 1);
    await until(() => a.received.includes("only a"), "delivery to a");
    await delay(50);
    assert.deepEqual(b.received, ["left"]);
  });

  it("a subscriber that stops reading is dropped at the limit while the others get everything", async () => {
    const { server, closes } = newsServer({ maxBufferedAmount: 1024 * 1024 });
    const fast = await Promise.all([0, 1].map(() => openClient(server.port)));
    clients.push(...fast.map((client) => client.ws));
    const slow = await openStalledClient(server.port);
    await until(() => server.subscriberCount("news") === 3, "3 subscriptions");

    const message = "x".repeat(64 * 1024);
    const rounds = 300; // 19 MiB: far more than loopback buffers hold for the slow reader
    for (let i = 0; i < rounds; i++) {
      server.publish("news", message);
      await delay(0);
    }
    await until(
      () => fast.every((client) => client.received.length === rounds),
      "the fast subscribers",
      20000,
    );
    await until(() => closes.length === 1, "the slow subscriber to be dropped");
    assert.deepEqual(closes, [1006]);
    assert.equal(server.subscriberCount("news"), 2);
    slow.destroy();
  });

  it("a published binary message arrives as the same bytes for every subscriber", async () => {
    const server = serve({
      port: 0,
      websocket: {
        open(ws) {
          ws.subscribe("bin");
        },
      },
    });
    servers.push(server);
    const a = await RawClient.open(server.port);
    const b = await RawClient.open(server.port);
    await until(() => server.subscriberCount("bin") === 2, "2 subscriptions");
    const payload = Uint8Array.from({ length: 70000 }, (_, i) => (i * 31) & 0xff);
    assert.equal(server.publish("bin", payload), 2);
    for (const client of [a, b]) {
      const received = await client.readFrame();
      assert.equal(received.opcode, 0x2);
      assert.deepEqual(received.payload, payload);
      client.write(frame(0x8, new Uint8Array(0)));
      await client.readClose();
      await client.waitForEnd();
    }
    assert.equal(server.subscriberCount("bin"), 0);
    assert.throws(() => server.publish(42 as unknown as string, "x"), TypeError);
  });
});

describe("publish to more sockets than writes may be under way at once", () => {
  it("reaches every one of 600 subscribers, twice, in order (Deno starts at most 256 writes at once)", async () => {
    const server = serve({ port: 0, websocket: { open: (ws) => ws.subscribe("all") } });
    const clients: RawClient[] = [];
    try {
      for (let i = 0; i < 600; i++) clients.push(await RawClient.open(server.port));
      await until(() => server.subscriberCount("all") === 600, "every subscription");
      assert.equal(server.publish("all", "first"), 600);
      assert.equal(server.publish("all", "second"), 600);
      const decoder = new TextDecoder();
      for (const client of clients) {
        assert.deepEqual(
          [
            decoder.decode((await client.readFrame()).payload),
            decoder.decode((await client.readFrame()).payload),
          ],
          ["first", "second"],
        );
      }
    } finally {
      for (const client of clients) client.destroy();
      await server.close();
    }
  });
});
