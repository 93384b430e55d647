/** The reusePort option: several servers on one port (SO_REUSEPORT), or an error that says what Deno needs. */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RawClient } from "./helpers/raw_client.ts";
import { serve, type Server } from "../mod.ts";

const onDeno = "Deno" in globalThis && !("Bun" in globalThis);
/** Node (20) has no SO_REUSEPORT in node:net, so Wisp refuses the option there. */
const onNode = !("Deno" in globalThis) && !("Bun" in globalThis);

describe("reusePort", () => {
  it("lets two servers listen on one port, or on Deno without --unstable-net (or on Node) says why not", async () => {
    const first = (() => {
      try {
        return serve({ port: 0, reusePort: true, upgrade: () => ({ headers: { "X-Server": "first" } }) });
      } catch (error) {
        assert.ok(onDeno || onNode, `only Deno and Node may refuse: ${error}`);
        assert.match(
          (error as Error).message,
          onNode
            ? /cannot set SO_REUSEPORT \(option "reusePort"\)/
            : /option "reusePort" needs Deno's --unstable-net flag/,
        );
        return null;
      }
    })();
    if (first === null) return;
    let second: Server | null = null;
    try {
      second = serve({
        port: first.port,
        reusePort: true,
        upgrade: () => ({ headers: { "X-Server": "second" } }),
      });
      const seen = new Set<string>();
      for (let i = 0; i < 40 && seen.size < 2; i++) {
        const client = await RawClient.connect(first.port);
        client.write(
          `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
        seen.add((await client.readResponse()).headers.get("x-server") ?? "");
        client.destroy();
      }
      assert.deepEqual([...seen].sort(), ["first", "second"], "the kernel spread connections over both");
    } finally {
      await Promise.all([first.close(), second?.close()]);
    }
  });

  it("is refused on a port another server holds without it", () => {
    const holder = serve({ port: 0 });
    try {
      assert.throws(() => serve({ port: holder.port }), /already in use/);
    } finally {
      holder.close();
    }
  });
});
