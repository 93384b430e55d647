/**
 * A server out of file descriptors: the command line run under `ulimit -n 64`, then held open by
 * more connections than it has descriptors for. On Deno the failed accepts are one `kind=accept`
 * event (later ones counted, not each a line); on every runtime the server serves again once the
 * connections are gone.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { RawClient } from "./helpers/raw_client.ts";
import { startCli } from "./helpers/cli.ts";

const OPEN_FILE_LIMIT = 64;
const CONNECTIONS = 120;

/** Resolves once `ready()` holds, checking every 50 ms; rejects after `ms`. */
async function until(ready: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A WebSocket handshake with the server, tried every 100 ms until one succeeds or `ms` pass. */
async function handshakeWithin(port: number, ms: number): Promise<RawClient> {
  const deadline = Date.now() + ms;
  while (true) {
    try {
      return await RawClient.open(port);
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`no handshake within ${ms} ms: ${error}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe("out of file descriptors", () => {
  it("says so once on Deno, and serves again once descriptors are free", { timeout: 60_000 }, async () => {
    const server = await startCli(["--echo", "--port", "0"], 20_000, OPEN_FILE_LIMIT);
    const sockets: Socket[] = [];
    try {
      let connected = 0;
      for (let i = 0; i < CONNECTIONS; i++) {
        const socket = connect(server.port, "127.0.0.1", () => connected++);
        socket.on("error", () => {}); // Node's listener resets those it has no descriptor for
        sockets.push(socket);
      }
      await until(() => connected === CONNECTIONS, "the connections");
      if ("Deno" in globalThis) {
        await until(() => /kind=accept/.test(server.output()), "the accept event");
        const lines = server.output().split("\n").filter((line) => line.includes("kind=accept"));
        assert.equal(lines.length, 1, "one line, the later failures counted");
        assert.match(
          lines[0],
          /^wisp: error kind=accept message="accepting a connection failed: .*(EMFILE|Too many open files)/,
        );
        assert.match(lines[0], /raise its open-file limit \(ulimit -n\)/);
      }
      for (const socket of sockets) socket.destroy();
      // The server closes the connections it accepted as it sees them end; then it accepts again.
      const client = await handshakeWithin(server.port, 20_000).catch((error) => {
        throw new Error(`${error.message}\n--- output ---\n${server.output()}`);
      });
      client.destroy();
    } finally {
      for (const socket of sockets) socket.destroy();
      await server.stop();
    }
  });
});
