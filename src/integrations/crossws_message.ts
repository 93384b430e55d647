/**
 * A message as crossws's `message` hook gets it: Wisp's string or bytes, with each view made once,
 * when first asked for.
 * @module
 */

import type { Message, Peer } from "./crossws_contract.ts";
import { exactArrayBuffer } from "./bytes.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A text or binary message from `peer`. */
export class WispMessage implements Message {
  /** The message as Wisp delivered it. */
  readonly rawData: string | Uint8Array;
  /** The peer it came from. */
  readonly peer: Peer;
  #id: string | undefined;
  #bytes: Uint8Array | undefined;
  #text: string | undefined;

  /** Wraps a message Wisp handed to the `message` handler. */
  constructor(rawData: string | Uint8Array, peer: Peer) {
    this.rawData = rawData;
    this.peer = peer;
  }

  /** A random UUID. */
  get id(): string {
    return this.#id ??= crypto.randomUUID();
  }

  /** The same as `rawData`: a string for text, a `Uint8Array` for binary. */
  get data(): string | Uint8Array {
    return this.rawData;
  }

  /** Not given by Wisp. */
  get event(): undefined {
    return undefined;
  }

  /** The bytes (text encoded as UTF-8). */
  uint8Array(): Uint8Array {
    const raw = this.rawData;
    return typeof raw === "string" ? this.#bytes ??= encoder.encode(raw) : raw;
  }

  /** The bytes in an `ArrayBuffer` of exactly them (a message may be a view into a larger read). */
  arrayBuffer(): ArrayBuffer {
    return exactArrayBuffer(this.uint8Array());
  }

  /** The bytes as a `Blob`. */
  blob(): Blob {
    return new Blob([this.uint8Array() as Uint8Array<ArrayBuffer>]);
  }

  /** The text (binary decoded as UTF-8, invalid sequences as U+FFFD). */
  text(): string {
    const raw = this.rawData;
    return typeof raw === "string" ? raw : this.#text ??= decoder.decode(raw);
  }

  /** The text parsed as JSON (a `SyntaxError` when it is not JSON). */
  json<T = unknown>(): T {
    return JSON.parse(this.text());
  }

  /** The text. */
  toString(): string {
    return this.text();
  }

  /** The text, for template strings and `+`. */
  [Symbol.toPrimitive](): string {
    return this.text();
  }
}
