/** Seeded pseudo-random numbers, so that randomized tests are reproducible. */

/** A small seeded generator (mulberry32). */
export class Random {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A number in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }

  /** `length` random bytes. */
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.int(0, 255);
    return out;
  }

  /**
   * Cuts `bytes` into consecutive views of 1 to `maxPiece` bytes (an empty input gives no
   * pieces). The pieces joined are `bytes` again.
   */
  split(bytes: Uint8Array, maxPiece = 16): Uint8Array[] {
    const pieces: Uint8Array[] = [];
    for (let at = 0; at < bytes.length;) {
      const size = Math.min(this.int(1, maxPiece), bytes.length - at);
      pieces.push(bytes.subarray(at, at + size));
      at += size;
    }
    return pieces;
  }
}
