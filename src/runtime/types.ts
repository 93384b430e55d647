/**
 * The small TCP interface the core sees. Each runtime adapter implements it and nothing more:
 * adapters hold no protocol logic. A leaf: it imports nothing.
 * @module
 */

/** What the core does with one connection's events. */
export interface TransportEvents {
  /**
   * Bytes arrived. The chunk now belongs to the core, which may keep views into it; the return
   * value says whether it did (true) so that an adapter may reuse the buffer when not (false).
   */
  data(chunk: Uint8Array): boolean;
  /**
   * Where the next read's bytes should go, if somewhere in particular: for adapters whose runtime
   * reads into a buffer the caller gives (Deno). The bytes read are then passed to `data` as a
   * view of the start of this target. `null` (or no such method) means any buffer will do.
   */
  readTarget?(): Uint8Array | null;
  /** All queued bytes were handed to the operating system. */
  drain(): void;
  /** The connection is gone (peer closed, error, or destroyed); no event follows. */
  closed(): void;
}

/**
 * What an adapter's read chunks are like. Whole messages that lie in one chunk are handed to the
 * handler as views of it unless one of these says a copy costs less (measured with bench/).
 */
export interface ReadChunks {
  /**
   * The adapter reads into the same buffer again when `data` returns false (Deno). The core then
   * copies messages of `SMALL_PIECE` bytes or more out of it: a view would make the adapter
   * allocate (and zero) a new read buffer for every read.
   */
  readonly reused: boolean;
  /**
   * A copy of a small piece of a chunk costs less than a view of it (JavaScriptCore, on the chunks
   * Bun makes): the frame parser copies payload pieces under `SMALL_PIECE` bytes.
   */
  readonly smallCopiesCheaper: boolean;
  /**
   * Every chunk is a whole buffer of its own, exactly as long as the chunk (Bun). What a view of
   * it keeps alive is then known without asking for its `buffer`, which JavaScriptCore makes
   * (copying the bytes out of its heap) when a small typed array is first asked for it.
   */
  readonly ownBuffers: boolean;
}

/** Chunks that are new for every read, viewed at no extra cost, but may lie in a larger buffer (Node). */
export const FRESH_CHUNKS: ReadChunks = { reused: false, smallCopiesCheaper: false, ownBuffers: false };

/**
 * Below this many bytes, one payload piece or whole message counts as small for
 * {@linkcode ReadChunks}: several such messages share a read.
 */
export const SMALL_PIECE = 128;

/**
 * Bytes a transport may have pending before its peer counts as not keeping up. Below it, what is
 * pending is a write in flight (Deno's writes complete asynchronously, so every write is pending
 * for a moment), not a backlog: a pong goes out at once, a response goes on being written.
 */
export const BACKLOG_THRESHOLD = 64 * 1024;

/** One accepted TCP connection. */
export interface Transport {
  /** The peer's IP address. */
  readonly remoteAddress: string;
  /** The peer's port, looked up when read (0 once the socket no longer knows it). */
  readonly remotePort: number;
  /** Bytes accepted by `write` but not yet handed to the operating system. */
  readonly pending: number;
  /** What the adapter's read chunks are like, which decides when the core copies out of them. */
  readonly readChunks: ReadChunks;
  /** Where events go; the core sets it once when it takes the connection. */
  events: TransportEvents;
  /**
   * Writes `bytes`, queueing what the operating system does not take now. The adapter may keep a
   * reference to `bytes` until written, so the caller must not change them afterwards. Returns
   * true when it kept one (the bytes are queued), false when they are already written.
   */
  write(bytes: Uint8Array): boolean;
  /**
   * Stops reading: no `data` follows until `resume`, so the kernel's receive window fills and the
   * peer's writes block (real TCP backpressure, not a buffer that grows). A read already under
   * way may still deliver its chunk.
   */
  pause(): void;
  /** Reads again after `pause`. */
  resume(): void;
  /** Writes what is queued, then half-closes (FIN); reading goes on until the peer closes. */
  end(): void;
  /** Closes at once, dropping queued bytes. */
  destroy(): void;
}

/** A listening socket. */
export interface TransportListener {
  /** The bound port (useful when 0 was asked for). */
  readonly port: number;
  /** The bound address. */
  readonly hostname: string;
  /** Stops accepting; open connections are left alone. */
  close(): void;
}

/** Settings of the `tls` option: what a listener serves TLS with. */
export interface TlsOptions {
  /** The certificate chain in PEM: the server's certificate first, then any intermediates. */
  cert: string;
  /** The private key in PEM. */
  key: string;
  /** The passphrase of an encrypted key (Bun and Node; Deno reads unencrypted keys only). */
  passphrase?: string;
}

/** Options for {@linkcode Listen}. */
export interface ListenOptions {
  /** The address to bind. */
  hostname: string;
  /** The port to bind; 0 for any free one. */
  port: number;
  /** Whether to set SO_REUSEPORT, so that other processes may listen on the port too. Default false. */
  reusePort?: boolean;
  /** Serve TLS with this certificate chain and key (PEM), offering ALPN `http/1.1`. Default: plain TCP. */
  tls?: TlsOptions | null;
  /**
   * Told when accepting a connection failed (out of file descriptors, say), the listener going on.
   * Deno reports each failure; Node's libuv closes the connections it has no descriptor for
   * without a word, and Bun reports nothing either.
   */
  acceptFailed?: (error: unknown) => void;
}

/** Where {@linkcode Connect} connects to. */
export interface ConnectOptions {
  /** The host to connect to. */
  hostname: string;
  /** Its port. */
  port: number;
}

/**
 * Opens an outgoing TCP connection whose events go to `events` from the first byte on; resolves
 * once it is connected, rejects when it cannot be.
 */
export type Connect = (options: ConnectOptions, events: TransportEvents) => Promise<Transport>;

/**
 * Starts listening and hands each new connection to `accept`, which sets its events. Throws
 * synchronously when the address cannot be bound.
 */
export type Listen = (
  options: ListenOptions,
  accept: (transport: Transport) => void,
) => TransportListener;
