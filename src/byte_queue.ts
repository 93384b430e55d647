/**
 * Unread bytes of a stream, gathered from the chunks it arrives in.
 * @module
 */

import { GrowableBuffer } from "./growable_buffer.ts";

const EMPTY = new Uint8Array(0);

/**
 * Unread bytes from a stream's chunks, consumed from the front. A chunk that arrives while
 * nothing is unread is kept by reference (usually it is all there is: a whole request), and only
 * when bytes from two chunks must be read as one are they copied into a buffer of the queue's
 * own.
 */
export class ByteQueue {
  /** The unread bytes: a view of the last pushed chunk, or of `#owned` from `#start` on. */
  #unread: Uint8Array = EMPTY;
  readonly #owned = new GrowableBuffer(1024);
  /** Whether `#unread` lies in `#owned`. */
  #owning = false;
  #start = 0;
  readonly #ownBuffers: boolean;

  /**
   * An empty queue. With `ownBuffers`, every pushed chunk is a whole buffer of its own (see
   * `ReadChunks.ownBuffers`), so the queue never asks a chunk for its `buffer`.
   */
  constructor(ownBuffers = false) {
    this.#ownBuffers = ownBuffers;
  }

  /** The unread bytes, as a view that is valid until the next `push` or `consume`. */
  get bytes(): Uint8Array {
    return this.#unread;
  }

  /** How many bytes are unread. */
  get length(): number {
    return this.#unread.length;
  }

  /** Whether the unread bytes are a view of a pushed chunk, which the queue then keeps. */
  get borrowing(): boolean {
    return !this.#owning && this.#unread.length > 0;
  }

  /** Bytes of memory the queue holds on to: its own buffer and the chunk it views. */
  get footprint(): number {
    if (!this.borrowing) return this.#owned.capacity;
    const unread = this.#unread;
    // A view keeps its chunk's whole buffer; a buffer of the chunk's own ends where the view does.
    const chunk = this.#ownBuffers ? unread.byteOffset + unread.length : unread.buffer.byteLength;
    return this.#owned.capacity + chunk;
  }

  /**
   * Copies the unread bytes into the queue's own buffer when the chunk they view holds more than
   * twice the memory they need: a few bytes left over should not keep a large read buffer.
   */
  compact(): void {
    if (!this.borrowing) return;
    const unread = this.#unread;
    if (this.footprint - this.#owned.capacity <= 2 * unread.length) return;
    this.#owned.clear();
    this.#owned.append(unread);
    this.#owning = true;
    this.#start = 0;
    this.#unread = this.#owned.bytes;
  }

  /** Appends `chunk`, which the queue may keep a view of until it is consumed. */
  push(chunk: Uint8Array): void {
    if (this.#unread.length === 0) {
      this.clear();
      this.#unread = chunk;
      return;
    }
    const owned = this.#owned;
    if (this.#owning) owned.shift(this.#start);
    else owned.append(this.#unread);
    owned.append(chunk);
    this.#owning = true;
    this.#start = 0;
    this.#unread = owned.bytes;
  }

  /** Drops the first `count` unread bytes. */
  consume(count: number): void {
    if (count >= this.#unread.length) return this.clear();
    this.#unread = this.#unread.subarray(count);
    if (this.#owning) this.#start += count;
  }

  /** Drops everything, including the queue's own buffer. */
  clear(): void {
    this.#unread = EMPTY;
    this.#owned.clear();
    this.#owning = false;
    this.#start = 0;
  }
}
