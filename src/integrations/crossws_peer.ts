/**
 * A crossws peer over a Wisp socket: its topics are Wisp topics of its namespace, so a publish is
 * encoded once for all subscribers (and reaches other processes through a Wisp backplane).
 * @module
 */

import { type MessageData, ReadyState } from "../api.ts";
import type { ServerWebSocket } from "../server_websocket.ts";
import type { Peer, WaitForDrainOptions } from "./crossws_contract.ts";
import type { ResolvedHooks } from "./crossws_hooks.ts";

/** The `data` of a socket that the crossws adapter upgraded. */
export interface CrosswsSocketData {
  /** The upgrade request. */
  readonly request: Request;
  /** The pub/sub namespace. */
  readonly namespace: string;
  /** The peer's context. */
  readonly context: Record<string, unknown>;
  /** The hooks `resolve` gave for this connection, if any. */
  readonly hooks: ResolvedHooks;
  /** The peer, made when the socket opens. */
  peer: WispPeer | null;
}

/** What a peer asks of its adapter. */
export interface PeerHost {
  /** `peer` could not do what it was asked (a ping): tell the `error` hook. */
  failed(peer: WispPeer, error: unknown): void;
  /** Relays a publish of `peer` to the other instances, with a sync backplane. */
  relay(namespace: string, topic: string, data: unknown): void;
}

/** The Wisp topic of `topic` in `namespace`: namespaces do not share topics. */
export function topicKey(namespace: string, topic: string): string {
  return `${namespace}\u0000${topic}`;
}

/**
 * What `send` and `publish` make of a value, as crossws does: strings and bytes as they are,
 * nothing as `""`, numbers, booleans and bigints as text, functions and symbols as `"{}"`, plain
 * objects as JSON. Anything else is handed on as it is, and Wisp's `send` refuses it with a
 * `TypeError`.
 */
export function toMessageData(value: unknown): MessageData {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") {
    return String(value);
  }
  if (typeof value !== "object") return "{}"; // a function or a symbol
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return value;
  const prototype = Object.getPrototypeOf(value);
  const plain = (prototype === null || prototype === Object.prototype) && !(Symbol.iterator in value);
  return plain ? JSON.stringify(value) : value as MessageData;
}

/** One connected client of the crossws adapter. */
export class WispPeer implements Peer {
  /** The Wisp socket. */
  readonly websocket: ServerWebSocket<CrosswsSocketData>;
  /** The open peers of this namespace. */
  readonly peers: Set<WispPeer>;
  /** The topics this peer subscribes to (of its namespace). */
  readonly topics: Set<string> = new Set();
  readonly #host: PeerHost;
  #id: string | undefined;

  /** A peer for `websocket`, one of `peers`. */
  constructor(websocket: ServerWebSocket<CrosswsSocketData>, peers: Set<WispPeer>, host: PeerHost) {
    this.websocket = websocket;
    this.peers = peers;
    this.#host = host;
  }

  /** A random UUID. */
  get id(): string {
    return this.#id ??= crypto.randomUUID();
  }

  /** The pub/sub namespace. */
  get namespace(): string {
    return this.websocket.data.namespace;
  }

  /** The upgrade hook's context. */
  get context(): Record<string, unknown> {
    return this.websocket.data.context;
  }

  /** The client's IP address. */
  get remoteAddress(): string {
    return this.websocket.remoteAddress;
  }

  /** The upgrade request. */
  get request(): Request {
    return this.websocket.data.request;
  }

  /** Bytes accepted by `send` that have not been handed to the operating system yet. */
  get bufferedAmount(): number {
    return this.websocket.bufferedAmount;
  }

  /**
   * Resolves once `bufferedAmount` is at most `threshold` (default 0) or the socket is no longer
   * open, looking every `pollInterval` ms (default 100); rejects with the reason of `signal`.
   */
  waitForDrain(options: WaitForDrainOptions = {}): Promise<void> {
    const threshold = options.threshold ?? 0;
    const drained = () => this.bufferedAmount <= threshold || this.websocket.readyState !== ReadyState.OPEN;
    if (drained()) return Promise.resolve();
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const timer = setInterval(() => {
        if (!drained()) return;
        stop();
        resolve();
      }, options.pollInterval ?? 100);
      const aborted = () => {
        stop();
        reject(signal!.reason);
      };
      const stop = () => {
        clearInterval(timer);
        signal?.removeEventListener("abort", aborted);
      };
      signal?.addEventListener("abort", aborted, { once: true });
    });
  }

  /** Starts the closing handshake (see `ServerWebSocket.close`). */
  close(code?: number, reason?: string): void {
    this.websocket.close(code, reason);
  }

  /** Drops the connection without a closing handshake. */
  terminate(): void {
    this.websocket.terminate();
  }

  /** Sends a ping; data Wisp cannot send (over 125 bytes) goes to the `error` hook instead. */
  ping(data?: unknown): void {
    try {
      this.websocket.ping(data === undefined ? "" : toMessageData(data));
    } catch (error) {
      this.#host.failed(this, error);
    }
  }

  /** Joins `topic` of this namespace. */
  subscribe(topic: string): void {
    this.topics.add(topic);
    this.websocket.subscribe(topicKey(this.namespace, topic));
  }

  /** Leaves `topic`. */
  unsubscribe(topic: string): void {
    this.topics.delete(topic);
    this.websocket.unsubscribe(topicKey(this.namespace, topic));
  }

  /** Sends `data` (see {@linkcode toMessageData}); `compress: false` skips permessage-deflate. */
  send(data: unknown, options?: { compress?: boolean }): void {
    this.websocket.send(toMessageData(data), options);
  }

  /**
   * Sends `data` to the other subscribers of `topic` in this namespace, encoded once for all,
   * and relays it with a sync backplane. Wisp's publish has no per-message `compress`.
   */
  publish(topic: string, data: unknown, _options?: { compress?: boolean }): void {
    const namespace = this.namespace;
    this.websocket.publish(topicKey(namespace, topic), toMessageData(data));
    this.#host.relay(namespace, topic, data);
  }

  /** The id. */
  toString(): string {
    return this.id;
  }

  /** The id, for template strings and `+`. */
  [Symbol.toPrimitive](): string {
    return this.id;
  }
}
