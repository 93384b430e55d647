/**
 * `closeOnBackpressureLimit: false`: a socket past `maxBufferedAmount` is kept, and the messages
 * sent to it meanwhile (`send`, `ping`, publish deliveries) are dropped, told to the `dropped`
 * handler after the call, and counted. Over raw TCP; the backlog is built within one turn of the
 * event loop (this turn's frames count), so the figures do not depend on the kernel's buffers.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { MessageData, SendStatus } from "../mod.ts";
import { prometheusText, serve, type Server } from "../mod.ts";
import { frame, RawClient, TEXT } from "./helpers/raw_client.ts";
import { until } from "./helpers/server.ts";

const LIMIT = 64 * 1024;
const WAIT = 3000;
const decoder = new TextDecoder();

/** A 64 KiB message whose first byte names it. */
function message(index: number): Uint8Array {
  const bytes = new Uint8Array(LIMIT);
  bytes[0] = index;
  return bytes;
}

describe("closeOnBackpressureLimit: false", () => {
  let server: Server;
  const statuses: SendStatus[] = [];
  const dropped: MessageData[] = [];
  const reached: number[] = [];
  let insideCall = false;
  before(() => {
    server = serve({
      port: 0,
      maxBufferedAmount: LIMIT,
      closeOnBackpressureLimit: false,
      websocket: {
        open: (ws) => ws.subscribe("feed"),
        message(ws, data) {
          insideCall = true;
          if (data === "flood") {
            for (let i = 0; i < 10; i++) statuses.push(ws.send(message(i)));
            statuses.push(ws.ping("over"));
          } else if (data === "publish") {
            for (let i = 0; i < 4; i++) reached.push(server.publish("feed", message(100 + i)));
          } else {
            ws.send(`echo ${data}`);
          }
          insideCall = false;
        },
        dropped(_ws, data) {
          assert.equal(insideCall, false, "never inside the call that dropped it");
          dropped.push(data);
        },
      },
    });
  });
  after(() => server.close());

  it("keeps the socket, sends what fits the limit and drops the rest, each told to `dropped`", async () => {
    const client = await RawClient.open(server.port);
    try {
      client.write(frame(TEXT, "flood"));
      const first = await client.readFrame(WAIT);
      assert.equal(first.payload[0], 0);
      await until(() => dropped.length === 10, "the dropped handler for every dropped message");
      // One message of the limit's size fits; every send and the ping after it find the backlog past it.
      assert.deepEqual(statuses, ["sent", ...Array(10).fill("dropped")]);
      assert.deepEqual(dropped.slice(0, 9).map((data) => (data as Uint8Array)[0]), [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
      ]);
      assert.equal(dropped[9], "over");
      assert.equal(server.stats().messages.dropped, 10);
      assert.match(prometheusText(server.stats()), /^wisp_dropped_messages_total 10$/m);
      // Still open: the next message is answered, and nothing dropped arrived before it.
      client.write(frame(TEXT, "still there?"));
      assert.equal(decoder.decode((await client.readFrame(WAIT)).payload), "echo still there?");
      assert.equal(server.connections, 1);
    } finally {
      client.destroy();
    }
  });

  it("drops publish deliveries past the limit the same way, counting only the sockets reached", async () => {
    dropped.length = 0;
    const client = await RawClient.open(server.port);
    try {
      await until(() => server.subscriberCount("feed") === 1, "the subscription");
      client.write(frame(TEXT, "publish"));
      assert.equal((await client.readFrame(WAIT)).payload[0], 100);
      await until(() => dropped.length === 3, "the dropped deliveries");
      assert.deepEqual(reached, [1, 0, 0, 0]);
      assert.deepEqual(dropped.map((data) => (data as Uint8Array)[0]), [101, 102, 103]);
      assert.equal(server.subscriberCount("feed"), 1, "the slow subscriber keeps its topic");
    } finally {
      client.destroy();
    }
  });
});
