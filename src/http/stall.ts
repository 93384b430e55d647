/**
 * How long a connection in its HTTP phase has been waiting on its client (for request body bytes
 * the handler asked for, or for the client to read a response written), for the sweep that
 * drops stalled clients after `handshakeTimeout`.
 * @module
 */

/** One connection's stall clock. */
export class StallClock {
  /** When the wait began (or the client last showed progress); 0 while nothing is awaited. */
  #since = 0;
  /** Whether the wait is for the client to read (else for it to send body bytes). */
  #reading = false;
  /** The backlog when the wait for a read began, or when the sweep last saw it shrink. */
  #backlog = 0;

  /** Waits for the client to send the body bytes asked for. */
  waitForBody(): void {
    this.#since = Date.now();
    this.#reading = false;
  }

  /** Waits for the client to read a backlog of `backlog` bytes. */
  waitForReader(backlog: number): void {
    this.#since = Date.now();
    this.#reading = true;
    this.#backlog = backlog;
  }

  /** The wait is over. */
  stop(): void {
    this.#since = 0;
  }

  /** The client sent bytes: while it owes body bytes, that is progress. */
  sent(): void {
    if (this.#since !== 0 && !this.#reading) this.#since = Date.now();
  }

  /**
   * Whether the client has made no progress since before `deadline`. A client still reading (the
   * transport's `backlog` shrank since the last look) has not stalled: the wait starts again.
   */
  stalled(deadline: number, backlog: number): boolean {
    if (this.#since === 0 || this.#since > deadline) return false;
    if (this.#reading && backlog < this.#backlog) {
      this.#backlog = backlog;
      this.#since = Date.now();
      return false;
    }
    return true;
  }
}
