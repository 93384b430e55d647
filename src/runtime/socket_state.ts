/**
 * What every adapter's connection does the same way, over the few calls in which the runtimes'
 * sockets differ ({@linkcode RawSocket}): the write queue and its pending count, the half-close
 * (FIN once the queue drains, or a full close when the peer already ended), pause and resume, and
 * the close bookkeeping. Adapters only translate their runtime's socket into these calls.
 * @module
 */

import { FRESH_CHUNKS, type ReadChunks, type Transport, type TransportEvents } from "./types.ts";

/** The calls in which the runtimes' sockets differ. */
export interface RawSocket {
  /** The peer's port, read only when asked for (Bun works it out anew on each read). */
  readonly remotePort: number | undefined;
  /**
   * Writes from `bytes` and returns how many of them the socket is done with at once (a negative
   * number counts as none). The socket may not have taken the rest (Bun), or may hold it in flight
   * (Deno, Node); either way it gets no other write until it calls
   * {@linkcode SocketTransport.writable}.
   */
  write(bytes: Uint8Array): number;
  /** Sends FIN; reading goes on until the peer closes. */
  shutdown(): void;
  /**
   * Closes both directions once the peer has sent FIN, letting what the socket took still go
   * out (its last bytes and FIN).
   */
  close(): void;
  /** Closes both directions at once; what the socket has not sent may be dropped. */
  terminate(): void;
  /** Stops reading (see {@linkcode Transport.pause}). */
  pause(): void;
  /** Reads again after `pause`. */
  resume(): void;
}

/** One connection's {@linkcode Transport}, over its runtime's {@linkcode RawSocket}. */
export class SocketTransport implements Transport {
  /** The peer's IP address. */
  readonly remoteAddress: string;
  /** What the adapter's read chunks are like (one object per adapter). */
  readonly readChunks: ReadChunks;
  /** Where events go; the core sets it once when it takes the connection. */
  events!: TransportEvents;
  readonly #raw: RawSocket;
  #pending = 0;
  /**
   * Bytes the socket is not done with, the one it works on first (created on the first short
   * write; empty exactly when `pending` is 0).
   */
  #queue: Uint8Array[] | null = null;
  #ending = false;
  #peerEnded = false;
  #closed = false;
  /** Whether the socket was told to stop reading (told again only on a change: on Bun each is a syscall). */
  #paused = false;

  /** Wraps `raw`, connected to `remoteAddress`, whose reads bring `readChunks`. */
  constructor(raw: RawSocket, remoteAddress: string, readChunks = FRESH_CHUNKS) {
    this.#raw = raw;
    this.remoteAddress = remoteAddress;
    this.readChunks = readChunks;
  }

  /** The peer's port (0 once the socket no longer knows it). */
  get remotePort(): number {
    return this.#raw.remotePort ?? 0;
  }

  /** Bytes accepted by `write` that the socket is not done with. */
  get pending(): number {
    return this.#pending;
  }

  /** Writes `bytes` at once if the socket takes them all, else queues the rest (see {@linkcode Transport.write}). */
  write(bytes: Uint8Array): boolean {
    if (this.#closed || this.#ending) return false;
    if (this.#pending === 0) {
      const n = this.#raw.write(bytes);
      if (n === bytes.length) return false;
      if (n > 0) bytes = bytes.subarray(n);
    }
    (this.#queue ??= []).push(bytes);
    this.#pending += bytes.length;
    return true;
  }

  /**
   * For the adapter: the socket finished `done` more bytes of what it held in flight (0 when it
   * holds none) and takes more. Writes on from the queue; once it is empty, half-closes if
   * `end` was called, else reports `drain`.
   */
  writable(done: number): void {
    if (this.#closed) return;
    const queue = this.#queue;
    if (done > 0 && queue !== null) {
      this.#pending -= done;
      if (done < queue[0].length) queue[0] = queue[0].subarray(done);
      else queue.shift();
    }
    while (queue !== null && queue.length > 0) {
      const bytes = queue[0];
      const n = this.#raw.write(bytes);
      if (n > 0) this.#pending -= n;
      if (n < bytes.length) {
        if (n > 0) queue[0] = bytes.subarray(n);
        return;
      }
      queue.shift();
    }
    if (this.#ending) this.#halfClose();
    else this.events.drain();
  }

  /** For the adapter: the peer sent FIN (or reading ended otherwise). */
  peerEnded(): void {
    this.#peerEnded = true;
    // A peer that half-closed after its last frame still gets what the core queued in reply.
    if (!this.#ending || this.#pending === 0) this.destroy();
  }

  /** Stops reading until `resume`. */
  pause(): void {
    if (this.#closed || this.#paused) return;
    this.#paused = true;
    this.#raw.pause();
  }

  /** Reads again after `pause`. */
  resume(): void {
    if (this.#closed || !this.#paused) return;
    this.#paused = false;
    this.#raw.resume();
  }

  /** Writes what is queued, then half-closes. */
  end(): void {
    if (this.#closed || this.#ending) return;
    this.#ending = true;
    if (this.#pending === 0) this.#halfClose();
  }

  #halfClose(): void {
    if (!this.#peerEnded) return this.#raw.shutdown();
    // Not terminate: an abortive close would drop the reply's tail still in the kernel.
    this.#raw.close();
    this.closed();
  }

  /** Closes at once, dropping queued bytes. */
  destroy(): void {
    if (this.#closed) return;
    this.#raw.terminate();
    this.closed();
  }

  /** For the adapter: the socket is gone. Reports `close` once; nothing follows it. */
  closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = null;
    this.#pending = 0;
    this.events.closed();
  }
}
