/**
 * Reading topics' streams on from where this process left off: one connection, one blocking
 * `XREAD` over all its topics at a time, each from the id of the last entry handled. A change of
 * the set read interrupts the read in progress (`CLIENT UNBLOCK` from another connection) instead
 * of waiting for it to time out.
 * @module
 */

import type { TopicPosition } from "../api.ts";
import type { BackplaneEvent } from "./backplane.ts";
import { parseRedirect } from "./cluster.ts";
import { type Opened, sameBytes } from "./envelope.ts";
import { compareOffsets, FIRST_OFFSET } from "./offset.ts";
import { type Address, type LinkSettings, RedisLink } from "./redis_link.ts";
import { ResendFilter } from "./resend_filter.ts";
import { encodeCommand, RespError, respText, type RespValue } from "./resp.ts";
import { LOAD_SCRIPT, openEntry, parsePosition, positionCommand, type TopicKeys } from "./stream_script.ts";

/** A topic this process reads. */
export class Subscription {
  /** The id of the last entry handled, or null until Redis has said where the stream ends. */
  cursor: string | null = null;
  /** Whether the cursor was checked against the stream on the reader's current connection. */
  checked = false;
  /** Whether where its stream ends is still being asked for (it is read only once that is known). */
  starting = true;
  /**
   * The stream's epoch as last heard (where reading started, or this process's last append), told
   * with each delivered entry; "" until known.
   */
  epoch = "";
  /** Second copies of messages sent again, to skip. */
  readonly resent = new ResendFilter();

  /** The subscription of `topic`, whose keys are `keys`. */
  constructor(readonly topic: string, readonly keys: TopicKeys) {}
}

/** What a reader needs of the backplane that owns it. */
export interface ReaderOwner {
  /** The script's SHA-1 (known before any connection is made). */
  sha(): string;
  /** This process's id: its own messages are not delivered again. */
  readonly origin: Uint8Array;
  /** The keys' time to live after an append (for a position that makes an epoch). */
  readonly ttl: number;
  /** A fresh epoch, in case the script must make one. */
  fresh(): string;
  /** A message of another process, at its position in the topic's stream. */
  deliver(topic: string, data: string | Uint8Array, position: TopicPosition): void;
  /** Sends `CLIENT UNBLOCK id` to the node of `slot`, giving the reply (null when it could not go). */
  unblock(slot: number, id: number, answered: (reply: RespValue) => void): void;
  /** A `MOVED` seen by the reader: `slot` is `node`'s now. */
  moved(slot: number, node: Address): void;
  /** Events, as a link's owner reports them. */
  report(event: BackplaneEvent): void;
  /** A connection failure (counted). */
  failed(why: string): void;
}

/** Entries per stream one `XREAD` may return (so a reply's size is bounded by the topics read). */
const COUNT = "100";
/** The most a reply may announce (an XREAD reply nests five deep: streams, stream, entries, entry, fields). */
const REPLY_LIMITS = { maxBulkLength: 64 * 1024 * 1024, maxElements: 1 << 20, maxDepth: 5 };
const CLIENT_ID = encodeCommand(["CLIENT", "ID"]);
/** How soon an unblock that came before the read it was for is tried again. */
const UNBLOCK_AGAIN_MS = 2;

/** Reads the streams of the topics of one slot (or of every topic, on a standalone Redis). */
export class StreamReader {
  /** The slot whose node it reads from (any slot of the node, on a standalone Redis). */
  readonly slot: number;
  readonly #settings: LinkSettings;
  readonly #owner: ReaderOwner;
  readonly #link: RedisLink;
  /** The topics read, by stream name. */
  readonly #subscriptions = new Map<string, Subscription>();
  /** This connection's id, for `CLIENT UNBLOCK`. */
  #clientId: number | null = null;
  /** Bumped at every change of the set read. */
  #version = 0;
  /** The version the `XREAD` in flight was written at, or -1 when none is. */
  #reading = -1;
  /** Positions asked and not yet answered. */
  #checking = 0;
  /** Whether an unblock is in flight (or about to be tried again). */
  #unblocking = false;
  #timer: unknown = undefined;
  /** Milliseconds an `XREAD` blocks: half the ping interval, so that a blocked connection is still heard from. */
  readonly #block: string;

  /** A reader for `slot`, connecting where `target` says (asked at every attempt). */
  constructor(settings: LinkSettings, slot: number, target: () => Address, owner: ReaderOwner) {
    this.slot = slot;
    this.#settings = settings;
    this.#owner = owner;
    this.#block = String(settings.pingInterval > 0 ? Math.max(1, Math.floor(settings.pingInterval / 2)) : 0);
    this.#link = new RedisLink(settings, {
      role: "reader",
      target,
      pushes: false,
      limits: REPLY_LIMITS,
      servesWhileLoading: false,
    }, {
      ready: () => this.#ready(),
      down: () => this.#down(),
      report: owner.report,
      failed: owner.failed,
    });
    void this.#link.open();
  }

  /** Whether its connection is up. */
  get connected(): boolean {
    return this.#link.connected;
  }

  /** Its connection's reconnections. */
  get reconnects(): number {
    return this.#link.reconnects;
  }

  /** Where its connection goes now, or null. */
  get address(): Address | null {
    return this.#link.address;
  }

  /**
   * Reads `subscription` on from its cursor (a cursor just read from Redis needs no check), or
   * from where its stream ends now when it has none.
   */
  add(subscription: Subscription): void {
    subscription.checked = subscription.cursor !== null;
    this.#subscriptions.set(subscription.keys.name, subscription);
    this.#changed();
  }

  /** Stops reading `subscription`. */
  remove(subscription: Subscription): void {
    if (this.#subscriptions.get(subscription.keys.name) !== subscription) return;
    this.#subscriptions.delete(subscription.keys.name);
    this.#changed();
  }

  /** Reconnects (to wherever `target` says now), for `why`. */
  reconnect(why: string): void {
    this.#link.drop(why);
  }

  /** Stops for good. */
  shutdown(): void {
    this.#settings.clock.clearTimeout(this.#timer);
    this.#link.shutdown();
  }

  /** The set read changed: the read in flight is interrupted, and the next one reads the new set. */
  #changed(): void {
    this.#version++;
    this.#unblock();
    this.#next();
  }

  /** Connected: loads the script, learns its id, checks every cursor, then reads. */
  #ready(): void {
    const link = this.#link;
    link.write(LOAD_SCRIPT, (reply) => {
      if (reply instanceof RespError) this.#refused(reply);
    });
    link.write(CLIENT_ID, (reply) => {
      if (typeof reply === "number") this.#clientId = reply;
    });
    for (const subscription of this.#subscriptions.values()) subscription.checked = false;
    this.#next();
  }

  #down(): void {
    this.#settings.clock.clearTimeout(this.#timer);
    this.#unblocking = false;
    this.#clientId = null;
    this.#reading = -1;
    this.#checking = 0;
  }

  /** Asks where the streams not checked yet end, or else reads every stream. */
  #next(): void {
    const link = this.#link;
    if (!link.connected || this.#reading >= 0 || this.#checking > 0) return;
    const sha = this.#owner.sha(), ttl = this.#owner.ttl;
    const subscriptions = [...this.#subscriptions.values()];
    const unchecked = subscriptions.filter((subscription) => !subscription.checked);
    if (unchecked.length > 0) {
      this.#checking = unchecked.length;
      for (const subscription of unchecked) {
        const command = positionCommand(sha, subscription.keys, this.#owner.fresh(), ttl);
        link.write(command, (reply) => this.#checked(subscription, reply));
      }
      return;
    }
    if (subscriptions.length === 0) return;
    this.#reading = this.#version;
    link.write(
      encodeCommand([
        "XREAD",
        "COUNT",
        COUNT,
        "BLOCK",
        this.#block,
        "STREAMS",
        ...subscriptions.map((subscription) => subscription.keys.stream),
        ...subscriptions.map((subscription) => subscription.cursor!),
      ]),
      (reply) => this.#read(reply),
    );
  }

  /**
   * Where a stream ends now: a new subscription reads on from there. A known cursor past it means
   * that the stream is not the one read before (Redis lost it): the new one is read from its start.
   */
  #checked(subscription: Subscription, reply: RespValue): void {
    this.#checking--;
    if (reply instanceof RespError) return this.#refused(reply);
    const position = parsePosition(reply);
    if (position === null) return this.#link.drop("Redis answered a position with garbage");
    if (this.#subscriptions.get(subscription.keys.name) === subscription) {
      const cursor = subscription.cursor;
      if (cursor === null) {
        subscription.cursor = position.offset;
      } else if (compareOffsets(position.offset, cursor) < 0) {
        this.#owner.report({
          type: "error",
          message: `the stream of topic ${JSON.stringify(subscription.topic)} ends before ${cursor}, ` +
            `the last entry read: Redis lost it, so its new stream is read from the start`,
        });
        subscription.cursor = FIRST_OFFSET;
      }
      subscription.checked = true;
    }
    if (this.#checking === 0) this.#next();
  }

  /** What an `XREAD` brought: each other process's new message is delivered, once. */
  #read(reply: RespValue): void {
    this.#reading = -1;
    if (reply instanceof RespError) return this.#refused(reply);
    if (reply !== null && !this.#deliver(reply)) return this.#link.drop("Redis answered XREAD with garbage");
    this.#next();
  }

  /** Delivers the entries of an `XREAD` reply; false when it is not one. */
  #deliver(reply: RespValue): boolean {
    if (!Array.isArray(reply)) return false;
    const owner = this.#owner;
    for (const stream of reply) {
      if (!Array.isArray(stream) || stream.length !== 2 || !Array.isArray(stream[1])) return false;
      const name = respText(stream[0]);
      const subscription = name === null ? undefined : this.#subscriptions.get(name);
      for (const entry of stream[1]) {
        const id = Array.isArray(entry) && entry.length === 2 ? respText(entry[0]) : null;
        if (id === null) return false;
        // Not read any more, or read anew since this read was written.
        if (subscription === undefined || subscription.cursor === null) continue;
        if (compareOffsets(id, subscription.cursor) <= 0) continue;
        subscription.cursor = id;
        const opened: Opened | null = openEntry((entry as RespValue[])[1]);
        if (opened === null) {
          owner.report({
            type: "error",
            message: `an entry of topic ${JSON.stringify(subscription.topic)} is not Wisp's`,
          });
          continue;
        }
        if (sameBytes(opened.origin, owner.origin)) continue; // our own, delivered already
        if (!subscription.resent.admit(opened.origin, opened.seq, opened.resent)) continue;
        owner.deliver(subscription.topic, opened.data, { epoch: subscription.epoch, offset: id });
      }
    }
    return true;
  }

  /** Redis refused a command: a redirect tells the owner; either way the reader connects again. */
  #refused(error: RespError): void {
    const redirect = parseRedirect(error);
    if (redirect !== null) this.#owner.moved(redirect.slot, redirect.node);
    this.#link.drop(`Redis refused the reader: ${error.message}`);
  }

  /**
   * Interrupts the `XREAD` in flight when it reads an older set. An unblock answered 0 came before
   * that read blocked (or after it returned): it is tried again shortly, until the read returns.
   */
  #unblock(): void {
    if (this.#unblocking || this.#reading < 0 || this.#reading === this.#version || this.#clientId === null) {
      return;
    }
    this.#unblocking = true;
    const reading = this.#reading;
    this.#owner.unblock(this.slot, this.#clientId, (reply) => {
      this.#unblocking = false;
      if (this.#reading !== reading) return this.#unblock(); // a later read may be stale too
      if (reply !== 0) return; // interrupted (1), or the unblock could not go: the read times out
      this.#unblocking = true;
      this.#timer = this.#settings.clock.setTimeout(() => {
        this.#unblocking = false;
        this.#unblock();
      }, UNBLOCK_AGAIN_MS);
    });
  }
}
