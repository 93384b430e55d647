/**
 * The HTTP phase of every connection: read a request head, then either complete a WebSocket
 * handshake and hand the connection over, or answer plain HTTP requests (the `fetch` handler),
 * one after another on a kept-alive connection, with request bodies streamed from the socket as
 * the handler reads them. A connection ends here in one of three ways: refused (an error status,
 * then closed), closed (after its last answer), or aborted (dropped at once).
 * @module
 */

import { ByteQueue } from "../byte_queue.ts";
import type { ConnectionInit } from "../connection.ts";
import { failureEvent, type ServerEvent } from "../events.ts";
import type { HandlerRunner } from "../handler_runner.ts";
import {
  acceptDigest,
  isUpgradeRequest,
  parseRequestHead,
  type RequestHead,
  switchingProtocols,
  validateUpgrade,
} from "../handshake.ts";
import { countIn } from "../metrics.ts";
import { resolveUpgradeOptions, type UpgradeAccept, type UpgradeOptions, type Upgrader } from "../options.ts";
import { BACKLOG_THRESHOLD, type Transport, type TransportEvents } from "../runtime/types.ts";
import type { WebSocketHandler } from "../server_websocket.ts";
import { requestFraming, upgradeBodyError } from "./body.ts";
import { Exchange, type ExchangeHost, type ExchangeServer } from "./exchange.ts";
import { webRequest } from "./request.ts";
import { errorResponse, type HttpError, writeResponse } from "./response.ts";
import { StallClock } from "./stall.ts";
import { agree, checkUpgrade, type UpgradeCandidate } from "./upgrade.ts";

/** What an {@linkcode HttpConnection} needs from its server. */
export interface HttpHost<T> extends ExchangeServer<T>, Upgrader<T> {
  /** Hands an event to the server's `onEvent`. */
  report(event: ServerEvent): void;
  /** Takes over a connection whose handshake succeeded. */
  adopt(transport: Transport, init: ConnectionInit<T>, early: Uint8Array | null): void;
  /** The runner of `handlers` (a route's own), or of the server's `websocket` option for null. */
  runnerFor(handlers: WebSocketHandler<T> | null): HandlerRunner<T>;
  /** The HTTP phase ended, whatever the outcome. */
  released(connection: HttpConnection<T>): void;
  /** A kept-alive connection waits for its next request head. */
  requeued(connection: HttpConnection<T>): void;
  /** The socket closed (after the HTTP phase or during it, but not once handed over). */
  disconnected(connection: HttpConnection<T>): void;
  /** Changes the bytes `connection` holds by `delta`; false when the budget has no room. */
  hold(delta: number, connection: HttpConnection<T>): boolean;
}

const enum Stage {
  /** Reading a request head (the first, or the next one on a kept-alive connection). */
  Head,
  /** An upgrade waits on hooks and the accept digest; further bytes are kept as early frames. */
  Upgrading,
  /** A plain request: the handler runs, its body streams, its response is written. */
  Request,
  /** Answered for good, or handed over. */
  Done,
}

/** Early frames (bytes after an upgrade request, before its 101) kept beyond the head's limit. */
const EARLY_DATA_LIMIT = 64 * 1024;
/** Where adapters that read into a given buffer put bytes that are dropped unread (see readTarget). */
const DISCARDED = new Uint8Array(16 * 1024);
/** Upgrade requests handed to `fetch`, until it upgrades or answers them (see `HttpConnection.upgrade`). */
// deno-lint-ignore no-explicit-any
const upgradable = new WeakMap<Request, HttpConnection<any>>();

/** One connection in its HTTP phase. */
export class HttpConnection<T> implements TransportEvents, ExchangeHost<T> {
  /** The connection's transport. */
  readonly transport: Transport;
  /** The server. */
  readonly server: HttpHost<T>;
  /** Whether the connection is TLS (`https:` and `wss:` URLs). */
  readonly secure: boolean;
  /** Bytes that arrived and were not used yet. */
  readonly unread: ByteQueue;
  /** How long the connection has waited on its client (body bytes, reading a response). */
  readonly stall: StallClock = new StallClock();
  /** Bytes counted against the server's budget for the HTTP phase. */
  #held = 0;
  #stage = Stage.Head;
  /** Requests answered on this connection so far. */
  #served = 0;
  /** When the current head began to be awaited: the sweep's deadline and the eviction order. */
  startedAt: number = Date.now();
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /** The plain request in progress (stage Request), or null. */
  #exchange: Exchange<T> | null = null;
  /** Settles once the client has read enough of the response written (see `drained`). */
  #drained: (() => void) | null = null;

  /** Starts the HTTP phase of a freshly accepted `transport` (a TLS one when `secure`). */
  constructor(transport: Transport, server: HttpHost<T>, secure: boolean) {
    this.transport = transport;
    this.server = server;
    this.secure = secure;
    this.unread = new ByteQueue(transport.readChunks.ownBuffers);
  }

  /** The client's IP address. */
  get remoteAddress(): string {
    return this.transport.remoteAddress;
  }

  /** Whether it is waiting for a request head, and so may be dropped to make room for others. */
  get evictable(): boolean {
    return this.#stage === Stage.Head;
  }

  /** Bytes it holds against the server's `httpBufferBudget`. */
  get heldBytes(): number {
    return this.#held;
  }

  /**
   * Once the connection is answered for good, reads go to one scratch buffer shared by all such
   * connections: what a client still sends then (a body nobody reads) is dropped without each
   * connection growing a read buffer for it.
   */
  readTarget(): Uint8Array | null {
    return this.#stage === Stage.Done ? DISCARDED : null;
  }

  // --- TransportEvents -------------------------------------------------------------------------

  /** See {@linkcode TransportEvents.data}. */
  data(chunk: Uint8Array): boolean {
    if (this.#stage === Stage.Done) return false;
    const options = this.server.options;
    if (
      this.unread.length + chunk.length >
        options.maxHeadSize + Math.max(options.maxBodySize, EARLY_DATA_LIMIT)
    ) {
      this.refuse({ status: 413, message: "the request is too large" });
      return false;
    }
    this.unread.push(chunk);
    // Counted by its bytes until it is used: a view of a large read buffer holds that buffer only
    // if it is still kept when this call returns (counted then).
    if (!this.#account(this.unread.length)) return false;
    this.stall.sent();
    this.#process();
    // Leftover bytes (half a head, say) are copied out rather than pin a large read buffer.
    this.unread.compact();
    const kept = this.unread.borrowing;
    this.#account();
    return kept;
  }

  /** See {@linkcode TransportEvents.drain}. */
  drain(): void {
    const drained = this.#drained;
    this.#drained = null;
    if (drained === null) return;
    this.stall.stop();
    drained();
  }

  /** See {@linkcode TransportEvents.closed}. */
  closed(): void {
    clearTimeout(this.#lingerTimer);
    this.#exchange?.fail(new Error("the client closed the connection"));
    this.unread.clear();
    this.#account();
    this.drain();
    this.#leave();
    this.server.disconnected(this);
  }

  // --- ResponseSink ----------------------------------------------------------------------------

  /** Writes response bytes; false once the connection is gone or answered for good. */
  write(bytes: Uint8Array): boolean {
    if (this.#stage === Stage.Done) return false;
    this.transport.write(bytes);
    return true;
  }

  /** Resolves once the transport's backlog is small enough to write more. */
  drained(): Promise<void> | void {
    const backlog = this.transport.pending;
    if (backlog <= BACKLOG_THRESHOLD || this.#stage === Stage.Done) return;
    this.stall.waitForReader(backlog);
    return new Promise((resolve) => (this.#drained = resolve));
  }

  // --- Admission -------------------------------------------------------------------------------

  /** Drops the connection to make room for a newcomer; a kept-alive one between requests goes quietly. */
  evict(error: HttpError): void {
    this.server.counters.drops.eviction++;
    if (this.#served > 0 && this.unread.length === 0) this.#close(null);
    else this.refuse(error);
  }

  /**
   * Enforces the deadlines (the server's sweep calls this): a head, or an upgrade's decision, not
   * done since `deadline`, and a client that has not sent the body asked for, or read any more
   * of the response written, since then.
   */
  expire(deadline: number): void {
    if (this.#stage === Stage.Request && !this.#exchange!.upgrade) {
      if (!this.stall.stalled(deadline, this.transport.pending)) return;
      this.server.counters.drops.requestTimeout++;
      return this.refuse({ status: 408, message: "the request body did not arrive in time" });
    }
    if (this.startedAt > deadline) return;
    if (this.#stage === Stage.Head && this.unread.length === 0 && this.#served > 0) {
      return this.#close(null); // a kept-alive connection between requests: closed, nobody asked for an answer
    }
    this.server.counters.drops.handshakeTimeout++;
    if (this.#stage === Stage.Head && this.unread.length === 0) {
      // Nothing of a request came, nor (with TLS) perhaps even a finished handshake, so that no
      // answer could be written: dropped at once.
      return this.abort();
    }
    this.refuse({ status: 408, message: "the request took too long" });
  }

  /**
   * Starts on an upgrade request that another server has read (an `http.Server` this one is
   * attached to), with the bytes that followed its head.
   */
  takeUpgrade(head: RequestHead, early: Uint8Array): void {
    if (early.length > 0) {
      this.unread.push(early.slice()); // the server that read it may reuse its buffer
      if (!this.#account()) return;
    }
    this.#stage = Stage.Upgrading;
    this.#guard("the upgrade", () => this.#upgrade(head));
  }

  // --- Reading ---------------------------------------------------------------------------------

  /**
   * Keeps the budget's count in step with `footprint`, what the unread bytes hold; refuses (503)
   * when over it.
   */
  #account(footprint = this.unread.footprint): boolean {
    if (this.server.hold(footprint - this.#held, this)) {
      this.#held = footprint;
      return true;
    }
    this.unread.clear();
    this.server.hold(-this.#held, this);
    this.#held = 0;
    this.server.counters.drops.bufferBudget++;
    this.refuse({ status: 503, message: "the server is out of memory for request data; try again" });
    return false;
  }

  /** Uses what has arrived, as far as the current stage allows. */
  #process(): void {
    while (this.#stage === Stage.Head && this.#readHead());
    if (this.#stage === Stage.Request) this.#exchange!.feed();
  }

  /** Parses a head from the unread bytes and starts on it; true when it did. */
  #readHead(): boolean {
    const options = this.server.options;
    const head = parseRequestHead(this.unread.bytes, options);
    if (head === null) return false;
    if ("status" in head) {
      this.refuse(head);
      return false;
    }
    this.unread.consume(head.size);
    const framing = requestFraming(head, options.maxBodySize);
    const upgrade = isUpgradeRequest(head.headers);
    if (upgrade) {
      const bodyError = upgradeBodyError(framing);
      if (bodyError !== null) {
        this.refuse(bodyError);
        return false;
      }
      if (options.upgrade !== null || options.fetch === null) {
        this.#stage = Stage.Upgrading;
        this.#guard("the upgrade", () => this.#upgrade(head));
        return false;
      }
    }
    if ("status" in framing) {
      this.refuse(framing);
      return false;
    }
    this.#stage = Stage.Request;
    const exchange = this.#exchange = new Exchange(this, head, framing, upgrade);
    this.#guard("the fetch handler", () => exchange.start());
    return true;
  }

  /** See {@linkcode ExchangeHost.current}. */
  current(exchange: Exchange<T>): boolean {
    return this.#stage === Stage.Request && this.#exchange === exchange;
  }

  /** See {@linkcode ExchangeHost.offerUpgrade}. */
  offerUpgrade(request: Request): void {
    upgradable.set(request, this);
  }

  /**
   * Takes `request` over as a WebSocket for `host` (see {@linkcode Upgrader.upgrade}): false
   * unless it is an upgrade request this host handed to `fetch`, not answered yet, and a valid
   * one; a refusal of its path, origin or subprotocols is answered here (true).
   */
  static upgrade<T>(host: HttpHost<T>, request: Request, options?: UpgradeOptions<T>): boolean {
    const resolved = resolveUpgradeOptions<T>(options);
    const connection = upgradable.get(request) as HttpConnection<T> | undefined;
    if (connection === undefined || connection.server !== host) return false;
    return connection.#upgradeFromFetch(request, resolved);
  }

  #upgradeFromFetch(request: Request, options: ReturnType<typeof resolveUpgradeOptions<T>>): boolean {
    const exchange = this.#exchange;
    if (this.#stage !== Stage.Request || exchange!.responding) return false;
    const head = exchange!.head;
    if (typeof validateUpgrade(head) !== "string") return false;
    upgradable.delete(request);
    this.#stage = Stage.Upgrading;
    const candidate = checkUpgrade(head, this.server.options, this.secure);
    if ("status" in candidate) this.refuse(candidate);
    else this.#guard("the upgrade", () => this.#switch(head, candidate, options, request, options.websocket));
    return true;
  }

  /** See {@linkcode ExchangeHost.answered}: closes, or waits for the next request. */
  answered(keepAlive: boolean): void {
    this.#served++;
    if (!keepAlive) return this.#close(null);
    this.#nextRequest();
  }

  /** Resets for the next request on a kept-alive connection, starting on any bytes already here. */
  #nextRequest(): void {
    this.#stage = Stage.Head;
    this.#exchange = null;
    this.stall.stop();
    this.startedAt = Date.now();
    this.server.requeued(this);
    this.transport.resume();
    this.#process();
    this.#account();
  }

  // --- Upgrading -------------------------------------------------------------------------------

  /** Checks an upgrade request, then accepts it, or asks the upgrade hook first when there is one. */
  #upgrade(head: RequestHead): void {
    const candidate = checkUpgrade(head, this.server.options, this.secure);
    if ("status" in candidate) return this.refuse(candidate);
    if (this.server.options.upgrade === null) return this.#switch(head, candidate, {}, null, null);
    this.#askHook(head, candidate).catch((error) => this.internalError(error, "the upgrade"));
  }

  async #askHook(head: RequestHead, candidate: UpgradeCandidate): Promise<void> {
    const transport = this.transport;
    const request = webRequest(head, candidate.url, null);
    const decision = await this.server.options.upgrade!(request, {
      remoteAddress: transport.remoteAddress,
      get remotePort() {
        return transport.remotePort; // asked for only when read: a syscall on Bun
      },
      protocols: candidate.offered,
    });
    if (this.#stage !== Stage.Upgrading) return; // timed out or dropped while the hook ran
    if (decision === false) return this.refuse({ status: 403, message: "upgrade refused" });
    if (decision instanceof Response) {
      this.countRefusal(decision.status, `the upgrade hook answered ${decision.status}`);
      await writeResponse(decision, { method: head.method, keepAlive: false, http11: true }, this);
      return this.#close(null);
    }
    const accepted = typeof decision === "object" && decision !== null ? decision : {};
    this.#switch(head, candidate, accepted, request, null);
  }

  /**
   * Agrees on a subprotocol and extensions, answers 101 and hands the connection over, with
   * `handlers` (a route's own, or the server's for null).
   */
  #switch(
    head: RequestHead,
    candidate: UpgradeCandidate,
    accepted: UpgradeAccept<T>,
    request: Request | null,
    handlers: WebSocketHandler<T> | null,
  ): void {
    const { protocol, deflate } = agree(
      head,
      candidate,
      accepted.protocol,
      () => request ?? webRequest(head, candidate.url, null),
      this.server.options,
    );
    const extra = accepted.headers === undefined ? null : new Headers(accepted.headers);
    const runner = this.server.runnerFor(handlers);
    acceptDigest(candidate.key).then((digest) => {
      if (this.#stage !== Stage.Upgrading) return; // timed out or dropped meanwhile
      const transport = this.transport;
      const early = this.unread.length > 0 ? this.unread.bytes : null;
      this.unread.clear();
      this.#account();
      this.#leave();
      countIn(this.server.counters.handshakes, 101);
      transport.write(switchingProtocols(digest, protocol, deflate?.response ?? "", extra));
      transport.resume(); // a request handed to fetch paused its reading: the WebSocket reads on
      const init = { url: candidate.url.href, protocol, data: accepted.data as T, deflate, handlers: runner };
      this.server.adopt(transport, init, early);
    }).catch((error) => this.internalError(error, "the upgrade"));
  }

  // --- Ending ----------------------------------------------------------------------------------

  /** Runs `step`, turning a throw into a 500 (see {@linkcode HttpConnection.#internalError}). */
  #guard(source: string, step: () => void): void {
    try {
      step();
    } catch (error) {
      this.internalError(error, source);
    }
  }

  /** `source` (a hook, or Wisp's work around it) failed with `error`: reported, and answered 500. */
  internalError(error: unknown, source: string): void {
    // Once answered (a failed body, a timeout) the handler's failure is the answer's echo: not reported.
    if (this.#stage === Stage.Done) return;
    this.reportError(source, error);
    this.refuse({ status: 500, message: "internal server error" });
  }

  /** Tells the server's `onEvent` that `source` failed with `error`. */
  reportError(source: string, error: unknown): void {
    this.server.report(failureEvent("handler", `${source} failed`, error, this.remoteAddress));
  }

  /**
   * Refuses the request in progress with an error status and closes; the body being read fails
   * with the same reason. Once a response has begun, nothing more can be answered: dropped.
   */
  refuse(error: HttpError): void {
    if (this.#stage === Stage.Done) return;
    const exchange = this.#exchange;
    exchange?.fail(new Error(error.message));
    if (exchange?.responding) return this.abort();
    this.countRefusal(error.status, error.message);
    this.#close(errorResponse(error));
  }

  /** Counts an error answer of the HTTP phase, and with `reportRefusals` reports it. */
  countRefusal(status: number, message: string): void {
    countIn(this.server.counters.handshakes, status);
    if (!this.server.options.reportRefusals) return;
    this.server.report({
      level: "info",
      kind: "refused",
      status,
      remoteAddress: this.remoteAddress,
      message,
    });
  }

  /** Writes a final response (if any) and closes the connection after it. */
  #close(response: Uint8Array | null): void {
    if (this.#stage === Stage.Done) return;
    this.#leave();
    const transport = this.transport;
    if (response !== null) transport.write(response);
    transport.end();
    transport.resume(); // read on to see the client's FIN (what it sends now is dropped)
    this.unread.clear();
    this.#account();
    // A client that never closes its side is dropped once it has had time to read the answer.
    this.#lingerTimer = setTimeout(() => {
      this.server.counters.drops.closeTimeout++;
      transport.destroy();
    }, this.server.options.closeTimeout);
  }

  /** Drops the connection at once (server shutdown, or an answer cut short). */
  abort(): void {
    this.transport.destroy();
  }

  /** Leaves the HTTP phase (answered for good, handed over, or gone). */
  #leave(): void {
    if (this.#stage === Stage.Done) return;
    this.#stage = Stage.Done;
    this.server.released(this);
  }
}
