/**
 * The last bytes a peer's compressor can refer back to: its LZ77 window.
 * @module
 */

import { GrowableBuffer } from "../growable_buffer.ts";

/**
 * A sliding window of the most recent `capacity` bytes of a stream. Its buffer grows with the
 * stream up to the capacity, so a connection that has received little holds little.
 */
export class History {
  readonly #capacity: number;
  readonly #window = new GrowableBuffer(256);

  /** A window of at most `capacity` bytes, empty at first. */
  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** The window's bytes, oldest first (a view, valid until the next `append`). */
  get bytes(): Uint8Array {
    return this.#window.bytes;
  }

  /** Appends `data`, dropping the oldest bytes beyond the capacity. */
  append(data: Uint8Array): void {
    const capacity = this.#capacity;
    const window = this.#window;
    if (data.length >= capacity) {
      window.reserve(capacity, capacity);
      window.shift(window.length);
      window.append(data.subarray(data.length - capacity));
      return;
    }
    window.shift(window.length + data.length - capacity);
    window.append(data, capacity);
  }
}
