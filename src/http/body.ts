/**
 * Request bodies (RFC 9112 §6–7): how a request's body is framed, judged on its headers so that
 * no two readings of one request are possible, and a streaming decoder for `Content-Length` and
 * chunked bodies. Pure: bytes in, body pieces out, no I/O.
 * @module
 */

import type { RequestHead } from "../handshake.ts";
import type { HttpError } from "./response.ts";

/** How a request's body is delimited: by a byte count (0 for none) or by chunked coding. */
export type BodyFraming = { chunked: false; length: number } | { chunked: true };

/** The framing of the body of a request without one. */
export const NO_BODY: BodyFraming = { chunked: false, length: 0 };

/**
 * The body framing `head` declares, or the error to answer with: `Content-Length` and
 * `Transfer-Encoding` together, a `Content-Length` that is not one decimal number (a list of
 * equal values counts as one), or `Transfer-Encoding` in HTTP/1.0 get 400; codings other than
 * `chunked` get 501; a declared length over `maxBodySize` gets 413.
 */
export function requestFraming(head: RequestHead, maxBodySize: number): BodyFraming | HttpError {
  const declared = head.headers.get("content-length");
  const coding = head.headers.get("transfer-encoding");
  if (coding !== undefined) {
    if (declared !== undefined) {
      return { status: 400, message: "Content-Length and Transfer-Encoding may not come together" };
    }
    if (head.minorVersion === 0) return { status: 400, message: "Transfer-Encoding needs HTTP/1.1" };
    const codings = coding.toLowerCase().split(",").map((item) => item.trim());
    if (codings[codings.length - 1] !== "chunked") {
      return { status: 400, message: "the last transfer coding must be chunked" };
    }
    if (codings.length > 1) return { status: 501, message: "only the chunked transfer coding is supported" };
    return { chunked: true };
  }
  if (declared === undefined) return NO_BODY;
  const values = declared.split(",").map((item) => item.trim());
  if (!values.every((value) => /^\d{1,15}$/.test(value) && value === values[0])) {
    return /^\s*\d{16,}\s*$/.test(declared)
      ? { status: 413, message: `request bodies are limited to ${maxBodySize} bytes` }
      : { status: 400, message: "invalid Content-Length" };
  }
  const length = Number(values[0]);
  if (length > maxBodySize) {
    return { status: 413, message: `request bodies are limited to ${maxBodySize} bytes` };
  }
  return { chunked: false, length };
}

/**
 * Why an upgrade request whose head is framed as `framing` is refused (400), or null: a body's
 * bytes would be read as WebSocket frames, so an upgrade that declares one is refused rather than
 * smuggled in.
 */
export function upgradeBodyError(framing: BodyFraming | HttpError): HttpError | null {
  return "status" in framing || framing.chunked || framing.length > 0
    ? { status: 400, message: "a WebSocket upgrade request may not have a body" }
    : null;
}

const enum Chunked {
  /** Hex digits of a chunk size. */
  Size,
  /** Blanks after the size, before an extension. */
  SizeBlank,
  /** A chunk extension, skipped up to the line's CR. */
  Extension,
  /** The LF of a size line. */
  SizeLf,
  /** Chunk data. */
  Data,
  /** The CR after chunk data. */
  DataCr,
  /** The LF after chunk data. */
  DataLf,
  /** The start of a trailer line (CR here ends the body). */
  TrailerStart,
  /** Inside a trailer field, skipped up to its CR. */
  Trailer,
  /** The LF of a trailer line. */
  TrailerLf,
  /** The LF that ends the body. */
  LastLf,
  /** The body is complete. */
  Done,
}

const CR = 0x0d, LF = 0x0a, SP = 0x20, TAB = 0x09, SEMICOLON = 0x3b;
/** Longest chunk-size line or trailer field; anything longer is refused (400). */
const MAX_LINE = 8192;
/** Hex digits of a chunk size beyond which it is over any body limit. */
const MAX_SIZE_DIGITS = 13;

/** Hex digit values by byte, -1 for other bytes. */
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX[0x30 + i] = i;
for (let i = 0; i < 6; i++) HEX[0x41 + i] = HEX[0x61 + i] = 10 + i;

/**
 * Decodes one request body from a byte stream, in any split. Each call to `decode` takes bytes
 * and returns how many were the body's (the rest belong to the next request); the body's
 * content goes to `onPiece` as views into the given bytes. A malformed chunked body (400) or one
 * that passes `maxBodySize` (413) stops it with {@linkcode BodyDecoder.error} set.
 */
export class BodyDecoder {
  #chunked: boolean;
  #state: Chunked;
  /** Data bytes left in the current chunk, or of the whole body without chunked coding. */
  #remaining: number;
  #maxBodySize: number;
  #received = 0;
  #lineLength = 0;
  #sizeDigits = 0;
  #error: HttpError | null = null;

  /** A decoder for a body framed as `framing`, refusing more than `maxBodySize` bytes of content. */
  constructor(framing: BodyFraming, maxBodySize: number) {
    this.#chunked = framing.chunked;
    this.#maxBodySize = maxBodySize;
    this.#remaining = framing.chunked ? 0 : framing.length;
    this.#state = framing.chunked ? Chunked.Size : framing.length === 0 ? Chunked.Done : Chunked.Data;
  }

  /** Whether the whole body has been decoded. */
  get done(): boolean {
    return this.#state === Chunked.Done;
  }

  /** Why decoding stopped, when the body is malformed or too large. */
  get error(): HttpError | null {
    return this.#error;
  }

  /** Content bytes decoded so far. */
  get received(): number {
    return this.#received;
  }

  /**
   * The length of a `Content-Length` body none of which has been decoded yet (so that it can be
   * taken whole); null for a chunked body, an empty one, or one begun.
   */
  get whole(): number | null {
    return this.#chunked || this.#received > 0 || this.#state === Chunked.Done ? null : this.#remaining;
  }

  /**
   * Decodes from `bytes`, handing content to `onPiece`; returns how many bytes belonged to the
   * body (all of them unless it ended or failed within them).
   */
  decode(bytes: Uint8Array, onPiece: (piece: Uint8Array) => void): number {
    if (!this.#chunked) return this.#data(bytes, 0, onPiece);
    let i = 0;
    while (i < bytes.length && this.#state !== Chunked.Done && this.#error === null) {
      if (this.#state === Chunked.Data) {
        i = this.#data(bytes, i, onPiece);
        continue;
      }
      this.#step(bytes[i++]);
    }
    return i;
  }

  /** Content up to the end of the current chunk (or body); returns the index after it. */
  #data(bytes: Uint8Array, at: number, onPiece: (piece: Uint8Array) => void): number {
    if (this.#state !== Chunked.Data) return at;
    const take = Math.min(this.#remaining, bytes.length - at);
    if (take > 0) onPiece(bytes.subarray(at, at + take));
    this.#remaining -= take;
    if (this.#remaining === 0) this.#state = this.#chunked ? Chunked.DataCr : Chunked.Done;
    return at + take;
  }

  /** One byte of chunked framing (everything but chunk data). */
  #step(byte: number): void {
    if (++this.#lineLength > MAX_LINE) return this.#fail("chunk line too long");
    switch (this.#state) {
      case Chunked.Size: {
        const digit = HEX[byte];
        if (digit >= 0) {
          if (++this.#sizeDigits > MAX_SIZE_DIGITS) return this.#tooLarge();
          this.#remaining = this.#remaining * 16 + digit;
          return;
        }
        if (this.#sizeDigits === 0) return this.#fail("malformed chunk size");
        if (byte === CR) return this.#to(Chunked.SizeLf);
        if (byte === SP || byte === TAB) return this.#to(Chunked.SizeBlank);
        if (byte === SEMICOLON) return this.#to(Chunked.Extension);
        return this.#fail("malformed chunk size");
      }
      case Chunked.SizeBlank:
        if (byte === SEMICOLON) return this.#to(Chunked.Extension);
        if (byte !== SP && byte !== TAB) return this.#fail("malformed chunk extension");
        return;
      case Chunked.Extension:
        if (byte === CR) return this.#to(Chunked.SizeLf);
        if (byte === LF || (byte < SP && byte !== TAB) || byte === 0x7f) {
          return this.#fail("malformed chunk extension");
        }
        return;
      case Chunked.SizeLf: {
        if (byte !== LF) return this.#fail("chunk lines must end with CRLF");
        this.#lineLength = 0;
        this.#sizeDigits = 0;
        const size = this.#remaining;
        if (size === 0) return this.#to(Chunked.TrailerStart);
        if (size > this.#maxBodySize - this.#received) return this.#tooLarge();
        this.#received += size;
        return this.#to(Chunked.Data);
      }
      case Chunked.DataCr:
        return byte === CR ? this.#to(Chunked.DataLf) : this.#fail("chunk data must end with CRLF");
      case Chunked.DataLf:
        if (byte !== LF) return this.#fail("chunk data must end with CRLF");
        this.#lineLength = 0;
        this.#remaining = 0;
        return this.#to(Chunked.Size);
      case Chunked.TrailerStart:
        if (byte === CR) return this.#to(Chunked.LastLf);
        if (byte === LF) return this.#fail("trailer lines must end with CRLF");
        return this.#to(Chunked.Trailer);
      case Chunked.Trailer:
        if (byte === CR) return this.#to(Chunked.TrailerLf);
        if (byte === LF) return this.#fail("trailer lines must end with CRLF");
        return;
      case Chunked.TrailerLf:
        if (byte !== LF) return this.#fail("trailer lines must end with CRLF");
        this.#lineLength = 0;
        return this.#to(Chunked.TrailerStart);
      case Chunked.LastLf:
        return byte === LF ? this.#to(Chunked.Done) : this.#fail("trailer lines must end with CRLF");
    }
  }

  #to(state: Chunked): void {
    this.#state = state;
  }

  #fail(message: string): void {
    this.#error = { status: 400, message };
  }

  #tooLarge(): void {
    this.#error = { status: 413, message: `request bodies are limited to ${this.#maxBodySize} bytes` };
  }
}
