/**
 * A server's counters: one {@linkcode Counters} object that every connection bumps (plain
 * number fields, so counting a message costs an add), the {@linkcode ServerStats} snapshot that
 * `server.stats()` makes of it, and that snapshot in the Prometheus text format (0.0.4).
 * @module
 */

import type { BackplaneStats } from "./pubsub/backplane.ts";

/** Why Wisp ended connections on its own, counted by reason (see {@linkcode ServerStats.drops}). */
export interface DropCounts {
  /** A socket's send backlog passed `maxBufferedAmount`. */
  backlog: number;
  /** A socket stayed silent past `idleTimeout` (and the ping it got, with `sendPings`). */
  idle: number;
  /** A client sent faster than `maxMessagesPerSecond` (closed with 1008). */
  rateLimit: number;
  /** A request head (or the upgrade hook's decision) took longer than `handshakeTimeout`. */
  handshakeTimeout: number;
  /** A request body, or the client's reading of a response, stalled past `handshakeTimeout`. */
  requestTimeout: number;
  /** The peer did not finish closing within `closeTimeout` (after a close frame or an answer). */
  closeTimeout: number;
  /** A connection waiting for its request head made room for a newcomer (pending tables full). */
  eviction: number;
  /** The bytes held in the HTTP phase would have passed `httpBufferBudget` (503). */
  bufferBudget: number;
}

/** Bytes of one direction (see {@linkcode ServerStats.bytes}). */
export interface ByteCounts {
  /** Data messages' payload bytes, as sent or handled: before compression and after inflation. */
  payload: number;
  /** Bytes of WebSocket frames (headers, control frames and compressed payloads included). */
  wire: number;
}

/** What `server.stats()` returns: counts since the server started, and a few current values. */
export interface ServerStats {
  /** When the server started, in milliseconds since the Unix epoch. */
  startedAt: number;
  /** Connections. */
  connections: {
    /** TCP (or TLS) connections accepted, in total. */
    accepted: number;
    /** WebSockets open now. */
    open: number;
    /** Connections in their HTTP phase now (reading a head, answering a plain request, upgrading). */
    http: number;
    /** Bytes those hold now against `httpBufferBudget`. */
    httpBytes: number;
  };
  /**
   * How the HTTP phase ended, by status: 101 for every WebSocket opened, and each error status
   * Wisp answered (refusals of the handshake, limits, timeouts, the upgrade hook's own responses,
   * 426 to a plain request without a `fetch` handler). Common statuses are present at 0.
   */
  handshakes: Record<number, number>;
  /** Plain HTTP requests handed to the `fetch` handler. */
  requests: number;
  /**
   * Data messages received (handed to the `message` handler), sent (`send` and publish
   * deliveries), and dropped for a socket past its backlog limit (`closeOnBackpressureLimit: false`).
   */
  messages: { received: number; sent: number; dropped: number };
  /** Bytes each way: `payload` over `wire` is the compression ratio (plus framing). */
  bytes: { received: ByteCounts; sent: ByteCounts };
  /** Connections Wisp ended because a limit or a deadline was passed, by reason. */
  drops: DropCounts;
  /** Close frames by code: sent (1005 counts one without a code) and received (1005: likewise). */
  closeCodes: { sent: Record<number, number>; received: Record<number, number> };
  /** Publishing: calls of `publish` in this process, and frames queued to its subscribers. */
  pubsub: { publishes: number; deliveries: number };
  /**
   * Compression contexts kept now (sockets with server context takeover that were sent a
   * compressed message) and the bytes they hold.
   */
  compression: { contexts: number; bytes: number };
  /** The backplane's own stats, or null without one. */
  backplane: BackplaneStats | null;
  /** What the topics' history keeps now (topics, messages, bytes), or null without the `history` option. */
  history: { topics: number; messages: number; bytes: number } | null;
}

/** Statuses shown at 0 before they happen: a series that appears only later is awkward to rate. */
const HANDSHAKE_STATUSES = [101, 400, 403, 404, 408, 413, 426, 429, 431, 500, 503];
/** Close codes shown at 0 before they happen. */
const CLOSE_CODES = [1000, 1001, 1002, 1003, 1005, 1007, 1008, 1009, 1011];

function zeros(keys: readonly number[]): Record<number, number> {
  return Object.fromEntries(keys.map((key) => [key, 0]));
}

/** Adds one to `table[key]`. */
export function countIn(table: Record<number, number>, key: number): void {
  table[key] = (table[key] ?? 0) + 1;
}

/**
 * The counters of one server, shared by all its connections. The fields bumped per message are
 * plain numbers on this one object: counting costs an add, with no lookup and no allocation.
 */
export class Counters {
  /** When the server started (milliseconds since the epoch). */
  readonly startedAt: number = Date.now();
  /** See `ServerStats.connections.accepted`. */
  accepted = 0;
  /** See `ServerStats.handshakes`. */
  readonly handshakes: Record<number, number> = zeros(HANDSHAKE_STATUSES);
  /** See `ServerStats.requests`. */
  requests = 0;
  /** See `ServerStats.messages`. */
  messagesReceived = 0;
  /** See `ServerStats.messages`. */
  messagesSent = 0;
  /** See `ServerStats.messages`. */
  messagesDropped = 0;
  /** See `ServerStats.bytes`. */
  payloadBytesReceived = 0;
  /** See `ServerStats.bytes`. */
  wireBytesReceived = 0;
  /** See `ServerStats.bytes`. */
  payloadBytesSent = 0;
  /** See `ServerStats.bytes`. */
  wireBytesSent = 0;
  /** See `ServerStats.drops`. */
  readonly drops: DropCounts = {
    backlog: 0,
    idle: 0,
    rateLimit: 0,
    handshakeTimeout: 0,
    requestTimeout: 0,
    closeTimeout: 0,
    eviction: 0,
    bufferBudget: 0,
  };
  /** See `ServerStats.closeCodes`. */
  readonly closeCodesSent: Record<number, number> = zeros(CLOSE_CODES);
  /** See `ServerStats.closeCodes`. */
  readonly closeCodesReceived: Record<number, number> = zeros(CLOSE_CODES);
  /** See `ServerStats.compression`. */
  compressionContexts = 0;
  /** See `ServerStats.compression`. */
  compressionBytes = 0;
  /** See `ServerStats.pubsub`. */
  publishes = 0;
  /** See `ServerStats.pubsub`. */
  deliveries = 0;

  /**
   * A snapshot: these counts (copied, so later traffic does not change it), the current values
   * the server knows, and the backplane's stats.
   */
  snapshot(
    current: { open: number; http: number; httpBytes: number },
    backplane: BackplaneStats | null,
    history: ServerStats["history"],
  ): ServerStats {
    return {
      startedAt: this.startedAt,
      connections: { accepted: this.accepted, ...current },
      handshakes: { ...this.handshakes },
      requests: this.requests,
      messages: { received: this.messagesReceived, sent: this.messagesSent, dropped: this.messagesDropped },
      bytes: {
        received: { payload: this.payloadBytesReceived, wire: this.wireBytesReceived },
        sent: { payload: this.payloadBytesSent, wire: this.wireBytesSent },
      },
      drops: { ...this.drops },
      closeCodes: { sent: { ...this.closeCodesSent }, received: { ...this.closeCodesReceived } },
      pubsub: { publishes: this.publishes, deliveries: this.deliveries },
      compression: { contexts: this.compressionContexts, bytes: this.compressionBytes },
      backplane,
      history,
    };
  }
}

/** The `Content-Type` of the Prometheus text format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * `stats` in the Prometheus text exposition format 0.0.4: metrics named `wisp_…`, each with its
 * `# HELP` and `# TYPE` lines; counters end in `_total`; bytes and seconds are the units; the
 * status, drop reason and close code are labels.
 *
 * @example The handshake counts, as Prometheus would read them
 * ```ts
 * import { prometheusText, serve } from "../mod.ts";
 *
 * const server = serve({ port: 0 });
 * const text = prometheusText(server.stats());
 * console.log(text.split("\n").filter((line) => line.startsWith("wisp_handshakes_total")).join("\n"));
 * await server.close();
 * ```
 */
export function prometheusText(stats: ServerStats): string {
  const lines: string[] = [];
  const metric = (
    name: string,
    type: "counter" | "gauge",
    help: string,
    value: number | Record<string, number>,
    label = "",
  ) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    if (typeof value === "number") lines.push(`${name} ${value}`);
    else for (const [key, count] of Object.entries(value)) lines.push(`${name}{${label}="${key}"} ${count}`);
  };
  const { connections, bytes, backplane } = stats;
  metric(
    "wisp_start_time_seconds",
    "gauge",
    "When the server started, in seconds since the Unix epoch.",
    stats.startedAt / 1000,
  );
  metric(
    "wisp_connections_accepted_total",
    "counter",
    "TCP (or TLS) connections accepted.",
    connections.accepted,
  );
  metric("wisp_websocket_connections", "gauge", "WebSockets open now.", connections.open);
  metric("wisp_http_connections", "gauge", "Connections in their HTTP phase now.", connections.http);
  metric(
    "wisp_http_buffer_bytes",
    "gauge",
    "Bytes held by connections in their HTTP phase, against httpBufferBudget.",
    connections.httpBytes,
  );
  metric(
    "wisp_handshakes_total",
    "counter",
    "How the HTTP phase ended, by status: 101 opened a WebSocket, the others are refusals.",
    stats.handshakes,
    "status",
  );
  metric(
    "wisp_http_requests_total",
    "counter",
    "Plain HTTP requests handed to the fetch handler.",
    stats.requests,
  );
  metric("wisp_received_messages_total", "counter", "Data messages received.", stats.messages.received);
  metric(
    "wisp_sent_messages_total",
    "counter",
    "Data messages sent, publish deliveries included.",
    stats.messages.sent,
  );
  metric(
    "wisp_dropped_messages_total",
    "counter",
    "Messages not sent to a socket whose backlog was past maxBufferedAmount (closeOnBackpressureLimit false).",
    stats.messages.dropped,
  );
  metric(
    "wisp_received_payload_bytes_total",
    "counter",
    "Payload bytes of data messages received, after inflation.",
    bytes.received.payload,
  );
  metric(
    "wisp_received_wire_bytes_total",
    "counter",
    "Bytes of WebSocket frames received.",
    bytes.received.wire,
  );
  metric(
    "wisp_sent_payload_bytes_total",
    "counter",
    "Payload bytes of data messages sent, before compression.",
    bytes.sent.payload,
  );
  metric("wisp_sent_wire_bytes_total", "counter", "Bytes of WebSocket frames sent.", bytes.sent.wire);
  metric(
    "wisp_dropped_connections_total",
    "counter",
    "Connections Wisp ended because a limit or a deadline was passed, by reason.",
    Object.fromEntries(Object.entries(stats.drops).map(([reason, count]) => [snakeCase(reason), count])),
    "reason",
  );
  metric(
    "wisp_sent_close_frames_total",
    "counter",
    "Close frames sent, by code.",
    stats.closeCodes.sent,
    "code",
  );
  metric(
    "wisp_received_close_frames_total",
    "counter",
    "Close frames received, by code (1005: without a code).",
    stats.closeCodes.received,
    "code",
  );
  metric("wisp_publishes_total", "counter", "Calls of publish in this process.", stats.pubsub.publishes);
  metric(
    "wisp_deliveries_total",
    "counter",
    "Published messages queued to subscribers of this process.",
    stats.pubsub.deliveries,
  );
  metric(
    "wisp_compression_contexts",
    "gauge",
    "Compression contexts kept now (server context takeover).",
    stats.compression.contexts,
  );
  metric(
    "wisp_compression_bytes",
    "gauge",
    "Bytes the kept compression contexts hold now.",
    stats.compression.bytes,
  );
  if (stats.history !== null) {
    metric("wisp_history_topics", "gauge", "Topics whose history keeps messages now.", stats.history.topics);
    metric(
      "wisp_history_messages",
      "gauge",
      "Messages the topics' history keeps now.",
      stats.history.messages,
    );
    metric(
      "wisp_history_bytes",
      "gauge",
      "Bytes the topics' history keeps now (payload, and 64 per message).",
      stats.history.bytes,
    );
  }
  if (backplane !== null) {
    metric(
      "wisp_backplane_up",
      "gauge",
      "1 when the backplane is connected, else 0.",
      backplane.state === "connected" ? 1 : 0,
    );
    metric(
      "wisp_backplane_published_messages_total",
      "counter",
      "Messages sent to the other processes.",
      backplane.published,
    );
    metric(
      "wisp_backplane_received_messages_total",
      "counter",
      "Messages received from the other processes.",
      backplane.received,
    );
    metric(
      "wisp_backplane_dropped_messages_total",
      "counter",
      "Publishes dropped because too many bytes waited for the backplane.",
      backplane.dropped,
    );
    metric(
      "wisp_backplane_reconnects_total",
      "counter",
      "Times the backplane reconnected.",
      backplane.reconnects,
    );
    metric("wisp_backplane_errors_total", "counter", "Errors the backplane met.", backplane.errors);
  }
  return lines.join("\n") + "\n";
}

/** `rateLimit` → `rate_limit`, as Prometheus label values are usually written. */
function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/**
 * A response with the server's metrics in the Prometheus text format, for a `fetch` handler to
 * return (the `metrics` option does the same on a path of its own, before `fetch`).
 *
 * @example
 * ```ts
 * import { metricsResponse, serve, type Server } from "../mod.ts";
 *
 * const server: Server = serve({
 *   port: 0,
 *   fetch(request) {
 *     if (new URL(request.url).pathname === "/internal/metrics") return metricsResponse(server);
 *     return new Response("not found", { status: 404 });
 *   },
 * });
 * await server.close();
 * ```
 */
export function metricsResponse(server: { stats(): ServerStats }): Response {
  return new Response(prometheusText(server.stats()), {
    headers: { "Content-Type": PROMETHEUS_CONTENT_TYPE, "Cache-Control": "no-store" },
  });
}
