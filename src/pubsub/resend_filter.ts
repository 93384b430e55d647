/**
 * Skipping the second copy of a message that its publisher sent again because the connection was
 * lost before Redis acknowledged it (Redis may have taken the first). Each publishing process
 * numbers its messages; a copy marked as sent again is skipped when a message of that process
 * with that number or a later one was delivered already. Pure, and bounded.
 * @module
 */

import { sameBytes } from "./envelope.ts";

/** How many publishing processes one filter remembers (the least recently heard go first). */
const MAX_ORIGINS = 256;

/** The numbers delivered last, per publishing process, for one topic. */
export class ResendFilter {
  readonly #last = new Map<string, number>();
  /** The last origin seen and its key, since messages come in runs from one publisher. */
  #origin: Uint8Array | null = null;
  #key = "";

  /** Whether a message numbered `seq` from `origin` is to be delivered; records it when it is. */
  admit(origin: Uint8Array, seq: number, resent: boolean): boolean {
    const key = this.#keyOf(origin);
    const last = this.#last.get(key);
    if (last !== undefined) {
      if (resent && seq <= last) return false;
      this.#last.delete(key); // set again below, as the most recent
    } else if (this.#last.size >= MAX_ORIGINS) {
      this.#last.delete(this.#last.keys().next().value!);
    }
    this.#last.set(key, last === undefined || seq > last ? seq : last);
    return true;
  }

  /** A map key for `origin` (the same string for the same bytes). */
  #keyOf(origin: Uint8Array): string {
    const previous = this.#origin;
    if (previous !== null && sameBytes(previous, origin)) return this.#key;
    this.#origin = origin.slice();
    return this.#key = String.fromCharCode(...origin);
  }
}
