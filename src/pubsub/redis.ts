/**
 * A backplane over Redis pub/sub, speaking RESP itself over the runtime adapter's outgoing TCP
 * connections (no packages): one connection publishes, one subscribes.
 * @module
 */

import { runtimeConnect } from "../runtime/mod.ts";
import type { Transport, TransportEvents } from "../runtime/types.ts";
import type { Backplane, BackplaneEvent, BackplaneStats } from "./backplane.ts";
import { textDecoder } from "../utf8.ts";
import { encodeCommand, RespError, RespProtocolError, RespReader, respText, type RespValue } from "./resp.ts";

/** Options of {@linkcode redisBackplane}. */
export interface RedisBackplaneOptions {
  /** `redis://[[user]:password@]host[:port]`. Default `redis://127.0.0.1:6379`. */
  url?: string;
  /** Prefix of the Redis channel that carries each topic. Default `"wisp:"`. */
  channelPrefix?: string;
  /**
   * Sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7.0 and later), which is what scales on a
   * Redis Cluster: a message goes only to the shard that owns its channel. Default false (classic
   * `SUBSCRIBE`/`PUBLISH`, which a cluster copies to every node).
   */
  sharded?: boolean;
  /**
   * Bytes of publishes that may wait for Redis (while it is down, or slow to take them); past it,
   * publishes are dropped and counted in `stats().dropped`. Default 8 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * Milliseconds between the `PING`s each connection sends; one that hears nothing from Redis for
   * that long is taken for lost (a Redis that hangs, or a link that died without a FIN) and made
   * again. 0 sends none. Default 5,000.
   */
  pingInterval?: number;
  /**
   * Told of every change of state and every error, in one line. Default: the server's `onEvent`
   * (as events of kind `"backplane"`, by default a line on stderr each).
   */
  onEvent?: (event: BackplaneEvent) => void;
}

/**
 * A backplane that carries publishes between processes through Redis. Each process delivers to
 * its own subscribers at once and ignores its own messages when Redis echoes them back; it
 * subscribes to a topic's channel only while it has subscribers of that topic. When Redis goes
 * away, local delivery goes on, publishes wait (up to `maxBufferedBytes`, then are dropped and
 * counted), and the backplane reconnects with backoff and subscribes again.
 *
 * @example Two processes, one chat
 * ```ts ignore
 * import { redisBackplane, serve } from "jsr:@wisp/wisp";
 *
 * serve({
 *   port: 3368,
 *   backplane: redisBackplane({ url: "redis://127.0.0.1:6379" }),
 *   websocket: {
 *     open: (ws) => ws.subscribe("room"),
 *     message: (ws, data) => void ws.publish("room", data),
 *   },
 * });
 * ```
 */
export function redisBackplane(options: RedisBackplaneOptions = {}): Backplane {
  return new RedisBackplane(resolve(options));
}

interface Settings {
  hostname: string;
  port: number;
  username: string;
  password: string;
  prefix: Uint8Array;
  sharded: boolean;
  maxBufferedBytes: number;
  pingInterval: number;
  /** The `onEvent` option, or null to tell the server instead. */
  onEvent: ((event: BackplaneEvent) => void) | null;
}

function resolve(options: RedisBackplaneOptions): Settings {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("redisBackplane() takes an options object");
  }
  for (const name of Object.keys(options)) {
    if (!["url", "channelPrefix", "sharded", "maxBufferedBytes", "pingInterval", "onEvent"].includes(name)) {
      throw new TypeError(`unknown option "${name}" of redisBackplane()`);
    }
  }
  const text = options.url ?? "redis://127.0.0.1:6379";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError(`redisBackplane() option "url" must be a redis:// URL, got ${JSON.stringify(text)}`);
  }
  if (url.protocol !== "redis:" || url.hostname === "") {
    throw new TypeError(
      `redisBackplane() option "url" must be redis://host[:port], got ${JSON.stringify(text)}`,
    );
  }
  const {
    channelPrefix = "wisp:",
    sharded = false,
    maxBufferedBytes = 8 * 1024 * 1024,
    pingInterval = 5_000,
  } = options;
  if (typeof channelPrefix !== "string") {
    throw new TypeError(`redisBackplane() option "channelPrefix" must be a string`);
  }
  if (typeof sharded !== "boolean") {
    throw new TypeError(`redisBackplane() option "sharded" must be true or false`);
  }
  if (!Number.isInteger(maxBufferedBytes) || maxBufferedBytes < 0) {
    throw new RangeError(`redisBackplane() option "maxBufferedBytes" must be a whole number of bytes`);
  }
  // Timers take at most 2^31 - 1 ms; runtimes fire a longer one after 1 ms.
  if (!Number.isInteger(pingInterval) || pingInterval < 0 || pingInterval > 2_147_483_647) {
    throw new RangeError(`redisBackplane() option "pingInterval" must be a whole number of milliseconds`);
  }
  const onEvent = options.onEvent ?? null;
  if (onEvent !== null && typeof onEvent !== "function") {
    throw new TypeError(`redisBackplane() option "onEvent" must be a function`);
  }
  return {
    hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? 6379 : Number(url.port),
    username: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    prefix: encoder.encode(channelPrefix),
    sharded,
    maxBufferedBytes,
    pingInterval,
    onEvent,
  };
}

const encoder = new TextEncoder();

/** The most a reply from Redis may announce; more is taken for garbage (the connection is dropped). */
const REPLY_LIMITS = { maxBulkLength: 64 * 1024 * 1024, maxElements: 1 << 20, maxDepth: 4 };
/** First wait before reconnecting, and the longest (it doubles in between, with some jitter). */
const FIRST_RETRY_MS = 100;
const LAST_RETRY_MS = 5_000;
/** Length of the id each process stamps on its messages, to know its own when Redis echoes them. */
const ORIGIN_LENGTH = 16;
const TEXT = 0, BINARY = 1;
/** The envelope's first byte, for each type (one array each, made once). */
const TEXT_TYPE = Uint8Array.of(TEXT), BINARY_TYPE = Uint8Array.of(BINARY);

/** What a {@linkcode RedisLink} tells the backplane that owns it. */
interface LinkOwner {
  /** The link is up (Redis has answered it): commands written from now on go to Redis. */
  ready(): void;
  /** A reply to a command the owner wrote. */
  reply(value: RespValue): void;
  /** A change of state or an error, for `onEvent`. */
  report(event: BackplaneEvent): void;
  /** A connection could not be made or was lost, saying why: it counts as an error. */
  failed(why: string): void;
}

/** The command sent on every new connection: its reply shows that Redis is there and serves us. */
const PING = encodeCommand(["PING"]);

/**
 * Whether an error answering the first commands still leaves pub/sub working: Redis loading its
 * data, a replica cut off from its primary, a busy script (PING has none of the flags that let
 * PUBLISH and SUBSCRIBE run then), or a password given to a Redis that has none.
 */
function servesAnyway(error: RespError): boolean {
  return /^(LOADING|MASTERDOWN|BUSY)\b/.test(error.message) ||
    /without any password configured/.test(error.message);
}

/**
 * One connection to Redis that comes back by itself: it reconnects with backoff whenever it is
 * lost, and tells its owner each time it is ready again. A connection counts as up only once
 * Redis has answered its first commands (`AUTH`, then `PING`): a server that accepts and then
 * refuses or drops it (Redis at `maxclients`, say) keeps the backoff growing.
 */
class RedisLink implements TransportEvents {
  readonly #settings: Settings;
  readonly #role: string;
  readonly #owner: LinkOwner;
  #transport: Transport | null = null;
  #reader = new RespReader(REPLY_LIMITS);
  /** Replies still owed to the commands sent on connecting; the link is up when none is. */
  #owed = 0;
  /** Why the current connection is being dropped, when it is dropped on purpose (reported already). */
  #dropping = "";
  #retryMs = FIRST_RETRY_MS;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Checks every `pingInterval` that Redis was heard from since the last check, then pings. */
  #pinger: ReturnType<typeof setInterval> | undefined;
  /** Whether anything came from Redis since the last check. */
  #heard = false;
  #closed = false;
  /** Whether it had been up since it last reported a loss (so each loss is told once). */
  #wasUp = true;
  #connections = 0;

  constructor(settings: Settings, role: string, owner: LinkOwner) {
    this.#settings = settings;
    this.#role = role;
    this.#owner = owner;
  }

  /** Whether commands written now go to Redis. */
  get connected(): boolean {
    return this.#transport !== null && this.#owed === 0;
  }

  /** How many times it connected again after losing a connection. */
  get reconnects(): number {
    return Math.max(0, this.#connections - 1);
  }

  /** Bytes written and not yet taken by the operating system. */
  get pending(): number {
    return this.#transport?.pending ?? 0;
  }

  /** Connects, and keeps connecting until closed. */
  async open(): Promise<void> {
    const { hostname, port, username, password } = this.#settings;
    let transport: Transport;
    try {
      transport = await runtimeConnect()({ hostname, port }, this);
    } catch (error) {
      return this.#retry(`cannot connect to ${hostname}:${port} (${(error as Error).message})`, false);
    }
    if (this.#closed) return transport.destroy();
    this.#transport = transport;
    this.#reader = new RespReader(REPLY_LIMITS);
    this.#owed = 1;
    if (password !== "") {
      transport.write(encodeCommand(username === "" ? ["AUTH", password] : ["AUTH", username, password]));
      this.#owed++;
    }
    transport.write(PING);
    const interval = this.#settings.pingInterval;
    if (interval > 0) {
      this.#heard = false;
      this.#pinger = setInterval(() => this.#checkAlive(interval), interval);
    }
  }

  /** Drops a connection Redis has not answered on for `interval` ms, else pings it. */
  #checkAlive(interval: number): void {
    if (!this.#heard) return this.#drop(`no answer from Redis in ${interval} ms`);
    this.#heard = false;
    if (this.connected) this.#transport!.write(PING);
  }

  /** Writes a command; false when there is no connection to write it to (yet). */
  write(command: Uint8Array): boolean {
    if (!this.connected) return false;
    this.#transport!.write(command);
    return true;
  }

  data(chunk: Uint8Array): boolean {
    this.#heard = true;
    let replies: RespValue[];
    try {
      replies = this.#reader.push(chunk);
    } catch (error) {
      if (!(error instanceof RespProtocolError)) throw error;
      this.#drop(error.message);
      return false;
    }
    for (const reply of replies) {
      if (this.#owed === 0) {
        this.#owner.reply(reply);
      } else if (reply instanceof RespError && !servesAnyway(reply)) {
        this.#drop(`Redis refused the connection: ${reply.message}`);
        break;
      } else {
        if (reply instanceof RespError) {
          this.#owner.report({ type: "error", message: `${this.#role}: Redis answered ${reply.message}` });
        }
        if (--this.#owed === 0) this.#up();
      }
    }
    return false;
  }

  drain(): void {}

  closed(): void {
    this.#transport = null;
    clearInterval(this.#pinger);
    const dropped = this.#dropping;
    this.#dropping = "";
    if (this.#closed) return;
    this.#retry(dropped || "connection lost", dropped !== "");
  }

  /** Stops for good. */
  shutdown(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearInterval(this.#pinger);
    this.#transport?.destroy();
  }

  /** Redis answered the first commands: the backoff starts again, and the owner may write. */
  #up(): void {
    const { hostname, port } = this.#settings;
    this.#retryMs = FIRST_RETRY_MS;
    this.#wasUp = true;
    this.#connections++;
    this.#owner.report({ type: "connected", message: `${this.#role} connected to ${hostname}:${port}` });
    this.#owner.ready();
  }

  /** Drops the connection for `why` (an error event, so counted), to reconnect with backoff. */
  #drop(why: string): void {
    this.#dropping = why;
    this.#owner.report({ type: "error", message: `${this.#role}: ${why}; reconnecting` });
    this.#transport?.destroy();
  }

  /** Tries again after the backoff; `reported` when the failure was an error event already. */
  #retry(why: string, reported: boolean): void {
    if (this.#closed) return;
    const wait = this.#retryMs;
    this.#retryMs = Math.min(LAST_RETRY_MS, wait * 2);
    if (!reported) this.#owner.failed(`${this.#role}: ${why}`);
    if (this.#wasUp) {
      this.#wasUp = false;
      this.#owner.report({
        type: "disconnected",
        message: `${this.#role}: ${why}; reconnecting with backoff`,
      });
    }
    // Jitter, so that many processes that lost one Redis do not all come back at the same moment.
    this.#timer = setTimeout(() => void this.open(), wait / 2 + Math.random() * wait / 2);
  }
}

class RedisBackplane implements Backplane {
  readonly #settings: Settings;
  readonly #origin = crypto.getRandomValues(new Uint8Array(ORIGIN_LENGTH));
  readonly #topics = new Set<string>();
  readonly #publisher: RedisLink;
  readonly #subscriber: RedisLink;
  #deliver: ((topic: string, data: string | Uint8Array) => void) | null = null;
  /** Where events go: the `onEvent` option, else the server's (set on attach). */
  #onEvent: ((event: BackplaneEvent) => void) | null;
  /** Publishes waiting for the publisher to connect. */
  #waiting: Uint8Array[] = [];
  #waitingBytes = 0;
  #closed = false;
  readonly #stats = { published: 0, received: 0, dropped: 0, errors: 0, lastError: "" };

  constructor(settings: Settings) {
    this.#settings = settings;
    this.#onEvent = settings.onEvent;
    const report = (event: BackplaneEvent) => this.#event(event);
    const failed = (why: string) => void this.#countError(why);
    this.#publisher = new RedisLink(settings, "publisher", {
      ready: () => this.#flush(),
      reply: (reply) => this.#check(reply),
      report,
      failed,
    });
    this.#subscriber = new RedisLink(settings, "subscriber", {
      ready: () => this.#resubscribe(),
      reply: (reply) => this.#receive(reply),
      report,
      failed,
    });
  }

  attach(
    deliver: (topic: string, data: string | Uint8Array) => void,
    report: (event: BackplaneEvent) => void,
  ): void {
    this.#deliver = deliver;
    this.#onEvent ??= report;
    void this.#publisher.open();
    void this.#subscriber.open();
  }

  subscribe(topic: string): void {
    this.#topics.add(topic);
    this.#subscriber.write(
      encodeCommand([this.#settings.sharded ? "SSUBSCRIBE" : "SUBSCRIBE", this.#channel(topic)]),
    );
  }

  unsubscribe(topic: string): void {
    this.#topics.delete(topic);
    this.#subscriber.write(
      encodeCommand([this.#settings.sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE", this.#channel(topic)]),
    );
  }

  publish(topic: string, data: string | Uint8Array): void {
    if (this.#closed) return;
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    // The envelope: a type byte, this process's origin, the payload (copied once, into the command).
    const command = encodeCommand([
      this.#settings.sharded ? "SPUBLISH" : "PUBLISH",
      this.#channel(topic),
      [typeof data === "string" ? TEXT_TYPE : BINARY_TYPE, this.#origin, bytes],
    ]);
    const limit = this.#settings.maxBufferedBytes;
    const publisher = this.#publisher;
    if (publisher.connected && publisher.pending + command.length <= limit) {
      publisher.write(command);
      this.#stats.published++;
    } else if (!publisher.connected && this.#waitingBytes + command.length <= limit) {
      this.#waiting.push(command);
      this.#waitingBytes += command.length;
    } else {
      this.#stats.dropped++;
    }
  }

  stats(): BackplaneStats {
    const state = this.#closed
      ? "closed"
      : this.#publisher.connected && this.#subscriber.connected
      ? "connected"
      : "connecting";
    return { state, reconnects: this.#publisher.reconnects + this.#subscriber.reconnects, ...this.#stats };
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#publisher.shutdown();
    this.#subscriber.shutdown();
    this.#waiting = [];
    this.#waitingBytes = 0;
    return Promise.resolve();
  }

  /** The Redis channel of `topic`: the prefix, then the topic's UTF-8. */
  #channel(topic: string): Uint8Array {
    const name = encoder.encode(topic);
    const channel = new Uint8Array(this.#settings.prefix.length + name.length);
    channel.set(this.#settings.prefix);
    channel.set(name, this.#settings.prefix.length);
    return channel;
  }

  /** The publisher is connected: what waited for it goes out, in order. */
  #flush(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    this.#waitingBytes = 0;
    for (const command of waiting) this.#publisher.write(command);
    this.#stats.published += waiting.length;
  }

  /** The subscriber is connected: it subscribes to every topic this process has subscribers of. */
  #resubscribe(): void {
    const command = this.#settings.sharded ? "SSUBSCRIBE" : "SUBSCRIBE";
    // One sharded subscription per command: channels of one SSUBSCRIBE must share a cluster slot.
    if (this.#settings.sharded) {
      for (const topic of this.#topics) {
        this.#subscriber.write(encodeCommand([command, this.#channel(topic)]));
      }
    } else if (this.#topics.size > 0) {
      this.#subscriber.write(
        encodeCommand([command, ...[...this.#topics].map((topic) => this.#channel(topic))]),
      );
    }
  }

  /** A reply on the publisher's connection: only errors matter. */
  #check(reply: RespValue): void {
    if (reply instanceof RespError) {
      this.#event({ type: "error", message: `Redis answered the publisher with an error: ${reply.message}` });
    }
  }

  /** A message (or a reply) on the subscriber's connection. */
  #receive(reply: RespValue): void {
    if (reply instanceof RespError) {
      return this.#event({
        type: "error",
        message: `Redis answered the subscriber with an error: ${reply.message}`,
      });
    }
    if (!Array.isArray(reply) || reply.length !== 3) return;
    const kind = respText(reply[0]);
    if (kind !== "message" && kind !== "smessage") return; // (s)subscribe confirmations and the like
    const [, channel, envelope] = reply;
    if (!(channel instanceof Uint8Array) || !(envelope instanceof Uint8Array)) return;
    const prefix = this.#settings.prefix;
    if (envelope.length < 1 + ORIGIN_LENGTH || channel.length < prefix.length) {
      return this.#event({ type: "error", message: "a message on a Wisp channel is not in Wisp's format" });
    }
    if (sameBytes(envelope.subarray(1, 1 + ORIGIN_LENGTH), this.#origin)) return; // our own, delivered already
    const topic = textDecoder.decode(channel.subarray(prefix.length));
    if (!this.#topics.has(topic)) return; // unsubscribed meanwhile
    const bytes = envelope.subarray(1 + ORIGIN_LENGTH);
    this.#stats.received++;
    this.#deliver!(topic, envelope[0] === TEXT ? textDecoder.decode(bytes) : bytes);
  }

  /** Counts an error; false when it is the same as the last one. */
  #countError(message: string): boolean {
    const stats = this.#stats;
    stats.errors++;
    if (message === stats.lastError) return false;
    stats.lastError = message;
    return true;
  }

  /** Counts an error and tells `onEvent`, but not the same error twice in a row (a flood of refusals is one line). */
  #event(event: BackplaneEvent): void {
    if (event.type === "error" && !this.#countError(event.message)) return;
    try {
      this.#onEvent?.(event);
    } catch (error) {
      console.error("wisp: the backplane's onEvent threw:", error);
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
