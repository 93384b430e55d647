/**
 * What only the Node adapter does (on Node; skipped elsewhere): it is the one picked there, it is
 * bound when `listen` returns although Node's own `listen()` binds a tick later, a taken port
 * throws at once, and host names it cannot bind at once are refused, except `localhost`.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { listen } from "../src/runtime/node.ts";
import { runtimeListen } from "../src/runtime/mod.ts";
import { serve } from "../mod.ts";

const onNode = !("Bun" in globalThis) && !("Deno" in globalThis);
const skip = onNode ? false : "the Node adapter runs on Node only";
/** `bun test` leaves the tests of a skipped group out, while `deno test` counts them unless it is skipped. */
const group = { skip: "Bun" in globalThis ? false : skip };
const ignore = () => {};
const noEvents = { data: () => false, drain: ignore, closed: ignore };

describe("Node adapter", group, () => {
  it("is the adapter picked on Node", { skip }, () => {
    assert.equal(runtimeListen(), listen);
  });

  it("is bound when listen returns, and a taken port throws at once", { skip }, () => {
    const first = listen({ hostname: "127.0.0.1", port: 0 }, (transport) => {
      transport.events = noEvents;
      transport.destroy();
    });
    try {
      assert.ok(first.port > 0);
      assert.equal(first.hostname, "127.0.0.1");
      assert.throws(
        () => listen({ hostname: "127.0.0.1", port: first.port }, ignore),
        (error: { code?: string }) => error.code === "EADDRINUSE",
      );
      assert.throws(() => serve({ port: first.port }), /already in use/);
    } finally {
      first.close();
    }
  });

  it("binds localhost as 127.0.0.1 and IPv6 addresses as they are", { skip }, () => {
    const local = listen({ hostname: "localhost", port: 0 }, ignore);
    assert.equal(local.hostname, "127.0.0.1");
    local.close();
    const six = listen({ hostname: "::1", port: 0 }, ignore);
    assert.equal(six.hostname, "::1");
    six.close();
  });

  it("refuses other host names, saying what to pass instead", { skip }, () => {
    assert.throws(() => listen({ hostname: "example.invalid", port: 0 }, ignore), {
      name: "TypeError",
      message: /"hostname" must be an IP address/,
    });
  });
});
