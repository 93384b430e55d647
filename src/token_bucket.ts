/**
 * The token bucket behind `maxMessagesPerSecond`.
 * @module
 */

/** A clock in milliseconds that never goes back, such as `performance.now`. */
export type Clock = () => number;

/** The bucket's default clock. */
const monotonic: Clock = () => performance.now();

/**
 * A token bucket: `rate` tokens a second, at most `capacity` of them, full at first. Refilled
 * when a token is taken, so it needs no timer.
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #capacity: number;
  readonly #now: Clock;
  #tokens: number;
  /** When the tokens were last counted, in milliseconds of `#now`. */
  #countedAt: number;

  /** A full bucket, reading time from `now` (milliseconds; tests pass a fake clock). */
  constructor(rate: number, capacity: number, now: Clock = monotonic) {
    this.#rate = rate;
    this.#capacity = this.#tokens = capacity;
    this.#now = now;
    this.#countedAt = now();
  }

  /** Takes one token; false when none is left. */
  take(): boolean {
    const now = this.#now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#countedAt) * this.#rate / 1000);
    this.#countedAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}
