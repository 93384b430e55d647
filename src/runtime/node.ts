/**
 * Transport adapter over `node:net` (and `node:tls` for TLS).
 * @module
 */

import { subscribe, unsubscribe } from "node:diagnostics_channel";
import {
  type AddressInfo,
  connect as netConnect,
  createServer,
  isIP,
  type Server,
  type Socket,
} from "node:net";
import { createSecureContext, TLSSocket } from "node:tls";
import { type RawSocket, SocketTransport } from "./socket_state.ts";
import type {
  ConnectOptions,
  ListenOptions,
  Transport,
  TransportEvents,
  TransportListener,
} from "./types.ts";

/**
 * A `net.Socket` as a {@linkcode RawSocket}. Node's `write` takes every byte, writing at once what
 * the kernel takes and keeping a reference to the rest until its callback; only then may the
 * shared state write again.
 */
class NodeSocket implements RawSocket {
  /** The connection as the core sees it. */
  readonly transport: SocketTransport;
  readonly #socket: Socket;
  /** Writes whose callback has not come yet (those done at once call back a tick later). */
  #unconfirmed = 0;
  /** The length of the write Node kept, 0 when none: its callback is the last outstanding one. */
  #kept = 0;
  /** Bound once, so that a write allocates no callback. */
  readonly #written = (error?: Error | null) => {
    if (--this.#unconfirmed > 0 || this.#kept === 0) return;
    const kept = this.#kept;
    this.#kept = 0;
    if (!error) this.transport.writable(kept); // else the socket is gone, and "close" says so
  };

  /** Wraps an accepted socket, handing its chunks to the core as plain `Uint8Array`s. */
  constructor(socket: Socket) {
    this.#socket = socket;
    const transport = new SocketTransport(this, socket.remoteAddress ?? "");
    this.transport = transport;
    // A view of the Buffer's bytes, so that handlers never see Node's Buffer subclass.
    socket.on("data", (chunk: Uint8Array) => {
      transport.events.data(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
    socket.on("end", () => transport.peerEnded());
    socket.on("close", () => transport.closed());
    socket.on("error", () => transport.destroy());
  }

  /** The peer's port, as Node's socket reports it. */
  get remotePort(): number | undefined {
    return this.#socket.remotePort;
  }

  /** Writes `bytes`; all of them are done at once unless Node had to keep them. */
  write(bytes: Uint8Array): number {
    this.#unconfirmed++;
    this.#socket.write(bytes, this.#written);
    if (this.#socket.writableLength === 0) return bytes.length;
    this.#kept = bytes.length;
    return 0;
  }

  /** Sends FIN (the socket allows half-open connections, so reading goes on). */
  shutdown(): void {
    this.#socket.end();
  }

  /** Sends FIN; as the peer has ended already, Node then closes the socket. */
  close(): void {
    this.#socket.end();
  }

  /** Closes the socket, dropping what Node still holds. */
  terminate(): void {
    this.#socket.destroy();
  }

  /** Stops reading: Node stops reading from the kernel once its small buffer is full. */
  pause(): void {
    this.#socket.pause();
  }

  /** Reads again. */
  resume(): void {
    this.#socket.resume();
  }
}

/**
 * Takes over a socket that a `node:http` (or `node:https`) server handed to its `upgrade`
 * listeners, its HTTP parser detached: the core sets its events at once, and it reads on.
 */
export function adoptUpgradeSocket(socket: Socket): Transport {
  socket.setTimeout(0); // the HTTP server's idle timeout is for HTTP, not for a WebSocket
  socket.setNoDelay(true);
  const { transport } = new NodeSocket(socket);
  socket.resume();
  return transport;
}

/** The part of `net.Server` that binds: what `listen()` calls once it has looked the host up. */
interface Bindable {
  _listen2(
    address: string,
    port: number,
    family: number,
    backlog: number,
    fd: undefined,
    flags: number,
  ): void;
}

/**
 * Binds `server` before returning, as `serve` promises a bound server. Node's `listen()` binds a
 * tick later, after looking the host up (an IP address too), so this calls its bind step itself;
 * that step emits a failure a tick later as well, but publishes it at once on the
 * `net.server.listen` tracing channel, so it is thrown here. Names cannot be looked up at once:
 * `localhost` is taken as `127.0.0.1` (as Deno does), other names are refused.
 */
function bind(server: Server, { hostname, port }: ListenOptions): void {
  const address = hostname === "localhost" ? "127.0.0.1" : hostname;
  const family = isIP(address);
  if (family === 0) {
    throw new TypeError(
      `on Node, "hostname" must be an IP address such as "127.0.0.1", "0.0.0.0" or "::1", got "${hostname}"`,
    );
  }
  let failure: unknown = null;
  const failed = (message: unknown) => (failure = (message as { error: unknown }).error);
  subscribe("tracing:net.server.listen:error", failed);
  try {
    (server as unknown as Bindable)._listen2(address, port, family, 511, undefined, 0);
  } finally {
    unsubscribe("tracing:net.server.listen:error", failed);
  }
  if (!server.listening) throw failure ?? new Error(`could not listen on ${hostname} port ${port}`);
}

/**
 * Listens with `node:net`. With TLS, each accepted socket is wrapped in a `TLSSocket` and handed
 * to the core before its handshake, so that the core's deadline covers the handshake too.
 */
export function listen(options: ListenOptions, accept: (transport: Transport) => void): TransportListener {
  const { reusePort = false, tls = null } = options;
  if (reusePort) {
    throw new Error('Wisp on Node cannot set SO_REUSEPORT (option "reusePort"); use Deno or Bun for that');
  }
  const secureContext = tls === null ? null : createSecureContext(tls);
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    const secured = secureContext === null
      ? socket
      : new TLSSocket(socket, { isServer: true, secureContext, ALPNProtocols: ["http/1.1"] });
    accept(new NodeSocket(secured).transport);
  });
  // A failed bind is thrown by `bind`, and a failed accept (out of descriptors, say) leaves the
  // listener accepting; either way the event is only news, and unheard it would end the process.
  server.on("error", (error: Error & { syscall?: string }) => {
    if (error.syscall === "accept") options.acceptFailed?.(error);
  });
  bind(server, options);
  const address = server.address() as AddressInfo;
  const result: TransportListener = {
    port: address.port,
    hostname: address.address,
    close() {
      server.close();
    },
  };
  return result;
}

/** Connects with `node:net` (the `Connect` of ./types.ts). */
export function connect({ hostname, port }: ConnectOptions, events: TransportEvents): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: hostname, port, allowHalfOpen: true, noDelay: true });
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      const { transport } = new NodeSocket(socket);
      transport.events = events;
      resolve(transport);
    });
  });
}
