/**
 * The Redis backplane's streams mode: each topic is a Redis stream that keeps its last entries
 * (`MAXLEN ~`), and each process reads the streams of its topics on from the last entry it
 * handled, so that a restart of Redis (with persistence), a lost connection or a reconnect loses
 * nothing Redis kept. The streams are also the topics' history (`append`, `read`, `position`).
 * @module
 */

import type { Backplane, BackplaneEvent, BackplaneStats, HistoryPage, TopicPosition } from "./backplane.ts";
import { BackplaneCounters } from "./backplane_counters.ts";
import { SEEDS, Topology } from "./cluster.ts";
import { type Command, CommandRouter, type DropReason } from "./command_router.ts";
import { envelope, newOrigin, payloadOf } from "./envelope.ts";
import { isOffset } from "./offset.ts";
import { addressText } from "./redis_link.ts";
import type { RedisSettings } from "./redis_options.ts";
import { ResendFilter } from "./resend_filter.ts";
import { encodeCommand, RespError, type RespValue } from "./resp.ts";
import { type ReaderOwner, StreamReader, Subscription } from "./stream_reader.ts";
import { checkTopic } from "./pubsub.ts";
import {
  appendCommand,
  LOAD_SCRIPT,
  openEntry,
  parseHistory,
  parsePosition,
  positionCommand,
  readCommand,
  scriptSha,
  type TopicKeys,
  topicKeys,
} from "./stream_script.ts";

/** The most a reply to a command (not a read) may announce. */
const REPLY_LIMITS = { maxBulkLength: 64 * 1024 * 1024, maxElements: 1 << 20, maxDepth: 4 };
/** Bytes a command holds besides its payload and keys (the script's sha and arguments). */
const COMMAND_OVERHEAD = 128;
/** The most entries one `read` may ask for. */
const MAX_READ = 10_000;
/** The unit of a standalone Redis: one reader for every topic. */
const ALL = -1;

/** A backplane over Redis Streams (see the module). */
export class StreamsBackplane implements Backplane {
  readonly #settings: RedisSettings;
  readonly #origin = newOrigin();
  /** The origin in hex, the start of every fresh epoch this process makes. */
  readonly #originHex = [...this.#origin.subarray(0, 8)].map((byte) => byte.toString(16).padStart(2, "0"))
    .join("");
  readonly #topology: Topology;
  readonly #router: CommandRouter;
  readonly #counters: BackplaneCounters;
  readonly #subscriptions = new Map<string, Subscription>();
  /** Readers by unit: a slot on a cluster, {@linkcode ALL} on a standalone Redis. */
  readonly #readers = new Map<number, StreamReader>();
  /** Each subscription's reader unit. */
  readonly #units = new Map<Subscription, number>();
  #sha = "";
  /** Numbers this process's messages (and makes each fresh epoch unique). */
  #seq = 0;
  #deliver: ((topic: string, data: string | Uint8Array, position?: TopicPosition) => void) | null = null;
  /** What the readers are given of this backplane. */
  readonly #readerOwner: ReaderOwner;
  #closed = false;

  /** A streams backplane with `settings` (checked). */
  constructor(settings: RedisSettings) {
    this.#settings = settings;
    this.#counters = new BackplaneCounters(settings.onEvent);
    this.#topology = new Topology(settings.seeds, true);
    this.#router = new CommandRouter(this.#topology, settings, {
      role: "writer",
      resend: true,
      preamble: [LOAD_SCRIPT],
      limits: REPLY_LIMITS,
      servesWhileLoading: false,
      maxBytes: settings.maxBufferedBytes,
      events: this.#counters,
      mapChanged: () => this.#follow(),
    });
    this.#readerOwner = {
      sha: () => this.#sha,
      origin: this.#origin,
      ttl: settings.streamTtl,
      fresh: () => this.#fresh(),
      deliver: (topic, data, position) => {
        this.#counters.received++;
        this.#deliver!(topic, data, position);
      },
      unblock: (slot, id, answered) => {
        const bytes = encodeCommand(["CLIENT", "UNBLOCK", String(id)]);
        this.#router.send({
          slot,
          size: bytes.length,
          encode: () => bytes,
          done: answered,
          dropped: () => answered(null),
        });
      },
      moved: (slot, node) => this.#router.moved(slot, node),
      report: this.#counters.report,
      failed: (why) => {
        this.#counters.failed(why);
        this.#router.refresh();
      },
    };
  }

  attach(
    deliver: (topic: string, data: string | Uint8Array, position?: TopicPosition) => void,
    report: (event: BackplaneEvent) => void,
  ): void {
    this.#deliver = deliver;
    this.#counters.attach(report);
    void scriptSha().then((sha) => {
      this.#sha = sha;
      if (!this.#closed) this.#router.start();
    });
  }

  subscribe(topic: string): void {
    if (this.#subscriptions.has(topic)) return;
    const subscription = new Subscription(topic, this.#keys(topic));
    this.#subscriptions.set(topic, subscription);
    // Reading starts where the stream ends now, asked on the connection that `position` uses too:
    // a position taken after this subscribe is never before the first entry read.
    const start = (position: TopicPosition | null) => {
      subscription.starting = false;
      if (this.#subscriptions.get(topic) !== subscription) return;
      subscription.cursor ??= position?.offset ?? null;
      if (position !== null && subscription.epoch === "") subscription.epoch = position.epoch;
      this.#place(subscription);
    };
    this.position(topic).then(start, () => start(null));
  }

  unsubscribe(topic: string): void {
    const subscription = this.#subscriptions.get(topic);
    if (subscription === undefined) return;
    this.#subscriptions.delete(topic);
    const unit = this.#units.get(subscription);
    this.#units.delete(subscription);
    if (unit !== undefined) this.#readers.get(unit)?.remove(subscription);
  }

  publish(topic: string, data: string | Uint8Array): void {
    this.#append(topic, data, () => {}, () => {});
  }

  append(topic: string, data: string | Uint8Array): Promise<TopicPosition> {
    checkTopic(topic, "append");
    if (typeof data !== "string" && !(data instanceof Uint8Array)) {
      throw new TypeError(`append() takes a string or a Uint8Array, not ${typeof data}`);
    }
    return new Promise((resolve, reject) => this.#append(topic, data, resolve, reject));
  }

  position(topic: string): Promise<TopicPosition> {
    checkTopic(topic, "position");
    return this.#ask(
      topic,
      (keys, fresh) => positionCommand(this.#sha, keys, fresh, this.#settings.streamTtl),
      parsePosition,
    );
  }

  read(topic: string, since: TopicPosition, limit: number): Promise<HistoryPage> {
    checkTopic(topic, "read");
    if (typeof since !== "object" || since === null || typeof since.epoch !== "string") {
      throw new TypeError("read() takes a position { epoch, offset }, with the epoch as a string");
    }
    if (!isOffset(since.offset)) {
      throw new RangeError(
        `read() takes an offset "ms-seq" (as Redis writes them), got ${JSON.stringify(since.offset)}`,
      );
    }
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_READ) {
      throw new RangeError(`read() takes a limit from 1 to ${MAX_READ}, got ${limit}`);
    }
    const position = { epoch: since.epoch, offset: since.offset };
    return this.#ask(
      topic,
      (keys, fresh) => readCommand(this.#sha, keys, fresh, this.#settings.streamTtl, position, limit),
      (reply) => {
        const resent = new ResendFilter();
        return parseHistory(reply, (fields) => {
          const opened = openEntry(fields);
          return opened !== null && resent.admit(opened.origin, opened.seq, opened.resent)
            ? opened.data
            : null;
        });
      },
    );
  }

  stats(): BackplaneStats {
    let connected = this.#router.connected;
    let reconnects = this.#router.reconnects;
    for (const reader of this.#readers.values()) {
      connected &&= reader.connected;
      reconnects += reader.reconnects;
    }
    const state = this.#closed ? "closed" : connected ? "connected" : "connecting";
    return this.#counters.stats(state, reconnects, this.#router.bufferedBytes);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#router.settle();
    this.#router.close();
    for (const reader of this.#readers.values()) reader.shutdown();
    this.#readers.clear();
  }

  /** A fresh epoch, unique to this process and call. */
  #fresh(): string {
    return this.#originHex + (this.#seq++).toString(36);
  }

  #keys(topic: string): TopicKeys {
    return topicKeys(this.#settings.prefix, this.#settings.streamSlots, topic);
  }

  /**
   * Sends an append of `data` to `topic`, telling `resolve` its position (the stream's epoch, which
   * the topic's subscription then tells with the entries it reads, and its id) or `reject` why it
   * did not go.
   */
  #append(
    topic: string,
    data: string | Uint8Array,
    resolve: (position: TopicPosition) => void,
    reject: (error: Error) => void,
  ): void {
    const keys = this.#keys(topic);
    const { payload, binary } = payloadOf(data);
    const seq = this.#seq++;
    const fresh = this.#fresh();
    const { maxLen, streamTtl } = this.#settings;
    const counters = this.#counters;
    this.#router.send({
      slot: keys.slot,
      size: payload.length + 2 * keys.stream.length + COMMAND_OVERHEAD,
      encode: (resent) =>
        appendCommand(
          this.#sha,
          keys,
          fresh,
          streamTtl,
          maxLen,
          envelope(payload, binary, this.#origin, seq, resent),
        ),
      done: (reply) => {
        const position = reply instanceof RespError ? null : parsePosition(reply);
        if (position === null) {
          const error = reply instanceof RespError ? reply : new RespError("a reply that is no position");
          counters.refused("writer", error);
          return reject(new Error(`Redis refused the message: ${error.message}`));
        }
        counters.published++;
        const subscription = this.#subscriptions.get(topic);
        if (subscription !== undefined) subscription.epoch = position.epoch;
        resolve(position);
      },
      dropped: (why) => {
        if (why === "limit") counters.dropped++;
        reject(dropError(why));
      },
    });
  }

  /** Sends a script command for `topic` and resolves with its parsed reply. */
  #ask<T>(
    topic: string,
    build: (keys: TopicKeys, fresh: string) => Uint8Array,
    parse: (reply: RespValue) => T | null,
  ): Promise<T> {
    const keys = this.#keys(topic);
    const fresh = this.#fresh();
    return new Promise((resolve, reject) => {
      const command: Command = {
        slot: keys.slot,
        size: 2 * keys.stream.length + COMMAND_OVERHEAD,
        encode: () => build(keys, fresh),
        done: (reply) => {
          if (reply instanceof RespError) {
            return reject(new Error(`Redis refused the command: ${reply.message}`));
          }
          const value = parse(reply);
          if (value === null) return reject(new Error("Redis answered with garbage"));
          resolve(value);
        },
        dropped: (why) => reject(dropError(why)),
      };
      this.#router.send(command);
    });
  }

  /** The reader unit of `subscription`: its slot on a cluster, one for all on a standalone Redis. */
  #unitOf(subscription: Subscription): number {
    return this.#topology.standalone ? ALL : subscription.keys.slot;
  }

  /** Hands `subscription` to the reader of its unit (once the map is known). */
  #place(subscription: Subscription): void {
    if (!this.#topology.known || this.#closed || subscription.starting) return;
    const unit = this.#unitOf(subscription);
    const at = this.#units.get(subscription);
    if (at === unit) return;
    if (at !== undefined) this.#readers.get(at)?.remove(subscription);
    this.#units.set(subscription, unit);
    let reader = this.#readers.get(unit);
    if (reader === undefined) {
      const slot = subscription.keys.slot;
      reader = new StreamReader(
        this.#settings,
        slot,
        () => this.#topology.address(this.#nodeOf(slot)),
        this.#readerOwner,
      );
      this.#readers.set(unit, reader);
    }
    reader.add(subscription);
  }

  /** The node a reader of `slot` reads from: its owner, or a seed while none is known. */
  #nodeOf(slot: number): string {
    return this.#topology.nodeFor(slot) ?? SEEDS;
  }

  /** The map is known or changed: each subscription to its unit's reader, each reader to its node. */
  #follow(): void {
    for (const subscription of this.#subscriptions.values()) this.#place(subscription);
    for (const reader of this.#readers.values()) {
      const address = reader.address;
      const node = this.#nodeOf(reader.slot);
      if (address !== null && addressText(address) !== node) reader.reconnect(`its slot moved to ${node}`);
    }
  }
}

/** The error an append or a command rejects with when it could not go. */
function dropError(why: DropReason): Error {
  return new Error(
    why === "limit"
      ? "too many bytes wait for Redis (maxBufferedBytes)"
      : why === "closed"
      ? "the backplane is closed"
      : "the connection to Redis was lost",
  );
}
