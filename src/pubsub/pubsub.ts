/**
 * Publish/subscribe: which subscribers listen on which topic, and publishing to them. It knows
 * subscribers only through {@linkcode Subscriber}, never as sockets, and runs no user code.
 * @module
 */

import { type MessageData, ReadyState, type SendStatus } from "../api.ts";
import { messageBytes, messageFrame, messageOpcode } from "../message.ts";
import type { ResolvedValues } from "../options.ts";
import type { Backplane, BackplaneEvent } from "./backplane.ts";

/** What publishing needs of a subscriber. */
export interface Subscriber {
  /** A `ReadyState` value: only open subscribers are sent to. */
  readonly readyState: number;
  /** The window bits a message of `length` bytes is compressed with for it, or 0 for none. */
  compressionBits(length: number): number;
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
  /** The server's resolved options: the compression level of publishes. */
  readonly #settings: Readonly<Pick<ResolvedValues, "perMessageDeflate">>;
  readonly #topics = new Map<string, Set<S>>();
  readonly #backplane: Backplane | null;

  /**
   * Topics whose messages are compressed as `settings` say for subscribers that agreed to it,
   * spanning processes through `backplane` when there is one, which tells `report` what happens
   * to it.
   */
  constructor(
    settings: Readonly<Pick<ResolvedValues, "perMessageDeflate">>,
    backplane: Backplane | null,
    report: (event: BackplaneEvent) => void,
  ) {
    this.#settings = settings;
    this.#backplane = backplane;
    backplane?.attach((topic, data) => this.#deliver(topic, data, null), report);
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
    this.#backplane?.unsubscribe(topic);
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
    const subscribers = this.#topics.get(topic);
    if (subscribers === undefined) return 0;
    const payload = messageBytes(data, "publish");
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
