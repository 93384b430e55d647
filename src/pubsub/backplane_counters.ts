/**
 * A backplane's counters and events (Redis's, the worker relay's): what `stats()` reports, and
 * where each change of state or error is told (the `onEvent` option, else the server's), a flood
 * of the same error once.
 * @module
 */

import type { BackplaneEvent, BackplaneStats } from "./backplane.ts";
import type { RespError } from "./resp.ts";

/** Counts and tells. */
export class BackplaneCounters {
  /** Messages sent to the other processes. */
  published = 0;
  /** Messages received from the other processes and delivered here. */
  received = 0;
  /** Messages not sent because the bytes waiting for the backplane passed the limit. */
  dropped = 0;
  #errors = 0;
  #lastError = "";
  /** Where events go: the `onEvent` option, else the server's (set on attach). */
  #onEvent: ((event: BackplaneEvent) => void) | null;

  /** Counters whose events go to `onEvent`, or to the server's once attached when null. */
  constructor(onEvent: ((event: BackplaneEvent) => void) | null) {
    this.#onEvent = onEvent;
  }

  /** The server's `report`, used unless the backplane has an `onEvent` of its own. */
  attach(report: (event: BackplaneEvent) => void): void {
    this.#onEvent ??= report;
  }

  /** The stats, with the state and figures only the backplane knows. */
  stats(state: BackplaneStats["state"], reconnects: number, bufferedBytes: number): BackplaneStats {
    const { published, received, dropped } = this;
    return {
      state,
      published,
      received,
      dropped,
      reconnects,
      errors: this.#errors,
      lastError: this.#lastError,
      bufferedBytes,
    };
  }

  /** Counts an error; false when it is the same as the last one. */
  countError(message: string): boolean {
    this.#errors++;
    if (message === this.#lastError) return false;
    this.#lastError = message;
    return true;
  }

  /** A connection could not be made or was lost: counted (its events come separately). */
  failed = (why: string): void => void this.countError(why);

  /** Counts an error and tells `onEvent`, but not the same error twice in a row (a flood of refusals is one line). */
  report = (event: BackplaneEvent): void => {
    if (event.type === "error" && !this.countError(event.message)) return;
    try {
      this.#onEvent?.(event);
    } catch (error) {
      console.error("wisp: the backplane's onEvent threw:", error);
    }
  };

  /** Redis refused a command of the `role` connection. */
  refused(role: string, error: RespError): void {
    this.report({ type: "error", message: `Redis answered the ${role} with an error: ${error.message}` });
  }
}
