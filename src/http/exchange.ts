/**
 * One plain request on a connection and its answer: the `metrics` path, the 426 of a server
 * without `fetch`, or the `fetch` handler with the request's body (whole, when it came with the
 * head; else streamed as the handler reads it), then the response written and whether the
 * connection stays open for the next request.
 * @module
 */

import type { ByteQueue } from "../byte_queue.ts";
import type { RequestHead } from "../handshake.ts";
import { type Counters, metricsResponse, type ServerStats } from "../metrics.ts";
import type { FetchInfo, ResolvedOptions, UpgradeOptions, Upgrader } from "../options.ts";
import type { Transport } from "../runtime/types.ts";
import type { BodyFraming } from "./body.ts";
import { type BodySource, RequestBody } from "./body_stream.ts";
import {
  expectsContinue,
  INVALID_TARGET,
  isServableMethod,
  keepsAlive,
  notImplemented,
  requestHref,
  targetPath,
  webRequest,
} from "./request.ts";
import { lazyRequest } from "./lazy_request.ts";
import { CONTINUE, type HttpError, responseCloses, type ResponseSink, writeResponse } from "./response.ts";
import type { StallClock } from "./stall.ts";

/** What an exchange needs of its server. */
export interface ExchangeServer<T> extends Upgrader<T> {
  /** The server's resolved options. */
  readonly options: ResolvedOptions<T>;
  /** The server's counters. */
  readonly counters: Counters;
  /** The server's stats, for the `metrics` path. */
  stats(): ServerStats;
}

/** What an exchange needs of its connection. */
export interface ExchangeHost<T> extends ResponseSink {
  /** The server. */
  readonly server: ExchangeServer<T>;
  /** The connection's transport. */
  readonly transport: Transport;
  /** The bytes that arrived and were not used yet. */
  readonly unread: ByteQueue;
  /** How long the connection has waited on its client. */
  readonly stall: StallClock;
  /** Whether the connection is TLS. */
  readonly secure: boolean;
  /** Whether `exchange` is still the connection's (not timed out, upgraded or gone). */
  current(exchange: Exchange<T>): boolean;
  /** Refuses the request with an error status (or drops the connection once the response began). */
  refuse(error: HttpError): void;
  /** Drops the connection at once. */
  abort(): void;
  /** `source` failed with `error`: reported, and answered 500. */
  internalError(error: unknown, source: string): void;
  /** Tells `onEvent` that `source` failed with `error`. */
  reportError(source: string, error: unknown): void;
  /** Counts (and with `reportRefusals` reports) an error answer. */
  countRefusal(status: number, message: string): void;
  /** `request` is an upgrade request handed to `fetch`, which may take it over with `upgrade`. */
  offerUpgrade(request: Request): void;
  /** The response is written: the connection serves the next request when `keepAlive`, else closes. */
  answered(keepAlive: boolean): void;
}

/** What `fetch` is given besides the request; the peer's port is asked for only when read (a syscall on Bun). */
class Info<T> implements FetchInfo<T> {
  readonly #transport: Transport;
  /** See {@linkcode FetchInfo.upgrade}. */
  readonly upgrade: (request: Request, options?: UpgradeOptions<T>) => boolean;

  constructor(transport: Transport, upgrade: (request: Request, options?: UpgradeOptions<T>) => boolean) {
    this.#transport = transport;
    this.upgrade = upgrade;
  }

  /** See {@linkcode FetchInfo.remoteAddress}. */
  get remoteAddress(): string {
    return this.#transport.remoteAddress;
  }

  /** See {@linkcode FetchInfo.remotePort}. */
  get remotePort(): number {
    return this.#transport.remotePort;
  }
}

/** One request and its answer. */
export class Exchange<T> implements BodySource {
  /** The request head. */
  readonly head: RequestHead;
  /** Whether it is an upgrade request handed to `fetch`, which may still take it over. */
  readonly upgrade: boolean;
  /** Whether its response has begun (an error can then no longer be answered, only dropped). */
  responding = false;
  readonly #host: ExchangeHost<T>;
  readonly #body: RequestBody;
  #keepAlive: boolean;
  #expectsContinue = false;

  /** A request of `head`, its body framed as `framing`, on `host`; `upgrade` for an upgrade request. */
  constructor(host: ExchangeHost<T>, head: RequestHead, framing: BodyFraming, upgrade: boolean) {
    this.#host = host;
    this.head = head;
    this.upgrade = upgrade;
    this.#body = new RequestBody(framing, host.server.options.maxBodySize, this);
    // An upgrade request that `fetch` answers instead of upgrading ends its connection.
    this.#keepAlive = !upgrade && keepsAlive(head);
  }

  /**
   * Starts answering: the `metrics` path, else at once with 426 without a `fetch` handler, else
   * through it.
   */
  start(): void {
    const head = this.head;
    const host = this.#host;
    const server = host.server;
    const { fetch, metrics } = server.options;
    if (fetch === null && metrics === null) return this.#upgradeRequired();
    // Before the URL: a CONNECT's authority-form target would otherwise be a 400.
    if (fetch !== null && !isServableMethod(head.method)) return host.refuse(notImplemented(head.method));
    const href = requestHref(head, host.secure ? "https" : "http", server.options.hostname);
    if (typeof href !== "string") return host.refuse(href);
    if (
      metrics !== null && (head.method === "GET" || head.method === "HEAD") &&
      targetPath(head.target) === metrics
    ) {
      return this.#answer(metricsResponse(server), "the metrics");
    }
    if (fetch === null) return this.#upgradeRequired();
    server.counters.requests++;
    const body = this.#body;
    // A GET or HEAD cannot have a body in a web Request; one that came anyway is read and dropped.
    let content: Uint8Array | ReadableStream<Uint8Array> | null = null;
    if (!body.done && head.method !== "GET" && head.method !== "HEAD") {
      content = body.takeWhole(host.unread);
      if (content === null) {
        this.#expectsContinue = expectsContinue(head);
        content = body.stream();
      }
    }
    let request = content === null && (head.method === "GET" || head.method === "HEAD")
      ? lazyRequest(head, href)
      : null;
    try {
      request ??= webRequest(head, href, content);
    } catch {
      return host.refuse(INVALID_TARGET);
    }
    // Bun's Request reads some unknown methods as GET: such a request is not the one that came.
    if (request.method !== head.method) return host.refuse(notImplemented(head.method));
    if (this.upgrade) host.offerUpgrade(request);
    const answer = fetch(request, new Info(host.transport, server.upgrade));
    // A handler that answers at once is answered at once; a promise's answer once it settles.
    if (!(answer instanceof Promise)) return this.#answer(answer as Response, "the fetch handler");
    answer.then((response) => this.#respond(response as Response)).catch((error) => {
      // Once `fetch` took the request over, its failure is only news: the upgrade stands.
      if (host.current(this) || !this.upgrade) host.internalError(error, "the fetch handler");
      else host.reportError("the fetch handler", error);
    });
  }

  /** Answers a plain request without a `fetch` handler: 426, at once. */
  #upgradeRequired(): void {
    const message = "This is a WebSocket server.\n";
    this.#host.countRefusal(426, message.trim());
    // Nothing will read the body, so the answer does not wait for it and the connection closes.
    this.#keepAlive = false;
    this.#answer(
      new Response(message, {
        status: 426,
        headers: { "Upgrade": "websocket", "Content-Type": "text/plain; charset=utf-8" },
      }),
      "the 426 answer",
    );
  }

  /** See {@linkcode BodySource.bodyWanted}: reads on, after `100 Continue` when the client waits for it. */
  bodyWanted(): void {
    if (this.#expectsContinue) {
      this.#expectsContinue = false;
      if (!this.responding) this.#host.write(CONTINUE);
    }
    this.feed();
    if (!this.#body.wanted) return;
    this.#host.stall.waitForBody();
    this.#host.transport.resume();
  }

  /** See {@linkcode BodySource.bodyCancelled}: the rest of the body is not read, so the next request cannot be found. */
  bodyCancelled(): void {
    this.#keepAlive = false;
  }

  /**
   * Decodes unread body bytes into the body stream while the handler wants them (always when
   * the body is dropped unread), and pauses the socket when nothing may be read now.
   */
  feed(): void {
    const body = this.#body;
    const host = this.#host;
    const unread = host.unread;
    const dropping = !body.streaming && this.#keepAlive;
    if (!body.done && unread.length > 0 && (body.wanted || dropping)) {
      const error = body.feed(unread);
      if (error !== null) return host.refuse(error);
      host.stall.stop();
    }
    // What is left waits: more body than was asked for, or the next request of a pipelining client.
    if (unread.length > 0 || (!body.wanted && !dropping)) host.transport.pause();
    else host.transport.resume();
  }

  /** Ends the body stream with `error` (the connection failed before the body was read). */
  fail(error: Error): void {
    this.#body.fail(error);
  }

  /** Writes a response (`source` names where it came from, should writing it fail). */
  #answer(response: Response, source: string): void {
    this.#respond(response).catch((error) => this.#host.internalError(error, source));
  }

  /** Writes the handler's response, then lets the connection go on or close. */
  async #respond(response: Response): Promise<void> {
    const host = this.#host;
    // Upgraded, timed out or answered already: what the handler returned is moot.
    if (!host.current(this) || this.responding) {
      if (response instanceof Response) await response.body?.cancel();
      return;
    }
    if (!(response instanceof Response)) throw new TypeError("the fetch handler must return a Response");
    const head = this.head;
    const body = this.#body;
    // The rest of the body, if it is all here, is dropped so that the connection can go on.
    body.dropRest(host.unread);
    this.responding = true;
    this.#expectsContinue = false;
    let keepAlive = this.#keepAlive && body.done && !responseCloses(response);
    try {
      keepAlive = await writeResponse(response, {
        method: head.method,
        keepAlive,
        http11: head.minorVersion >= 1,
      }, host);
    } catch (error) {
      host.reportError("a response body", error);
      return host.abort();
    }
    if (!host.current(this)) return;
    if (!keepAlive) return host.answered(false);
    // A client that pipelines requests gets the next answer only once it reads this one (with the
    // deadline of any stalled write), so that what it makes the server hold stays bounded.
    const backlog = host.drained();
    if (backlog !== undefined) await backlog;
    if (host.current(this)) host.answered(true);
  }
}
