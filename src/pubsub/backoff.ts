/**
 * Reconnecting with backoff: the wait before the next attempt doubles from a first to a longest,
 * each wait taken with jitter (between half and all of it, so that many processes that lost one
 * server do not all come back at the same moment), on timers from a {@linkcode Clock} (the
 * runtime's, or a test's fake one). Shared by the backplanes' links.
 * @module
 */

/** The timers and randomness a link uses: the runtime's, or a test's fake clock. */
export interface Clock {
  /** Runs `run` after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(run: () => void, ms: number): unknown;
  /** Cancels a timer that has not run. */
  clearTimeout(handle: unknown): void;
  /** A number in [0, 1), for jitter. */
  random(): number;
}

/** The runtime's timers and `Math.random`. */
export const systemClock: Clock = {
  setTimeout: (run, ms) => setTimeout(run, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  random: () => Math.random(),
};

/** First wait before reconnecting (it doubles from there). */
export const FIRST_RETRY_MS = 100;
/** The longest wait before reconnecting. */
export const LAST_RETRY_MS = 5_000;

/** One link's backoff. */
export class Backoff {
  readonly #clock: Clock;
  #wait = FIRST_RETRY_MS;
  #timer: unknown = undefined;

  /** A backoff on `clock`'s timers. */
  constructor(clock: Clock = systemClock) {
    this.#clock = clock;
  }

  /** Runs `attempt` after the current wait (with jitter), and doubles the next wait up to the longest. */
  retry(attempt: () => void): void {
    const wait = this.#wait;
    this.#wait = Math.min(LAST_RETRY_MS, wait * 2);
    this.#timer = this.#clock.setTimeout(attempt, wait / 2 + this.#clock.random() * wait / 2);
  }

  /** The link served: the next wait is the first again. */
  reset(): void {
    this.#wait = FIRST_RETRY_MS;
  }

  /** Cancels an attempt not made yet. */
  cancel(): void {
    this.#clock.clearTimeout(this.#timer);
  }
}
