/** The reusePort option: several servers on one port (SO_REUSEPORT), or an error that says what Deno needs. */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RawClient, upgradeRequest } from "./helpers/raw_client.ts";
import { serve, type Server } from "../mod.ts";

const onDeno = "Deno" in globalThis && !("Bun" in globalThis);
/** Node (20) has no SO_REUSEPORT in node:net, so Wisp refuses the option there. */
const onNode = !("Deno" in globalThis) && !("Bun" in globalThis);
/** Why a server cannot ask for reusePort here (the first test checks how it is refused), or false. */
const noReusePort = onNode
  ? "Node has no SO_REUSEPORT"
  : onDeno && typeof (Deno as { listenDatagram?: unknown }).listenDatagram !== "function"
  ? "Deno runs without --unstable-net"
  : false;

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
        client.write(upgradeRequest());
        seen.add((await client.readResponse()).headers.get("x-server") ?? "");
        client.destroy();
      }
      assert.deepEqual([...seen].sort(), ["first", "second"], "the kernel spread connections over both");
    } finally {
      await Promise.all([first.close(), second?.close()]);
    }
  });

  it("is refused on a port another server holds without it", { skip: noReusePort }, () => {
    const holder = serve({ port: 0 });
    try {
      assert.throws(() => serve({ port: holder.port, reusePort: true }), /already in use/);
    } finally {
      holder.close();
    }
  });
});
