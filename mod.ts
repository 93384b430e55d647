/**
 * Wisp: a WebSocket server (RFC 6455) for Deno, Bun and Node, written on the runtimes' raw TCP
 * sockets with web-standard APIs and no dependencies.
 *
 * @example
 * ```ts
 * import { serve } from "./mod.ts";
 *
 * const server = serve({
 *   port: 0,
 *   protocols: ["chat"],
 *   upgrade(request) {
 *     return { data: { user: new URL(request.url).searchParams.get("user") ?? "anonymous" } };
 *   },
 *   websocket: {
 *     open(ws) {
 *       ws.send(`hello, ${ws.data.user}`);
 *     },
 *     message(ws, data) {
 *       ws.send(data);
 *     },
 *   },
 * });
 * await server.close();
 * ```
 * @module
 */

export { serve } from "./src/server.ts";
export type { Server } from "./src/server.ts";
export { attach } from "./src/attach.ts";
export type {
  AttachedServer,
  AttachOptions,
  HttpServerLike,
  UpgradeListener,
  UpgradeRequestMessage,
} from "./src/attach.ts";
export type {
  ConnectionInfo,
  FetchInfo,
  HistoryOptions,
  PerMessageDeflateOptions,
  ProtocolSelector,
  ServeOptions,
  TlsOptions,
  UpgradeAccept,
  UpgradeInfo,
  UpgradeOptions,
  Upgrader,
  UpgradeResult,
} from "./src/options.ts";
export { CloseCode, ReadyState } from "./src/api.ts";
export type { GapReason, MessageData, Recovery, SendOptions, SendStatus, TopicPosition } from "./src/api.ts";
export { ServerWebSocket } from "./src/server_websocket.ts";
export type { WebSocketHandler } from "./src/server_websocket.ts";
export type {
  Backplane,
  BackplaneEvent,
  BackplaneStats,
  HistoryEntry,
  HistoryPage,
} from "./src/pubsub/backplane.ts";
export { compareOffsets, isOffset } from "./src/pubsub/offset.ts";
export { redisBackplane } from "./src/pubsub/redis.ts";
export type { RedisBackplaneOptions } from "./src/pubsub/redis.ts";
export { metricsResponse, PROMETHEUS_CONTENT_TYPE, prometheusText } from "./src/metrics.ts";
export type { ByteCounts, DropCounts, ServerStats } from "./src/metrics.ts";
export { formatEvent } from "./src/events.ts";
export type { ServerEvent, ServerEventKind } from "./src/events.ts";

// Node 20 has no import.meta.main: there the entry module is the file in process.argv[1].
if (import.meta.main ?? import.meta.filename === globalThis.process?.argv[1]) {
  const { main } = await import("./src/cli.ts");
  main();
}
