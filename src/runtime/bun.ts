/**
 * Transport adapter over `Bun.listen` and `Bun.connect` (TLS too).
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

/**
 * The part of Bun's socket this adapter uses. It is a {@linkcode RawSocket} as it is: `write`
 * takes what the kernel takes now and keeps no reference, and `drain` says when to write again.
 */
interface BunSocket extends RawSocket {
  readonly remoteAddress: string;
  data: SocketTransport;
  /** Without an argument, sends FIN and keeps reading (`end()` would close both directions). */
  shutdown(): void;
  /** Graceful (unlike `terminate`, which resets): what the kernel holds still goes out. */
  close(): void;
}

/**
 * Every read brings a new chunk, a buffer of its own, and views of it cost JavaScriptCore more
 * than small copies.
 */
const BUN_CHUNKS: ReadChunks = { reused: false, smallCopiesCheaper: true, ownBuffers: true };

/** Smallest read buffer released as soon as the core is done with it (see `data` below). */
const RELEASE_MIN = 64 * 1024;

/** Socket handlers that hand Bun's events to each socket's transport, made on `open`. */
function handlers(opened: (socket: BunSocket, transport: SocketTransport) => void) {
  return {
    // Plain Uint8Array chunks, so handlers never see Bun's Buffer subclass.
    binaryType: "uint8array",
    // No setNoDelay: Bun already sets TCP_NODELAY on every socket it accepts or opens.
    open(socket: BunSocket) {
      const transport = new SocketTransport(socket, socket.remoteAddress, BUN_CHUNKS);
      socket.data = transport;
      opened(socket, transport);
    },
    // With a handshake handler Bun opens a TLS socket before its handshake, so the core's deadline
    // covers the handshake (and can close a socket that never sends its ClientHello).
    handshake() {},
    data(socket: BunSocket, chunk: Uint8Array<ArrayBuffer>) {
      // Bun gives every read a new buffer. A large one the core keeps no view of is released at
      // once, so the allocator hands its warm memory to the next read instead of fresh pages
      // until a collection comes (about a fifth of the time of a 1 MiB echo). Small buffers come
      // back warm anyway, and releasing each cost 10% of a 32 B echo.
      if (!socket.data.events.data(chunk) && chunk.length >= RELEASE_MIN) chunk.buffer.transfer(0);
    },
    drain(socket: BunSocket) {
      socket.data.writable(0);
    },
    end(socket: BunSocket) {
      socket.data.peerEnded();
    },
    close(socket: BunSocket) {
      socket.data?.closed();
    },
    error(socket: BunSocket) {
      socket.data?.destroy();
    },
  };
}

// deno-lint-ignore no-explicit-any
const bun = () => (globalThis as any).Bun;

/** Listens with `Bun.listen`, with TLS when asked. */
export function listen(options: ListenOptions, accept: (transport: Transport) => void): TransportListener {
  const { hostname, port, reusePort = false, tls = null } = options;
  const listener = bun().listen({
    hostname,
    port,
    reusePort,
    allowHalfOpen: true,
    // ALPN in its wire form: each protocol name after its length byte.
    tls: tls === null ? undefined : { ...tls, ALPNProtocols: "\x08http/1.1" },
    socket: handlers((_socket, transport) => accept(transport)),
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

/** Connects with `Bun.connect` (the `Connect` of ./types.ts). */
export async function connect(
  { hostname, port }: ConnectOptions,
  events: TransportEvents,
): Promise<Transport> {
  let made: SocketTransport | null = null;
  await bun().connect({
    hostname,
    port,
    allowHalfOpen: true,
    socket: handlers((_socket, transport) => {
      transport.events = events;
      made = transport;
    }),
  });
  return made!;
}
