/**
 * The options of `redisBackplane`, checked once into the settings its parts share.
 * @module
 */

import { describeValue } from "../describe_value.ts";
import { booleanOption, integerOption, option, optionalFunction, resolveTable } from "../option_table.ts";
import type { BackplaneEvent } from "./backplane.ts";
import { type Clock, systemClock } from "./backoff.ts";
import type { Address } from "./redis_link.ts";

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
   * scales on a Redis Cluster: each channel goes to the node that owns its slot. When false,
   * `SUBSCRIBE`/`PUBLISH`, which a cluster copies to every node. Default false.
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
   * again. 0 sends none. Default 5 000 ms.
   */
  pingInterval?: number;
  /** Streams mode: entries each topic's stream keeps, about (`XADD … MAXLEN ~`). Default 1000. */
  maxLen?: number;
  /**
   * Streams mode: milliseconds a topic's stream (and its epoch) lives on after its last publish;
   * 0 keeps it until removed by hand. Default 86 400 000 ms (a day).
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

/** Timers take at most 2^31 - 1 ms; runtimes fire a longer one after 1 ms. */
const MAX_TIMER = 2_147_483_647;
const MiB = 1024 * 1024;

/** `redisBackplane() option "name"`, as its options are named in error messages. */
function backplaneOption(name: string): string {
  return `redisBackplane() option "${name}"`;
}

/**
 * Every option of {@linkcode RedisBackplaneOptions}, each declared once: its default (the README's
 * text derived from it) and its check, through the same helpers as `serve`'s options.
 */
export const REDIS_OPTIONS = {
  url: option("`redis://127.0.0.1:6379`", (value, label) => {
    const urls = value === undefined
      ? ["redis://127.0.0.1:6379"]
      : typeof value === "string"
      ? [value]
      : value;
    if (!Array.isArray(urls) || urls.length === 0) {
      throw new TypeError(`${label} must be a redis:// URL or a non-empty array of them`);
    }
    return urls.map(parseUrl);
  }),
  mode: option('`"classic"`', (value, label) => {
    if (value === undefined || value === "classic" || value === "streams") return value ?? "classic";
    throw new TypeError(`${label} must be "classic" or "streams", got ${describeValue(value)}`);
  }),
  channelPrefix: option('`"wisp:"`', (value, label) => {
    if (value === undefined) return "wisp:";
    if (typeof value !== "string") {
      throw new TypeError(`${label} must be a string, got ${describeValue(value)}`);
    }
    return value;
  }),
  sharded: booleanOption(false),
  maxBufferedBytes: integerOption(8 * MiB, 0, Number.MAX_SAFE_INTEGER, "bytes"),
  pingInterval: integerOption(5_000, 0, MAX_TIMER, "ms"),
  maxLen: integerOption(1_000, 1, Number.MAX_SAFE_INTEGER),
  streamTtl: integerOption(86_400_000, 0, Number.MAX_SAFE_INTEGER, "ms", "a day"),
  streamSlots: integerOption(16, 1, 16384),
  onEvent: option("the server's", optionalFunction<(event: BackplaneEvent) => void>),
} satisfies { [K in keyof RedisBackplaneOptions]-?: unknown };

/** The options that mean something in one mode only. */
const STREAMS_ONLY = ["maxLen", "streamTtl", "streamSlots"];

/** Checks `options` (a `TypeError` or `RangeError` names the bad one) and fills in the defaults. */
export function resolveRedisOptions(options: RedisBackplaneOptions): RedisSettings {
  const resolved = resolveTable(REDIS_OPTIONS, options, backplaneOption, "redisBackplane()");
  if (resolved.mode === "classic") {
    const given = STREAMS_ONLY.find((name) => name in options);
    if (given !== undefined) throw new TypeError(`${backplaneOption(given)} needs mode "streams"`);
  } else if ("sharded" in options) {
    throw new TypeError(
      `${backplaneOption("sharded")} is for mode "classic" (streams follow a cluster anyway)`,
    );
  }
  const parsed = resolved.url;
  const credentials = parsed.find((each) => each.username !== "" || each.password !== "") ?? parsed[0];
  return {
    ...resolved,
    seeds: parsed.map(({ hostname, port }) => ({ hostname, port })),
    username: credentials.username,
    password: credentials.password,
    prefix: new TextEncoder().encode(resolved.channelPrefix),
    clock: systemClock,
  };
}

/** One `redis://` URL. */
function parseUrl(text: unknown): Address & { username: string; password: string } {
  let url: URL;
  try {
    url = new URL(text as string);
  } catch {
    throw new TypeError(`${backplaneOption("url")} must be a redis:// URL, got ${JSON.stringify(text)}`);
  }
  if (typeof text !== "string" || url.protocol !== "redis:" || url.hostname === "") {
    throw new TypeError(
      `${backplaneOption("url")} must be redis://host[:port], got ${JSON.stringify(text)}`,
    );
  }
  return {
    hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? 6379 : Number(url.port),
    username: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
  };
}
