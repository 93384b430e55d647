/**
 * The backplane of a `--workers` worker: one loopback TCP connection to the relay in the
 * supervisor (./relay_hub.ts), which passes publishes between the workers, so topics span them
 * without Redis.
 * @module
 */

import { runtimeConnect } from "../runtime/mod.ts";
import { SendQueue } from "../send_queue.ts";
import type { Transport, TransportEvents } from "../runtime/types.ts";
import { Backoff } from "./backoff.ts";
import type { Backplane, BackplaneEvent, BackplaneStats } from "./backplane.ts";
import { BackplaneCounters } from "./backplane_counters.ts";
import {
  FrameKind,
  FrameReader,
  helloFrame,
  parsePublish,
  publishFrame,
  RelayProtocolError,
  tokenBytes,
  topicFrame,
} from "./relay_frame.ts";

/** Options of {@linkcode workerRelayBackplane}. */
export interface WorkerRelayOptions {
  /** The relay's port at 127.0.0.1 (`RelayHub.port`). */
  port: number;
  /** The relay's token (`RelayHub.token`), 32 hex digits. */
  token: string;
  /** This worker's id, which the relay names it by (1 or more). Default 1. */
  worker?: number;
  /**
   * Bytes of publishes that may wait for the relay (while it is away, or slow to take them);
   * past it, publishes are dropped and counted in `stats().dropped`. A single message larger
   * than this still goes out when nothing waits. Default 8 MiB.
   */
  maxBufferedBytes?: number;
  /** Told of every change of state and every error. Default: the server's `onEvent`. */
  onEvent?: (event: BackplaneEvent) => void;
}

/**
 * A backplane over the relay of a `--workers` supervisor. A publish is delivered to this
 * process's subscribers at once and sent to the relay once, which passes it on to the workers
 * that have subscribers of its topic (the relay knows, as each worker tells it when it gets its
 * first subscriber of a topic and when it loses its last). When the relay is away, local
 * delivery goes on, publishes wait (up to `maxBufferedBytes`, then are dropped and counted), and
 * the backplane reconnects with backoff, subscribes again and sends what waited, in order.
 */
export function workerRelayBackplane(options: WorkerRelayOptions): Backplane {
  return new WorkerRelay(resolve(options));
}

interface Settings {
  port: number;
  token: Uint8Array;
  worker: number;
  maxBufferedBytes: number;
  onEvent: ((event: BackplaneEvent) => void) | null;
}

const NAME = "workerRelayBackplane()";

function resolve(options: WorkerRelayOptions): Settings {
  if (typeof options !== "object" || options === null) throw new TypeError(`${NAME} takes an options object`);
  for (const name of Object.keys(options)) {
    if (!["port", "token", "worker", "maxBufferedBytes", "onEvent"].includes(name)) {
      throw new TypeError(`unknown option "${name}" of ${NAME}`);
    }
  }
  const { port, worker = 1, maxBufferedBytes = 8 * 1024 * 1024, onEvent = null } = options;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`${NAME} option "port" must be 1-65535`);
  }
  if (!Number.isInteger(worker) || worker < 1 || worker > 0xffff_ffff) {
    throw new RangeError(`${NAME} option "worker" must be a whole number from 1`);
  }
  if (!Number.isInteger(maxBufferedBytes) || maxBufferedBytes < 0) {
    throw new RangeError(`${NAME} option "maxBufferedBytes" must be a whole number of bytes`);
  }
  if (onEvent !== null && typeof onEvent !== "function") {
    throw new TypeError(`${NAME} option "onEvent" must be a function`);
  }
  return { port, token: tokenBytes(options.token, NAME), worker, maxBufferedBytes, onEvent };
}

class WorkerRelay implements Backplane {
  readonly #settings: Settings;
  /** Topics this process has subscribers of. */
  readonly #topics = new Set<string>();
  #deliver: ((topic: string, data: string | Uint8Array) => void) | null = null;
  #transport: Transport | null = null;
  /** Frames for the relay, written together at the end of each turn. */
  #queue: SendQueue | null = null;
  #reader: FrameReader | null = null;
  /** Whether the relay has welcomed the current connection (frames written now reach it). */
  #welcomed = false;
  /** Publishes waiting for the relay, and their bytes. */
  #waiting: Uint8Array[] = [];
  #waitingBytes = 0;
  readonly #backoff = new Backoff();
  /** Why the current connection is being dropped, when it is dropped on purpose (reported already). */
  #dropping = "";
  /** Whether it was welcomed since it last reported a loss (so each loss is told once). */
  #wasUp = true;
  #connections = 0;
  #closed = false;
  /** Its counters, and where its events go. */
  readonly #counters: BackplaneCounters;
  /** The events of every connection it makes (made once). */
  readonly #events: TransportEvents = {
    data: (chunk) => this.#data(chunk),
    drain() {},
    closed: () => this.#lost(),
  };

  constructor(settings: Settings) {
    this.#settings = settings;
    this.#counters = new BackplaneCounters(settings.onEvent);
  }

  attach(
    deliver: (topic: string, data: string | Uint8Array) => void,
    report: (event: BackplaneEvent) => void,
  ): void {
    this.#deliver = deliver;
    this.#counters.attach(report);
    void this.#connect();
  }

  subscribe(topic: string): void {
    this.#topics.add(topic);
    if (this.#welcomed) this.#queue!.shared(topicFrame(FrameKind.SUBSCRIBE, topic));
  }

  unsubscribe(topic: string): void {
    this.#topics.delete(topic);
    if (this.#welcomed) this.#queue!.shared(topicFrame(FrameKind.UNSUBSCRIBE, topic));
  }

  publish(topic: string, data: string | Uint8Array): void {
    if (this.#closed) return;
    const frame = publishFrame(topic, data);
    if (frame === null) {
      this.#counters.dropped++;
      return this.#counters.report({
        type: "error",
        message: `a message to "${topic}" is too large for the relay`,
      });
    }
    const limit = this.#settings.maxBufferedBytes;
    if (this.#welcomed) {
      const pending = this.#transport!.pending + this.#queue!.bytes;
      if (pending === 0 || pending + frame.length <= limit) {
        this.#queue!.shared(frame);
        this.#counters.published++;
        return;
      }
    } else if (this.#waitingBytes === 0 || this.#waitingBytes + frame.length <= limit) {
      this.#waiting.push(frame);
      this.#waitingBytes += frame.length;
      return;
    }
    this.#counters.dropped++;
  }

  stats(): BackplaneStats {
    const state = this.#closed ? "closed" : this.#welcomed ? "connected" : "connecting";
    return this.#counters.stats(state, Math.max(0, this.#connections - 1), this.#waitingBytes);
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#backoff.cancel();
    this.#transport?.destroy();
    this.#waiting = [];
    this.#waitingBytes = 0;
    return Promise.resolve();
  }

  async #connect(): Promise<void> {
    const { port, token, worker } = this.#settings;
    let transport: Transport;
    try {
      transport = await runtimeConnect()({ hostname: "127.0.0.1", port }, this.#events);
    } catch (error) {
      return this.#retry(
        `cannot connect to the relay at 127.0.0.1:${port} (${(error as Error).message})`,
        false,
      );
    }
    if (this.#closed) return transport.destroy();
    this.#transport = transport;
    this.#queue = new SendQueue(transport);
    this.#reader = new FrameReader(transport.readChunks.ownBuffers);
    this.#queue.shared(helloFrame(token, worker));
  }

  #data(chunk: Uint8Array): boolean {
    const reader = this.#reader!;
    try {
      for (const frame of reader.push(chunk)) this.#handle(frame);
    } catch (error) {
      if (!(error instanceof RelayProtocolError)) throw error;
      this.#dropping = `the relay sent ${error.message}`;
      this.#counters.report({ type: "error", message: `${this.#dropping}; reconnecting` });
      this.#transport!.destroy();
      return false;
    }
    return reader.borrowing;
  }

  #handle(frame: Uint8Array): void {
    const kind = frame[4];
    if (kind === FrameKind.WELCOME && !this.#welcomed) return this.#up();
    if ((kind !== FrameKind.TEXT && kind !== FrameKind.BINARY) || !this.#welcomed) {
      throw new RelayProtocolError(`a frame of kind ${kind}`);
    }
    const { topic, data } = parsePublish(frame);
    if (!this.#topics.has(topic)) return; // unsubscribed while it was on its way
    this.#counters.received++;
    this.#deliver!(topic, data);
  }

  /** The relay took the token: it hears of every topic here, then gets what waited, in order. */
  #up(): void {
    const queue = this.#queue!;
    this.#welcomed = true;
    this.#backoff.reset();
    this.#wasUp = true;
    this.#connections++;
    for (const topic of this.#topics) queue.shared(topicFrame(FrameKind.SUBSCRIBE, topic));
    const waiting = this.#waiting;
    this.#waiting = [];
    this.#waitingBytes = 0;
    for (const frame of waiting) queue.shared(frame);
    this.#counters.published += waiting.length;
    this.#counters.report({
      type: "connected",
      message: `connected to the relay at 127.0.0.1:${this.#settings.port}`,
    });
  }

  /** The connection is gone: it is made again after the backoff. */
  #lost(): void {
    const dropped = this.#dropping;
    const why = dropped ||
      (this.#welcomed
        ? "the relay closed the connection"
        : "the relay refused the connection (wrong token?)");
    this.#queue!.clear();
    this.#transport = this.#queue = this.#reader = null;
    this.#welcomed = false;
    this.#dropping = "";
    this.#retry(why, dropped !== "");
  }

  /** Tries again after the backoff; `reported` when the failure was an error event already. */
  #retry(why: string, reported: boolean): void {
    if (this.#closed) return;
    if (!reported) this.#counters.failed(why);
    if (this.#wasUp) {
      this.#wasUp = false;
      this.#counters.report({ type: "disconnected", message: `${why}; reconnecting with backoff` });
    }
    this.#backoff.retry(() => void this.#connect());
  }
}
