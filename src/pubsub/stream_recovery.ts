/**
 * Recovery from a backplane that keeps each topic's history (the Redis backplane in streams
 * mode): the missed messages are read from the topic's stream, page by page, while what is
 * published meanwhile waits for the recovering subscriber, so that it gets every message once
 * and in order: the missed ones, then the live ones after the last missed.
 * @module
 */

import {
  type GapReason,
  type MessageData,
  ReadyState,
  type Recovery,
  type SendStatus,
  type TopicPosition,
} from "../api.ts";
import type { Backplane, HistoryPage } from "./backplane.ts";
import { compareOffsets, isOffset } from "./offset.ts";

/** A backplane that keeps each topic's history. */
export type StreamHistory = Backplane & Required<Pick<Backplane, "append" | "read" | "position">>;

/** Whether `backplane` keeps each topic's history. */
export function keepsHistory(backplane: Backplane | null): backplane is StreamHistory {
  return backplane !== null && backplane.append !== undefined && backplane.read !== undefined &&
    backplane.position !== undefined;
}

/** What a recovering subscriber must be: something that sends to one client. */
export interface Recovering {
  /** A `ReadyState` value: a subscriber that closes stops recovering. */
  readonly readyState: number;
  /** Sends a message to this subscriber alone. */
  send(data: MessageData): SendStatus;
}

/** A live message that waits while its subscriber catches up. */
interface Held {
  readonly offset: string;
  readonly data: MessageData;
}

/** Entries read from the stream per page. */
const PAGE = 100;
/**
 * Live messages that may wait for one recovering subscriber: past this, the recovery stops, what
 * waits for it and comes until then is dropped for it (its client is told `too old`, so that it
 * reloads, rather than get messages out of order), and it takes messages as they come after.
 */
const MAX_HELD = 1000;

/** Subscribers catching up on topics, and the live messages that wait for them meanwhile. */
export class CatchUps<S> {
  readonly #held = new Map<S, Map<string, Held[] | null>>();

  /** Whether anyone is catching up (a check that costs one load when nobody is). */
  get active(): boolean {
    return this.#held.size > 0;
  }

  /**
   * Keeps a live message of `topic` at `offset` for `subscriber` when it is catching up on it
   * (or drops it, once too many waited); false when it is not (the message goes out now).
   */
  hold(subscriber: S, topic: string, offset: string, data: MessageData): boolean {
    const topics = this.#held.get(subscriber);
    if (topics === undefined || !topics.has(topic)) return false;
    const held = topics.get(topic);
    if (held === null) return true; // it gave up: dropped until the recovery ends
    if (held!.length >= MAX_HELD) topics.set(topic, null);
    else held!.push({ offset, data });
    return true;
  }

  /** Whether `subscriber`'s catching up on `topic` gave up (too many live messages waited). */
  #overflowed(subscriber: S, topic: string): boolean {
    return this.#held.get(subscriber)?.get(topic) === null;
  }

  #start(subscriber: S, topic: string): void {
    let topics = this.#held.get(subscriber);
    if (topics === undefined) this.#held.set(subscriber, topics = new Map());
    topics.set(topic, []);
  }

  /** The messages held for `subscriber` on `topic`, and whether it overflowed; it catches up no more. */
  #finish(subscriber: S, topic: string): Held[] | null {
    const topics = this.#held.get(subscriber)!;
    const held = topics.get(topic) ?? null;
    topics.delete(topic);
    if (topics.size === 0) this.#held.delete(subscriber);
    return held;
  }

  /**
   * Sends `subscriber` what it missed of `topic` since `since`, from `history`'s stream (each
   * through `envelope`), then the live messages that came meanwhile after the last one sent. The
   * subscriber must be subscribed to `topic` already (what is published from then on is held).
   */
  async recover(
    history: StreamHistory,
    topic: string,
    since: TopicPosition,
    subscriber: S & Recovering,
    envelope: (data: string | Uint8Array, at: TopicPosition) => MessageData,
  ): Promise<Recovery> {
    if (typeof since?.epoch !== "string" || !isOffset(since.offset)) {
      return { recovered: false, replayed: 0, position: await history.position(topic), reason: "malformed" };
    }
    this.#start(subscriber, topic);
    let cursor: TopicPosition = { epoch: since.epoch, offset: since.offset };
    let replayed = 0;
    let reason: GapReason | undefined;
    try {
      while (subscriber.readyState === ReadyState.OPEN && !this.#overflowed(subscriber, topic)) {
        const page: HistoryPage = await history.read(topic, cursor, PAGE);
        if (page.status !== "ok") {
          reason = page.status === "trimmed" ? "too old" : page.status;
          cursor = { epoch: page.epoch, offset: page.last };
          break;
        }
        for (const entry of page.entries) {
          const at = { epoch: page.epoch, offset: entry.offset };
          if (subscriber.send(envelope(entry.data, at)) !== "dropped") replayed++;
          cursor = at;
        }
        if (page.entries.length < PAGE) break;
      }
    } finally {
      const held = this.#finish(subscriber, topic);
      if (held === null) reason ??= "too old";
      // The live messages that waited: those after the last one sent (the stream may have had
      // them too), or all of them when the gap was not filled.
      for (const message of held ?? []) {
        if (reason !== undefined || compareOffsets(message.offset, cursor.offset) > 0) {
          subscriber.send(message.data);
          cursor = { epoch: cursor.epoch, offset: message.offset };
        }
      }
    }
    return reason === undefined
      ? { recovered: true, replayed, position: cursor }
      : { recovered: false, replayed, position: cursor, reason };
  }
}
