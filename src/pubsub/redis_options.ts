/**
 * The options of `redisBackplane`, checked once into the settings its parts share.
 * @module
 */

import type { BackplaneEvent } from "./backplane.ts";
import { type Address, type Clock, systemClock } from "./redis_link.ts";

/** Options of `redisBackplane`. */
export interface RedisBackplaneOptions {
  /**
   * `redis://[[user]:password@]host[:port]`, or several: the nodes of a Redis Cluster to learn its
   * map from (any one that answers will do; credentials come from the first URL that has some).
   * Default `redis://127.0.0.1:6379`.
   */
  url?: string | readonly string[];
  /**
   * `"classic"`: Redis pub/sub, which keeps nothing (a process that is cut off from Redis misses
   * what is published meanwhile). `"streams"`: one Redis stream per topic, which each process reads
   * on from where it left off, so that a Redis restart (with persistence), a lost connection or a
   * reconnect loses nothing Redis kept; it also keeps each topic's history (`append`, `read`,
   * `position`). Default `"classic"` (cheaper).
   */
  mode?: "classic" | "streams";
  /** Prefix of the Redis channel (classic) or keys (streams) of each topic. Default `"wisp:"`. */
  channelPrefix?: string;
  /**
   * Classic mode: sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7.0 and later), which is what
   * scales on a Redis Cluster: each channel goes to the node that owns its slot. Default false
   * (`SUBSCRIBE`/`PUBLISH`, which a cluster copies to every node).
   */
  sharded?: boolean;
  /**
   * Bytes of publishes that may wait for Redis (while it is down, or slow to take them; in streams
   * mode also those sent and not yet acknowledged); past it, publishes are dropped and counted in
   * `stats().dropped`. Default 8 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * Milliseconds between the `PING`s each connection sends; one that hears nothing from Redis for
   * that long is taken for lost (a Redis that hangs, or a link that died without a FIN) and made
   * again. 0 sends none. Default 5,000.
   */
  pingInterval?: number;
  /** Streams mode: entries each topic's stream keeps, about (`XADD … MAXLEN ~`). Default 1,000. */
  maxLen?: number;
  /**
   * Streams mode: milliseconds a topic's stream (and its epoch) lives on after its last publish;
   * 0 keeps it until removed by hand. Default 86,400,000 (a day).
   */
  streamTtl?: number;
  /**
   * Streams mode: how many cluster slots the topics' streams are spread over, each topic's by a
   * hash of its name (a `{hash tag}` in its keys). On a Redis Cluster a blocking read may only name
   * keys of one slot, so a process reads each slot it has topics in on a connection of its own.
   * Every process on one Redis must use the same value. Default 16.
   */
  streamSlots?: number;
  /**
   * Told of every change of state and every error, in one line. Default: the server's `onEvent`
   * (as events of kind `"backplane"`, by default a line on stderr each).
   */
  onEvent?: (event: BackplaneEvent) => void;
}

/** The options, checked, with their defaults. */
export interface RedisSettings {
  /** Where to connect first (the one server, or seeds of a cluster). */
  seeds: Address[];
  /** The user for `AUTH` (empty for the default user). */
  username: string;
  /** The password for `AUTH` (empty for none). */
  password: string;
  /** The `mode` option. */
  mode: "classic" | "streams";
  /** The `channelPrefix` option as UTF-8. */
  prefix: Uint8Array;
  /** The `sharded` option. */
  sharded: boolean;
  /** The `maxBufferedBytes` option. */
  maxBufferedBytes: number;
  /** The `pingInterval` option. */
  pingInterval: number;
  /** The `maxLen` option. */
  maxLen: number;
  /** The `streamTtl` option. */
  streamTtl: number;
  /** The `streamSlots` option. */
  streamSlots: number;
  /** The `onEvent` option, or null to tell the server instead. */
  onEvent: ((event: BackplaneEvent) => void) | null;
  /** The links' timers. */
  clock: Clock;
}

const NAMES = [
  "url",
  "mode",
  "channelPrefix",
  "sharded",
  "maxBufferedBytes",
  "pingInterval",
  "maxLen",
  "streamTtl",
  "streamSlots",
  "onEvent",
];
/** The options that mean something in one mode only. */
const STREAMS_ONLY = ["maxLen", "streamTtl", "streamSlots"];
/** Timers take at most 2^31 - 1 ms; runtimes fire a longer one after 1 ms. */
const MAX_TIMER = 2_147_483_647;

/** Checks `options` (a `TypeError` or `RangeError` names the bad one) and fills in the defaults. */
export function resolveRedisOptions(options: RedisBackplaneOptions): RedisSettings {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("redisBackplane() takes an options object");
  }
  for (const name of Object.keys(options)) {
    if (!NAMES.includes(name)) throw new TypeError(`unknown option "${name}" of redisBackplane()`);
  }
  const {
    url = "redis://127.0.0.1:6379",
    mode = "classic",
    channelPrefix = "wisp:",
    sharded = false,
    maxBufferedBytes = 8 * 1024 * 1024,
    pingInterval = 5_000,
    maxLen = 1_000,
    streamTtl = 86_400_000,
    streamSlots = 16,
  } = options;
  if (mode !== "classic" && mode !== "streams") {
    throw new TypeError(
      `redisBackplane() option "mode" must be "classic" or "streams", got ${JSON.stringify(mode)}`,
    );
  }
  if (mode === "classic") {
    const given = STREAMS_ONLY.find((name) => name in options);
    if (given !== undefined) throw new TypeError(`redisBackplane() option "${given}" needs mode "streams"`);
  } else if ("sharded" in options) {
    throw new TypeError(
      `redisBackplane() option "sharded" is for mode "classic" (streams follow a cluster anyway)`,
    );
  }
  if (typeof channelPrefix !== "string") {
    throw new TypeError(`redisBackplane() option "channelPrefix" must be a string`);
  }
  if (typeof sharded !== "boolean") {
    throw new TypeError(`redisBackplane() option "sharded" must be true or false`);
  }
  const count = (name: string, value: number, min: number, max: number, unit: string) => {
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(
        `redisBackplane() option "${name}" must be a whole number of ${unit} from ${min} to ${max}`,
      );
    }
  };
  count("maxBufferedBytes", maxBufferedBytes, 0, Number.MAX_SAFE_INTEGER, "bytes");
  count("pingInterval", pingInterval, 0, MAX_TIMER, "milliseconds");
  count("maxLen", maxLen, 1, Number.MAX_SAFE_INTEGER, "entries");
  count("streamTtl", streamTtl, 0, Number.MAX_SAFE_INTEGER, "milliseconds");
  count("streamSlots", streamSlots, 1, 16384, "slots");
  const onEvent = options.onEvent ?? null;
  if (onEvent !== null && typeof onEvent !== "function") {
    throw new TypeError(`redisBackplane() option "onEvent" must be a function`);
  }
  const urls = typeof url === "string" ? [url] : url;
  if (!Array.isArray(urls) || urls.length === 0) {
    throw new TypeError(`redisBackplane() option "url" must be a redis:// URL or a non-empty array of them`);
  }
  const parsed = urls.map(parseUrl);
  const credentials = parsed.find((each) => each.username !== "" || each.password !== "") ?? parsed[0];
  return {
    seeds: parsed.map(({ hostname, port }) => ({ hostname, port })),
    username: credentials.username,
    password: credentials.password,
    mode,
    prefix: new TextEncoder().encode(channelPrefix),
    sharded,
    maxBufferedBytes,
    pingInterval,
    maxLen,
    streamTtl,
    streamSlots,
    onEvent,
    clock: systemClock,
  };
}

/** One `redis://` URL. */
function parseUrl(text: unknown): Address & { username: string; password: string } {
  let url: URL;
  try {
    url = new URL(text as string);
  } catch {
    throw new TypeError(`redisBackplane() option "url" must be a redis:// URL, got ${JSON.stringify(text)}`);
  }
  if (typeof text !== "string" || url.protocol !== "redis:" || url.hostname === "") {
    throw new TypeError(
      `redisBackplane() option "url" must be redis://host[:port], got ${JSON.stringify(text)}`,
    );
  }
  return {
    hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? 6379 : Number(url.port),
    username: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
  };
}
