/**
 * One socket's topics (`subscribe`, `unsubscribe`, `isSubscribed`, `subscriptions`), one and
 * many, and the server's counts staying in step: over raw TCP, the socket's calls made in its
 * handler.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { frame, RawClient, TEXT } from "./helpers/raw_client.ts";
import { serve, type Server } from "../mod.ts";

describe("a socket's topics", () => {
  let server: Server;
  before(() => {
    server = serve({
      port: 0,
      websocket: {
        message(ws, data) {
          const [verb, topic] = String(data).split(" ");
          if (verb === "sub") ws.subscribe(topic);
          if (verb === "unsub") ws.unsubscribe(topic);
          if (verb === "close") return ws.close();
          ws.send(
            JSON.stringify({ topics: ws.subscriptions, a: ws.isSubscribed("a"), b: ws.isSubscribed("b") }),
          );
        },
      },
    });
  });
  after(() => server.close());

  it("keeps one topic, then several, then one again, the server's counts in step", async () => {
    const client = await RawClient.open(server.port);
    const state = async (command: string) => {
      client.write(frame(TEXT, command));
      return JSON.parse(new TextDecoder().decode((await client.readFrame()).payload));
    };
    try {
      assert.deepEqual(await state("sub a"), { topics: ["a"], a: true, b: false });
      assert.deepEqual(await state("sub a"), { topics: ["a"], a: true, b: false }, "once");
      assert.deepEqual(await state("sub b"), { topics: ["a", "b"], a: true, b: true });
      assert.deepEqual(await state("sub c"), { topics: ["a", "b", "c"], a: true, b: true });
      assert.deepEqual([server.subscriberCount("a"), server.subscriberCount("c")], [1, 1]);
      assert.deepEqual(await state("unsub a"), { topics: ["b", "c"], a: false, b: true });
      assert.deepEqual(await state("unsub c"), { topics: ["b"], a: false, b: true });
      assert.deepEqual(await state("unsub x"), { topics: ["b"], a: false, b: true }, "not a member: nothing");
      assert.deepEqual([server.subscriberCount("a"), server.subscriberCount("b")], [0, 1]);
      client.write(frame(TEXT, "close"));
      assert.equal((await client.readFrame()).opcode, 0x8, "the server's close frame");
      assert.equal(server.subscriberCount("b"), 0);
    } finally {
      client.destroy();
    }
  });
});
