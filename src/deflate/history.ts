/**
 * The last bytes a peer's compressor can refer back to (its LZ77 window), with their Adler-32
 * checksum kept up to date as bytes slide in and out.
 * @module
 */

const MOD = 65521;

/** A sliding window of the most recent `capacity` bytes of a stream, and its Adler-32. */
export class History {
  #bytes: Uint8Array;
  #length = 0;
  /** Adler-32 halves (RFC 1950 §8.2) of the bytes in the window. */
  #a = 1;
  #b = 0;

  constructor(capacity: number) {
    this.#bytes = new Uint8Array(capacity);
  }

  /** The window's bytes, oldest first (a view, valid until the next `append`). */
  get bytes(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }

  /** Adler-32 of the window's bytes: zlib's id for a preset dictionary. */
  get adler32(): number {
    return ((this.#b << 16) | this.#a) >>> 0;
  }

  /** Appends `data`, dropping the oldest bytes beyond the capacity. Costs O(min(data, capacity)). */
  append(data: Uint8Array): void {
    const bytes = this.#bytes;
    const capacity = bytes.length;
    if (data.length >= capacity) {
      bytes.set(data.subarray(data.length - capacity));
      this.#length = capacity;
      this.#a = 1;
      this.#b = 0;
      this.#add(bytes, 0, capacity);
      return;
    }
    const overflow = this.#length + data.length - capacity;
    if (overflow > 0) {
      this.#remove(overflow);
      bytes.copyWithin(0, overflow, this.#length);
      this.#length -= overflow;
    }
    bytes.set(data, this.#length);
    this.#add(bytes, this.#length, this.#length + data.length);
    this.#length += data.length;
  }

  /** Adds bytes[from..to) to the checksum, reducing every 5552 bytes as zlib does. */
  #add(bytes: Uint8Array, from: number, to: number): void {
    let a = this.#a;
    let b = this.#b;
    for (let i = from; i < to;) {
      const end = Math.min(to, i + 5552);
      for (; i < end; i++) {
        a += bytes[i];
        b += a;
      }
      a %= MOD;
      b %= MOD;
    }
    this.#a = a;
    this.#b = b;
  }

  /** Takes the oldest `count` bytes out of the checksum. */
  #remove(count: number): void {
    const bytes = this.#bytes;
    let a = this.#a;
    let b = this.#b;
    let n = this.#length;
    for (let i = 0; i < count; i++, n--) {
      // With n bytes, the first one counts once in A and n times in B, plus B's constant n.
      const x = bytes[i];
      a = (a - x + MOD) % MOD;
      b = (b - ((n * x) % MOD) - 1 + 2 * MOD) % MOD;
    }
    this.#a = a;
    this.#b = b;
  }
}
