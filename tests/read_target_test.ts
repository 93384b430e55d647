/**
 * `Connection.readTarget`: an adapter that reads into a buffer of its choosing (Deno) is offered
 * the rest of a large frame's place in the message buffer, and what it reads there is taken as
 * it lies. Driven here without a runtime adapter, byte for byte.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "../src/connection.ts";
import { Opcode } from "../src/frame.ts";
import { testConnection as connection } from "./helpers/connection.ts";
import { concat, frame } from "./helpers/raw_client.ts";

/**
 * Feeds `wire` as an adapter that honours read targets would: `firstChunk` bytes in a buffer of
 * its own, then each read (at most `readSize` bytes) into the target when there is one.
 */
function feed(conn: Connection<undefined>, wire: Uint8Array, firstChunk: number, readSize: number): number {
  let pos = 0;
  let targeted = 0;
  conn.data(wire.slice(0, firstChunk));
  pos = firstChunk;
  while (pos < wire.length) {
    const target = conn.readTarget();
    const n = Math.min(readSize, wire.length - pos, target?.length ?? Infinity);
    if (target !== null) {
      target.set(wire.subarray(pos, pos + n));
      conn.data(target.subarray(0, n));
      targeted += n;
    } else {
      conn.data(wire.slice(pos, pos + n));
    }
    pos += n;
  }
  return targeted;
}

const pattern = (length: number) => Uint8Array.from({ length }, (_, i) => (i * 31 + (i >> 8)) & 0xff);

describe("Connection.readTarget", () => {
  it("offers nothing between frames or for small remainders", () => {
    const { conn } = connection();
    assert.equal(conn.readTarget(), null);
    conn.data(frame(Opcode.Binary, pattern(200)).slice(0, 100)); // 100 of 200 bytes: small
    assert.equal(conn.readTarget(), null);
  });

  it("offers the rest of a large frame, which arrives there unmasked and whole", () => {
    const { conn, messages } = connection();
    const payload = pattern(1024 * 1024 + 5);
    const wire = frame(Opcode.Binary, payload);
    const targeted = feed(conn, wire, 4096, 100_000);
    assert.ok(targeted > 900_000, `only ${targeted} bytes were read into place`);
    assert.equal(messages.length, 1);
    assert.deepEqual(messages[0], payload);
    assert.equal(conn.readTarget(), null, "nothing is offered once the message is delivered");
  });

  it("stops each target at its frame's end, so the next frames parse as usual", () => {
    const { conn, messages } = connection();
    const first = pattern(300_000);
    const text = "é".repeat(100_000); // 200,000 bytes of UTF-8, validated as it lands
    const wire = concat(
      frame(Opcode.Binary, first.subarray(0, 100_000), { fin: false }),
      frame(Opcode.Continuation, first.subarray(100_000)),
      frame(Opcode.Text, text),
      frame(Opcode.Binary, pattern(10)),
    );
    const targeted = feed(conn, wire, 1000, 65_536);
    assert.ok(targeted > 0);
    assert.deepEqual(messages, [first, text, pattern(10)]);
  });

  it("still fails invalid UTF-8 read into place with 1007", async () => {
    const { conn, closes } = connection();
    const bad = new TextEncoder().encode("a".repeat(200_000));
    bad[150_000] = 0xff;
    feed(conn, frame(Opcode.Text, bad), 1000, 65_536);
    await Promise.resolve(); // the close handler runs in a microtask of its own
    assert.deepEqual(closes, [1007]);
    assert.equal(conn.readTarget(), null, "a failed connection reads nothing more into place");
  });
});
