/**
 * Publish/subscribe: which sockets listen on which topic, and publishing to them.
 * @module
 */

import type { Connection } from "./connection.ts";
import { type CompressionSettings, messageBytes, messageFrame, messageOpcode } from "./message.ts";
import { type MessageData, ReadyState } from "./server_websocket.ts";

/** Maps each topic to its subscribers; a topic with no subscribers takes no memory. */
export class TopicRegistry<S> {
  #topics = new Map<string, Set<S>>();

  /** Adds `subscriber` to `topic`. */
  add(topic: string, subscriber: S): void {
    let subscribers = this.#topics.get(topic);
    if (subscribers === undefined) this.#topics.set(topic, subscribers = new Set());
    subscribers.add(subscriber);
  }

  /** Removes `subscriber` from `topic`, forgetting the topic once it is empty. */
  remove(topic: string, subscriber: S): void {
    const subscribers = this.#topics.get(topic);
    if (subscribers === undefined) return;
    subscribers.delete(subscriber);
    if (subscribers.size === 0) this.#topics.delete(topic);
  }

  /** The subscribers of `topic`, or `undefined` when it has none. */
  subscribers(topic: string): ReadonlySet<S> | undefined {
    return this.#topics.get(topic);
  }

  /** How many subscribe to `topic`. */
  count(topic: string): number {
    return this.#topics.get(topic)?.size ?? 0;
  }
}

/**
 * Sends `data` to every open subscriber of `topic` except `except`, encoding it once per kind of
 * subscriber (uncompressed, or compressed with a given window): subscribers of a kind all queue
 * the same frame bytes. Returns how many sockets it was queued for.
 */
export function publish<T>(
  topics: TopicRegistry<Connection<T>>,
  topic: string,
  data: MessageData,
  except: Connection<T> | null,
  compression: CompressionSettings,
): number {
  checkTopic(topic, "publish");
  const subscribers = topics.subscribers(topic);
  if (subscribers === undefined) return 0;
  const payload = messageBytes(data, "publish");
  const opcode = messageOpcode(data);
  // Frames by window bits; index 0 is the uncompressed frame.
  const frames: Uint8Array[] = [];
  let count = 0;
  for (const subscriber of subscribers) {
    if (subscriber === except || subscriber.readyState !== ReadyState.OPEN) continue;
    const bits = subscriber.compressionBits(payload.length);
    const frame = frames[bits] ??= messageFrame(opcode, payload, bits, compression.level);
    // A subscriber past its backlog limit is dropped here; the others are not held up.
    if (subscriber.sendShared(frame) !== "dropped") count++;
  }
  return count;
}

/** Throws a `TypeError` unless `topic` is a string. */
export function checkTopic(topic: unknown, method: string): void {
  if (typeof topic !== "string") {
    throw new TypeError(`${method}() takes the topic as a string, not ${typeof topic}`);
  }
}
