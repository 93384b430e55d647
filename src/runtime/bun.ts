/**
 * Transport adapter over `Bun.listen`.
 * @module
 */

import type { ListenOptions, Transport, TransportEvents, TransportListener } from "./types.ts";

/** The part of Bun's socket this adapter uses. */
interface BunSocket {
  readonly remoteAddress: string;
  readonly remotePort?: number;
  data: BunTransport;
  write(bytes: Uint8Array): number;
  /** Without an argument, sends FIN and keeps reading (`end()` would close both directions). */
  shutdown(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
}

class BunTransport implements Transport {
  readonly remoteAddress: string;
  readonly remotePort: number;
  events!: TransportEvents;
  pending = 0;
  #socket: BunSocket;
  /**
   * Bytes the kernel did not take yet, as Bun's `write` does not queue them for us (created on
   * the first short write; empty exactly when `pending` is 0).
   */
  #queue: Uint8Array[] | null = null;
  #ending = false;
  #peerEnded = false;
  #closed = false;

  constructor(socket: BunSocket) {
    this.#socket = socket;
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort ?? 0;
  }

  write(bytes: Uint8Array): boolean {
    if (this.#closed || this.#ending) return false;
    if (this.pending === 0) {
      const n = this.#socket.write(bytes);
      if (n === bytes.length) return false;
      bytes = bytes.subarray(Math.max(n, 0));
    }
    (this.#queue ??= []).push(bytes);
    this.pending += bytes.length;
    return true;
  }

  pause(): void {
    if (!this.#closed) this.#socket.pause();
  }

  resume(): void {
    if (!this.#closed) this.#socket.resume();
  }

  /** Bun says the socket is writable again: push out what is queued. */
  onWritable(): void {
    const queue = this.#queue;
    while (queue !== null && queue.length > 0) {
      const bytes = queue[0];
      const n = this.#socket.write(bytes);
      if (n > 0) this.pending -= n;
      if (n < bytes.length) {
        if (n > 0) queue[0] = bytes.subarray(n);
        return;
      }
      queue.shift();
    }
    if (this.#ending) this.#halfClose();
    else this.events.drain();
  }

  /** The peer sent FIN. */
  onPeerEnd(): void {
    this.#peerEnded = true;
    // A peer that half-closed after its last frame still gets what the core queued in reply.
    if (!this.#ending || this.pending === 0) this.destroy();
  }

  end(): void {
    if (this.#closed || this.#ending) return;
    this.#ending = true;
    if (this.pending === 0) this.#halfClose();
  }

  #halfClose(): void {
    if (this.#peerEnded) return this.destroy();
    this.#socket.shutdown();
  }

  destroy(): void {
    if (this.#closed) return;
    this.#socket.terminate();
    this.onClosed();
  }

  onClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = null;
    this.pending = 0;
    this.events.close();
  }
}

/** Listens with `Bun.listen`. */
export function listen(options: ListenOptions, accept: (transport: Transport) => void): TransportListener {
  // deno-lint-ignore no-explicit-any
  const bun = (globalThis as any).Bun;
  const listener = bun.listen({
    hostname: options.hostname,
    port: options.port,
    allowHalfOpen: true,
    socket: {
      // Plain Uint8Array chunks, so handlers never see Bun's Buffer subclass.
      binaryType: "uint8array",
      // No setNoDelay: Bun already sets TCP_NODELAY on every socket it accepts.
      open(socket: BunSocket) {
        const transport = new BunTransport(socket);
        socket.data = transport;
        accept(transport);
      },
      data(socket: BunSocket, chunk: Uint8Array) {
        socket.data.events.data(chunk);
      },
      drain(socket: BunSocket) {
        socket.data.onWritable();
      },
      end(socket: BunSocket) {
        socket.data.onPeerEnd();
      },
      close(socket: BunSocket) {
        socket.data?.onClosed();
      },
      error(socket: BunSocket) {
        socket.data?.destroy();
      },
    },
  });
  const result: TransportListener = {
    port: listener.port,
    hostname: listener.hostname,
    close() {
      listener.stop(false);
    },
  };
  return result;
}
