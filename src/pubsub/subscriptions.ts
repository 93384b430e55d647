/**
 * One socket's topic membership: the topics it subscribes to, kept in step with the server's
 * {@linkcode PubSub}. Made on a socket's first subscription (most sockets of a server never
 * subscribe, and pay nothing for it); a socket of one topic, the usual case, keeps it without a
 * `Set` (which costs JavaScriptCore hundreds of bytes a socket).
 * @module
 */

import type { PubSub, Subscriber } from "./pubsub.ts";

/** The topics of one subscriber. */
export class Subscriptions<S extends Subscriber> {
  /** Its only topic, or null (none, or more than one: then `#topics` has them). */
  #topic: string | null = null;
  /** Its topics when it has more than one, else null. */
  #topics: Set<string> | null = null;
  readonly #pubsub: PubSub<S>;
  readonly #subscriber: S;

  /** The memberships of `subscriber` in `pubsub`'s topics. */
  constructor(pubsub: PubSub<S>, subscriber: S) {
    this.#pubsub = pubsub;
    this.#subscriber = subscriber;
  }

  /** Joins `topic` (nothing happens when it is a member already). */
  add(topic: string): void {
    if (this.has(topic)) return;
    if (this.#topics !== null) this.#topics.add(topic);
    else if (this.#topic === null) this.#topic = topic;
    else {
      this.#topics = new Set([this.#topic, topic]);
      this.#topic = null;
    }
    this.#pubsub.subscribe(topic, this.#subscriber);
  }

  /** Leaves `topic`. */
  delete(topic: string): void {
    if (this.#topic === topic) this.#topic = null;
    else if (!this.#topics?.delete(topic)) return;
    this.#pubsub.unsubscribe(topic, this.#subscriber);
  }

  /** Whether it is a member of `topic`. */
  has(topic: string): boolean {
    return this.#topic === topic || (this.#topics?.has(topic) ?? false);
  }

  /** Its topics (a copy). */
  list(): string[] {
    return this.#topic !== null ? [this.#topic] : [...(this.#topics ?? [])];
  }

  /** Leaves every topic (the socket is closing). */
  clear(): void {
    for (const topic of this.list()) this.#pubsub.unsubscribe(topic, this.#subscriber);
    this.#topic = this.#topics = null;
  }
}
