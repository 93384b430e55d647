/**
 * The relay that `--workers` runs in its supervisor so that topics span the workers without
 * Redis: each worker connects to it over loopback TCP (see ./worker_relay.ts), says which topics
 * it has subscribers of, and sends its publishes; the relay passes each publish on, unchanged,
 * to the other workers that subscribe to its topic, and to no one else.
 * @module
 */

import { runtimeListen } from "../runtime/mod.ts";
import { SendQueue } from "../send_queue.ts";
import type { Transport, TransportEvents, TransportListener } from "../runtime/types.ts";
import type { BackplaneEvent } from "./backplane.ts";
import {
  FrameKind,
  FrameReader,
  HELLO_LENGTH,
  MAX_FRAME_LENGTH,
  parseHello,
  parseTopic,
  publishTopic,
  RelayProtocolError,
  TOKEN_LENGTH,
  tokenBytes,
  tokenText,
  WELCOME_FRAME,
} from "./relay_frame.ts";

/** Options of {@linkcode startRelayHub}. */
export interface RelayHubOptions {
  /** The loopback port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /**
   * The secret a worker must give in its first frame, as 32 hex digits; random by default.
   * Anyone on the machine can connect to a loopback port: without it, no one gets in.
   */
  token?: string;
  /**
   * Bytes that may wait to be written to one worker; past it, publishes to that worker are
   * dropped (and counted) until it has caught up, so one stuck worker cannot grow the relay's
   * memory. A single message larger than this still goes out when nothing waits. Default 8 MiB.
   */
  maxBufferedBytes?: number;
  /** Milliseconds a new connection has to give the token before it is dropped. Default 5,000. */
  helloTimeout?: number;
  /**
   * Told when a worker joins (`"connected"`) or leaves (`"disconnected"`), and of every error (a
   * wrong token, a malformed frame, messages dropped for a worker that is behind).
   */
  onEvent?: (event: BackplaneEvent) => void;
}

/** The relay's counters. */
export interface RelayHubStats {
  /** Workers connected now (those that gave the token). */
  workers: number;
  /** Topics that some worker subscribes to now. */
  topics: number;
  /** Copies of publishes written to workers. */
  forwarded: number;
  /** Copies not written because the worker's backlog was past `maxBufferedBytes`. */
  dropped: number;
}

/** A running relay. */
export interface RelayHub {
  /** The port it listens on, at 127.0.0.1. */
  readonly port: number;
  /** The token workers must give, as 32 hex digits. */
  readonly token: string;
  /** Its counters. */
  stats(): RelayHubStats;
  /** Stops listening and drops every worker's connection (they reconnect to a new relay on the port). */
  close(): void;
}

/**
 * Starts a relay on 127.0.0.1. Throws a `TypeError` or `RangeError` naming a bad option, or an
 * `Error` when the port cannot be bound.
 */
export function startRelayHub(options: RelayHubOptions = {}): RelayHub {
  return new Hub(resolve(options));
}

interface Settings {
  port: number;
  token: Uint8Array;
  maxBufferedBytes: number;
  helloTimeout: number;
  onEvent: (event: BackplaneEvent) => void;
}

function resolve(options: RelayHubOptions): Settings {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("startRelayHub() takes an options object");
  }
  for (const name of Object.keys(options)) {
    if (!["port", "token", "maxBufferedBytes", "helloTimeout", "onEvent"].includes(name)) {
      throw new TypeError(`unknown option "${name}" of startRelayHub()`);
    }
  }
  const { port = 0, maxBufferedBytes = 8 * 1024 * 1024, helloTimeout = 5_000, onEvent = () => {} } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`startRelayHub() option "port" must be 0-65535`);
  }
  if (!Number.isInteger(maxBufferedBytes) || maxBufferedBytes < 0) {
    throw new RangeError(`startRelayHub() option "maxBufferedBytes" must be a whole number of bytes`);
  }
  if (!Number.isInteger(helloTimeout) || helloTimeout < 1 || helloTimeout > 2_147_483_647) {
    throw new RangeError(`startRelayHub() option "helloTimeout" must be a whole number of milliseconds`);
  }
  if (typeof onEvent !== "function") {
    throw new TypeError(`startRelayHub() option "onEvent" must be a function`);
  }
  const token = options.token === undefined
    ? crypto.getRandomValues(new Uint8Array(TOKEN_LENGTH))
    : tokenBytes(options.token, "startRelayHub()");
  return { port, token, maxBufferedBytes, helloTimeout, onEvent };
}

/** Whether two tokens are equal, in a time that does not depend on where they differ. */
function sameToken(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

class Hub implements RelayHub {
  readonly port: number;
  readonly token: string;
  readonly #settings: Settings;
  readonly #listener: TransportListener;
  /** Every connection, welcomed or not, so that `close` can drop them all. */
  readonly #peers = new Set<Peer>();
  /** The welcomed workers that subscribe to each topic (a topic with none takes no memory). */
  readonly #topics = new Map<string, Set<Peer>>();
  readonly #stats = { forwarded: 0, dropped: 0 };

  constructor(settings: Settings) {
    this.#settings = settings;
    this.token = tokenText(settings.token);
    this.#listener = runtimeListen()(
      { hostname: "127.0.0.1", port: settings.port },
      (transport) => void this.#peers.add(new Peer(this, transport, settings)),
    );
    this.port = this.#listener.port;
  }

  stats(): RelayHubStats {
    let workers = 0;
    for (const peer of this.#peers) if (peer.worker > 0) workers++;
    return { workers, topics: this.#topics.size, ...this.#stats };
  }

  close(): void {
    this.#listener.close();
    for (const peer of this.#peers) peer.transport.destroy();
  }

  /** Tells `onEvent` of `event`, never letting it throw into a connection's events. */
  report(event: BackplaneEvent): void {
    try {
      this.#settings.onEvent(event);
    } catch (error) {
      console.error("wisp: the relay's onEvent threw:", error);
    }
  }

  subscribe(peer: Peer, topic: string): void {
    let peers = this.#topics.get(topic);
    if (peers === undefined) this.#topics.set(topic, peers = new Set());
    peers.add(peer);
  }

  unsubscribe(peer: Peer, topic: string): void {
    const peers = this.#topics.get(topic);
    if (peers === undefined) return;
    peers.delete(peer);
    if (peers.size === 0) this.#topics.delete(topic);
  }

  /** Writes a publish from `from`, as it came, to every other worker subscribed to `topic`. */
  forward(from: Peer, topic: string, frame: Uint8Array): void {
    const peers = this.#topics.get(topic);
    if (peers === undefined) return;
    for (const peer of peers) {
      if (peer === from) continue;
      if (peer.send(frame)) this.#stats.forwarded++;
      else this.#stats.dropped++;
    }
  }

  /** `peer`'s connection is gone: it subscribes to nothing any more. */
  gone(peer: Peer): void {
    this.#peers.delete(peer);
    for (const topic of peer.topics) this.unsubscribe(peer, topic);
  }
}

/** One connection to the relay: a worker once it has given the token. */
class Peer implements TransportEvents {
  readonly transport: Transport;
  /** The topics it subscribes to. */
  readonly topics = new Set<string>();
  /** Its worker id once welcomed; 0 before. */
  worker = 0;
  readonly #hub: Hub;
  readonly #settings: Settings;
  /** Until welcomed, a frame may only be as long as a `HELLO`. */
  readonly #reader: FrameReader;
  /** Frames for it, written together at the end of each turn (a read's publishes in one write). */
  readonly #queue: SendQueue;
  #helloTimer: ReturnType<typeof setTimeout> | undefined;
  /** Publishes to it dropped since one last got through (told when it starts, and when it ends). */
  #dropped = 0;

  constructor(hub: Hub, transport: Transport, settings: Settings) {
    this.#hub = hub;
    this.transport = transport;
    this.#settings = settings;
    this.#reader = new FrameReader(transport.readChunks.ownBuffers, HELLO_LENGTH - 4);
    this.#queue = new SendQueue(transport);
    transport.events = this;
    this.#helloTimer = setTimeout(
      () => this.#refuse(`a connection gave no token within ${settings.helloTimeout} ms`),
      settings.helloTimeout,
    );
  }

  /** Writes `frame` unless its backlog is past the limit; false when it was dropped. */
  send(frame: Uint8Array): boolean {
    const pending = this.transport.pending + this.#queue.bytes;
    if (pending > 0 && pending + frame.length > this.#settings.maxBufferedBytes) {
      if (this.#dropped++ === 0) {
        this.#hub.report({
          type: "error",
          message:
            `worker ${this.worker} is ${pending} bytes behind: dropping its messages until it catches up`,
        });
      }
      return false;
    }
    if (this.#dropped > 0) {
      this.#hub.report({
        type: "error",
        message: `worker ${this.worker} caught up; ${this.#dropped} messages to it were dropped`,
      });
      this.#dropped = 0;
    }
    this.#queue.shared(frame);
    return true;
  }

  data(chunk: Uint8Array): boolean {
    try {
      for (const frame of this.#reader.push(chunk)) this.#handle(frame);
    } catch (error) {
      if (!(error instanceof RelayProtocolError)) throw error;
      this.#refuse(`${this.#who()}: ${error.message}`);
      return false;
    }
    return this.#reader.borrowing;
  }

  #handle(frame: Uint8Array): void {
    const kind = frame[4];
    if (this.worker === 0) {
      if (kind !== FrameKind.HELLO) throw new RelayProtocolError(`a frame of kind ${kind} before HELLO`);
      const hello = parseHello(frame);
      if (!sameToken(hello.token, this.#settings.token)) throw new RelayProtocolError("a wrong token");
      clearTimeout(this.#helloTimer);
      this.worker = Math.max(1, hello.worker);
      this.#reader.limit = MAX_FRAME_LENGTH;
      this.#queue.shared(WELCOME_FRAME);
      this.#hub.report({ type: "connected", message: `worker ${this.worker} joined the relay` });
    } else if (kind === FrameKind.TEXT || kind === FrameKind.BINARY) {
      this.#hub.forward(this, publishTopic(frame), frame);
    } else if (kind === FrameKind.SUBSCRIBE) {
      const topic = parseTopic(frame);
      this.topics.add(topic);
      this.#hub.subscribe(this, topic);
    } else if (kind === FrameKind.UNSUBSCRIBE) {
      const topic = parseTopic(frame);
      this.topics.delete(topic);
      this.#hub.unsubscribe(this, topic);
    } else {
      throw new RelayProtocolError(`a frame of kind ${kind} from a worker`);
    }
  }

  #who(): string {
    return this.worker === 0 ? "a connection" : `worker ${this.worker}`;
  }

  /** Drops the connection for `why` (an error event). */
  #refuse(why: string): void {
    this.#hub.report({ type: "error", message: `relay: ${why}; dropping it` });
    this.transport.destroy();
  }

  drain(): void {}

  closed(): void {
    clearTimeout(this.#helloTimer);
    this.#queue.clear();
    this.#hub.gone(this);
    if (this.worker > 0) {
      this.#hub.report({ type: "disconnected", message: `worker ${this.worker} left the relay` });
    }
  }
}
