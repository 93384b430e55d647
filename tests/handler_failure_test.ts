/**
 * Handlers that fail: an error handler that itself throws or rejects is reported to `onEvent`
 * (never an unhandled rejection, which would end a Node process), and the socket still closes
 * with 1011. Over raw TCP.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { frame, RawClient, TEXT } from "./helpers/raw_client.ts";
import { until } from "./helpers/server.ts";
import { serve, type Server, type ServerEvent } from "../mod.ts";

describe("an error handler that fails", () => {
  let server: Server;
  const events: ServerEvent[] = [];
  before(() => {
    server = serve({
      port: 0,
      onEvent: (event) => void events.push(event),
      websocket: {
        message(_ws, data) {
          throw new Error(`first ${data}`);
        },
        error(_ws, error) {
          const text = String((error as Error).message);
          if (text.endsWith("throws")) throw new Error("the error handler threw");
          return Promise.reject(new Error("the error handler rejected"));
        },
      },
    });
  });
  after(() => server.close());

  for (
    const [how, said] of [["throws", "the error handler threw"], ["rejects", "the error handler rejected"]]
  ) {
    it(`is reported when it ${how}, and the socket closes with 1011`, async () => {
      const client = await RawClient.open(server.port);
      try {
        client.write(frame(TEXT, how));
        const close = await client.readClose();
        assert.deepEqual([close.code, close.reason], [1011, "handler failed"]);
        await until(() => events.some((event) => String(event.error).includes(said)), "the event");
        const event = events.find((event) => String(event.error).includes(said))!;
        assert.deepEqual([event.kind, event.message.startsWith("the WebSocket error handler failed")], [
          "websocket",
          true,
        ]);
      } finally {
        client.destroy();
      }
    });
  }
});
