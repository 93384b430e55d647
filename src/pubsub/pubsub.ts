/**
 * Publish/subscribe: which subscribers listen on which topic, and publishing to them. It knows
 * subscribers only through {@linkcode Subscriber}, never as sockets, and runs no user code.
 * @module
 */

import { type MessageData, ReadyState, type Recovery, type SendStatus, type TopicPosition } from "../api.ts";
import { messageBytes, messageFrame, messageOpcode } from "../message.ts";
import type { ResolvedValues } from "../options.ts";
import type { Backplane, BackplaneEvent } from "./backplane.ts";
import { Histories } from "./history.ts";
import { CatchUps, keepsHistory, type StreamHistory } from "./stream_recovery.ts";

/** What publishing needs of a subscriber. */
export interface Subscriber {
  /** A `ReadyState` value: only open subscribers are sent to. */
  readonly readyState: number;
  /**
   * The window bits a message of `length` bytes is compressed with for it, 0 for none, or
   * `OWN_CONTEXT` (-1) when it compresses in a context of its own (then it gets `sendOwn`).
   */
  compressionBits(length: number): number;
  /** Compresses a message in its own context and queues it (a frame no one else sends). */
  sendOwn(opcode: number, payload: Uint8Array, data: MessageData): SendStatus;
  /** Sends a message to this subscriber alone (a missed message, on recovery). */
  send(data: MessageData): SendStatus;
  /**
   * Queues an encoded frame that other subscribers send too (so it must not change it);
   * `length` is the message's payload before compression, `data` the message as published.
   */
  sendShared(frame: Uint8Array, length: number, data: MessageData): SendStatus;
}

/**
 * A server's topics: each maps to its subscribers (a topic with none takes no memory), and a
 * publish encodes its message once per kind of subscriber. With a {@linkcode Backplane}, topics
 * span processes: the backplane hears of the first and last subscriber of each topic here, takes
 * every publish to the other processes, and brings theirs.
 */
export class PubSub<S extends Subscriber> {
  /** The server's resolved options: the compression level of publishes, the history's envelope. */
  readonly #settings: Readonly<Pick<ResolvedValues, "perMessageDeflate" | "history">>;
  /** The topics' history in this process, with the `history` option and no backplane that keeps one. */
  readonly #histories: Histories | null;
  /** With the `history` option, a backplane that keeps each topic's history in a stream (or null). */
  readonly #streams: StreamHistory | null;
  /** Subscribers recovering from the streams, and what waits for them meanwhile. */
  readonly #catchUps = new CatchUps<S>();
  readonly #topics = new Map<string, Set<S>>();
  readonly #backplane: Backplane | null;
  readonly #report: (event: BackplaneEvent) => void;

  /**
   * Topics whose messages are compressed as `settings` say for subscribers that agreed to it,
   * spanning processes through `backplane` when there is one, which tells `report` what happens
   * to it.
   */
  constructor(
    settings: Readonly<Pick<ResolvedValues, "perMessageDeflate" | "history">>,
    backplane: Backplane | null,
    report: (event: BackplaneEvent) => void,
  ) {
    this.#settings = settings;
    this.#streams = settings.history !== null && keepsHistory(backplane) ? backplane : null;
    this.#histories = settings.history === null || this.#streams !== null
      ? null
      : new Histories(settings.history);
    this.#backplane = backplane;
    this.#report = report;
    backplane?.attach((topic, data, at) => this.#deliverSafely(topic, data, null, at ?? null), report);
  }

  /** Delivers, telling a failure of the history's envelope (app code) to `report`: that message is lost here. */
  #deliverSafely(topic: string, data: MessageData, except: S | null, at: TopicPosition | null): number {
    try {
      return this.#deliver(topic, data, except, at);
    } catch (error) {
      this.#report({
        type: "error",
        message: `a message of topic ${JSON.stringify(topic)} could not be delivered: ${error}`,
      });
      return 0;
    }
  }

  /** Adds `subscriber` to `topic`. */
  subscribe(topic: string, subscriber: S): void {
    let subscribers = this.#topics.get(topic);
    if (subscribers === undefined) {
      this.#topics.set(topic, subscribers = new Set());
      this.#backplane?.subscribe(topic);
    }
    subscribers.add(subscriber);
  }

  /** Removes `subscriber` from `topic`, forgetting the topic once it is empty. */
  unsubscribe(topic: string, subscriber: S): void {
    const subscribers = this.#topics.get(topic);
    if (subscribers === undefined) return;
    subscribers.delete(subscriber);
    if (subscribers.size > 0) return;
    this.#topics.delete(topic);
    this.#histories?.idle(topic);
    this.#backplane?.unsubscribe(topic);
  }

  /** The latest position of `topic`'s history; a `TypeError` without the `history` option. */
  position(topic: string): Promise<TopicPosition> {
    checkTopic(topic, "position");
    if (this.#streams !== null) return this.#streams.position(topic);
    if (this.#histories === null) {
      return Promise.reject(new TypeError('position() needs the "history" option of serve()'));
    }
    return Promise.resolve(this.#histories.position(topic));
  }

  /** The kept messages and bytes of the history, or null without one. */
  historyStats(): { topics: number; messages: number; bytes: number } | null {
    return this.#histories?.stats() ?? null;
  }

  /**
   * Sends `subscriber` what it missed of `topic` since `since` (nothing for null: it joins now),
   * before any later publish; it must be subscribed already (in this process's history, in the
   * same turn). A `TypeError` without the `history` option.
   */
  recover(topic: string, since: TopicPosition | null, subscriber: S): Promise<Recovery> {
    const streams = this.#streams;
    if (streams !== null) {
      if (since === null) {
        return streams.position(topic).then((position) => ({ recovered: true, replayed: 0, position }));
      }
      const envelope = this.#settings.history!.envelope;
      return this.#catchUps.recover(
        streams,
        topic,
        since,
        subscriber,
        envelope === null ? (data) => data : (data, at) => envelope(data, at, topic),
      );
    }
    return Promise.resolve(this.#recoverHere(topic, since, subscriber));
  }

  /** {@linkcode PubSub.recover} from this process's own history. */
  #recoverHere(topic: string, since: TopicPosition | null, subscriber: S): Recovery {
    const histories = this.#histories;
    if (histories === null) throw new TypeError('recover() needs the "history" option of serve()');
    let replayed = 0;
    if (since !== null) {
      const found = histories.since(topic, since);
      if ("gap" in found) {
        return { recovered: false, replayed, position: histories.position(topic), reason: found.gap };
      }
      for (const entry of found.entries) if (subscriber.send(entry.data) !== "dropped") replayed++;
    }
    return { recovered: true, replayed, position: histories.position(topic) };
  }

  /** How many subscribe to `topic` in this process. */
  count(topic: string): number {
    return this.#topics.get(topic)?.size ?? 0;
  }

  /**
   * Sends `data` to every open subscriber of `topic` except `except`: here at once, and through
   * the backplane to the other processes. Returns how many subscribers of this process it was
   * queued for.
   */
  publish(topic: string, data: MessageData, except: S | null): number {
    checkTopic(topic, "publish");
    const backplane = this.#backplane;
    if (backplane === null) return this.#deliver(topic, data, except, null);
    // The backplane keeps what it is given, so bytes are copied: the caller may reuse its buffer.
    const carried = typeof data === "string" ? data : messageBytes(data, "publish").slice();
    const streams = this.#streams;
    if (streams === null) {
      backplane.publish(topic, carried);
      return this.#deliver(topic, carried, except, null);
    }
    // The message's position comes from the stream: it is delivered here once the stream has it.
    streams.append(topic, carried).then(
      (at) => this.#deliverSafely(topic, carried, except, at),
      (error) =>
        this.#report({ type: "error", message: `a publish to ${JSON.stringify(topic)} was lost: ${error}` }),
    );
    let count = 0;
    for (const subscriber of this.#topics.get(topic) ?? []) {
      if (subscriber !== except && subscriber.readyState === ReadyState.OPEN) count++;
    }
    return count;
  }

  /**
   * Queues `data` for this process's open subscribers of `topic` except `except`, encoding it
   * once per kind of subscriber (uncompressed, or compressed with a given window): subscribers of
   * a kind all queue the same frame bytes.
   */
  #deliver(topic: string, data: MessageData, except: S | null, at: TopicPosition | null): number {
    const history = this.#settings.history;
    let payload: Uint8Array;
    if (history === null) {
      payload = messageBytes(data, "publish");
    } else {
      // Kept whether or not this process has subscribers: a client may come back to recover it.
      const histories = this.#histories;
      const position = at ?? histories!.next(topic);
      const envelope = history.envelope;
      if (envelope !== null) {
        data = envelope(typeof data === "string" ? data : messageBytes(data, "publish"), position, topic);
      }
      payload = messageBytes(data, "publish");
      if (histories !== null) {
        histories.keep(topic, position, typeof data === "string" ? data : payload.slice(), payload.length);
      }
      at = position;
    }
    const subscribers = this.#topics.get(topic);
    if (subscribers === undefined) return 0;
    const catchUps = this.#catchUps.active ? this.#catchUps : null;
    const opcode = messageOpcode(data);
    // Frames by window bits; index 0 is the uncompressed frame.
    const frames: Uint8Array[] = [];
    let count = 0;
    for (const subscriber of subscribers) {
      if (subscriber === except || subscriber.readyState !== ReadyState.OPEN) continue;
      // A subscriber recovering from the stream gets this once it has caught up.
      if (catchUps !== null && catchUps.hold(subscriber, topic, at!.offset, data)) continue;
      const bits = subscriber.compressionBits(payload.length);
      if (bits < 0) {
        if (subscriber.sendOwn(opcode, payload, data) !== "dropped") count++;
        continue;
      }
      // (A subscriber compresses only when permessage-deflate is on, so then the settings are there.)
      const frame = frames[bits] ??= messageFrame(
        opcode,
        payload,
        bits,
        this.#settings.perMessageDeflate?.level ?? 0,
      );
      // A subscriber past its backlog limit is dropped here; the others are not held up.
      if (subscriber.sendShared(frame, payload.length, data) !== "dropped") count++;
    }
    return count;
  }
}

/** Throws a `TypeError` unless `topic` is a string. */
export function checkTopic(topic: unknown, method: string): void {
  if (typeof topic !== "string") {
    throw new TypeError(`${method}() takes the topic as a string, not ${typeof topic}`);
  }
}
