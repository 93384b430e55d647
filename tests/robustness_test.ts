/**
 * Peers that misbehave at the TCP level: connections dropped at every stage, reset, or fed noise.
 * None of them may stop the server from serving the next client, and none may leave state behind.
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { frame, RawClient, upgradeRequest } from "./helpers/raw_client.ts";
import { echoServer, untilNothingHeld } from "./helpers/server.ts";
import { Random } from "./helpers/random.ts";

/** Opens a plain TCP connection. */
function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port }, () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Drops a socket with a reset where the runtime can, else with a plain close. */
function drop(socket: Socket): void {
  socket.on("error", () => {});
  const reset = (socket as Socket & { resetAndDestroy?: () => void }).resetAndDestroy;
  if (typeof reset === "function") reset.call(socket);
  else socket.destroy();
}

describe("robustness against abrupt and noisy peers", () => {
  const server = echoServer({ closeTimeout: 500 });
  after(() => server.close());

  it("keeps serving after 120 connections dropped at every stage", { timeout: 30_000 }, async () => {
    const request = upgradeRequest();
    const stages: ((socket: Socket) => void | Promise<void>)[] = [
      () => {}, // nothing sent
      (socket) => void socket.write(request.slice(0, 20)), // half a request head
      async (socket) => {
        socket.write(request); // a whole handshake, then gone mid-frame
        await new Promise((resolve) => socket.once("data", resolve));
        socket.write(frame(0x2, new Uint8Array(1000)).subarray(0, 300));
      },
      async (socket) => {
        socket.write(request); // open, then a message it will never read the echo of
        await new Promise((resolve) => socket.once("data", resolve));
        socket.write(frame(0x2, new Uint8Array(50_000)));
      },
    ];
    for (let round = 0; round < 30; round++) {
      await Promise.all(stages.map(async (stage) => {
        const socket = await open(server.port);
        await stage(socket);
        drop(socket);
      }));
    }
    // Those dropped before their handshake never were WebSockets: the HTTP phase must let go too.
    await untilNothingHeld(server);
    const client = await RawClient.open(server.port);
    client.write(frame(0x1, "still here"));
    assert.equal(new TextDecoder().decode((await client.readFrame()).payload), "still here");
    client.destroy();
  });

  it("answers random bytes instead of a request head with 400 and closes", async () => {
    const random = new Random(2026);
    for (let i = 0; i < 20; i++) {
      const client = await RawClient.connect(server.port);
      const noise = random.bytes(200);
      noise.set([13, 10, 13, 10], 196); // an end of head, so the parser decides at once
      client.write(noise);
      const response = await client.readResponse();
      assert.ok(response.status === 400 || response.status === 505, `status ${response.status}`);
      await client.waitForEnd();
    }
    await untilNothingHeld(server);
  });
});
