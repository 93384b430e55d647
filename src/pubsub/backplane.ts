/**
 * The backplane: what carries publishes between server processes, so that a topic spans all of
 * them. The in-process default is no backplane at all (nothing is carried, and nothing costs).
 * @module
 */

import type { TopicPosition } from "../api.ts";

export type { TopicPosition };

/** A backplane's state and counters, as `server.stats()` reports them. */
export interface BackplaneStats {
  /** `"connected"`, `"connecting"` (also while it waits to reconnect) or `"closed"`. */
  state: "connected" | "connecting" | "closed";
  /** Messages sent to the other processes. */
  published: number;
  /** Messages received from the other processes and delivered here. */
  received: number;
  /** Messages not sent because the bytes waiting for the backplane passed its limit. */
  dropped: number;
  /** Times it lost its connection and made a new one. */
  reconnects: number;
  /** Errors it met (refused commands, malformed replies, connections not made or lost). */
  errors: number;
  /** The last of those errors, or `""`. */
  lastError: string;
  /**
   * Bytes of publishes (and other commands) held for the backplane: waiting for it to connect,
   * or sent and not yet acknowledged. At most the backplane's limit (`maxBufferedBytes`).
   */
  bufferedBytes?: number;
}

/** Something that happened to a backplane's connection. */
export interface BackplaneEvent {
  /** `"connected"`, `"disconnected"` (it reconnects on its own) or `"error"`. */
  type: "connected" | "disconnected" | "error";
  /** What happened, in a few words. */
  message: string;
}

/** One message of a topic's history. */
export interface HistoryEntry {
  /** Its offset. */
  offset: string;
  /** The message: text stays text, bytes stay bytes. */
  data: string | Uint8Array;
}

/** Whether a position's history can be read on from there, and the entries that follow it. */
export interface HistoryPage {
  /** The topic's epoch now. */
  epoch: string;
  /** The offset of the topic's last entry now (`"0-0"` when it has none). */
  last: string;
  /**
   * `"ok"` when `entries` follow the position asked for without a gap; otherwise why nothing can
   * follow it: `"epoch"` (the position belongs to another epoch: the history it came from was
   * lost), `"trimmed"` (entries after it are no longer kept), `"future"` (its offset is past the
   * last entry, so it came from no history of this topic).
   */
  status: "ok" | "epoch" | "trimmed" | "future";
  /** The entries after the position, oldest first, at most as many as asked for; none unless `"ok"`. */
  entries: HistoryEntry[];
}

/**
 * Carries publishes between server processes (the `backplane` option of `serve`). The server
 * delivers to its own subscribers first and at once; the backplane takes the message to the
 * others, and hands messages published elsewhere to `deliver`.
 *
 * A backplane that keeps each topic's history (the Redis backplane in streams mode) also has
 * `append`, `read` and `position`, and hands `deliver` each message's position.
 */
export interface Backplane {
  /**
   * Called once by the server that uses it, before anything else: messages from elsewhere go to
   * `deliver` (with their position, from a backplane that keeps history), and what happens to the
   * backplane may go to `report` (the server's `onEvent`).
   */
  attach(
    deliver: (topic: string, data: string | Uint8Array, position?: TopicPosition) => void,
    report: (event: BackplaneEvent) => void,
  ): void;
  /** The process has its first subscriber of `topic`: its messages are wanted from now on. */
  subscribe(topic: string): void;
  /** The process has no subscriber of `topic` left. */
  unsubscribe(topic: string): void;
  /** A message published in this process (and already delivered here), for the other processes. */
  publish(topic: string, data: string | Uint8Array): void;
  /**
   * Like `publish`, for a caller that needs the message's position before it delivers the message
   * to its own subscribers (it delivers it itself, so the backplane never hands it back to this
   * process). Resolves once the history has it; rejects when it cannot be sent (the limit of
   * bytes waiting is reached, or the backplane is closed).
   */
  append?(topic: string, data: string | Uint8Array): Promise<TopicPosition>;
  /**
   * The entries of `topic` after `since`, oldest first, at most `limit` of them, or why the gap
   * after `since` cannot be filled. Throws a `TypeError` or `RangeError` for a position or limit
   * that is malformed.
   */
  read?(topic: string, since: TopicPosition, limit: number): Promise<HistoryPage>;
  /** Where `topic`'s history stands now: its epoch and its last offset (for a client that joins now). */
  position?(topic: string): Promise<TopicPosition>;
  /** Its state and counters. */
  stats(): BackplaneStats;
  /** Stops carrying messages (the server's `close` calls it). */
  close(): Promise<void>;
}
