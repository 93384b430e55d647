/**
 * Topic history: the last messages of each topic, with their positions, so that a client that
 * comes back after a dropped connection gets exactly what it missed (or is told it cannot). Each
 * topic's messages are numbered from 1 within an epoch, a random name that changes whenever the
 * history is lost (the topic forgotten, the process restarted), as Centrifugo does: a position of
 * another epoch is never replayed against this one. Bounded per topic (messages, bytes, age) and
 * in all (bytes): past that, the oldest messages of the least recently published topics go.
 * @module
 */

import type { GapReason, MessageData, TopicPosition } from "../api.ts";

/** The bounds of the history (the resolved `history` option). */
export interface HistoryBounds {
  /** Messages each topic keeps. */
  readonly maxMessages: number;
  /** Bytes each topic keeps (payload, and 64 per message). */
  readonly maxBytes: number;
  /** Milliseconds a message is kept. */
  readonly maxAge: number;
  /** Bytes all topics keep together. */
  readonly maxTotalBytes: number;
}

/** What the history holds of a topic after a position. */
export type Since =
  /** The messages after the position, oldest first (none when it is the latest). */
  | { entries: readonly HistoryEntry[] }
  /** The gap cannot be filled. */
  | { gap: GapReason };

/** One kept message. */
export interface HistoryEntry {
  /** Its offset within the epoch. */
  readonly offset: number;
  /** The message as its subscribers received it. */
  readonly data: MessageData;
  /** What it counts against the bounds: its payload's bytes and a fixed overhead. */
  readonly size: number;
  /** When it was published (ms since the epoch). */
  readonly at: number;
}

/** The history of one topic. */
class TopicHistory {
  readonly epoch: string = randomEpoch();
  /** The offset of the latest message (0 before the first). */
  last = 0;
  readonly entries: HistoryEntry[] = [];
  /** Where the kept entries begin in `entries` (older ones are dropped in batches). */
  #first = 0;
  bytes = 0;

  get kept(): number {
    return this.entries.length - this.#first;
  }

  oldest(): HistoryEntry | undefined {
    return this.entries[this.#first];
  }

  push(entry: HistoryEntry): void {
    this.entries.push(entry);
    this.bytes += entry.size;
  }

  /** Drops the oldest entry; its size. */
  shift(): number {
    const entry = this.entries[this.#first++];
    this.bytes -= entry.size;
    // Compact once the dropped part is as large as the kept part: amortized O(1) per entry.
    if (this.#first * 2 >= this.entries.length) {
      this.entries.splice(0, this.#first);
      this.#first = 0;
    }
    return entry.size;
  }

  /** The kept entries after `offset`. */
  after(offset: number): HistoryEntry[] {
    const oldest = this.oldest();
    if (oldest === undefined) return [];
    return this.entries.slice(this.#first + Math.max(0, offset + 1 - oldest.offset));
  }
}

/** A random epoch name (16 hex digits). */
function randomEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let text = "";
  for (const byte of bytes) text += byte.toString(16).padStart(2, "0");
  return text;
}

/**
 * Bytes an entry counts for beyond its payload (the entry and its place in the list), so that the
 * total bound also bounds how many entries there are, empty messages included.
 */
const ENTRY_OVERHEAD = 64;

/** A decimal offset as a client sends it back: digits, no sign, at most 15 of them. */
const OFFSET = /^(0|[1-9][0-9]{0,14})$/;

/** The histories of one server's topics. */
export class Histories {
  readonly #bounds: HistoryBounds;
  /** By topic, least recently published first. */
  readonly #topics = new Map<string, TopicHistory>();
  #bytes = 0;
  #messages = 0;

  /** Histories within `bounds`. */
  constructor(bounds: HistoryBounds) {
    this.#bounds = bounds;
  }

  /** Topics with history, messages and bytes kept, for `server.stats()`. */
  stats(): { topics: number; messages: number; bytes: number } {
    return { topics: this.#topics.size, messages: this.#messages, bytes: this.#bytes };
  }

  /**
   * The position the next message of `topic` gets; {@linkcode Histories.keep} then keeps it. Two
   * steps, as what subscribers receive is made from its position (the `envelope` of the `history`
   * option).
   */
  next(topic: string): TopicPosition {
    const history = this.#topic(topic);
    return { epoch: history.epoch, offset: String(history.last + 1) };
  }

  /**
   * Keeps the message at `position` (from {@linkcode Histories.next}) of `topic`: `data` as its
   * subscribers received it, of `length` bytes.
   */
  keep(topic: string, position: TopicPosition, data: MessageData, length: number, now = Date.now()): void {
    const history = this.#topic(topic);
    if (history.epoch !== position.epoch) return; // the topic was forgotten meanwhile: a new epoch began
    history.last = Number(position.offset);
    this.#topics.delete(topic); // the most recently published topic goes last
    this.#topics.set(topic, history);
    const size = length + ENTRY_OVERHEAD;
    history.push({ offset: history.last, data, size, at: now });
    this.#bytes += size;
    this.#messages++;
    this.#trim(history, now);
    this.#trimTotal();
  }

  /** The latest position of `topic` (offset 0 before its first message). */
  position(topic: string): TopicPosition {
    const history = this.#topic(topic);
    return { epoch: history.epoch, offset: String(history.last) };
  }

  /**
   * The messages of `topic` after `since`, or why the gap cannot be filled: a position that is no
   * offset, of another epoch, beyond the latest, or older than what is kept.
   */
  since(topic: string, since: TopicPosition, now = Date.now()): Since {
    if (typeof since?.epoch !== "string" || typeof since.offset !== "string" || !OFFSET.test(since.offset)) {
      return { gap: "malformed" };
    }
    const history = this.#topics.get(topic);
    if (history === undefined || history.epoch !== since.epoch) return { gap: "epoch" };
    this.#trim(history, now);
    const offset = Number(since.offset);
    if (offset > history.last) return { gap: "future" };
    if (offset === history.last) return { entries: [] };
    const oldest = history.oldest();
    if (oldest === undefined || offset + 1 < oldest.offset) return { gap: "too old" };
    return { entries: history.after(offset) };
  }

  /** `topic` has no subscriber left here: a history that keeps nothing is forgotten. */
  idle(topic: string): void {
    const history = this.#topics.get(topic);
    if (history !== undefined && history.kept === 0) this.#topics.delete(topic);
  }

  #topic(topic: string): TopicHistory {
    let history = this.#topics.get(topic);
    if (history === undefined) this.#topics.set(topic, history = new TopicHistory());
    return history;
  }

  /** Drops what `history` keeps beyond its bounds: count, bytes, age. */
  #trim(history: TopicHistory, now: number): void {
    const { maxMessages, maxBytes, maxAge } = this.#bounds;
    while (
      history.kept > 0 &&
      (history.kept > maxMessages || history.bytes > maxBytes || now - history.oldest()!.at > maxAge)
    ) this.#drop(history);
  }

  /** Drops the oldest messages of the least recently published topics while all pass the total bound. */
  #trimTotal(): void {
    for (const [topic, history] of this.#topics) {
      if (this.#bytes <= this.#bounds.maxTotalBytes) return;
      while (history.kept > 0 && this.#bytes > this.#bounds.maxTotalBytes) this.#drop(history);
      // A topic with nothing kept and no position worth keeping is forgotten (its epoch with it).
      if (history.kept === 0) this.#topics.delete(topic);
    }
  }

  #drop(history: TopicHistory): void {
    this.#bytes -= history.shift();
    this.#messages--;
  }
}
