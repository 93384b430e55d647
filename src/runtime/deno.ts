/**
 * Transport adapter over `Deno.listen`, `Deno.listenTls` and `Deno.connect`.
 * @module
 */

import { type RawSocket, SocketTransport } from "./socket_state.ts";
import type {
  ConnectOptions,
  ListenOptions,
  ReadChunks,
  Transport,
  TransportEvents,
  TransportListener,
} from "./types.ts";

/** Read buffers start small so idle connections stay cheap, and grow while reads fill them. */
const MIN_READ = 4096;
const MAX_READ = 256 * 1024;

/** The read loop reads into one buffer for as long as the core keeps no view of it. */
const DENO_CHUNKS: ReadChunks = { reused: true, smallCopiesCheaper: false, ownBuffers: false };

/**
 * Writes under way at once, over all connections. Deno's writes are asynchronous, and each costs
 * several times more when thousands start in one turn (a publish to 19,000 sockets: 35–39 µs of
 * CPU a write, against 11–15 µs with a few hundred in flight), so past this many a write waits
 * for one to finish. Each socket has at most one write under way (see `SocketTransport`).
 */
const MAX_WRITES_IN_FLIGHT = 256;
let writesInFlight = 0;
/** Sockets whose write waits for a place, in order; those before `waitingFrom` have started. */
const waiting: DenoSocket[] = [];
let waitingFrom = 0;

/** A write finished: the next waiting ones start. */
function writeDone(): void {
  writesInFlight--;
  while (writesInFlight < MAX_WRITES_IN_FLIGHT && waitingFrom < waiting.length) {
    waiting[waitingFrom++].startWaiting();
  }
  if (waitingFrom === waiting.length) waiting.length = waitingFrom = 0;
  else if (waitingFrom >= 1024 && waitingFrom * 2 >= waiting.length) {
    // A queue never empty under steady load: drop the started ones so that it stays bounded.
    waiting.splice(0, waitingFrom);
    waitingFrom = 0;
  }
}

/** A `Deno.TcpConn` (or `TlsConn`) as a {@linkcode RawSocket}: writes are async, reads run in a loop. */
class DenoSocket implements RawSocket {
  /** The connection as the core sees it. */
  readonly transport: SocketTransport;
  readonly #conn: Deno.TcpConn | Deno.TlsConn;
  #terminated = false;
  /** Set while paused: the read loop waits on it before its next read. */
  #resumed: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  /** The bytes of a write that waits for a place among those in flight, or null. */
  #waiting: Uint8Array | null = null;
  /** Bound once, so that a write allocates no callbacks. */
  readonly #written = (n: number) => {
    writeDone();
    this.transport.writable(n);
  };
  readonly #writeFailed = () => {
    writeDone();
    this.transport.destroy();
  };
  readonly #failed = () => this.transport.destroy();

  /** Wraps a connection, with Nagle's algorithm off. */
  constructor(conn: Deno.TcpConn | Deno.TlsConn) {
    this.#conn = conn;
    this.transport = new SocketTransport(this, conn.remoteAddr.hostname, DENO_CHUNKS);
    try {
      (conn as Deno.TcpConn).setNoDelay?.(true);
    } catch {
      // Reset before we got to it: the first read ends the connection.
    }
  }

  /** Reads until the peer ends or the connection is gone, handing each chunk to the core. */
  async readLoop(): Promise<void> {
    const transport = this.transport;
    let buffer = new Uint8Array(MIN_READ);
    try {
      while (true) {
        if (this.#resumed !== null) await this.#resumed;
        if (this.#terminated) break;
        const target = transport.events.readTarget?.() ?? null;
        const n = await this.#conn.read(target ?? buffer);
        if (n === null || this.#terminated) break;
        if (target !== null) {
          transport.events.data(target.subarray(0, n));
          continue;
        }
        const kept = transport.events.data(buffer.subarray(0, n));
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
      // A reset or a read after terminate: either way the connection is over.
    }
    transport.peerEnded();
  }

  /** The peer's port (Deno keeps the address the connection was accepted from). */
  get remotePort(): number {
    return this.#conn.remoteAddr.port;
  }

  /**
   * Starts an async write (or queues it for a place); it reports back through `writable`, so none
   * is done at once.
   */
  write(bytes: Uint8Array): number {
    // An empty write would report back with nothing in flight.
    if (bytes.length === 0) return 0;
    if (writesInFlight < MAX_WRITES_IN_FLIGHT) this.#start(bytes);
    else {
      this.#waiting = bytes;
      waiting.push(this);
    }
    return 0;
  }

  #start(bytes: Uint8Array): void {
    writesInFlight++;
    this.#conn.write(bytes).then(this.#written, this.#writeFailed);
  }

  /** The write that waited has a place now (a socket closed meanwhile drops it). */
  startWaiting(): void {
    const bytes = this.#waiting!;
    this.#waiting = null;
    if (!this.#terminated) this.#start(bytes);
  }

  /** Sends FIN. */
  shutdown(): void {
    this.#conn.closeWrite().catch(this.#failed);
  }

  /** The same as `terminate`: Deno's close is graceful (what the kernel holds still goes out). */
  close(): void {
    this.terminate();
  }

  /** Closes the connection and ends the read loop. */
  terminate(): void {
    this.#terminated = true;
    this.resume(); // a paused read loop wakes to see the connection is gone
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
  }

  /** Makes the read loop wait before its next read. */
  pause(): void {
    this.#resumed ??= new Promise((resolve) => (this.#wake = resolve));
  }

  /** Lets a waiting read loop go on. */
  resume(): void {
    const wake = this.#wake;
    this.#resumed = this.#wake = null;
    wake?.();
  }
}

/** Listens with `Deno.listen`, or `Deno.listenTls` for TLS. */
export function listen(options: ListenOptions, accept: (transport: Transport) => void): TransportListener {
  const { hostname, port, reusePort = false, tls = null, acceptFailed } = options;
  if (tls?.passphrase !== undefined) {
    throw new TypeError(
      'Deno reads unencrypted TLS keys only; decrypt the key (openssl pkey -in key.pem -out plain.pem) and drop "tls.passphrase"',
    );
  }
  // Without the flag Deno ends the whole process (exit 70) on reusePort, so ask first: only
  // --unstable-net brings Deno.listenDatagram.
  if (reusePort && typeof (Deno as { listenDatagram?: unknown }).listenDatagram !== "function") {
    throw new Error("--unstable-net is needed for reusePort on Deno");
  }
  const listener: Deno.Listener<Deno.TcpConn | Deno.TlsConn> = tls === null
    ? Deno.listen({ hostname, port, transport: "tcp", reusePort })
    : Deno.listenTls({
      hostname,
      port,
      transport: "tcp",
      reusePort,
      cert: tls.cert,
      key: tls.key,
      alpnProtocols: ["http/1.1"],
    });
  const addr = listener.addr as Deno.NetAddr;
  (async () => {
    while (true) {
      let conn: Deno.TcpConn | Deno.TlsConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          return; // the listener was closed
        }
        // Out of file descriptors and the like: say so, and back off briefly instead of spinning.
        acceptFailed?.(error);
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      const socket = new DenoSocket(conn);
      accept(socket.transport);
      socket.readLoop();
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

/** Connects with `Deno.connect` (the `Connect` of ./types.ts). */
export async function connect(
  { hostname, port }: ConnectOptions,
  events: TransportEvents,
): Promise<Transport> {
  const socket = new DenoSocket(await Deno.connect({ hostname, port, transport: "tcp" }));
  socket.transport.events = events;
  socket.readLoop();
  return socket.transport;
}
