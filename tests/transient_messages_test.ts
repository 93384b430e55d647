/**
 * `transientMessages: true`: a binary message's buffer is Wisp's again once the handler returns
 * (with `awaitMessages`, once its promise settles). A message kept past that reads as empty,
 * never as another message's bytes, whether it came whole in one read, in fragments, in pieces
 * over several reads, or compressed. Hand-built frames over raw TCP.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { BINARY, CONTINUATION, frame, RawClient, TEXT, upgradeRequest } from "./helpers/raw_client.ts";
import { compressAlone } from "./helpers/deflate.ts";
import { until } from "./helpers/server.ts";
import { serve, type Server } from "../mod.ts";

const WAIT = 3000;

/** `length` bytes of `value`. */
function filled(length: number, value: number): Uint8Array {
  return new Uint8Array(length).fill(value);
}

describe("transientMessages", () => {
  let server: Server;
  /** Each message as the handler kept it, and its length and first byte seen during the call. */
  const kept: (string | Uint8Array)[] = [];
  const seen: [number, number][] = [];
  before(() => {
    server = serve({
      port: 0,
      transientMessages: true,
      perMessageDeflate: true,
      websocket: {
        message(ws, data) {
          kept.push(data);
          if (typeof data !== "string") seen.push([data.length, data[0]]);
          ws.send("handled");
        },
      },
    });
  });
  after(() => server.close());

  it("gives the handler each message whole, and leaves a kept one empty once it returned", async () => {
    const client = await RawClient.connect(server.port);
    try {
      client.write(upgradeRequest("/", { "Sec-WebSocket-Extensions": "permessage-deflate" }));
      assert.equal((await client.readResponse(WAIT)).status, 101);
      const large = filled(1 << 20, 4);
      client.write(frame(BINARY, filled(50, 1))); // small: whole in one read
      client.write(frame(BINARY, filled(3000, 2), { fin: false }));
      client.write(frame(CONTINUATION, filled(3000, 2))); // fragmented: assembled
      client.write(frame(BINARY, compressAlone(filled(5000, 3)), { rsv: 0x40 })); // inflated
      client.write(frame(BINARY, large)); // over several reads
      client.write(frame(TEXT, "text stays"));
      for (let i = 0; i < 5; i++) {
        assert.equal(new TextDecoder().decode((await client.readFrame(WAIT)).payload), "handled");
      }
      assert.deepEqual(seen, [[50, 1], [6000, 2], [5000, 3], [1 << 20, 4]]);
      for (const message of kept.slice(0, 4)) assert.equal((message as Uint8Array).length, 0, "detached");
      assert.equal(kept[4], "text stays");
    } finally {
      client.destroy();
    }
  });
});

describe("transientMessages with awaitMessages", () => {
  let server: Server;
  let release: (() => void) | null = null;
  let kept: Uint8Array | null = null;
  before(() => {
    server = serve({
      port: 0,
      transientMessages: true,
      awaitMessages: true,
      websocket: {
        message(_ws, data) {
          kept = data as Uint8Array;
          return new Promise<void>((resolve) => (release = resolve));
        },
      },
    });
  });
  after(() => server.close());

  it("keeps the message whole until the handler's promise settles", async () => {
    const client = await RawClient.open(server.port);
    try {
      client.write(frame(BINARY, filled(1000, 9)));
      await until(() => release !== null, "the handler");
      await new Promise((resolve) => setTimeout(resolve, 0));
      assert.deepEqual([kept!.length, kept![999]], [1000, 9], "whole while the promise is pending");
      release!();
      await until(() => kept!.length === 0, "the buffer detached once the promise settled");
    } finally {
      client.destroy();
    }
  });
});

describe("transientMessages off (the default)", () => {
  let server: Server;
  const kept: Uint8Array[] = [];
  before(() => {
    server = serve({ port: 0, websocket: { message: (_ws, data) => void kept.push(data as Uint8Array) } });
  });
  after(() => server.close());

  it("leaves kept messages as they came", async () => {
    const client = await RawClient.open(server.port);
    try {
      client.write(frame(BINARY, filled(50, 1)));
      client.write(frame(BINARY, filled(70_000, 2)));
      await until(() => kept.length === 2, "both messages");
      assert.deepEqual(kept.map((message) => [message.length, message[message.length - 1]]), [[50, 1], [
        70_000,
        2,
      ]]);
    } finally {
      client.destroy();
    }
  });
});
