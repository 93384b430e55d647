/**
 * The bit order of DEFLATE (RFC 1951 §3.1.1): bits fill each byte from its least significant
 * bit up.
 * @module
 */

/**
 * Bits written into one growable byte buffer. Callers reserve room with {@linkcode ensure}
 * before writing (a block at a time), so the writes themselves check nothing.
 */
export class BitWriter {
  /** The output so far; its first {@linkcode length} bytes are written. */
  bytes: Uint8Array;
  /** Whole bytes written. */
  length = 0;
  /** Bits not yet written out, in the low {@linkcode pending} bits. */
  #buffer = 0;
  #pending = 0;

  /** A writer whose buffer starts at `capacity` bytes. */
  constructor(capacity: number) {
    this.bytes = new Uint8Array(capacity);
  }

  /** Empties the writer (keeping its buffer). */
  reset(): void {
    this.length = 0;
    this.#buffer = 0;
    this.#pending = 0;
  }

  /** Makes sure `count` more bytes fit. */
  ensure(count: number): void {
    const needed = this.length + count + 4;
    if (needed <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(needed, 2 * this.bytes.length));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  /** Writes the low `count` bits of `value` (`count` at most 16). */
  bits(value: number, count: number): void {
    let buffer = this.#buffer | (value << this.#pending);
    let pending = this.#pending + count;
    while (pending >= 8) {
      this.bytes[this.length++] = buffer & 0xff;
      buffer >>>= 8;
      pending -= 8;
    }
    this.#buffer = buffer;
    this.#pending = pending;
  }

  /** Pads with zero bits to the next byte boundary. */
  align(): void {
    if (this.#pending > 0) this.bytes[this.length++] = this.#buffer & 0xff;
    this.#buffer = 0;
    this.#pending = 0;
  }

  /** Bits written, pending ones included. */
  get bitLength(): number {
    return this.length * 8 + this.#pending;
  }

  /** Copies `data` to the output; the writer must be at a byte boundary. */
  copy(data: Uint8Array): void {
    this.bytes.set(data, this.length);
    this.length += data.length;
  }
}
