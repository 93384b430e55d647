/**
 * The token bucket behind `maxMessagesPerSecond`.
 * @module
 */

/**
 * A token bucket: `rate` tokens a second, at most `capacity` of them, full at first. Refilled
 * when a token is taken, so it needs no timer.
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #capacity: number;
  #tokens: number;
  /** When the tokens were last counted, in `performance.now()` milliseconds. */
  #countedAt = performance.now();

  /** A full bucket. */
  constructor(rate: number, capacity: number) {
    this.#rate = rate;
    this.#capacity = this.#tokens = capacity;
  }

  /** Takes one token; false when none is left. */
  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#countedAt) * this.#rate / 1000);
    this.#countedAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}
