/**
 * Publish/subscribe bookkeeping: which sockets listen on which topic.
 * @module
 */

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
