/**
 * Transport adapter over `Bun.listen`.
 * @module
 */

import { type RawSocket, SocketTransport } from "./socket_state.ts";
import type { ListenOptions, Transport, TransportListener } from "./types.ts";

/**
 * The part of Bun's socket this adapter uses. It is a {@linkcode RawSocket} as it is: `write`
 * takes what the kernel takes now and keeps no reference, and `drain` says when to write again.
 */
interface BunSocket extends RawSocket {
  readonly remoteAddress: string;
  readonly remotePort?: number;
  data: SocketTransport;
  /** Without an argument, sends FIN and keeps reading (`end()` would close both directions). */
  shutdown(): void;
  /** Graceful (unlike `terminate`, which resets): what the kernel holds still goes out. */
  close(): void;
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
        const transport = new SocketTransport(socket, socket.remoteAddress, socket.remotePort ?? 0);
        socket.data = transport;
        accept(transport);
      },
      data(socket: BunSocket, chunk: Uint8Array) {
        socket.data.events.data(chunk);
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
