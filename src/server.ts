/**
 * `serve`: validates options, listens through the runtime's adapter, runs each connection's HTTP
 * phase, keeps track of open WebSockets and the counters, and shuts everything down in order.
 * @module
 */

import { Admission } from "./admission.ts";
import { HttpConnection, type HttpHost } from "./http/connection.ts";
import {
  type ResolvedOptions,
  resolveOptions,
  type ServeOptions,
  type UpgradeOptions,
  type Upgrader,
} from "./options.ts";
import type { WebSocketHandler } from "./server_websocket.ts";
import { runtimeListen } from "./runtime/mod.ts";
import type { Transport, TransportListener } from "./runtime/types.ts";
import type { HttpError, RequestHead } from "./handshake.ts";
import { Connection, type ConnectionContext, type ConnectionInit } from "./connection.ts";
import { HandlerRunner } from "./handler_runner.ts";
import { CloseCode, type MessageData, type TopicPosition } from "./api.ts";
import { acceptFailureReporter, failureEvent, printEvent, type ServerEvent } from "./events.ts";
import { Counters, type ServerStats } from "./metrics.ts";
import type { BackplaneEvent } from "./pubsub/backplane.ts";
import { PubSub } from "./pubsub/pubsub.ts";

/**
 * A running server, as returned by {@linkcode serve}; `T` is the type of its sockets' `data`
 * (any when not named, so that `const server: Server = serve<Data>(…)` holds).
 */
// deno-lint-ignore no-explicit-any
export interface Server<T = any> extends Upgrader<T> {
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number;
  /** The bound address. */
  readonly hostname: string;
  /** `http://hostname:port/`, or `https://` with TLS. */
  readonly url: string;
  /** Open WebSockets (those that have not finished closing). */
  readonly connections: number;
  /**
   * Sends `data` to every subscriber of `topic`, encoding it once for all of them, and with a
   * `backplane` to the subscribers of the other processes too. Returns how many sockets of this
   * process it went to; a topic without subscribers costs a map lookup.
   */
  publish(topic: string, data: MessageData): number;
  /** How many sockets of this process subscribe to `topic` (other processes' are not counted). */
  subscriberCount(topic: string): number;
  /**
   * The latest position of `topic`'s history (offset "0" before its first message, "0-0" in a
   * Redis stream): where a client that joins now will resume from. A `TypeError` without the
   * `history` option.
   */
  position(topic: string): Promise<TopicPosition>;
  /**
   * The counters since the server started (connections, handshakes by status, messages and
   * bytes each way, drops by reason, close codes, publishes) and the backplane's stats, as a
   * plain object made afresh on each call. `prometheusText` turns it into the Prometheus format.
   */
  stats(): ServerStats;
  /**
   * Stops accepting, drops connections still in their HTTP phase, and closes every WebSocket with
   * 1001 after what was already sent to it, then the backplane. Resolves once every connection is
   * closed (each waits at most `closeTimeout` for its peer).
   */
  close(): Promise<void>;
}

/**
 * Starts a WebSocket server on Deno, Bun or Node.
 *
 * Throws a `TypeError` or `RangeError` naming the option when an option is wrong, and an `Error`
 * when the address cannot be bound (for example, the port is in use).
 *
 * @example An echo server
 * ```ts
 * import { serve } from "../mod.ts";
 *
 * const server = serve({
 *   port: 0,
 *   websocket: {
 *     message(ws, data) {
 *       ws.send(data);
 *     },
 *   },
 * });
 * console.log(`listening on ${server.url}`);
 * await server.close();
 * ```
 */
export function serve<T = undefined>(options: ServeOptions<T> = {}): Server<T> {
  const resolved = resolveOptions(options);
  return new WispServer(resolved, (acceptor) => {
    const listener = listenOrExplain(resolved, acceptor);
    return {
      port: listener.port,
      hostname: listener.hostname,
      secure: resolved.tls !== null,
      close: () => listener.close(),
    };
  });
}

/** Where a server's connections come from: a listener of its own, or a server it is attached to. */
export interface Binding extends TransportListener {
  /** Whether its connections come over TLS (`https:` and `wss:` URLs). */
  readonly secure: boolean;
}

/** Where a {@linkcode Binding} hands connections. */
export interface Acceptor {
  /** A connection accepted by a listener of the server's own. */
  accept(transport: Transport): void;
  /**
   * A WebSocket upgrade request another server has read (or the answer its head gets), on its
   * connection (TLS when `secure`), with the bytes that followed the head.
   */
  takeUpgrade(transport: Transport, head: RequestHead | HttpError, early: Uint8Array, secure: boolean): void;
  /** Hands an event of the binding's (a failed accept) to the `onEvent` option. */
  report(event: ServerEvent): void;
}

/** Starts a server on resolved options, whose connections come from the binding `bind` makes. */
export function startServer<T>(
  options: ResolvedOptions<T>,
  bind: (acceptor: Acceptor) => Binding,
): Server<T> {
  return new WispServer(options, bind);
}

class WispServer<T> implements Server<T>, HttpHost<T>, ConnectionContext<T>, Acceptor {
  readonly options: ResolvedOptions<T>;
  readonly counters: Counters = new Counters();
  readonly handlers: HandlerRunner<T>;
  readonly pubsub: PubSub<Connection<T>>;
  readonly #binding: Binding;
  readonly #admission: Admission<HttpConnection<T>>;
  readonly #sockets = new Set<Connection<T>>();
  /** The runners of routes' own handlers (`upgrade(request, { websocket })`), made on first use. */
  readonly #runners = new WeakMap<WebSocketHandler<T>, HandlerRunner<T>>();
  readonly #sweep: ReturnType<typeof setInterval> | undefined;
  readonly #handshakeSweep: ReturnType<typeof setInterval>;
  #closed: Promise<void> | null = null;
  #resolveClosed: (() => void) | null = null;

  constructor(options: ResolvedOptions<T>, bind: (acceptor: Acceptor) => Binding) {
    this.options = options;
    this.handlers = new HandlerRunner(options.websocket, options, (event) => this.report(event));
    this.pubsub = new PubSub(options, options.backplane, (event) => this.report(backplaneEvent(event)));
    this.#admission = new Admission(options);
    this.#binding = bind(this);
    // One timer enforces handshakeTimeout for every connection, instead of a timer each.
    const handshakeTimeout = options.handshakeTimeout;
    this.#handshakeSweep = setInterval(() => {
      const deadline = Date.now() - handshakeTimeout;
      for (const http of this.#admission.pending) http.expire(deadline);
    }, Math.max(10, Math.min(1000, Math.floor(handshakeTimeout / 4))));
    if (options.idleTimeout > 0) {
      const sendPings = options.sendPings;
      this.#sweep = setInterval(() => {
        for (const connection of this.#sockets) connection.keepAlive(sendPings);
      }, Math.max(1, Math.floor(options.idleTimeout / 2)));
    }
  }

  get port(): number {
    return this.#binding.port;
  }

  get hostname(): string {
    return this.#binding.hostname;
  }

  get url(): string {
    const host = this.hostname.includes(":") ? `[${this.hostname}]` : this.hostname;
    return `${this.#binding.secure ? "https" : "http"}://${host}:${this.port}/`;
  }

  get connections(): number {
    return this.#sockets.size;
  }

  publish(topic: string, data: MessageData): number {
    this.counters.publishes++;
    return this.pubsub.publish(topic, data, null);
  }

  /** See {@linkcode Upgrader.upgrade}; bound, as `fetch` handlers get it on their `info`. */
  readonly upgrade = (request: Request, options?: UpgradeOptions<T>): boolean =>
    HttpConnection.upgrade(this, request, options);

  runnerFor(handlers: WebSocketHandler<T> | null): HandlerRunner<T> {
    if (handlers === null) return this.handlers;
    let runner = this.#runners.get(handlers);
    if (runner === undefined) {
      runner = new HandlerRunner(handlers, this.options, (event) => this.report(event));
      this.#runners.set(handlers, runner);
    }
    return runner;
  }

  subscriberCount(topic: string): number {
    return this.pubsub.count(topic);
  }

  position(topic: string): Promise<TopicPosition> {
    return this.pubsub.position(topic);
  }

  stats(): ServerStats {
    const current = {
      open: this.#sockets.size,
      http: this.#admission.pending.size,
      httpBytes: this.#admission.held,
    };
    return this.counters.snapshot(
      current,
      this.options.backplane?.stats() ?? null,
      this.pubsub.historyStats(),
    );
  }

  /** Hands `event` to the `onEvent` option; a hook that throws is itself reported on stderr. */
  report(event: ServerEvent): void {
    try {
      this.options.onEvent(event);
    } catch (error) {
      printEvent(failureEvent("handler", "the onEvent hook failed", error));
    }
  }

  accept(transport: Transport): void {
    this.#admit(transport, this.#binding.secure);
  }

  takeUpgrade(transport: Transport, head: RequestHead | HttpError, early: Uint8Array, secure: boolean): void {
    const http = this.#admit(transport, secure);
    if (http === null) return;
    if ("status" in head) http.refuse(head);
    else http.takeUpgrade(head, early);
  }

  /** Starts the HTTP phase of `transport`, unless the server is closing or admission refuses it. */
  #admit(transport: Transport, secure: boolean): HttpConnection<T> | null {
    if (this.#closed !== null) {
      transport.events = { data: () => false, drain() {}, closed() {} };
      transport.destroy();
      return null;
    }
    this.counters.accepted++;
    const http = new HttpConnection(transport, this, secure);
    transport.events = http;
    const refusal = this.#admission.admit(http);
    if (refusal === null) return http;
    http.refuse(refusal);
    return null;
  }

  adopt(transport: Transport, init: ConnectionInit<T>, early: Uint8Array | null): void {
    const connection = new Connection(transport, this, init);
    transport.events = connection;
    this.#sockets.add(connection);
    connection.start(early);
  }

  socketClosed(connection: Connection<T>): void {
    this.#sockets.delete(connection);
    this.#admission.disconnected(connection.socket.remoteAddress);
    this.#checkClosed();
  }

  released(http: HttpConnection<T>): void {
    this.#admission.release(http);
    this.#checkClosed();
  }

  requeued(http: HttpConnection<T>): void {
    this.#admission.requeue(http);
  }

  disconnected(http: HttpConnection<T>): void {
    this.#admission.disconnected(http.remoteAddress);
  }

  hold(delta: number, http: HttpConnection<T>): boolean {
    return this.#admission.hold(delta, http);
  }

  close(): Promise<void> {
    if (this.#closed === null) {
      const socketsClosed = new Promise<void>((resolve) => (this.#resolveClosed = resolve));
      // The backplane goes last: close handlers may still publish (a chat's "left").
      const backplane = this.options.backplane;
      this.#closed = backplane === null ? socketsClosed : socketsClosed.then(() => backplane.close());
      this.#binding.close();
      clearInterval(this.#sweep);
      clearInterval(this.#handshakeSweep);
      for (const http of this.#admission.pending) http.abort();
      for (const connection of this.#sockets) {
        connection.socket.close(CloseCode.GoingAway, "server shutting down");
      }
      this.#checkClosed();
    }
    return this.#closed;
  }

  #checkClosed(): void {
    if (this.#resolveClosed !== null && this.#admission.pending.size === 0 && this.#sockets.size === 0) {
      this.#resolveClosed();
      this.#resolveClosed = null;
    }
  }
}

/** A backplane's event as the server's: errors are errors, a lost connection a warning. */
function backplaneEvent(event: BackplaneEvent): ServerEvent {
  const level = event.type === "error" ? "error" : event.type === "disconnected" ? "warn" : "info";
  return { level, kind: "backplane", message: event.message };
}

/**
 * Listens, turning the runtimes' different "address in use" errors into one clear message, and
 * reporting failed accepts as `accept` events.
 */
function listenOrExplain<T>(options: ResolvedOptions<T>, acceptor: Acceptor): TransportListener {
  const { hostname, port, reusePort, tls } = options;
  const acceptFailed = acceptFailureReporter((event) => acceptor.report(event));
  try {
    return runtimeListen()(
      { hostname, port, reusePort, tls, acceptFailed },
      (transport) => acceptor.accept(transport),
    );
  } catch (error) {
    const { name, code, message = "" } = error as { name?: string; code?: string; message?: string };
    if (name === "AddrInUse" || code === "EADDRINUSE" || /in use/i.test(message)) {
      throw new Error(
        `port ${port} on ${hostname} is already in use; stop the other server or choose another "port"`,
        { cause: error },
      );
    }
    if (/unstable-net/.test(message)) {
      throw new Error('option "reusePort" needs Deno\'s --unstable-net flag (deno run -A --unstable-net …)', {
        cause: error,
      });
    }
    if (tls !== null && !(error instanceof TypeError)) {
      throw new Error(`the TLS certificate or key could not be used (option "tls"): ${message}`, {
        cause: error,
      });
    }
    throw error;
  }
}
