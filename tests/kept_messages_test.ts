/**
 * Messages a handler keeps stay exactly as they arrived while later reads come in: on Deno the
 * adapter reads into one buffer again and again (the core copies each message out of it), on Bun
 * and Node every read brings a buffer of its own. Hand-built frames over raw TCP, many messages to
 * a write and writes split mid-frame, so that messages start, end and lie whole inside reads.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { BINARY, concat, frame, RawClient, TEXT } from "./helpers/raw_client.ts";
import { firstDifference } from "./helpers/events.ts";
import { delay } from "./helpers/server.ts";
import { serve, type Server } from "../mod.ts";

const encoder = new TextEncoder();
/** How many small messages come first; a few large ones follow. */
const SMALL = 600;
const decoder = new TextDecoder();

/**
 * Message `i`: its own length (1 to about 6 KiB, and from `SMALL` on about 300 KiB, so that Bun
 * reads chunks large enough to be released) and contents, so that no two are alike.
 */
function message(i: number): Uint8Array {
  const length = i < SMALL ? 1 + ((i * 977) % 6000) : 300_000 + i;
  return Uint8Array.from({ length }, (_, j) => (i * 131 + j * 7 + (j >> 8)) & 0xff);
}

describe("messages a handler keeps", () => {
  let server: Server;
  const kept: Uint8Array[] = [];

  before(() => {
    server = serve({
      port: 0,
      websocket: {
        message(ws, data) {
          if (typeof data !== "string") return void kept.push(data);
          // "check": compare every kept message with what was sent, and answer with the verdict.
          const wrong = kept.findIndex((bytes, i) => firstDifference(bytes, message(i)) !== -1);
          ws.send(wrong === -1 ? `ok ${kept.length}` : `message ${wrong} changed`);
        },
      },
    });
  });

  after(() => server.close());

  it("are not overwritten by the reads that follow them", async () => {
    const count = SMALL + 4;
    const client = await RawClient.open(server.port);
    const wire = concat(...Array.from({ length: count }, (_, i) => frame(BINARY, message(i))));
    // Uneven pieces (a prime stride), each written a little after the last, so reads end mid-frame.
    for (let at = 0, n = 0; at < wire.length; at += 7919, n++) {
      client.write(wire.subarray(at, at + 7919));
      if (n % 16 === 15) await delay(1);
    }
    client.write(frame(TEXT, encoder.encode("check")));
    const reply = await client.readFrame();
    assert.equal(decoder.decode(reply.payload), `ok ${count}`);
    client.destroy();
  });
});
