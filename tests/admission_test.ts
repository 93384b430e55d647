/**
 * Admission to the HTTP phase under attack: idle and trickling sockets cannot lock clients out,
 * and per-address caps hold, tested from several loopback source addresses (127.0.0.2, …), all of
 * which reach a server bound to 127.0.0.1.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RawClient, upgradeRequest } from "./helpers/raw_client.ts";
import { delay, echoServer } from "./helpers/server.ts";

const WAIT = 2000;

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
      await delay(200);
      let through = 0;
      for (let attempt = 0; attempt < 5; attempt++) {
        const { status, client } = await handshake(server.port, "127.0.0.1");
        client.destroy();
        if (status === 101) through++;
        await delay(50);
      }
      assert.equal(through, 5);
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
        client.write("GET / HTTP/1.1\r\n");
        await delay(10);
      }
      for (const client of tricklers) client.write("X-Slow: 1\r\n"); // progress does not earn a place
      await delay(20);
      const { status, client } = await handshake(server.port, "127.0.0.3");
      client.destroy();
      assert.equal(status, 101);
      assert.equal((await tricklers[0].readResponse(WAIT)).status, 503);
      await delay(50);
      for (const later of tricklers.slice(1)) assert.equal(later.unread, 0, "a younger one was answered");
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
      for (const address of ["127.0.0.2", "127.0.0.2", "127.0.0.3"]) {
        const client = await RawClient.connect(server.port, address);
        clients.push(client);
        client.write("GET / HTTP/1.1\r\n");
        await delay(10);
      }
      const { status, client } = await handshake(server.port, "127.0.0.2");
      clients.push(client);
      assert.equal(status, 101);
      const evicted = await clients[0].readResponse(WAIT);
      assert.equal(evicted.status, 429);
      assert.match(evicted.body, /from this address/);
      await delay(50);
      assert.equal(clients[1].unread, 0, "the younger one from the same address stays");
      assert.equal(clients[2].unread, 0, "another address is not affected");
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
      const third = await handshake(server.port, "127.0.0.2");
      third.client.destroy();
      assert.equal(third.status, 429);
      assert.match(third.body, /maxConnectionsPerIp is 2/);
      const other = await handshake(server.port, "127.0.0.3");
      open.push(other.client);
      assert.equal(other.status, 101);

      // Once one of them has closed, the address may open another.
      open.shift()!.destroy();
      let status = 0;
      for (let attempt = 0; attempt < 20 && status !== 101; attempt++) {
        await delay(25);
        const again = await handshake(server.port, "127.0.0.2");
        open.push(again.client);
        status = again.status;
      }
      assert.equal(status, 101);
    } finally {
      for (const client of open) client.destroy();
      await server.close();
    }
  });
});
