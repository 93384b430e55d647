/**
 * The public face of one WebSocket: `ServerWebSocket` and the handlers that receive it. It sees
 * the connection behind it only through {@linkcode SocketControl}.
 * @module
 */

import {
  CloseCode,
  type MessageData,
  type Recovery,
  type SendOptions,
  type SendStatus,
  type SocketControl,
  type TopicPosition,
} from "./api.ts";

/** What the handshake fixed about a socket: the values of its read-only properties. */
export interface SocketFacts<T> {
  /** The upgrade hook's per-connection data. */
  data: T;
  /** The requested URL with the `ws:` scheme. */
  url: string;
  /** The agreed subprotocol, or `""`. */
  protocol: string;
  /** The agreed extensions, as sent in `Sec-WebSocket-Extensions`, or `""`. */
  extensions: string;
  /** The client's IP address. */
  remoteAddress: string;
}

/**
 * Event handlers for a server's WebSockets. Each may be async; a handler that throws or rejects
 * calls `error` and closes that socket with 1011, and never affects other sockets.
 */
export interface WebSocketHandler<T = undefined> {
  /** The handshake is complete; the socket is open. */
  open?(ws: ServerWebSocket<T>): void | Promise<void>;
  /**
   * A whole message arrived: text as a string, binary as a `Uint8Array`. With the
   * `awaitMessages` option, the next message waits until a promise returned here settles.
   */
  message?(ws: ServerWebSocket<T>, data: string | Uint8Array): void | Promise<void>;
  /**
   * The socket closed. `code` is the peer's close code (1005 when its close frame had none), the
   * code Wisp failed the connection with, or 1006 when it ended without a closing handshake.
   * Called in a microtask of its own, never inside the call that closed the socket (`terminate`, a
   * `send` or `publish` past `maxBufferedAmount`); `readyState` is CLOSED and the socket out of its
   * topics as soon as that call returns.
   */
  close?(ws: ServerWebSocket<T>, code: number, reason: string): void | Promise<void>;
  /** The send backlog that made `send` return `"queued"` is gone. */
  drain?(ws: ServerWebSocket<T>): void | Promise<void>;
  /**
   * With `closeOnBackpressureLimit: false`: a message was not sent to this socket because its
   * backlog was past `maxBufferedAmount` (`data` as given to `send`, `ping` or `publish`). Called in
   * a microtask of its own, never inside the call that dropped it.
   */
  dropped?(ws: ServerWebSocket<T>, data: MessageData): void | Promise<void>;
  /**
   * A ping arrived. Wisp answers it with a pong, except while more than 64 KiB wait to be sent:
   * then only the latest ping is answered, once that backlog drains.
   */
  ping?(ws: ServerWebSocket<T>, data: Uint8Array): void | Promise<void>;
  /** A pong arrived. */
  pong?(ws: ServerWebSocket<T>, data: Uint8Array): void | Promise<void>;
  /** Another handler threw or rejected with `error`; the socket is being closed with 1011. */
  error?(ws: ServerWebSocket<T>, error: unknown): void | Promise<void>;
}

/**
 * A server-side WebSocket, handed to every {@linkcode WebSocketHandler} call.
 *
 * @example Echo with backpressure
 * ```ts
 * import { serve } from "../mod.ts";
 * const server = serve({
 *   port: 0,
 *   websocket: {
 *     message(ws, data) {
 *       if (ws.send(data) === "queued") console.log(`${ws.bufferedAmount} bytes waiting`);
 *     },
 *   },
 * });
 * await server.close();
 * ```
 */
export class ServerWebSocket<T = undefined> {
  /** The per-connection value the `upgrade` hook returned (or `undefined`). */
  data: T;
  /** The URL the client requested, e.g. `ws://127.0.0.1:3368/chat?room=1`. */
  readonly url: string;
  /** The subprotocol agreed in the handshake, or `""`. */
  readonly protocol: string;
  /** The extensions agreed in the handshake, as sent in `Sec-WebSocket-Extensions`, or `""`. */
  readonly extensions: string;
  /** The client's IP address. */
  readonly remoteAddress: string;
  readonly #connection: SocketControl;

  /** Created by the server; not meant to be constructed by users. */
  constructor(connection: SocketControl, facts: SocketFacts<T>) {
    this.#connection = connection;
    this.data = facts.data;
    this.url = facts.url;
    this.protocol = facts.protocol;
    this.extensions = facts.extensions;
    this.remoteAddress = facts.remoteAddress;
  }

  /** `ReadyState.OPEN` (1) until a close starts, `CLOSING` (2) while it waits, then `CLOSED` (3). */
  get readyState(): number {
    return this.#connection.readyState;
  }

  /** Bytes accepted by `send` that have not been handed to the operating system yet. */
  get bufferedAmount(): number {
    return this.#connection.bufferedAmount;
  }

  /**
   * Sends a message: a string as text, bytes as binary. The data is copied, so the caller may
   * reuse its buffer at once. Frames sent in one turn of the event loop go out in one write.
   * With permessage-deflate agreed, messages from the threshold up are compressed unless
   * `options.compress` is false. Throws a `TypeError` for other types.
   */
  send(data: MessageData, options?: SendOptions): SendStatus {
    return this.#connection.send(data, options);
  }

  /**
   * Starts the closing handshake: data already sent goes out first, then a close frame with
   * `code` (default 1000) and `reason` (at most 123 bytes of UTF-8, else `RangeError`; a code that
   * is not a number or a reason that is not a string is a `TypeError`). The connection ends when
   * the peer answers, or after `closeTimeout`. Does nothing unless open.
   */
  close(code: number = CloseCode.Normal, reason = ""): void {
    this.#connection.close(code, reason);
  }

  /** Drops the connection at once, without a closing handshake; `close` reports 1006. */
  terminate(): void {
    this.#connection.terminate();
  }

  /** Sends a ping (at most 125 bytes of data, else `RangeError`); the peer answers with a pong. */
  ping(data: MessageData = ""): SendStatus {
    return this.#connection.ping(data);
  }

  /**
   * Subscribes to `topic`, so that messages published to it reach this socket. A socket leaves
   * all its topics when it starts closing; subscribing then does nothing.
   */
  subscribe(topic: string): void {
    this.#connection.subscribe(topic);
  }

  /**
   * Subscribes to `topic` (with the `history` option) and first sends what this socket's client
   * missed of it since `since`, the position of the last message it got (from the `envelope`
   * of the `history` option), in order and once each, before anything published later. Resolves
   * with what it did: `recovered` false (and a `reason`) when the gap cannot be filled — a position
   * that is malformed, of another epoch (the history was lost), beyond the latest, or older than
   * what is kept — so the app can have its client reload; the socket is subscribed either way.
   * `since` null joins without a gap, to learn the current `position`. Rejects with a `TypeError`
   * without the `history` option or on a socket that is not open.
   *
   * @example Resuming where a client left off
   * ```ts
   * import { serve } from "../mod.ts";
   * const server = serve({
   *   port: 0,
   *   history: { envelope: (data, at) => JSON.stringify({ ...at, data }) },
   *   websocket: {
   *     async open(ws) {
   *       const url = new URL(ws.url);
   *       const epoch = url.searchParams.get("epoch"), offset = url.searchParams.get("offset");
   *       const { recovered } = await ws.recover("room", epoch && offset ? { epoch, offset } : null);
   *       if (!recovered) ws.send(JSON.stringify({ reload: true }));
   *     },
   *   },
   * });
   * await server.close();
   * ```
   */
  recover(topic: string, since: TopicPosition | null): Promise<Recovery> {
    return this.#connection.recover(topic, since);
  }

  /** Stops receiving messages published to `topic`. */
  unsubscribe(topic: string): void {
    this.#connection.unsubscribe(topic);
  }

  /** Whether this socket subscribes to `topic`. */
  isSubscribed(topic: string): boolean {
    return this.#connection.isSubscribed(topic);
  }

  /** The topics this socket subscribes to (a copy). Closing a socket unsubscribes it from all. */
  get subscriptions(): string[] {
    return this.#connection.subscriptions;
  }

  /**
   * Sends `data` to every other subscriber of `topic` (not to this socket), encoding it once for
   * all. Returns how many sockets it went to. A subscriber whose backlog passes
   * `maxBufferedAmount` is dropped instead of slowing the others.
   */
  publish(topic: string, data: MessageData): number {
    return this.#connection.publish(topic, data);
  }

  /**
   * Stops reading from the client until {@linkcode ServerWebSocket.resume}: the operating
   * system's receive buffer fills and the client's writes stop going out (TCP backpressure), so a
   * client that sends faster than the server handles its messages is held back instead of filling
   * the server's memory.
   *
   * Nothing more is handled once the handler call under way (if any) returns: no message, ping,
   * pong or close frame, even of bytes already read. Those bytes (the rest of the current read,
   * and a read that was already under way when `pause` is called outside a handler) are kept as
   * they are, at most two reads' worth, and handled first on `resume`. While paused, pings go
   * unanswered, and the socket is not dropped as idle (`idleTimeout` counts again from `resume`).
   *
   * Calls do not nest: one `resume` ends any number of `pause` calls (but not the pause of an
   * awaited message handler, see the `awaitMessages` option). Does nothing unless the socket is
   * open; `close` ends the pause, as a closing socket reads on for the client's close frame
   * (discarding the messages before it).
   *
   * @example Handling each message before reading the next
   * ```ts
   * import { serve } from "../mod.ts";
   * // Slow work, such as writing to a database.
   * const save = (_data: string | Uint8Array) => new Promise((resolve) => setTimeout(resolve, 10));
   * const server = serve({
   *   port: 0,
   *   websocket: {
   *     message(ws, data) {
   *       ws.pause();
   *       save(data).finally(() => ws.resume());
   *     },
   *   },
   * });
   * await server.close();
   * ```
   */
  pause(): void {
    this.#connection.pause();
  }

  /**
   * Reads from the client again after {@linkcode ServerWebSocket.pause}: first the messages of
   * the bytes kept while paused, in order (a handler may pause again among them), then from the
   * socket. Does nothing when the socket is not paused, or is closed.
   */
  resume(): void {
    this.#connection.resume();
  }
}
