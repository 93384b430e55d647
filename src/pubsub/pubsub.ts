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

/** What publishing needs of a subscriber. */
export interface Subscriber {
  /** A `ReadyState` value: only open subscribers are sent to. */
  readonly readyState: number;
  /** The window bits a message of `length` bytes is compressed with for it, or 0 for none. */
  compressionBits(length: number): number;
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
  /** The topics' history, with the `history` option. */
  readonly #histories: Histories | null;
  readonly #topics = new Map<string, Set<S>>();
  readonly #backplane: Backplane | null;

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
    this.#histories = settings.history === null ? null : new Histories(settings.history);
    this.#backplane = backplane;
    backplane?.attach((topic, data) => {
      try {
        this.#deliver(topic, data, null);
      } catch (error) {
        // The history's envelope threw (app code): this message is lost here, the backplane goes on.
        report({
          type: "error",
          message: `a message of topic ${JSON.stringify(topic)} could not be delivered: ${error}`,
        });
      }
    }, report);
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
  position(topic: string): TopicPosition {
    checkTopic(topic, "position");
    if (this.#histories === null) throw new TypeError('position() needs the "history" option of serve()');
    return this.#histories.position(topic);
  }

  /** The kept messages and bytes of the history, or null without one. */
  historyStats(): { topics: number; messages: number; bytes: number } | null {
    return this.#histories?.stats() ?? null;
  }

  /**
   * Sends `subscriber` what it missed of `topic` since `since` (nothing for null: it joins now),
   * before any later publish; it must subscribe in the same turn. A `TypeError` without the
   * `history` option.
   */
  recover(topic: string, since: TopicPosition | null, subscriber: S): Recovery {
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
    if (backplane === null) return this.#deliver(topic, data, except);
    // The backplane keeps what it is given, so bytes are copied: the caller may reuse its buffer.
    const carried = typeof data === "string" ? data : messageBytes(data, "publish").slice();
    backplane.publish(topic, carried);
    return this.#deliver(topic, carried, except);
  }

  /**
   * Queues `data` for this process's open subscribers of `topic` except `except`, encoding it
   * once per kind of subscriber (uncompressed, or compressed with a given window): subscribers of
   * a kind all queue the same frame bytes.
   */
  #deliver(topic: string, data: MessageData, except: S | null): number {
    const histories = this.#histories;
    let payload: Uint8Array;
    if (histories === null) {
      payload = messageBytes(data, "publish");
    } else {
      // Kept whether or not this process has subscribers: a client may come back to recover it.
      const position = histories.next(topic);
      const envelope = this.#settings.history!.envelope;
      if (envelope !== null) {
        data = envelope(typeof data === "string" ? data : messageBytes(data, "publish"), position, topic);
      }
      payload = messageBytes(data, "publish");
      histories.keep(topic, position, typeof data === "string" ? data : payload.slice(), payload.length);
    }
    const subscribers = this.#topics.get(topic);
    if (subscribers === undefined) return 0;
    const opcode = messageOpcode(data);
    // Frames by window bits; index 0 is the uncompressed frame.
    const frames: Uint8Array[] = [];
    let count = 0;
    for (const subscriber of subscribers) {
      if (subscriber === except || subscriber.readyState !== ReadyState.OPEN) continue;
      const bits = subscriber.compressionBits(payload.length);
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
