import { FRESH_CHUNKS, type Transport, type TransportEvents } from "../../src/runtime/types.ts";

/** A transport that takes every write at once and keeps nothing: for driving the core without sockets. */
export class NullTransport implements Transport {
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 1;
  readonly pending = 0;
  readonly readChunks = FRESH_CHUNKS;
  events!: TransportEvents;
  write(_bytes: Uint8Array): boolean {
    return false;
  }
  pause(): void {}
  resume(): void {}
  end(): void {}
  destroy(): void {}
}
