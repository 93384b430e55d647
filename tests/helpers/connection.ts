/** A `Connection` driven without sockets: chunks in by hand, handler calls recorded. */

import { Connection, type ConnectionContext } from "../../src/connection.ts";
import { HandlerRunner } from "../../src/handler_runner.ts";
import type { WebSocketHandler } from "../../src/server_websocket.ts";
import { Counters } from "../../src/metrics.ts";
import { resolveOptions, type ServeOptions } from "../../src/options.ts";
import { PubSub } from "../../src/pubsub/pubsub.ts";
import { NullTransport } from "./null_transport.ts";

/** A {@linkcode NullTransport} that remembers whether the core asked it to stop reading. */
export class PausableTransport extends NullTransport {
  /** Whether reading is paused. */
  paused = false;
  /** How many times `pause` was called. */
  pauseCalls = 0;

  override pause(): void {
    this.paused = true;
    this.pauseCalls++;
  }

  override resume(): void {
    this.paused = false;
  }
}

/**
 * An open connection over a {@linkcode PausableTransport} with the server's resolved options
 * (its defaults, and `options`), recording the messages (binary ones copied) and close codes its
 * handlers see; `handler` runs after the recording.
 */
export function testConnection(handler: WebSocketHandler = {}, options: ServeOptions = {}) {
  const messages: (string | Uint8Array)[] = [];
  const closes: number[] = [];
  const transport = new PausableTransport();
  const resolved = resolveOptions<undefined>({
    ...options,
    websocket: {
      ...handler,
      message(ws, data) {
        messages.push(typeof data === "string" ? data : data.slice());
        return handler.message?.(ws, data);
      },
      close(ws, code, reason) {
        closes.push(code);
        return handler.close?.(ws, code, reason);
      },
    },
  });
  const context: ConnectionContext<undefined> = {
    options: resolved,
    pubsub: new PubSub(resolved, null, () => {}),
    counters: new Counters(),
    socketClosed() {},
  };
  const conn = new Connection(transport, context, {
    url: "ws://127.0.0.1/",
    protocol: "",
    data: undefined,
    deflate: null,
    handlers: new HandlerRunner(resolved.websocket, resolved, () => {}),
  });
  transport.events = conn;
  conn.start(null);
  return { conn, transport, messages, closes };
}
