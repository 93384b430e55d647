/**
 * A backplane over Redis, speaking RESP itself over the runtime adapter's outgoing TCP connections
 * (no packages): classic pub/sub, or Redis Streams that lose nothing Redis kept; on one Redis or a
 * Redis Cluster.
 * @module
 */

import type { Backplane } from "./backplane.ts";
import { ClassicBackplane } from "./classic.ts";
import { type RedisBackplaneOptions, resolveRedisOptions } from "./redis_options.ts";
import { StreamsBackplane } from "./streams.ts";

export type { RedisBackplaneOptions } from "./redis_options.ts";

/**
 * A backplane that carries publishes between processes through Redis. Each process delivers to
 * its own subscribers at once and skips its own messages when Redis hands them back; it listens
 * to a topic only while it has subscribers of that topic. When Redis goes away, local delivery
 * goes on, publishes wait (up to `maxBufferedBytes`, then are dropped and counted), and the
 * backplane reconnects with backoff and carries on.
 *
 * In the default `"classic"` mode (Redis pub/sub) a process misses what is published while it is
 * cut off from Redis. In `"streams"` mode each topic is a Redis stream that every process reads on
 * from where it left off, so nothing Redis kept is lost, and the backplane offers each topic's
 * history (`append`, `read`, `position`). Given several URLs of a Redis Cluster (or one), sharded
 * classic mode and streams mode send each key to the node that owns its slot.
 *
 * @example Two processes, one chat
 * ```ts ignore
 * import { redisBackplane, serve } from "jsr:@wisp/wisp";
 *
 * serve({
 *   port: 3368,
 *   backplane: redisBackplane({ url: "redis://127.0.0.1:6379", mode: "streams" }),
 *   websocket: {
 *     open: (ws) => ws.subscribe("room"),
 *     message: (ws, data) => void ws.publish("room", data),
 *   },
 * });
 * ```
 */
export function redisBackplane(options: RedisBackplaneOptions = {}): Backplane {
  const settings = resolveRedisOptions(options);
  return settings.mode === "streams" ? new StreamsBackplane(settings) : new ClassicBackplane(settings);
}
