/**
 * `serve` options: their types (with their documentation), and each option's default and check
 * declared once, in `OPTIONS`, which turns a mistake into a `TypeError` or `RangeError` naming
 * the option.
 * @module
 */

import type { MessageData, TopicPosition } from "./api.ts";
import { describeValue } from "./describe_value.ts";
import { printEvent, type ServerEvent } from "./events.ts";
import {
  booleanOption,
  integer,
  integerOption,
  knownKeys,
  option,
  optionalFunction,
  path,
  type Resolved,
  resolveTable,
  textOption,
} from "./option_table.ts";
import type { Backplane } from "./pubsub/backplane.ts";
import type { TlsOptions } from "./runtime/types.ts";
import type { WebSocketHandler } from "./server_websocket.ts";

export type { TlsOptions };

/** Facts about a connection that a web `Request` does not carry. */
export interface ConnectionInfo {
  /** The client's IP address. */
  remoteAddress: string;
  /**
   * The client's port: 0 on Bun when the client has reset the connection already (Bun asks the
   * socket for it only when a hook wants it, saving every other connection the cost).
   */
  remotePort: number;
}

/**
 * What the `fetch` handler sees besides the request: the connection's facts, and `upgrade`, the
 * server's {@linkcode Upgrader} (as `Bun.serve` hands its handler the server).
 */
export interface FetchInfo<T = undefined> extends ConnectionInfo, Upgrader<T> {}

/**
 * Takes a request that `fetch` was handed over as a WebSocket (see `Server.upgrade`).
 */
export interface Upgrader<T = undefined> {
  /**
   * Takes `request` (one this server handed to `fetch`, before its response) over as a
   * WebSocket: true when it is taken over (the 101, or Wisp's refusal of a disallowed `Origin`,
   * path or subprotocol list, is Wisp's; whatever `fetch` then returns is ignored), false when
   * it is no valid WebSocket upgrade request (the app answers it). Every guard of an upgrade
   * applies: `origins`, `path`, `protocols`, permessage-deflate, the pending limits,
   * `handshakeTimeout` (counted from the request head) and the counters.
   */
  upgrade(request: Request, options?: UpgradeOptions<T>): boolean;
}

/** How `upgrade` takes a request over: the socket's `data`, subprotocol, extra headers and handlers. */
export interface UpgradeOptions<T> extends UpgradeAccept<T> {
  /**
   * The handlers of this socket (one server can serve different routes with different
   * handlers); the server's `websocket` option when not given.
   */
  websocket?: WebSocketHandler<T>;
}

/** What the `upgrade` hook sees besides the request. */
export interface UpgradeInfo extends ConnectionInfo {
  /** The subprotocols the client offered, in its order of preference. */
  protocols: string[];
}

/**
 * What the `upgrade` hook returns:
 * - `false` refuses with 403, a `Response` refuses with that response;
 * - `true`, nothing, or an object accepts; the object may carry the socket's `data`, the
 *   `protocol` to agree on (one the client offered), and extra response `headers`.
 */
export type UpgradeResult<T> =
  | boolean
  | Response
  | void
  | undefined
  | UpgradeAccept<T>;

/** How the `upgrade` hook accepts with details (see {@linkcode UpgradeResult}). */
export interface UpgradeAccept<T> {
  /** The socket's `data`. */
  data?: T;
  /** The subprotocol to agree on: one the client offered. */
  protocol?: string;
  /** Extra headers for the 101 response. */
  headers?: HeadersInit;
}

/**
 * Chooses a subprotocol from the client's offer (never empty); `null`/`undefined` agrees on none.
 */
export type ProtocolSelector = (offered: string[], request: Request) => string | null | undefined;

/** Options of {@linkcode serve}. Every one is optional. */
export interface ServeOptions<T = undefined> {
  /** Port to listen on; 0 picks a free one. Default 3368. */
  port?: number;
  /** Address to listen on; use `"0.0.0.0"` to accept other hosts. Default "127.0.0.1". */
  hostname?: string;
  /**
   * Listens with SO_REUSEPORT, so that several processes can serve one port and the kernel
   * (on Linux) spreads new connections across them. On Deno this needs the `--unstable-net`
   * flag. Default false.
   */
  reusePort?: boolean;
  /** Accept upgrades only for this path (e.g. `"/chat"`); others get 404. Default: any path. */
  path?: string;
  /**
   * Browser origins allowed to open WebSockets besides the server's own. By default only pages of
   * the same origin may (an `Origin` whose host differs from `Host` gets 403), which stops
   * cross-site WebSocket hijacking; a list (e.g. `["https://example.com"]`) allows those origins
   * too, and `"*"` allows any. Requests without `Origin` (non-browser clients) always pass.
   */
  origins?: readonly string[] | "*";
  /**
   * Subprotocols the server speaks, in its order of preference (the first one the client also
   * offered is agreed), or a function that chooses (asked only when the client offers some).
   * Default: none.
   */
  protocols?: readonly string[] | ProtocolSelector;
  /**
   * Decides on each upgrade request before any `fetch` is asked; see {@linkcode UpgradeResult}.
   * Default: with a `fetch` handler, upgrade requests go to it (see `fetch`); without one, all
   * are accepted.
   */
  upgrade?(request: Request, info: UpgradeInfo): UpgradeResult<T> | Promise<UpgradeResult<T>>;
  /**
   * Answers HTTP requests, as `Deno.serve` and `Bun.serve` handlers do: the request's body is a
   * stream read from the socket only as the handler reads it (a body it never reads costs no
   * memory), connections stay open for further requests unless the client says
   * `Connection: close`, and a response body that is still being produced is streamed (chunked).
   * Without an `upgrade` hook, WebSocket upgrade requests come here too, and
   * `info.upgrade(request, options)` (or `server.upgrade`) takes one over, as with `Bun.serve`;
   * what `fetch` returns for it then is ignored. Default: 426 Upgrade Required, sent at once (the
   * connection then closes without reading any body).
   */
  fetch?(
    request: Request,
    info: FetchInfo<T>,
  ): Response | void | undefined | Promise<Response | void | undefined>;
  /** WebSocket event handlers. */
  websocket?: WebSocketHandler<T>;
  /** Largest message accepted, in bytes (inclusive); larger ones close with 1009. Default 16 MiB. */
  maxPayloadLength?: number;
  /**
   * Largest send backlog per socket, in bytes, before the socket is dropped (a peer that does not
   * read cannot exhaust memory). Default 32 MiB.
   */
  maxBufferedAmount?: number;
  /**
   * What happens to a socket whose send backlog passed `maxBufferedAmount`: true closes it (a peer
   * that does not read is dropped); false keeps it and drops the messages (`send`, `ping`,
   * publish deliveries) that come while the backlog is past the limit instead, each one told to the
   * `dropped` handler and counted (`stats().messages.dropped`), as uWS and Bun do with
   * `closeOnBackpressureLimit: false`. Control frames Wisp sends of its own (pongs, idle pings, the
   * close frame) still go out. Default true.
   */
  closeOnBackpressureLimit?: boolean;
  /** Largest HTTP request head, in bytes; larger gets 431. Default 16 KiB. */
  maxHeadSize?: number;
  /** Most header fields in a request head; more gets 431. Default 100. */
  maxHeaderCount?: number;
  /**
   * Largest plain-HTTP request body, in bytes: a larger `Content-Length` gets 413 at once, and a
   * chunked body that grows past it ends with 413. Default 1 MiB.
   */
  maxBodySize?: number;
  /**
   * Most connections in their HTTP phase at once. When the table is full, the one that has waited
   * longest for its request head is answered 503 to make room; only when none is waiting for a
   * head is the newcomer refused (503). Default 8192.
   */
  maxPendingHandshakes?: number;
  /**
   * Most connections in their HTTP phase from one IP address; past it that address's longest
   * waiting one makes room the same way (or the newcomer gets 429). Default 2048.
   */
  maxPendingHandshakesPerIp?: number;
  /**
   * Most connections (WebSockets and HTTP) open at once from one IP address; more get 429.
   * 0 means no limit (clients behind one NAT share an address). Default 0 (no limit).
   */
  maxConnectionsPerIp?: number;
  /**
   * Bytes that connections in their HTTP phase may hold in all (request heads being read, body
   * bytes a `fetch` handler has not read yet, frames that came before the 101). Past it, the
   * connections that have waited longest for their request head are dropped with 503 to make
   * room, and a connection that cannot be made room for gets 503. Default 64 MiB.
   */
  httpBufferBudget?: number;
  /**
   * Messages (and pings and pongs) a client may send per second on average; a client that sends
   * faster, beyond `maxMessageBurst`, is closed with 1008. Default 0 (no limit).
   */
  maxMessagesPerSecond?: number;
  /**
   * Messages a client may send in a burst above `maxMessagesPerSecond` (the size of the token
   * bucket). Default: `maxMessagesPerSecond`, one second's worth.
   */
  maxMessageBurst?: number;
  /**
   * Milliseconds a client has to send a complete request head (an upgrade: and for the hook to
   * decide) before 408; also how long a request body the handler waits for, or a response the
   * client does not read, may stall, and how long a kept-alive connection may sit idle between
   * requests (it is then closed quietly). Checked every quarter of it, at most every second.
   * Default 10 000 ms.
   */
  handshakeTimeout?: number;
  /** Milliseconds to wait for the peer's close frame and FIN before dropping. Default 5 000 ms. */
  closeTimeout?: number;
  /**
   * Milliseconds without any data from a client after which it is pinged (with `sendPings`), and
   * after half as long again with still nothing, dropped (`close` reports 1006). 0 disables.
   * Default 120 000 ms.
   */
  idleTimeout?: number;
  /** Whether idle connections get a ping before being dropped. Default true. */
  sendPings?: boolean;
  /**
   * Whether a `message` handler that returns a promise is awaited before the next message is
   * delivered: the socket stops reading meanwhile (TCP backpressure holds the client back), so
   * messages are handled one at a time, in order, with at most one read buffer held. When false,
   * handlers are called as messages arrive. Default false.
   */
  awaitMessages?: boolean;
  /**
   * Whether a binary message's buffer belongs to Wisp again once the `message` handler returns
   * (with `awaitMessages`, once its promise settles): Wisp then detaches it, so its memory comes
   * back at once instead of at the next garbage collection (on Bun, the gap to its native server
   * at 1 MiB messages). A message kept past that reads as empty (length 0), never as another
   * message's bytes; copy it (`data.slice()`) to keep it. Text messages are strings, unaffected.
   * Default false.
   */
  transientMessages?: boolean;
  /**
   * permessage-deflate (RFC 7692): `true` for the defaults, or settings. Wisp compresses each
   * message on its own (`server_no_context_takeover`) unless `serverContextTakeover` is set, and
   * inflates with or without the client's context, as the client offers. Default false.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /**
   * Keeps the last messages of every topic, with their positions, so that a client that comes
   * back after a dropped connection gets what it missed: `ws.recover(topic, position)`. `true` for
   * the defaults, or bounds (see {@linkcode HistoryOptions}). Default false.
   */
  history?: boolean | HistoryOptions;
  /**
   * Serves `wss://` and `https://` with this certificate and key (PEM strings), offering ALPN
   * `http/1.1`. The TLS handshake counts toward `handshakeTimeout`. Default: plain TCP.
   */
  tls?: TlsOptions;
  /**
   * Carries publishes to the other processes serving the same topics (e.g.
   * `redisBackplane({ url })`), so that `publish` reaches their subscribers too. Default: none
   * (topics live in this process).
   */
  backplane?: Backplane;
  /**
   * Serves `server.stats()` in the Prometheus text format (0.0.4) at this path (e.g.
   * `"/metrics"`) of the same port: GET and HEAD requests for it are answered before the `fetch`
   * handler is asked, also without one. Default: off (`metricsResponse` serves the same from a
   * `fetch` handler of your own).
   */
  metrics?: string;
  /**
   * Told of what goes wrong outside any socket's handlers: a `fetch` or `upgrade` hook (or a
   * response body) that throws or rejects, the backplane's connection coming and going and its
   * errors (unless the backplane has its own `onEvent`), WebSocket handlers that throw when there
   * is no `error` handler, and with `reportRefusals` every refused handshake. Default: one line on
   * stderr per event, as `formatEvent` writes it
   * (`wisp: error kind=handler address=… message="…"`).
   */
  onEvent?: (event: ServerEvent) => void;
  /**
   * Whether every error status Wisp answers in the HTTP phase (a refused handshake, a limit, a
   * timeout) is an `onEvent` event too (`kind: "refused"`, with its status and address); under
   * attack that is one event per connection. Default false.
   */
  reportRefusals?: boolean;
}

/** Settings of the `history` option. */
export interface HistoryOptions {
  /** Messages each topic keeps. Default 100. */
  maxMessages?: number;
  /** Bytes each topic keeps (payload, and 64 per message). Default 1 MiB. */
  maxBytes?: number;
  /** Milliseconds a message is kept. Default 300 000 ms. */
  maxAge?: number;
  /** Bytes all topics keep together; past it the least recently published topics give way. Default 64 MiB. */
  maxTotalBytes?: number;
  /**
   * What subscribers receive of a message published to a topic, given its position: by default
   * the message as published. An app whose clients resume puts the position into the message here
   * (its `epoch` and `offset` are what the client hands back to `ws.recover`). Runs once per
   * publish (and once per process for messages from other processes); it must not publish.
   */
  envelope?: (data: string | Uint8Array, position: TopicPosition, topic: string) => MessageData;
}

/** Settings of the `perMessageDeflate` option. */
export interface PerMessageDeflateOptions {
  /**
   * Keep the compression context between messages when the client allows it (it did not offer
   * `server_no_context_takeover`): each message may refer back to the last window of those sent
   * before, so streams of small similar messages (a chat, a live feed) shrink several times. Costs
   * 3.75 × 2^`serverMaxWindowBits` bytes per socket from its first compressed message (120 KiB at
   * 15 bits, 30 KiB at 13), and a publish is compressed for each such subscriber. Default false.
   */
  serverContextTakeover?: boolean;
  /**
   * Largest window (8–15 bits) Wisp compresses with; a client's `server_max_window_bits` lowers
   * it. With `serverContextTakeover`, it sets the memory per socket. Default 15.
   */
  serverMaxWindowBits?: number;
  /**
   * Messages shorter than this many bytes are sent uncompressed. Default 1024, or 0 with
   * `serverContextTakeover` (with a kept context even short messages shrink).
   */
  threshold?: number;
  /** zlib compression level, 0 (none) to 9 (smallest). Default 6. */
  level?: number;
  /**
   * Largest window (8–15 bits) the client may compress with, when it lets the server choose; a
   * smaller one lowers the history kept per connection (2^bits bytes). Default 15.
   */
  clientMaxWindowBits?: number;
}

const MiB = 1024 * 1024;
const MAX_BYTES = 2 ** 32 - 1;
const MAX_DELAY = 2 ** 31 - 1;
const HANDLER_NAMES = ["open", "message", "close", "drain", "dropped", "ping", "pong", "error"] as const;

const maxMessagesPerSecond = integerOption(0, 0, 1e9, "count", "no limit");

/** Every option of {@linkcode ServeOptions}, each declared once: its default and its check. */
export const OPTIONS = {
  port: integerOption(3368, 0, 65535),
  hostname: textOption("127.0.0.1"),
  reusePort: booleanOption(false),
  path: option("any", path),
  origins: option("same origin", origins),
  protocols: option("none", protocols),
  upgrade: option("accept", optionalFunction<NonNullable<ServeOptions<unknown>["upgrade"]>>),
  fetch: option("426", optionalFunction<NonNullable<ServeOptions<unknown>["fetch"]>>),
  websocket: option("`{}`", handlers),
  perMessageDeflate: option("`false`", deflate),
  history: option("`false`", history),
  tls: option("none", tls),
  backplane: option("none", backplane),
  maxPayloadLength: integerOption(16 * MiB, 1, MAX_BYTES, "bytes"),
  maxBufferedAmount: integerOption(32 * MiB, 1, MAX_BYTES, "bytes"),
  closeOnBackpressureLimit: booleanOption(true),
  maxMessagesPerSecond,
  maxMessageBurst: option("the rate", (value, label, options) => {
    const rate = maxMessagesPerSecond.resolve(
      options.maxMessagesPerSecond,
      'option "maxMessagesPerSecond"',
      options,
    );
    return integerOption(rate, 1, 1e9).resolve(value, label, options);
  }),
  maxHeadSize: integerOption(16 * 1024, 256, MAX_BYTES, "bytes"),
  maxHeaderCount: integerOption(100, 1, 100_000),
  maxBodySize: integerOption(MiB, 0, MAX_BYTES, "bytes"),
  maxPendingHandshakes: integerOption(8192, 1, 1e9),
  maxPendingHandshakesPerIp: integerOption(2048, 1, 1e9),
  maxConnectionsPerIp: integerOption(0, 0, 1e9, "count", "no limit"),
  httpBufferBudget: integerOption(64 * MiB, 64 * 1024, 2 ** 53 - 1, "bytes"),
  handshakeTimeout: integerOption(10_000, 1, MAX_DELAY, "ms"),
  closeTimeout: integerOption(5_000, 1, MAX_DELAY, "ms"),
  idleTimeout: integerOption(120_000, 0, MAX_DELAY, "ms"),
  sendPings: booleanOption(true),
  awaitMessages: booleanOption(false),
  transientMessages: booleanOption(false),
  metrics: option("off", path),
  onEvent: option(
    "stderr",
    (value, label) => optionalFunction<(event: ServerEvent) => void>(value, label) ?? printEvent,
  ),
  reportRefusals: booleanOption(false),
} satisfies { [K in keyof ServeOptions<unknown>]-?: unknown };

/** The settings of `perMessageDeflate`, each declared once (see {@linkcode PerMessageDeflateOptions}). */
export const DEFLATE_OPTIONS = {
  serverContextTakeover: booleanOption(false),
  serverMaxWindowBits: integerOption(15, 8, 15),
  threshold: option(
    "1024 (0 with serverContextTakeover)",
    (value, label, options) =>
      integer(value, label, options.serverContextTakeover === true ? 0 : 1024, 0, MAX_BYTES),
  ),
  level: integerOption(6, 0, 9),
  clientMaxWindowBits: integerOption(15, 8, 15),
} satisfies { [K in keyof PerMessageDeflateOptions]-?: unknown };

/** The settings of `history`, each declared once (see {@linkcode HistoryOptions}). */
export const HISTORY_OPTIONS = {
  maxMessages: integerOption(100, 1, 1e6),
  maxBytes: integerOption(MiB, 1, MAX_BYTES, "bytes"),
  maxAge: integerOption(300_000, 1, MAX_DELAY, "ms"),
  maxTotalBytes: integerOption(64 * MiB, 1, 2 ** 53 - 1, "bytes"),
  envelope: option(
    "as published",
    optionalFunction<NonNullable<HistoryOptions["envelope"]>>,
  ),
} satisfies { [K in keyof HistoryOptions]-?: unknown };

/** Each option as its check in `OPTIONS` resolves it (see {@linkcode ResolvedOptions}). */
export type ResolvedValues = Resolved<typeof OPTIONS>;

/**
 * Options with every default filled in, each as its check in `OPTIONS` resolves it; the hooks
 * and handlers keep the type of the socket's `data`.
 */
export type ResolvedOptions<T> = Omit<ResolvedValues, "upgrade" | "fetch" | "websocket"> & {
  upgrade: NonNullable<ServeOptions<T>["upgrade"]> | null;
  fetch: NonNullable<ServeOptions<T>["fetch"]> | null;
  websocket: WebSocketHandler<T>;
};

/** `option "name"`, as serve's options are named in error messages. */
function serveOption(name: string): string {
  return `option "${name}"`;
}

/** Validates `options` and fills in defaults; throws `TypeError`/`RangeError` naming the option. */
export function resolveOptions<T>(options: ServeOptions<T>): ResolvedOptions<T> {
  return resolveTable(OPTIONS, options, serveOption, "serve()") as unknown as ResolvedOptions<T>;
}

function deflate(value: unknown): Resolved<typeof DEFLATE_OPTIONS> | null {
  if (value === undefined || value === false) return null;
  if (value !== true && (typeof value !== "object" || value === null)) {
    throw new TypeError(
      `option "perMessageDeflate" must be true, false or an object, got ${describeValue(value)}`,
    );
  }
  return resolveTable(
    DEFLATE_OPTIONS,
    value === true ? {} : value,
    (name) => `option "perMessageDeflate.${name}"`,
    "perMessageDeflate",
  );
}

function history(value: unknown): Resolved<typeof HISTORY_OPTIONS> | null {
  if (value === undefined || value === false) return null;
  if (value !== true && (typeof value !== "object" || value === null)) {
    throw new TypeError(`option "history" must be true, false or an object, got ${describeValue(value)}`);
  }
  return resolveTable(
    HISTORY_OPTIONS,
    value === true ? {} : value,
    (name) => `option "history.${name}"`,
    "history",
  );
}

function backplane(value: unknown): Backplane | null {
  if (value === undefined) return null;
  const methods = ["attach", "subscribe", "unsubscribe", "publish", "stats", "close"];
  if (
    typeof value !== "object" || value === null ||
    !methods.every((name) => typeof (value as Record<string, unknown>)[name] === "function")
  ) {
    throw new TypeError(
      `option "backplane" must be a Backplane (with ${methods.join(", ")}), such as redisBackplane(), got ${
        describeValue(value)
      }`,
    );
  }
  return value as Backplane;
}

function tls(value: unknown): TlsOptions | null {
  if (value === undefined) return null;
  if (typeof value !== "object" || value === null) {
    throw new TypeError(`option "tls" must be an object with cert and key, got ${describeValue(value)}`);
  }
  knownKeys(value, ["cert", "key", "passphrase"], (name) => `option "tls.${name}"`);
  const { cert, key, passphrase } = value as Partial<TlsOptions>;
  for (const [name, pem, kind] of [["cert", cert, "CERTIFICATE"], ["key", key, "PRIVATE KEY"]] as const) {
    if (typeof pem !== "string" || !new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(pem)) {
      throw new TypeError(
        `option "tls.${name}" must be the PEM text of a ${kind.toLowerCase()} ("-----BEGIN ${kind}-----…"), ` +
          `got ${describeValue(pem)}; read the file first (e.g. Deno.readTextFileSync)`,
      );
    }
  }
  if (passphrase !== undefined && typeof passphrase !== "string") {
    throw new TypeError(`option "tls.passphrase" must be a string, got ${describeValue(passphrase)}`);
  }
  return { cert: cert!, key: key!, ...(passphrase === undefined ? {} : { passphrase }) };
}

function origins(value: unknown): ReadonlySet<string> | null {
  if (value === "*") return null;
  if (value === undefined) return new Set();
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
    throw new TypeError(
      `option "origins" must be "*" or an array of origin strings, got ${describeValue(value)}`,
    );
  }
  return new Set(value);
}

function protocols(value: unknown): readonly string[] | ProtocolSelector {
  if (value === undefined) return [];
  if (typeof value === "function") return value as ProtocolSelector;
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string" && item !== "")) {
    throw new TypeError(
      `option "protocols" must be an array of subprotocol names or a function, got ${describeValue(value)}`,
    );
  }
  return value;
}

function handlers<T>(value: unknown, label = 'option "websocket"'): WebSocketHandler<T> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null) {
    throw new TypeError(`${label} must be an object of handlers, got ${describeValue(value)}`);
  }
  knownKeys(
    value,
    HANDLER_NAMES,
    (name) => `handler "websocket.${name}"; the handlers are ${HANDLER_NAMES.join(", ")}`,
  );
  for (const name of HANDLER_NAMES) {
    optionalFunction((value as Record<string, unknown>)[name], `${label.slice(0, -1)}.${name}"`);
  }
  return value;
}

/**
 * Checks the options of `upgrade(request, options)`: a `TypeError` naming what is wrong.
 * Returns them with `websocket` resolved (null when not given).
 */
export function resolveUpgradeOptions<T>(
  value: unknown,
): Omit<UpgradeOptions<T>, "websocket"> & { websocket: WebSocketHandler<T> | null } {
  if (value === undefined) return { websocket: null };
  if (typeof value !== "object" || value === null) {
    throw new TypeError(`upgrade() takes an options object, got ${describeValue(value)}`);
  }
  knownKeys(value, ["data", "headers", "protocol", "websocket"], (name) => `upgrade() option "${name}"`);
  const options = value as UpgradeOptions<T>;
  if (options.protocol !== undefined && typeof options.protocol !== "string") {
    throw new TypeError(
      `upgrade() option "protocol" must be a string, got ${describeValue(options.protocol)}`,
    );
  }
  const websocket = options.websocket === undefined
    ? null
    : handlers<T>(options.websocket, 'upgrade() option "websocket"');
  return { ...options, websocket };
}
