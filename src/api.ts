/**
 * The shared vocabulary of Wisp's public API and its core: ready states, close codes, what `send`
 * takes and returns, and what a socket's public face asks of the connection behind it. A leaf module: it
 * imports nothing, so every other module may import it.
 * @module
 */

/** The `readyState` values, as in the browser's `WebSocket`. */
export const ReadyState = {
  CONNECTING: 0,
  OPEN: 1,
  CLOSING: 2,
  CLOSED: 3,
} as const;

/** Close codes Wisp sends or reports. */
export const CloseCode = {
  /** The purpose of the connection has been fulfilled. */
  Normal: 1000,
  /** The server is going away (shutting down). */
  GoingAway: 1001,
  /** The peer broke the protocol. */
  ProtocolError: 1002,
  /** A data type the endpoint cannot accept. */
  UnsupportedData: 1003,
  /** Reported (never sent) when a close frame carried no code. */
  NoStatus: 1005,
  /** Reported (never sent) when the connection dropped without a close frame. */
  Abnormal: 1006,
  /** A text message or close reason was not valid UTF-8. */
  InvalidPayload: 1007,
  /** A message violated a policy of the endpoint. */
  PolicyViolation: 1008,
  /** A message exceeded the size limit. */
  MessageTooBig: 1009,
  /** The server hit an unexpected condition (a handler threw). */
  InternalError: 1011,
} as const;

/**
 * What `send` did with a message:
 * - `"sent"`: handed on with no backlog; it goes out at the end of this turn of the event loop.
 * - `"queued"`: accepted, but earlier data is still waiting for the peer to read; `drain` fires
 *   when the backlog is gone.
 * - `"dropped"`: not sent, because the socket is closing or closed, or the backlog passed
 *   `maxBufferedAmount` (the connection is then closed).
 */
export type SendStatus = "sent" | "queued" | "dropped";

/** Data that `send` accepts: text, or bytes in any buffer form. */
export type MessageData = string | ArrayBuffer | ArrayBufferView;

/** Per-message options of `send`. */
export interface SendOptions {
  /**
   * Set false to send this message uncompressed even though permessage-deflate was agreed and the
   * message is above the threshold. Default true.
   */
  compress?: boolean;
}

/** Where a message stands in its topic's history (see the `history` option). */
export interface TopicPosition {
  /** The history's epoch: a new one whenever the history was lost. */
  readonly epoch: string;
  /**
   * The message's offset within the epoch, ordered: in a process's own history a decimal count
   * ("1" for the first message), in a Redis stream (streams mode) the entry's id, "ms-seq".
   */
  readonly offset: string;
}

/** Why a position could not be recovered from: it is malformed, of another epoch, beyond the latest, or too old. */
export type GapReason = "malformed" | "epoch" | "future" | "too old";

/** What a socket's recovery of a topic did (see `ServerWebSocket.recover`). */
export interface Recovery {
  /** Whether everything missed since the position was sent (false: the gap could not be filled). */
  readonly recovered: boolean;
  /** How many missed messages were sent. */
  readonly replayed: number;
  /** The topic's latest position now (what a client resumes from, when nothing else comes). */
  readonly position: TopicPosition;
  /** Why it was not recovered. */
  readonly reason?: GapReason;
}

/**
 * What a `ServerWebSocket` asks of the connection behind it: the methods it forwards, with the
 * same meaning (see `ServerWebSocket`).
 */
export interface SocketControl {
  /** A {@linkcode ReadyState} value. */
  readonly readyState: number;
  /** Bytes accepted by `send` that have not been handed to the operating system yet. */
  readonly bufferedAmount: number;
  /** The topics the socket subscribes to (a copy). */
  readonly subscriptions: string[];
  /** Sends a message. */
  send(data: MessageData, options?: SendOptions): SendStatus;
  /** Starts the closing handshake. */
  close(code: number, reason: string): void;
  /** Drops the connection without a closing handshake. */
  terminate(): void;
  /** Sends a ping. */
  ping(data: MessageData): SendStatus;
  /** Subscribes to a topic. */
  subscribe(topic: string): void;
  /** Unsubscribes from a topic. */
  unsubscribe(topic: string): void;
  /** Whether the socket subscribes to a topic. */
  isSubscribed(topic: string): boolean;
  /** Subscribes to a topic, first sending what the socket missed of it since a position. */
  recover(topic: string, since: TopicPosition | null): Promise<Recovery>;
  /** Publishes to a topic's other subscribers. */
  publish(topic: string, data: MessageData): number;
  /** Stops reading from the peer. */
  pause(): void;
  /** Reads from the peer again. */
  resume(): void;
}
