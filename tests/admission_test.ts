/**
 * Admission to the HTTP phase under attack: idle and trickling sockets cannot lock clients out,
 * and per-address caps hold, tested from several loopback source addresses (127.0.0.2, …), all of
 * which reach a server bound to 127.0.0.1.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RawClient, upgradeRequest } from "./helpers/raw_client.ts";
import { delay, echoServer, until } from "./helpers/server.ts";
import type { Server } from "../mod.ts";

const WAIT = 2000;
/** The first line of an upgrade request: what a trickler sends before it stalls. */
const REQUEST_LINE = "GET / HTTP/1.1\r\n";

/** Waits until `server` has `count` connections in its HTTP phase. */
function untilPending(server: Server, count: number): Promise<void> {
  return until(() => server.stats().connections.http === count, `${count} connections in the HTTP phase`);
}

/**
 * Sends the rest of an upgrade request on a connection that sent only its request line, and
 * returns the status of the first answer it reads: 101 unless it was answered before.
 */
async function completeUpgrade(client: RawClient): Promise<number> {
  client.write(upgradeRequest("/").slice(REQUEST_LINE.length));
  return (await client.readResponse(WAIT)).status;
}

/** Connects from `address` and completes a handshake; returns the status it got. */
async function handshake(
  port: number,
  address: string,
): Promise<{ status: number; body: string; client: RawClient }> {
  const client = await RawClient.connect(port, address);
  client.write(upgradeRequest("/"));
  const response = await client.readResponse(WAIT);
  return { status: response.status, body: response.body, client };
}

describe("admission: idle and trickling sockets", () => {
  it("lets a client that sends its whole request through while idle sockets fill the table", async () => {
    const server = echoServer({ maxPendingHandshakes: 64, closeTimeout: 500 });
    const idle = new Set<RawClient>();
    let holding = true;
    /** Keeps 100 idle sockets from 127.0.0.2 and 127.0.0.3 open, reopening each the server closes. */
    const hold = async (address: string) => {
      while (holding) {
        if (idle.size < 100) {
          const socket = await RawClient.connect(server.port, address).catch(() => null);
          if (socket === null) continue;
          idle.add(socket);
          socket.waitForEnd(60_000).then(() => idle.delete(socket), () => {});
        } else await delay(2);
      }
    };
    const attackers = [hold("127.0.0.2"), hold("127.0.0.3")];
    try {
      const statuses: number[] = [];
      for (let attempt = 0; attempt < 5; attempt++) {
        await untilPending(server, 64); // each attempt meets a full table
        const { status, client } = await handshake(server.port, "127.0.0.1");
        client.destroy();
        statuses.push(status);
      }
      assert.deepEqual(statuses, [101, 101, 101, 101, 101]);
    } finally {
      holding = false;
      await Promise.all(attackers);
      for (const socket of idle) socket.destroy();
      await server.close();
    }
  });

  it("answers the trickler that waited longest, not the newcomer, when the table is full", async () => {
    const server = echoServer({ maxPendingHandshakes: 4, closeTimeout: 500 });
    const tricklers: RawClient[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const client = await RawClient.connect(server.port, "127.0.0.2");
        tricklers.push(client);
        client.write(REQUEST_LINE);
        await untilPending(server, i + 1); // admitted in this order
      }
      // The oldest makes progress (a header line long enough to grow what it holds, so that its
      // arrival shows): progress does not earn a place.
      const held = server.stats().connections.httpBytes;
      tricklers[0].write(`X-Slow: ${"x".repeat(4096)}\r\n`);
      await until(() => server.stats().connections.httpBytes > held, "the oldest trickler's progress");
      const { status, client } = await handshake(server.port, "127.0.0.3");
      client.destroy();
      assert.equal(status, 101);
      assert.equal((await tricklers[0].readResponse(WAIT)).status, 503);
      // Had a younger one been answered, that answer would come before its 101.
      for (const later of tricklers.slice(1)) assert.equal(await completeUpgrade(later), 101);
    } finally {
      for (const client of tricklers) client.destroy();
      await server.close();
    }
  });
});

describe("admission: per-address caps", () => {
  it("maxPendingHandshakesPerIp: an address past it makes room from its own oldest connection", async () => {
    const server = echoServer({ maxPendingHandshakesPerIp: 2, closeTimeout: 500 });
    const clients: RawClient[] = [];
    try {
      // The oldest of all is another address's: the newcomer's own oldest must make room.
      for (const address of ["127.0.0.3", "127.0.0.2", "127.0.0.2"]) {
        const client = await RawClient.connect(server.port, address);
        clients.push(client);
        client.write(REQUEST_LINE);
        await untilPending(server, clients.length); // admitted in this order
      }
      const [other, oldest, younger] = clients;
      const { status, client } = await handshake(server.port, "127.0.0.2");
      clients.push(client);
      assert.equal(status, 101);
      const evicted = await oldest.readResponse(WAIT);
      assert.equal(evicted.status, 429);
      assert.match(evicted.body, /from this address/);
      // Had either been answered, that answer would come before its 101.
      assert.equal(await completeUpgrade(younger), 101, "the younger one from the same address stays");
      assert.equal(await completeUpgrade(other), 101, "another address is not affected");
    } finally {
      for (const client of clients) client.destroy();
      await server.close();
    }
  });

  it("maxConnectionsPerIp: more open connections from one address get 429; other addresses pass", async () => {
    const server = echoServer({ maxConnectionsPerIp: 2, closeTimeout: 500 });
    const open: RawClient[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const { status, client } = await handshake(server.port, "127.0.0.2");
        open.push(client);
        assert.equal(status, 101);
      }
      // Once one of them has closed (the server has let go of it), the address may open another.
      open.shift()!.destroy();
      await until(() => server.connections === 1, "the server to see the close");
      const again = await handshake(server.port, "127.0.0.2");
      open.push(again.client);
      assert.equal(again.status, 101);

      const third = await handshake(server.port, "127.0.0.2");
      third.client.destroy();
      assert.equal(third.status, 429);
      assert.match(third.body, /maxConnectionsPerIp is 2/);
      const other = await handshake(server.port, "127.0.0.3");
      open.push(other.client);
      assert.equal(other.status, 101);
    } finally {
      for (const client of open) client.destroy();
      await server.close();
    }
  });
});
