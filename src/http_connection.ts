/**
 * The HTTP phase of every connection: read the request head, then either answer it as plain
 * HTTP (the `fetch` handler) or complete a WebSocket handshake and hand the connection over.
 * @module
 */

import {
  acceptDigest,
  encodeResponse,
  errorResponse,
  type HttpError,
  isUpgradeRequest,
  offeredProtocols,
  parseRequestHead,
  type RequestHead,
  switchingProtocols,
  validateUpgrade,
} from "./handshake.ts";
import { negotiateDeflate } from "./deflate/negotiate.ts";
import type { ResolvedOptions, UpgradeAccept } from "./options.ts";
import type { ConnectionInit } from "./connection.ts";
import type { Transport, TransportEvents } from "./runtime/types.ts";

/** What an {@linkcode HttpConnection} needs from its server. */
export interface HttpHost<T> {
  /** The server\'s resolved options. */
  options: ResolvedOptions<T>;
  /** Takes over a connection whose handshake succeeded. */
  adopt(transport: Transport, init: ConnectionInit<T>, early: Uint8Array | null): void;
  /** The HTTP phase ended, whatever the outcome. */
  released(connection: HttpConnection<T>): void;
}

const enum Stage {
  /** Reading the head (and, for plain HTTP, the body). */
  Reading,
  /** Waiting on hooks; further bytes are kept as early frames. */
  Deciding,
  /** Answered or handed over. */
  Done,
}

/** One connection in its HTTP phase. */
export class HttpConnection<T> implements TransportEvents {
  readonly #transport: Transport;
  readonly #host: HttpHost<T>;
  /** What arrived so far: the first chunk itself, until a second one needs a buffer of our own. */
  #buffer: Uint8Array | null = null;
  #length = 0;
  #stage = Stage.Reading;
  #head: RequestHead | null = null;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the connection was accepted (the server's sweep enforces `handshakeTimeout`). */
  readonly startedAt: number = Date.now();

  /** Starts the HTTP phase of a freshly accepted `transport`. */
  constructor(transport: Transport, host: HttpHost<T>) {
    this.#transport = transport;
    this.#host = host;
  }

  data(chunk: Uint8Array): boolean {
    if (this.#stage === Stage.Done) return false;
    const options = this.#host.options;
    // Whatever arrives is bounded: head plus body, or head plus early frames.
    if (this.#length + chunk.length > options.maxHeadSize + Math.max(options.maxBodySize, 65536)) {
      this.refuse({ status: 413, message: "the request is too large" });
      return false;
    }
    const kept = this.#buffer === null;
    if (kept) {
      this.#buffer = chunk; // usually the whole request: parsed where it lies
      this.#length = chunk.length;
    } else {
      this.#append(chunk);
    }
    if (this.#stage === Stage.Reading) this.#read();
    return kept;
  }

  drain(): void {}

  close(): void {
    clearTimeout(this.#lingerTimer);
    this.#end();
  }

  /** Drops the connection (server shutdown). */
  abort(): void {
    this.#transport.destroy();
  }

  #append(chunk: Uint8Array): void {
    const needed = this.#length + chunk.length;
    let buffer = this.#buffer!;
    if (needed > buffer.length) {
      const grown = new Uint8Array(Math.max(needed, 1024, buffer.length * 2));
      grown.set(buffer.subarray(0, this.#length));
      this.#buffer = buffer = grown;
    }
    buffer.set(chunk, this.#length);
    this.#length = needed;
  }

  #read(): void {
    const options = this.#host.options;
    if (this.#head === null) {
      const buffer = this.#buffer!;
      const parsed = parseRequestHead(
        this.#length === buffer.length ? buffer : buffer.subarray(0, this.#length),
        options,
      );
      if (parsed === null) return;
      if ("status" in parsed) return this.refuse(parsed);
      this.#head = parsed;
    }
    const head = this.#head;
    if (isUpgradeRequest(head.headers)) {
      this.#stage = Stage.Deciding;
      try {
        this.#upgrade(head);
      } catch (error) {
        this.#internalError(error);
      }
      return;
    }
    if (head.headers.has("transfer-encoding")) {
      return this.refuse({ status: 501, message: "chunked request bodies are not supported" });
    }
    const declared = head.headers.get("content-length");
    const bodyLength = declared === undefined ? 0 : Number(declared);
    if (!/^\d+$/.test(declared ?? "0")) {
      return this.refuse({ status: 400, message: "invalid Content-Length" });
    }
    if (bodyLength > options.maxBodySize) {
      return this.refuse({
        status: 413,
        message: `request bodies are limited to ${options.maxBodySize} bytes`,
      });
    }
    if (this.#length < head.size + bodyLength) return; // the body is still coming
    this.#stage = Stage.Deciding;
    const body = this.#buffer!.slice(head.size, head.size + bodyLength);
    this.#answer(head, body).catch((error) => this.#internalError(error));
  }

  /**
   * The request's URL (from its target and `Host`) with `scheme`, or the 400 to answer when it is
   * unusable. An upgrade's URL is built as `ws:` at once, so that the socket's `url` is one plain
   * string rather than a string derived from another.
   */
  #url(head: RequestHead, scheme: "http" | "ws"): URL | HttpError {
    const host = head.headers.get("host");
    if (host === undefined && head.minorVersion >= 1) return { status: 400, message: "missing Host header" };
    let url: URL;
    try {
      url = new URL(head.target, `${scheme}://${host ?? this.#host.options.hostname}`);
    } catch {
      return { status: 400, message: "invalid request target" };
    }
    // An absolute-form target (RFC 9112 §3.2.2) brings its own scheme.
    if (url.protocol !== `${scheme}:`) url.protocol = scheme;
    if (url.protocol !== `${scheme}:`) return { status: 400, message: "invalid request target" };
    return url;
  }

  async #answer(head: RequestHead, body: Uint8Array<ArrayBuffer>): Promise<void> {
    const url = this.#url(head, "http");
    if (!(url instanceof URL)) return this.refuse(url);
    const request = webRequest(head, url, body);
    const transport = this.#transport;
    const fetch = this.#host.options.fetch;
    const response = fetch === null
      ? new Response("This is a WebSocket server.\n", {
        status: 426,
        headers: { "Upgrade": "websocket", "Content-Type": "text/plain; charset=utf-8" },
      })
      : await fetch(request, { remoteAddress: transport.remoteAddress, remotePort: transport.remotePort });
    if (!(response instanceof Response)) {
      throw new TypeError("the fetch handler must return a Response");
    }
    this.#send(await encodeResponse(response, head.method));
  }

  /** Checks an upgrade request, then accepts it, or asks the upgrade hook first when there is one. */
  #upgrade(head: RequestHead): void {
    const options = this.#host.options;
    const key = validateUpgrade(head);
    if (typeof key !== "string") return this.refuse(key);
    const url = this.#url(head, "ws");
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
    this.#askHook(head, url, key, offered).catch((error) => this.#internalError(error));
  }

  async #askHook(head: RequestHead, url: URL, key: string, offered: string[]): Promise<void> {
    const transport = this.#transport;
    const request = webRequest(head, url, null);
    const decision = await this.#host.options.upgrade!(request, {
      remoteAddress: transport.remoteAddress,
      remotePort: transport.remotePort,
      protocols: offered,
    });
    if (this.#done) return; // timed out or dropped while the hook ran
    if (decision === false) return this.refuse({ status: 403, message: "upgrade refused" });
    if (decision instanceof Response) return this.#send(await encodeResponse(decision, head.method));
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
    const deflate = options.perMessageDeflate === null ? null : negotiateDeflate(
      head.headers.get("sec-websocket-extensions") ?? null,
      options.perMessageDeflate.clientMaxWindowBits,
    );
    acceptDigest(key).then((digest) => {
      if (this.#done) return; // timed out or dropped meanwhile
      this.#end();
      const transport = this.#transport;
      transport.write(switchingProtocols(digest, protocol, deflate?.response ?? "", extra));
      const early = this.#length > head.size ? this.#buffer!.subarray(head.size, this.#length) : null;
      this.#host.adopt(transport, { url: url.href, protocol, data: accepted.data as T, deflate }, early);
    }).catch((error) => this.#internalError(error));
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

  /** Whether the connection was answered, handed over or dropped (checked after each await). */
  get #done(): boolean {
    return this.#stage === Stage.Done;
  }

  #internalError(error: unknown): void {
    console.error("wisp: a request handler failed:", error);
    this.refuse({ status: 500, message: "internal server error" });
  }

  /** Answers with an error status and closes. */
  refuse(error: HttpError): void {
    this.#send(errorResponse(error));
  }

  /** Writes a final response and closes the connection after it. */
  #send(response: Uint8Array): void {
    if (this.#stage === Stage.Done) return;
    this.#end();
    const transport = this.#transport;
    transport.write(response);
    transport.end();
    // A client that never closes its side is dropped once it has had time to read the answer.
    this.#lingerTimer = setTimeout(() => transport.destroy(), this.#host.options.closeTimeout);
  }

  #end(): void {
    if (this.#stage === Stage.Done) return;
    this.#stage = Stage.Done;
    this.#host.released(this);
  }
}

/**
 * The web `Request` handed to hooks, at the `http:` form of `url`; a body only for methods that
 * may carry one.
 */
function webRequest(head: RequestHead, url: URL, body: Uint8Array<ArrayBuffer> | null): Request {
  const hasBody = body !== null && head.method !== "GET" && head.method !== "HEAD";
  const href = url.protocol === "ws:" ? "http" + url.href.slice("ws".length) : url.href;
  return new Request(href, { method: head.method, headers: [...head.headers], body: hasBody ? body : null });
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
