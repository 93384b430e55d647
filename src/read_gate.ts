/**
 * The read gate of a socket that pauses: why it does not read (the user's `pause`, an awaited
 * `message` handler), whether the transport was told to stop, and the bytes read but not parsed
 * meanwhile, which are parsed first when it reads again.
 * @module
 */

import type { Transport } from "./runtime/types.ts";

/** What the gate stops and starts: the socket's parsing. */
export interface GatedReader {
  /** Stops the parse under way after the callback that paused. */
  stopParsing(): void;
  /** Parses bytes that were held (it may pause again among them). */
  parse(bytes: Uint8Array): void;
}

/** A reason not to read: the user called `pause`. */
export const PAUSED_BY_USER = 1;
/** A reason not to read: an awaited `message` handler's promise is pending. */
export const PAUSED_FOR_HANDLER = 2;

/**
 * Why a socket does not read, and what it read before it stopped. Made on the first pause (most
 * sockets never pause).
 */
export class ReadGate {
  readonly #transport: Pick<Transport, "pause" | "resume">;
  readonly #reader: GatedReader;
  /** The reasons ({@linkcode PAUSED_BY_USER}, {@linkcode PAUSED_FOR_HANDLER}) as bits; 0 while reading. */
  #reasons = 0;
  /** Whether the transport was told to stop reading (and not told to read again yet). */
  #transportPaused = false;
  /**
   * Bytes read but not parsed: the rest of the chunk a handler paused in, as a view, joined
   * (copied) only by a read that was already under way.
   */
  #held: Uint8Array | null = null;

  /** A gate that stops and restarts `reader` and `transport`. */
  constructor(transport: Pick<Transport, "pause" | "resume">, reader: GatedReader) {
    this.#transport = transport;
    this.#reader = reader;
  }

  /** Whether any reason not to read holds. */
  get paused(): boolean {
    return this.#reasons !== 0;
  }

  /** Stops reading for `reason` (the transport reads no more; a read under way may still come). */
  pause(reason: number): void {
    this.#reasons |= reason;
    this.#reader.stopParsing();
    if (!this.#transportPaused) {
      this.#transportPaused = true;
      this.#transport.pause();
    }
  }

  /** Lifts `reason`; when no reason is left, reading goes on. */
  unpause(reason: number): void {
    if ((this.#reasons & reason) === 0) return;
    this.#reasons &= ~reason;
    if (this.#reasons === 0) this.#readAgain();
  }

  /** Lifts every reason (the socket closes, and reads on for the peer's close frame). */
  open(): void {
    this.#reasons = 0;
    this.#readAgain();
  }

  /**
   * Parses the bytes held, then lets the transport read again, unless a handler paused once more
   * meanwhile. (Inside a parse nothing is held, so this never parses re-entrantly.)
   */
  #readAgain(): void {
    const held = this.#held;
    this.#held = null;
    if (held !== null) this.#reader.parse(held);
    if (this.#reasons === 0 && this.#transportPaused) {
      this.#transportPaused = false;
      this.#transport.resume();
    }
  }

  /** Keeps `bytes` to parse when reading goes on; a view, which its chunk's adapter then must not reuse. */
  hold(bytes: Uint8Array): void {
    const held = this.#held;
    if (held === null) {
      this.#held = bytes;
      return;
    }
    const joined = new Uint8Array(held.length + bytes.length);
    joined.set(held);
    joined.set(bytes, held.length);
    this.#held = joined;
  }

  /** Forgets everything (the connection is gone). */
  clear(): void {
    this.#reasons = 0;
    this.#held = null;
  }
}
