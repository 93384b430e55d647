/**
 * The last bytes a peer's compressor can refer back to: its LZ77 window.
 * @module
 */

/** A sliding window of the most recent `capacity` bytes of a stream. */
export class History {
  #bytes: Uint8Array;
  #length = 0;

  constructor(capacity: number) {
    this.#bytes = new Uint8Array(capacity);
  }

  /** The window's bytes, oldest first (a view, valid until the next `append`). */
  get bytes(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }

  /** Appends `data`, dropping the oldest bytes beyond the capacity. */
  append(data: Uint8Array): void {
    const bytes = this.#bytes;
    const capacity = bytes.length;
    if (data.length >= capacity) {
      bytes.set(data.subarray(data.length - capacity));
      this.#length = capacity;
      return;
    }
    const overflow = this.#length + data.length - capacity;
    if (overflow > 0) {
      bytes.copyWithin(0, overflow, this.#length);
      this.#length -= overflow;
    }
    bytes.set(data, this.#length);
    this.#length += data.length;
  }
}
