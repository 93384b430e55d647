/**
 * crossws's contract as its hooks see it, written structurally (nothing is imported from
 * `crossws`): the peer, the message, the hooks, the upgrade hook's answer and the sync backplane.
 * Hooks typed with crossws's own types (`defineHooks`, `createWebSocketProxy`) fit these shapes.
 * @module
 */

/** A value or a promise of it. */
export type MaybePromise<T> = T | Promise<T>;

/** What {@linkcode Peer.websocket} shows of the socket (Wisp's `ServerWebSocket` behind it). */
export interface PeerWebSocket {
  /** 1 while open, 2 while closing, 3 once closed. */
  readonly readyState?: number;
  /** The agreed subprotocol, or `""`. */
  readonly protocol?: string;
  /** The agreed extensions, as sent in `Sec-WebSocket-Extensions`, or `""`. */
  readonly extensions?: string;
  /** The URL the client requested, with the `ws:` (or `wss:`) scheme. */
  readonly url?: string;
  /** Bytes accepted by `send` that have not been handed to the operating system yet. */
  readonly bufferedAmount?: number;
  /** Not kept by Wisp's sockets (`message.data` is a string or a `Uint8Array`). */
  readonly binaryType?: string;
}

/** Options of {@linkcode Peer.waitForDrain}. */
export interface WaitForDrainOptions {
  /** Resolve once `bufferedAmount` is at most this many bytes. Default 0. */
  threshold?: number;
  /** How often `bufferedAmount` is looked at, in ms. Default 100. */
  pollInterval?: number;
  /** Aborts the wait: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** One connected client, as crossws's hooks get it. */
export interface Peer {
  /** A random UUID, made when first asked for. */
  readonly id: string;
  /** The pub/sub namespace: the upgrade hook's `namespace`, `getNamespace`'s, or the request's path. */
  readonly namespace: string;
  /** The upgrade hook's `context`, for the connection's lifetime. */
  readonly context: Record<string, unknown>;
  /** The client's IP address. */
  readonly remoteAddress: string | undefined;
  /** The upgrade request. */
  readonly request: Request;
  /** The socket's state (Wisp's `ServerWebSocket`). */
  readonly websocket: PeerWebSocket;
  /** The open peers of this namespace. */
  readonly peers: Set<Peer>;
  /** The topics this peer subscribes to. */
  readonly topics: Set<string>;
  /** Bytes accepted by `send` that have not been handed to the operating system yet. */
  readonly bufferedAmount: number;
  /** Resolves once `bufferedAmount` is at most `threshold`, or the peer is no longer open. */
  waitForDrain(options?: WaitForDrainOptions): Promise<void>;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /** Drops the connection without a closing handshake. */
  terminate(): void;
  /** Sends a ping (at most 125 bytes; a longer one goes to the `error` hook instead). */
  ping(data?: unknown): number | void | undefined;
  /** Joins a topic of this namespace. */
  subscribe(topic: string): void;
  /** Leaves a topic. */
  unsubscribe(topic: string): void;
  /** Sends a message: strings and bytes as they are, plain objects as JSON, other values as text. */
  send(data: unknown, options?: { compress?: boolean }): number | void | undefined;
  /** Sends to the other subscribers of `topic` in this namespace (and, with `sync`, elsewhere). */
  publish(topic: string, data: unknown, options?: { compress?: boolean }): void;
  /** The id. */
  toString(): string;
}

/** A message from a peer, as crossws's `message` hook gets it. */
export interface Message {
  /** A random UUID, made when first asked for. */
  readonly id: string;
  /** The message as Wisp delivered it: a string for text, a `Uint8Array` for binary. */
  readonly rawData: unknown;
  /** The same as `rawData`. */
  readonly data: unknown;
  /** The peer it came from. */
  readonly peer?: Peer;
  /** Not given by Wisp (there is no `MessageEvent` behind a message). */
  readonly event?: MessageEvent;
  /** The bytes (text encoded as UTF-8). */
  uint8Array(): Uint8Array;
  /** The bytes in an `ArrayBuffer` of exactly them. */
  arrayBuffer(): ArrayBuffer | SharedArrayBuffer;
  /** The bytes as a `Blob`. */
  blob(): Blob;
  /** The text (binary decoded as UTF-8). */
  text(): string;
  /** The text parsed as JSON. */
  json<T = unknown>(): T;
  /** The text. */
  toString(): string;
}

/** What the `upgrade` hook may return to accept, besides nothing. */
export interface UpgradeHookResult {
  /** Extra headers for the 101 (a `Sec-WebSocket-Protocol` among them agrees on that subprotocol). */
  headers?: HeadersInit;
  /** The subprotocol to agree on: one the client offered. */
  protocol?: string;
  /** The pub/sub namespace, instead of the request's path. */
  namespace?: string;
  /** Merged into the peer's `context`. */
  context?: Record<string, unknown>;
}

/** The error the `error` hook gets: what a hook threw is its `cause`. */
export class WSError extends Error {
  /** An error about `cause` (what a hook threw, or why a ping could not be sent). */
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = "WSError";
  }
}

/**
 * crossws's hooks, each optional and possibly async. A hook that throws or rejects (but
 * `upgrade`, whose failure is a 500) calls `error`, and the socket is closed with 1011.
 */
export interface Hooks {
  /**
   * Decides on an upgrade request: return (or throw) a `Response` to refuse with it (an error
   * with a `response` property counts as that response), or accept with nothing,
   * {@linkcode UpgradeHookResult}, or `Headers` for the 101.
   */
  upgrade?(
    request: Request & { readonly context?: Record<string, unknown> },
  ): MaybePromise<UpgradeHookResult | Headers | Response | void>;
  /** The socket is open. */
  open?(peer: Peer): MaybePromise<void>;
  /** A message arrived. */
  message?(peer: Peer, message: Message): MaybePromise<void>;
  /** The socket closed, with the code and reason Wisp's `close` handler has. */
  close?(peer: Peer, details: { code?: number; reason?: string }): MaybePromise<void>;
  /** Another hook threw or rejected (the socket is then closed with 1011), or `ping` failed. */
  error?(peer: Peer, error: WSError): MaybePromise<void>;
  /** The backlog that made a send wait is gone. */
  drain?(peer: Peer): MaybePromise<void>;
  /** A ping arrived (Wisp answers it). */
  ping?(peer: Peer, data: Uint8Array): MaybePromise<void>;
  /** A pong arrived. */
  pong?(peer: Peer, data: Uint8Array): MaybePromise<void>;
}

/** The names of the hooks. */
export type HookName = keyof Hooks;

/**
 * Hooks for one upgrade request, asked once per connection (crossws's `resolve` option); they run
 * after the `hooks` option's.
 */
export type ResolveHooks = (
  request: Request & { readonly context?: Record<string, unknown> },
) => MaybePromise<Hooks | undefined>;

/** One publish relayed between instances by a sync backplane. */
export interface SyncMessage {
  /** The namespace, or `""` for every namespace. */
  namespace: string;
  /** The topic. */
  topic: string;
  /** The payload. */
  data: string | Uint8Array;
}

/** A sync backplane's connection, as crossws's `crossws/sync` drivers make it. */
export interface SyncDriver {
  /** Starts delivering the other instances' publishes to `deliver`. */
  subscribe(deliver: (message: SyncMessage) => void): MaybePromise<void>;
  /** Relays one of this instance's publishes. */
  publish(message: SyncMessage): MaybePromise<void>;
  /** Tears the connection down. */
  close?(): MaybePromise<void>;
}

/** Makes a {@linkcode SyncDriver} for an instance whose random `id` it is given. */
export type SyncAdapter = (context: { id: string }) => SyncDriver;
