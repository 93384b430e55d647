/**
 * Publish/subscribe: which subscribers listen on which topic, and publishing to them. It knows
 * subscribers only through {@linkcode Subscriber}, never as sockets, and runs no user code.
 * @module
 */

import { type MessageData, ReadyState, type SendStatus } from "../api.ts";
import { type CompressionSettings, messageBytes, messageFrame, messageOpcode } from "../message.ts";

/** What publishing needs of a subscriber. */
export interface Subscriber {
  /** A `ReadyState` value: only open subscribers are sent to. */
  readonly readyState: number;
  /** The window bits a message of `length` bytes is compressed with for it, or 0 for none. */
  compressionBits(length: number): number;
  /** Queues an encoded frame that other subscribers send too (so it must not change it). */
  sendShared(frame: Uint8Array): SendStatus;
}

/**
 * A server's topics: each maps to its subscribers (a topic with none takes no memory), and a
 * publish encodes its message once per kind of subscriber.
 */
export class PubSub<S extends Subscriber> {
  /** The server's compression settings, for publishes and for each socket's own sends. */
  readonly compression: CompressionSettings;
  readonly #topics = new Map<string, Set<S>>();

  /** Topics whose messages are compressed with `compression` for subscribers that agreed to it. */
  constructor(compression: CompressionSettings) {
    this.compression = compression;
  }

  /** Adds `subscriber` to `topic`. */
  subscribe(topic: string, subscriber: S): void {
    let subscribers = this.#topics.get(topic);
    if (subscribers === undefined) this.#topics.set(topic, subscribers = new Set());
    subscribers.add(subscriber);
  }

  /** Removes `subscriber` from `topic`, forgetting the topic once it is empty. */
  unsubscribe(topic: string, subscriber: S): void {
    const subscribers = this.#topics.get(topic);
    if (subscribers === undefined) return;
    subscribers.delete(subscriber);
    if (subscribers.size === 0) this.#topics.delete(topic);
  }

  /** How many subscribe to `topic`. */
  count(topic: string): number {
    return this.#topics.get(topic)?.size ?? 0;
  }

  /**
   * Sends `data` to every open subscriber of `topic` except `except`, encoding it once per kind
   * of subscriber (uncompressed, or compressed with a given window): subscribers of a kind all
   * queue the same frame bytes. Returns how many it was queued for.
   */
  publish(topic: string, data: MessageData, except: S | null): number {
    checkTopic(topic, "publish");
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
      const frame = frames[bits] ??= messageFrame(opcode, payload, bits, this.compression.level);
      // A subscriber past its backlog limit is dropped here; the others are not held up.
      if (subscriber.sendShared(frame) !== "dropped") count++;
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
