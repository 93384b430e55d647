/**
 * The backplane: what carries publishes between server processes, so that a topic spans all of
 * them. The in-process default is no backplane at all (nothing is carried, and nothing costs).
 * @module
 */

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
}

/** Something that happened to a backplane's connection. */
export interface BackplaneEvent {
  /** `"connected"`, `"disconnected"` (it reconnects on its own) or `"error"`. */
  type: "connected" | "disconnected" | "error";
  /** What happened, in a few words. */
  message: string;
}

/**
 * Carries publishes between server processes (the `backplane` option of `serve`). The server
 * delivers to its own subscribers first and at once; the backplane takes the message to the
 * others, and hands messages published elsewhere to `deliver`.
 */
export interface Backplane {
  /**
   * Called once by the server that uses it, before anything else: messages from elsewhere go to
   * `deliver`, and what happens to the backplane may go to `report` (the server's `onEvent`).
   */
  attach(
    deliver: (topic: string, data: string | Uint8Array) => void,
    report: (event: BackplaneEvent) => void,
  ): void;
  /** The process has its first subscriber of `topic`: its messages are wanted from now on. */
  subscribe(topic: string): void;
  /** The process has no subscriber of `topic` left. */
  unsubscribe(topic: string): void;
  /** A message published in this process (and already delivered here), for the other processes. */
  publish(topic: string, data: string | Uint8Array): void;
  /** Its state and counters. */
  stats(): BackplaneStats;
  /** Stops carrying messages (the server's `close` calls it). */
  close(): Promise<void>;
}
