/**
 * The HTTP phase of every connection: read a request head, then either complete a WebSocket
 * handshake and hand the connection over, or answer plain HTTP requests (the `fetch` handler),
 * one after another on a kept-alive connection, with request bodies streamed from the socket as
 * the handler reads them.
 * @module
 */

import { ByteQueue } from "./byte_queue.ts";
import {
  acceptDigest,
  isUpgradeRequest,
  offeredProtocols,
  parseRequestHead,
  type RequestHead,
  switchingProtocols,
  validateUpgrade,
} from "./handshake.ts";
import { BodyDecoder, requestFraming } from "./http_body.ts";
import {
  CONTINUE,
  errorResponse,
  type HttpError,
  responseCloses,
  type ResponseSink,
  writeResponse,
} from "./http_response.ts";
import { negotiateDeflate } from "./deflate/negotiate.ts";
import { failureEvent, type ServerEvent } from "./events.ts";
import { type Counters, countIn, metricsResponse, type ServerStats } from "./metrics.ts";
import type { ResolvedOptions, UpgradeAccept } from "./options.ts";
import type { ConnectionInit } from "./connection.ts";
import type { Transport, TransportEvents } from "./runtime/types.ts";

/** What an {@linkcode HttpConnection} needs from its server. */
export interface HttpHost<T> {
  /** The server's resolved options. */
  options: ResolvedOptions<T>;
  /** The server's counters. */
  readonly counters: Counters;
  /** Hands an event to the server's `onEvent`. */
  report(event: ServerEvent): void;
  /** The server's stats, for the `metrics` path. */
  stats(): ServerStats;
  /** Takes over a connection whose handshake succeeded. */
  adopt(transport: Transport, init: ConnectionInit<T>, early: Uint8Array | null): void;
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
/** Bytes a response may have waiting in the transport before writing it waits for the client. */
const RESPONSE_BACKLOG = 64 * 1024;

/** One connection in its HTTP phase. */
export class HttpConnection<T> implements TransportEvents, ResponseSink {
  readonly #transport: Transport;
  readonly #host: HttpHost<T>;
  /** Bytes that arrived and were not used yet. */
  readonly #unread: ByteQueue;
  /** Bytes counted against the server's budget for the HTTP phase. */
  #held = 0;
  #stage = Stage.Head;
  /** Requests answered on this connection so far. */
  #served = 0;
  /** When the current head began to be awaited: the sweep's deadline and the eviction order. */
  startedAt: number = Date.now();
  /** Since when the connection waits on the client (body bytes asked for, or a write to drain); 0 when not. */
  #waitingSince = 0;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;

  // The plain request in progress.
  #head: RequestHead | null = null;
  #body: BodyDecoder | null = null;
  /** The body stream handed to the handler, until it is closed, errored or cancelled. */
  #bodyStream: ReadableStreamDefaultController<Uint8Array> | null = null;
  /** The handler asked for more body than has arrived: settles its pending read once some does. */
  #bodyWanted: (() => void) | null = null;
  #keepAlive = false;
  #expectsContinue = false;
  #responding = false;
  #drained: (() => void) | null = null;
  /** The transport's backlog when the last wait for it began, or when the sweep last saw it shrink. */
  #backlogSeen = 0;
  /** Hands decoded body pieces to the stream (made with the first body stream, not per piece). */
  #enqueue: ((piece: Uint8Array) => void) | null = null;
  /** Whether the body stream got a piece since the handler last asked (its read is then answered). */
  #fed = false;

  /** Starts the HTTP phase of a freshly accepted `transport`. */
  constructor(transport: Transport, host: HttpHost<T>) {
    this.#transport = transport;
    this.#host = host;
    this.#unread = new ByteQueue(transport.readChunks.ownBuffers);
  }

  /** The client's IP address. */
  get remoteAddress(): string {
    return this.#transport.remoteAddress;
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

  data(chunk: Uint8Array): boolean {
    if (this.#stage === Stage.Done) return false;
    const options = this.#host.options;
    if (
      this.#unread.length + chunk.length >
        options.maxHeadSize + Math.max(options.maxBodySize, EARLY_DATA_LIMIT)
    ) {
      this.#fail({ status: 413, message: "the request is too large" });
      return false;
    }
    this.#unread.push(chunk);
    // Counted by its bytes until it is used: a view of a large read buffer holds that buffer only
    // if it is still kept when this call returns (counted then).
    if (!this.#account(this.#unread.length)) return false;
    if (this.#waitingSince !== 0 && this.#drained === null) this.#waitingSince = Date.now();
    this.#process();
    // Leftover bytes (half a head, say) are copied out rather than pin a large read buffer.
    this.#unread.compact();
    const kept = this.#unread.borrowing;
    this.#account();
    return kept;
  }

  drain(): void {
    const drained = this.#drained;
    this.#drained = null;
    if (drained !== null) this.#waitingSince = 0;
    drained?.();
  }

  close(): void {
    clearTimeout(this.#lingerTimer);
    this.#failBody(new Error("the client closed the connection"));
    this.#unread.clear();
    this.#account();
    this.drain();
    this.#end();
    this.#host.disconnected(this);
  }

  // --- ResponseSink ----------------------------------------------------------------------------

  /** Writes response bytes; false once the connection is gone or answered for good. */
  write(bytes: Uint8Array): boolean {
    if (this.#stage === Stage.Done) return false;
    this.#transport.write(bytes);
    return true;
  }

  /** Resolves once the transport's backlog is small enough to write more. */
  drained(): Promise<void> | void {
    if (this.#transport.pending <= RESPONSE_BACKLOG || this.#stage === Stage.Done) return;
    this.#waitingSince = Date.now();
    this.#backlogSeen = this.#transport.pending;
    return new Promise((resolve) => (this.#drained = resolve));
  }

  // --- Admission -------------------------------------------------------------------------------

  /** Drops the connection to make room for a newcomer; a kept-alive one between requests goes quietly. */
  evict(error: HttpError): void {
    this.#host.counters.drops.eviction++;
    if (this.#served > 0 && this.#unread.length === 0) this.#finish(null);
    else this.refuse(error);
  }

  /**
   * Enforces the deadlines (the server's sweep calls this): a head, or an upgrade's decision, not
   * done since `deadline`, and a client that has not sent the body asked for, or read any more
   * of the response written, since then.
   */
  expire(deadline: number): void {
    if (this.#stage === Stage.Request) {
      if (this.#waitingSince === 0 || this.#waitingSince > deadline) return;
      // A client still reading a large response (less of it waits than before) has not stalled.
      const backlog = this.#transport.pending;
      if (this.#drained !== null && backlog < this.#backlogSeen) {
        this.#backlogSeen = backlog;
        this.#waitingSince = Date.now();
        return;
      }
      this.#host.counters.drops.requestTimeout++;
      this.#failBody(new Error("the request body did not arrive in time"));
      return this.#fail({ status: 408, message: "the request body did not arrive in time" });
    }
    if (this.startedAt > deadline) return;
    if (this.#stage === Stage.Head && this.#unread.length === 0 && this.#served > 0) {
      return this.#finish(null); // a kept-alive connection between requests: closed, nobody asked for an answer
    }
    this.#host.counters.drops.handshakeTimeout++;
    if (this.#stage === Stage.Head && this.#unread.length === 0) {
      // Nothing of a request came, nor (with TLS) perhaps even a finished handshake, so that no
      // answer could be written: dropped at once.
      return this.abort();
    }
    this.refuse({ status: 408, message: "the request took too long" });
  }

  /** Drops the connection (server shutdown). */
  abort(): void {
    this.#transport.destroy();
  }

  // --- Reading ---------------------------------------------------------------------------------

  /**
   * Keeps the budget's count in step with `footprint`, what the unread bytes hold; refuses (503)
   * when over it.
   */
  #account(footprint = this.#unread.footprint): boolean {
    if (this.#host.hold(footprint - this.#held, this)) {
      this.#held = footprint;
      return true;
    }
    this.#unread.clear();
    this.#host.hold(-this.#held, this);
    this.#held = 0;
    this.#host.counters.drops.bufferBudget++;
    this.#failBody(new Error("the server is out of memory for request data"));
    this.#fail({ status: 503, message: "the server is out of memory for request data; try again" });
    return false;
  }

  /** Uses what has arrived, as far as the current stage allows. */
  #process(): void {
    while (this.#stage === Stage.Head && this.#readHead());
    if (this.#stage === Stage.Request) this.#feedBody();
  }

  /** Parses a head from the unread bytes and starts on it; true when it did. */
  #readHead(): boolean {
    const options = this.#host.options;
    const head = parseRequestHead(this.#unread.bytes, options);
    if (head === null) return false;
    if ("status" in head) {
      this.refuse(head);
      return false;
    }
    this.#unread.consume(head.size);
    const framing = requestFraming(head, options.maxBodySize);
    if (isUpgradeRequest(head.headers)) {
      // Body bytes would be read as frames: an upgrade carrying one is refused, not smuggled in.
      if ("status" in framing || framing.chunked || framing.length > 0) {
        this.refuse({ status: 400, message: "a WebSocket upgrade request may not have a body" });
        return false;
      }
      this.#stage = Stage.Upgrading;
      try {
        this.#upgrade(head);
      } catch (error) {
        this.#internalError(error, "the upgrade");
      }
      return false;
    }
    if ("status" in framing) {
      this.refuse(framing);
      return false;
    }
    this.#stage = Stage.Request;
    this.#head = head;
    this.#body = new BodyDecoder(framing, options.maxBodySize);
    this.#keepAlive = keepsAlive(head);
    try {
      this.#request(head);
    } catch (error) {
      this.#internalError(error, "the fetch handler");
    }
    return true;
  }

  /**
   * Starts answering a plain request: the `metrics` path, else at once with 426 without a
   * `fetch` handler, else through it.
   */
  #request(head: RequestHead): void {
    const { fetch, metrics } = this.#host.options;
    if (fetch === null && metrics === null) return this.#upgradeRequired();
    // Before the URL: a CONNECT's authority-form target would otherwise be a 400.
    if (fetch !== null && !isServableMethod(head.method)) return this.refuse(notImplemented(head.method));
    const url = this.#url(head, false);
    if (!(url instanceof URL)) return this.refuse(url);
    if (url.pathname === metrics && (head.method === "GET" || head.method === "HEAD")) {
      this.#respond(metricsResponse(this.#host)).catch((error) => this.#internalError(error, "the metrics"));
      return;
    }
    if (fetch === null) return this.#upgradeRequired();
    this.#host.counters.requests++;
    const hasBody = !this.#body!.done;
    this.#expectsContinue = hasBody && head.minorVersion >= 1 &&
      (head.headers.get("expect") ?? "").toLowerCase() === "100-continue";
    // A GET or HEAD cannot have a body in a web Request; one that came anyway is read and dropped.
    const stream = hasBody && head.method !== "GET" && head.method !== "HEAD" ? this.#openBody() : null;
    const request = webRequest(head, url, stream);
    // Bun's Request reads some unknown methods as GET: such a request is not the one that came.
    if (request.method !== head.method) return this.refuse(notImplemented(head.method));
    const transport = this.#transport;
    Promise.resolve(
      fetch(request, { remoteAddress: transport.remoteAddress, remotePort: transport.remotePort }),
    )
      .then((response) => this.#respond(response))
      .catch((error) => this.#internalError(error, "the fetch handler"));
  }

  /** Answers a plain request without a `fetch` handler: 426, at once. */
  #upgradeRequired(): void {
    const message = "This is a WebSocket server.\n";
    this.#refused(426, message.trim());
    // Nothing will read the body, so the answer does not wait for it and the connection closes.
    this.#keepAlive = false;
    this.#respond(
      new Response(message, {
        status: 426,
        headers: { "Upgrade": "websocket", "Content-Type": "text/plain; charset=utf-8" },
      }),
    ).catch((error) => this.#internalError(error, "the 426 answer"));
  }

  /** The request body as a stream that reads from the socket only as the handler reads it. */
  #openBody(): ReadableStream<Uint8Array> {
    // A copy of each piece: the handler may keep it, and the bytes it came in are reused.
    this.#enqueue ??= (piece) => {
      this.#bodyStream?.enqueue(piece.slice());
      this.#fed = true;
    };
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#bodyStream = controller;
      },
      pull: () => {
        if (this.#expectsContinue) {
          this.#expectsContinue = false;
          if (!this.#responding) this.write(CONTINUE);
        }
        return new Promise<void>((resolve) => {
          this.#bodyWanted = resolve;
          this.#feedBody();
          if (this.#bodyWanted === null) return;
          this.#waitingSince = Date.now();
          this.#transport.resume();
        });
      },
      cancel: () => {
        this.#bodyStream = null;
        this.#keepAlive = false; // the rest of the body is not read, so the next request cannot be found
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Decodes unread body bytes into the body stream while the handler wants them (always when
   * the body is dropped unread), and pauses the socket when nothing may be read now.
   */
  #feedBody(): void {
    const body = this.#body!;
    const dropping = this.#bodyStream === null && this.#keepAlive;
    if (
      !body.done && this.#unread.length > 0 && (this.#bodyWanted !== null || dropping)
    ) {
      this.#unread.consume(
        body.decode(this.#unread.bytes, this.#bodyStream === null ? drop : this.#enqueue!),
      );
      const error = body.error;
      if (error !== null) {
        this.#failBody(new TypeError(`invalid request body: ${error.message}`));
        return this.#fail(error);
      }
      if (body.done) {
        this.#bodyStream?.close();
        this.#bodyStream = null;
      }
      this.#waitingSince = 0;
      // The pending read is answered only by a piece or the end: a stream does not pull again on its own.
      if (this.#fed || body.done) {
        this.#fed = false;
        const wanted = this.#bodyWanted;
        this.#bodyWanted = null;
        wanted?.();
      }
    }
    // What is left waits: more body than was asked for, or the next request of a pipelining client.
    if (this.#unread.length > 0 || (this.#bodyWanted === null && !dropping)) this.#transport.pause();
    else this.#transport.resume();
  }

  /** Ends the body stream with `error` (the connection failed before the body was read). */
  #failBody(error: Error): void {
    const stream = this.#bodyStream;
    this.#bodyStream = null;
    stream?.error(error);
    const wanted = this.#bodyWanted;
    this.#bodyWanted = null;
    wanted?.();
  }

  // --- Answering -------------------------------------------------------------------------------

  /** Writes the handler's response, then waits for the next request or closes. */
  async #respond(response: Response): Promise<void> {
    if (!(response instanceof Response)) throw new TypeError("the fetch handler must return a Response");
    if (this.#stage !== Stage.Request || this.#responding) {
      await response.body?.cancel();
      return;
    }
    const head = this.#head!;
    const body = this.#body!;
    // The rest of the body, if it is all here, is dropped so that the connection can go on.
    if (!body.done) this.#unread.consume(body.decode(this.#unread.bytes, drop));
    this.#responding = true;
    this.#expectsContinue = false;
    let keepAlive = this.#keepAlive && body.done && !responseCloses(response);
    try {
      keepAlive = await writeResponse(response, {
        method: head.method,
        keepAlive,
        http11: head.minorVersion >= 1,
      }, this);
    } catch (error) {
      this.#reportError("a response body", error);
      return this.abort();
    }
    if (this.#stage !== Stage.Request) return;
    this.#served++;
    if (!keepAlive) return this.#finish(null);
    // A client that pipelines requests gets the next answer only once it reads this one (with the
    // deadline of any stalled write), so that what it makes the server hold stays bounded.
    await this.drained();
    if (this.#stage !== Stage.Request) return;
    this.#nextRequest();
  }

  /** Resets for the next request on a kept-alive connection, starting on any bytes already here. */
  #nextRequest(): void {
    this.#stage = Stage.Head;
    this.#head = this.#body = this.#bodyStream = null;
    this.#responding = this.#expectsContinue = false;
    this.#waitingSince = 0;
    this.startedAt = Date.now();
    this.#host.requeued(this);
    this.#transport.resume();
    this.#process();
    this.#account();
  }

  /**
   * The request's URL (from its target and `Host`), or the 400 to answer when it is unusable. An
   * upgrade's URL is built as `ws:` (`wss:` with TLS) at once, so that the socket's `url` is one
   * plain string rather than a string derived from another.
   */
  #url(head: RequestHead, upgrade: boolean): URL | HttpError {
    const secure = this.#host.options.tls !== null;
    const scheme = upgrade ? (secure ? "wss" : "ws") : (secure ? "https" : "http");
    const host = head.headers.get("host");
    if (host === undefined && head.minorVersion >= 1) return { status: 400, message: "missing Host header" };
    if (host !== undefined && !isHost(host)) return { status: 400, message: "invalid Host header" };
    // Origin-form is the authority from Host followed by the target as it is (RFC 9112 §3.3), never
    // a reference resolved against it: "//elsewhere/x" is a path here. An OPTIONS "*" has an empty
    // path there; absolute-form brings its own authority.
    const target = head.target === "*" && head.method === "OPTIONS" ? "" : head.target;
    const origin = target === "" || target.startsWith("/");
    if (!origin && !ABSOLUTE_FORM.test(target)) {
      return { status: 400, message: "the request target must be a path or an absolute URL" };
    }
    let url: URL;
    try {
      url = new URL(origin ? `${scheme}://${host ?? this.#host.options.hostname}${target}` : target);
    } catch {
      return { status: 400, message: "invalid request target" };
    }
    // An absolute-form target (RFC 9112 §3.2.2) brings its own scheme.
    if (url.protocol !== `${scheme}:`) url.protocol = scheme;
    if (url.protocol !== `${scheme}:`) return { status: 400, message: "invalid request target" };
    return url;
  }

  // --- Upgrading -------------------------------------------------------------------------------

  /** Checks an upgrade request, then accepts it, or asks the upgrade hook first when there is one. */
  #upgrade(head: RequestHead): void {
    const options = this.#host.options;
    const key = validateUpgrade(head);
    if (typeof key !== "string") return this.refuse(key);
    const url = this.#url(head, true);
    if (!(url instanceof URL)) return this.refuse(url);
    if (options.path !== null && url.pathname !== options.path) {
      return this.refuse({ status: 404, message: "no WebSocket endpoint at this path" });
    }
    const origin = head.headers.get("origin");
    if (
      origin !== undefined && options.origins !== null && !options.origins.has(origin) &&
      !isSameOrigin(origin, head.headers.get("host"))
    ) {
      return this.refuse({
        status: 403,
        message:
          `origin ${origin} may not open WebSockets here; allow it with the "origins" option (a list, or "*")`,
      });
    }
    const offered = offeredProtocols(head.headers);
    if (offered === null) return this.refuse({ status: 400, message: "malformed Sec-WebSocket-Protocol" });
    if (options.upgrade === null) return this.#switch(head, url, key, offered, {}, null);
    this.#askHook(head, url, key, offered).catch((error) => this.#internalError(error, "the upgrade"));
  }

  async #askHook(head: RequestHead, url: URL, key: string, offered: string[]): Promise<void> {
    const transport = this.#transport;
    const request = webRequest(head, url, null);
    const decision = await this.#host.options.upgrade!(request, {
      remoteAddress: transport.remoteAddress,
      remotePort: transport.remotePort,
      protocols: offered,
    });
    if (this.#stage !== Stage.Upgrading) return; // timed out or dropped while the hook ran
    if (decision === false) return this.refuse({ status: 403, message: "upgrade refused" });
    if (decision instanceof Response) {
      this.#refused(decision.status, `the upgrade hook answered ${decision.status}`);
      await writeResponse(decision, { method: head.method, keepAlive: false, http11: true }, this);
      return this.#finish(null);
    }
    const accepted = typeof decision === "object" && decision !== null ? decision : {};
    this.#switch(head, url, key, offered, accepted, request);
  }

  /** Agrees on a subprotocol and extensions, answers 101 and hands the connection over. */
  #switch(
    head: RequestHead,
    url: URL,
    key: string,
    offered: string[],
    accepted: UpgradeAccept<T>,
    request: Request | null,
  ): void {
    const options = this.#host.options;
    const protocol = accepted.protocol ?? this.#chooseProtocol(head, url, offered, request);
    if (protocol !== "" && !offered.includes(protocol)) {
      throw new TypeError(
        `subprotocol "${protocol}" was chosen but the client offered ${JSON.stringify(offered)}`,
      );
    }
    const extra = accepted.headers === undefined ? null : new Headers(accepted.headers);
    const deflate = options.perMessageDeflate === null
      ? null
      : negotiateDeflate(head.headers.get("sec-websocket-extensions") ?? null, options.perMessageDeflate);
    acceptDigest(key).then((digest) => {
      if (this.#stage !== Stage.Upgrading) return; // timed out or dropped meanwhile
      const transport = this.#transport;
      const early = this.#unread.length > 0 ? this.#unread.bytes : null;
      this.#unread.clear();
      this.#account();
      this.#end();
      countIn(this.#host.counters.handshakes, 101);
      transport.write(switchingProtocols(digest, protocol, deflate?.response ?? "", extra));
      this.#host.adopt(transport, { url: url.href, protocol, data: accepted.data as T, deflate }, early);
    }).catch((error) => this.#internalError(error, "the upgrade"));
  }

  /** The `protocols` option's pick from the client's offer, or `""`. */
  #chooseProtocol(head: RequestHead, url: URL, offered: string[], request: Request | null): string {
    // Without an offer there is nothing to choose from: a selector is not asked (nor a Request made).
    if (offered.length === 0) return "";
    const protocols = this.#host.options.protocols;
    const chosen = typeof protocols === "function"
      ? protocols(offered, request ?? webRequest(head, url, null))
      : protocols.find((protocol) => offered.includes(protocol));
    return chosen ?? "";
  }

  // --- Ending ----------------------------------------------------------------------------------

  /** `source` (a hook, or Wisp's work around it) failed with `error`: reported, and answered 500. */
  #internalError(error: unknown, source: string): void {
    // Once answered (a failed body, a timeout) the handler's failure is the answer's echo: not reported.
    if (this.#stage === Stage.Done) return;
    this.#reportError(source, error);
    this.#failBody(new Error("the request failed"));
    this.#fail({ status: 500, message: "internal server error" });
  }

  /** Refuses the request in progress, or drops the connection when its response has begun. */
  #fail(error: HttpError): void {
    if (this.#responding) this.abort();
    else this.refuse(error);
  }

  /** Tells the server's `onEvent` that `source` failed with `error`. */
  #reportError(source: string, error: unknown): void {
    this.#host.report(failureEvent("handler", `${source} failed`, error, this.remoteAddress));
  }

  /** Answers with an error status and closes. */
  refuse(error: HttpError): void {
    if (this.#stage === Stage.Done) return;
    this.#refused(error.status, error.message);
    this.#finish(errorResponse(error));
  }

  /** Counts an error answer of the HTTP phase, and with `reportRefusals` reports it. */
  #refused(status: number, message: string): void {
    countIn(this.#host.counters.handshakes, status);
    if (!this.#host.options.reportRefusals) return;
    this.#host.report({ level: "info", kind: "refused", status, remoteAddress: this.remoteAddress, message });
  }

  /** Writes a final response (if any) and closes the connection after it. */
  #finish(response: Uint8Array | null): void {
    if (this.#stage === Stage.Done) return;
    this.#end();
    const transport = this.#transport;
    if (response !== null) transport.write(response);
    transport.end();
    transport.resume(); // read on to see the client's FIN (what it sends now is dropped)
    this.#unread.clear();
    this.#account();
    // A client that never closes its side is dropped once it has had time to read the answer.
    this.#lingerTimer = setTimeout(() => {
      this.#host.counters.drops.closeTimeout++;
      transport.destroy();
    }, this.#host.options.closeTimeout);
  }

  #end(): void {
    if (this.#stage === Stage.Done) return;
    this.#stage = Stage.Done;
    this.#host.released(this);
  }
}

/** Stands in for the body stream when body bytes are read only to be dropped. */
function drop(): void {}

/** An absolute-form request target (RFC 9112 §3.2.2): a scheme, then "://". */
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/** `uri-host [ ":" port ]`, the port captured. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+)(?::([0-9]*))?$/;

/**
 * Whether `value` is a valid `Host` (RFC 9112 §3.2): `uri-host [ ":" port ]`, the host an
 * IP-literal or a non-empty reg-name (an http URI may not have an empty host, RFC 9110 §4.2.1).
 */
function isHost(value: string): boolean {
  const match = HOST.exec(value);
  return match !== null && (match[1] === undefined || match[1] === "" || Number(match[1]) <= 65_535);
}

/**
 * Whether a web `Request` carries `method` as it came. Methods are case-sensitive (RFC 9110
 * §9.1), but `Request` upper-cases the standard ones in any case ("get" would become GET) and
 * refuses CONNECT, TRACE and TRACK: those are answered 501 (not implemented).
 */
function isServableMethod(method: string): boolean {
  const upper = method.toUpperCase();
  if (upper === "CONNECT" || upper === "TRACE" || upper === "TRACK") return false;
  return method === upper || !NORMALIZED_METHODS.has(upper);
}

/** The answer to a request whose method {@linkcode isServableMethod} refuses, or `Request` altered. */
function notImplemented(method: string): HttpError {
  return { status: 501, message: `the ${method} method is not supported` };
}

/** The methods a web `Request` upper-cases (the fetch standard's "normalize a method"). */
const NORMALIZED_METHODS = new Set(["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"]);

/** Whether the client wants the connection kept open after the response (RFC 9112 §9.3). */
function keepsAlive(head: RequestHead): boolean {
  const connection = (head.headers.get("connection") ?? "").toLowerCase();
  const listed = (token: string) => connection.split(",").some((item) => item.trim() === token);
  return head.minorVersion >= 1 ? !listed("close") : listed("keep-alive");
}

/**
 * The web `Request` handed to hooks, at the `http:` (`https:`) form of `url`, with `body` as its body
 * stream (or none).
 */
function webRequest(head: RequestHead, url: URL, body: ReadableStream<Uint8Array> | null): Request {
  const href = url.protocol.startsWith("ws") ? "http" + url.href.slice("ws".length) : url.href;
  const init: RequestInit & { duplex?: "half" } = { method: head.method, headers: [...head.headers], body };
  if (body !== null) init.duplex = "half"; // a streamed body (the fetch standard requires saying so)
  return new Request(href, init);
}

/**
 * Whether a browser's `Origin` names the host the request was sent to (`Host`), ports compared
 * after defaults: then the page comes from this server. The scheme is not compared, so a page
 * served over https through a TLS proxy in front of the server still counts.
 */
function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    const page = new URL(origin);
    return page.host === new URL(`${page.protocol}//${host}`).host;
  } catch {
    return false; // "null" (sandboxed pages, file:) or a malformed value
  }
}
