/**
 * One socket's topic membership: the topics it subscribes to, kept in step with the server's
 * {@linkcode PubSub}. Made on a socket's first subscription (most sockets of a server never
 * subscribe, and pay nothing for it).
 * @module
 */

import type { PubSub, Subscriber } from "./pubsub.ts";

/** The topics of one subscriber. */
export class Subscriptions<S extends Subscriber> {
  readonly #topics = new Set<string>();
  readonly #pubsub: PubSub<S>;
  readonly #subscriber: S;

  /** The memberships of `subscriber` in `pubsub`'s topics. */
  constructor(pubsub: PubSub<S>, subscriber: S) {
    this.#pubsub = pubsub;
    this.#subscriber = subscriber;
  }

  /** Joins `topic` (nothing happens when it is a member already). */
  add(topic: string): void {
    if (this.#topics.has(topic)) return;
    this.#topics.add(topic);
    this.#pubsub.subscribe(topic, this.#subscriber);
  }

  /** Leaves `topic`. */
  delete(topic: string): void {
    if (this.#topics.delete(topic)) this.#pubsub.unsubscribe(topic, this.#subscriber);
  }

  /** Whether it is a member of `topic`. */
  has(topic: string): boolean {
    return this.#topics.has(topic);
  }

  /** Its topics (a copy). */
  list(): string[] {
    return [...this.#topics];
  }

  /** Leaves every topic (the socket is closing). */
  clear(): void {
    for (const topic of this.#topics) this.#pubsub.unsubscribe(topic, this.#subscriber);
    this.#topics.clear();
  }
}
