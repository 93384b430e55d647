/**
 * The last bytes a peer's compressor can refer back to: its LZ77 window.
 * @module
 */

/**
 * A sliding window of the most recent `capacity` bytes of a stream. Its buffer grows with the
 * stream up to the capacity, so a connection that has received little holds little.
 */
export class History {
  readonly #capacity: number;
  #bytes: Uint8Array | null = null;
  #length = 0;

  /** A window of at most `capacity` bytes, empty at first. */
  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** The window's bytes, oldest first (a view, valid until the next `append`). */
  get bytes(): Uint8Array {
    return this.#bytes === null ? new Uint8Array(0) : this.#bytes.subarray(0, this.#length);
  }

  /** Appends `data`, dropping the oldest bytes beyond the capacity. */
  append(data: Uint8Array): void {
    const capacity = this.#capacity;
    const length = Math.min(this.#length + data.length, capacity);
    let bytes = this.#bytes;
    if (bytes === null || bytes.length < length) {
      // Double as the stream grows, so a long stream of small messages costs few copies.
      const grown = new Uint8Array(Math.min(capacity, Math.max(length, 2 * (bytes?.length ?? 0), 256)));
      if (bytes !== null) grown.set(bytes.subarray(0, this.#length));
      this.#bytes = bytes = grown;
    }
    if (data.length >= capacity) {
      bytes.set(data.subarray(data.length - capacity));
    } else {
      const overflow = this.#length + data.length - capacity;
      if (overflow > 0) bytes.copyWithin(0, overflow, this.#length);
      bytes.set(data, length - data.length);
    }
    this.#length = length;
  }
}
