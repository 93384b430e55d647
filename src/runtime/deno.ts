/**
 * Transport adapter over `Deno.listen`.
 * @module
 */

import type { ListenOptions, Transport, TransportEvents, TransportListener } from "./types.ts";

/** Read buffers start small so idle connections stay cheap, and grow while reads fill them. */
const MIN_READ = 4096;
const MAX_READ = 256 * 1024;

class DenoTransport implements Transport {
  readonly remoteAddress: string;
  readonly remotePort: number;
  events!: TransportEvents;
  pending = 0;
  #conn: Deno.TcpConn;
  #queue: Uint8Array[] = [];
  #writing = false;
  #ending = false;
  #readDone = false;
  #closed = false;
  /** Set while paused: the read loop waits on it before its next read. */
  #resumed: Promise<void> | null = null;
  #wake: (() => void) | null = null;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    const addr = conn.remoteAddr;
    this.remoteAddress = addr.hostname;
    this.remotePort = addr.port;
    try {
      conn.setNoDelay(true);
    } catch {
      // Reset before we got to it: the first read ends the connection.
    }
  }

  async readLoop(): Promise<void> {
    let buffer = new Uint8Array(MIN_READ);
    try {
      while (true) {
        if (this.#resumed !== null) await this.#resumed;
        if (this.#closed) break;
        const target = this.events.readTarget?.() ?? null;
        const n = await this.#conn.read(target ?? buffer);
        if (n === null || this.#closed) break;
        if (target !== null) {
          this.events.data(target.subarray(0, n));
          continue;
        }
        const kept = this.events.data(buffer.subarray(0, n));
        if (n === buffer.length && buffer.length < MAX_READ) {
          buffer = new Uint8Array(buffer.length * 2);
        } else if (kept) {
          // The core keeps the old buffer: the new one fits what reads bring now.
          let size = MIN_READ;
          while (size < n && size < MAX_READ) size *= 2;
          buffer = new Uint8Array(size);
        }
      }
    } catch {
      // A reset or a read after destroy: either way the connection is over.
    }
    this.#readDone = true;
    // A peer that half-closed after its last frame still gets what the core queued in reply.
    if (!this.#ending || !this.#writing) this.destroy();
  }

  pause(): void {
    this.#resumed ??= new Promise((resolve) => (this.#wake = resolve));
  }

  resume(): void {
    const wake = this.#wake;
    this.#resumed = this.#wake = null;
    wake?.();
  }

  write(bytes: Uint8Array): boolean {
    if (this.#closed || this.#ending) return false;
    this.#queue.push(bytes);
    this.pending += bytes.length;
    if (!this.#writing) this.#flush();
    return true;
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    const queue = this.#queue;
    try {
      while (queue.length > 0) {
        const bytes = queue[0];
        const n = await this.#conn.write(bytes);
        this.pending -= n;
        if (n < bytes.length) queue[0] = bytes.subarray(n);
        else queue.shift();
      }
    } catch {
      this.destroy();
      return;
    } finally {
      this.#writing = false;
    }
    if (this.#closed) return;
    if (this.#ending) this.#halfClose();
    else this.events.drain();
  }

  end(): void {
    if (this.#closed || this.#ending) return;
    this.#ending = true;
    if (!this.#writing) this.#halfClose();
  }

  #halfClose(): void {
    if (this.#readDone) return this.destroy();
    this.#conn.closeWrite().catch(() => this.destroy());
  }

  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.pending = 0;
    this.resume(); // a paused read loop wakes to see the connection is gone
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
    this.events.close();
  }
}

/** Listens with `Deno.listen`. */
export function listen(options: ListenOptions, accept: (transport: Transport) => void): TransportListener {
  const listener = Deno.listen({ hostname: options.hostname, port: options.port, transport: "tcp" });
  const addr = listener.addr as Deno.NetAddr;
  (async () => {
    while (true) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          return; // the listener was closed
        }
        // Out of file descriptors and the like: back off briefly instead of spinning.
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      const transport = new DenoTransport(conn);
      accept(transport);
      transport.readLoop();
    }
  })();
  const result: TransportListener = {
    port: addr.port,
    hostname: addr.hostname,
    close() {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
    },
  };
  return result;
}
