/**
 * Unread bytes of a stream, gathered from the chunks it arrives in.
 * @module
 */

const EMPTY = new Uint8Array(0);

/**
 * Unread bytes from a stream's chunks, consumed from the front. A chunk that arrives while
 * nothing is unread is kept by reference (usually it is all there is: a whole request), and only
 * when bytes from two chunks must be read as one are they copied into a buffer of the queue's
 * own, which grows by doubling and moves its unread bytes to the front before it grows.
 */
export class ByteQueue {
  /** The unread bytes: a view of the last pushed chunk, or of `#owned`. */
  #unread: Uint8Array = EMPTY;
  #owned: Uint8Array | null = null;

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
    return this.#unread.length > 0 && this.#unread.buffer !== this.#owned?.buffer;
  }

  /** Bytes of memory the queue holds on to: its own buffer and the chunk it views. */
  get footprint(): number {
    return (this.#owned?.length ?? 0) + (this.borrowing ? this.#unread.buffer.byteLength : 0);
  }

  /** Appends `chunk`, which the queue may keep a view of until it is consumed. */
  push(chunk: Uint8Array): void {
    const unread = this.#unread;
    if (unread.length === 0) {
      this.#unread = chunk;
      return;
    }
    const length = unread.length + chunk.length;
    let owned = this.#owned;
    const inOwned = owned !== null && unread.buffer === owned.buffer;
    const start = inOwned ? unread.byteOffset - owned!.byteOffset : 0;
    if (inOwned && start + length <= owned!.length) {
      owned!.set(chunk, start + unread.length);
      this.#unread = owned!.subarray(start, start + length);
      return;
    }
    if (owned !== null && length <= owned.length) {
      if (inOwned) owned.copyWithin(0, start, start + unread.length);
      else owned.set(unread);
    } else {
      owned = this.#owned = new Uint8Array(Math.max(length, 1024, (owned?.length ?? 0) * 2));
      owned.set(unread);
    }
    owned.set(chunk, unread.length);
    this.#unread = owned.subarray(0, length);
  }

  /** Drops the first `count` unread bytes. */
  consume(count: number): void {
    this.#unread = count >= this.#unread.length ? EMPTY : this.#unread.subarray(count);
  }

  /** Drops everything, including the queue's own buffer. */
  clear(): void {
    this.#unread = EMPTY;
    this.#owned = null;
  }
}
