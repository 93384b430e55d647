/**
 * Incremental, fail-fast UTF-8 validation for text messages that arrive in pieces.
 *
 * It follows the WHATWG decoder's byte ranges, so it rejects a sequence at the first byte that
 * cannot continue it (overlong forms, surrogates, code points above U+10FFFF), even when the
 * sequence is split across fragments. Also the decoders for text from peers.
 * @module
 */

/**
 * Decodes a peer's text, bad sequences as U+FFFD. `ignoreBOM`: a leading U+FEFF is a character
 * like any other, not a byte order mark to strip (the browser's `WebSocket` keeps it too).
 */
export const textDecoder: TextDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** {@linkcode textDecoder}, but throwing a `TypeError` on text that is not UTF-8. */
export const strictTextDecoder: TextDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Validates UTF-8 text fed in any number of pieces. */
export class Utf8Validator {
  /** Continuation bytes still expected by the current sequence. */
  #needed = 0;
  /** Allowed range of the next continuation byte (narrowed after E0, ED, F0 and F4). */
  #lower = 0x80;
  #upper = 0xbf;

  /** Feeds the next piece; returns false as soon as a byte makes the text invalid. */
  push(bytes: Uint8Array): boolean {
    let needed = this.#needed;
    let lower = this.#lower;
    let upper = this.#upper;
    const length = bytes.length;
    for (let i = 0; i < length; i++) {
      const byte = bytes[i];
      if (needed === 0) {
        if (byte < 0x80) continue;
        if (byte >= 0xc2 && byte <= 0xdf) {
          needed = 1;
        } else if (byte >= 0xe0 && byte <= 0xef) {
          if (byte === 0xe0) lower = 0xa0;
          else if (byte === 0xed) upper = 0x9f;
          needed = 2;
        } else if (byte >= 0xf0 && byte <= 0xf4) {
          if (byte === 0xf0) lower = 0x90;
          else if (byte === 0xf4) upper = 0x8f;
          needed = 3;
        } else {
          return false;
        }
      } else {
        if (byte < lower || byte > upper) return false;
        lower = 0x80;
        upper = 0xbf;
        needed--;
      }
    }
    this.#needed = needed;
    this.#lower = lower;
    this.#upper = upper;
    return true;
  }

  /** True when the text fed so far does not end inside a sequence. */
  get complete(): boolean {
    return this.#needed === 0;
  }

  /** Forgets any unfinished sequence, ready for the next message. */
  reset(): void {
    this.#needed = 0;
    this.#lower = 0x80;
    this.#upper = 0xbf;
  }
}
