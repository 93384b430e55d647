/**
 * RESP, the Redis serialization protocol (RESP2, and the RESP3 types a server may send): commands
 * encoded as arrays of binary-safe bulk strings, and a streaming reader for replies. Pure: bytes
 * in, values out, no I/O. Bounded: a reply that announces more than the limits allow is an error,
 * so a server that sends garbage cannot make the reader hold unbounded memory.
 * @module
 */

import { GrowableBuffer } from "../growable_buffer.ts";

/** A reply: strings as bytes (binary-safe), integers, null, nested arrays, or a server error. */
export type RespValue = Uint8Array | number | bigint | boolean | null | RespValue[] | RespError;

/** An error reply (`-ERR …`): a value, not an exception, so a pipeline goes on after it. */
export class RespError {
  /** The error's text, e.g. `ERR unknown command`. */
  readonly message: string;

  /** An error reply saying `message`. */
  constructor(message: string) {
    this.message = message;
  }
}

/** Thrown by {@linkcode RespReader.push} for bytes that are not RESP (the connection is then unusable). */
export class RespProtocolError extends Error {
  /** A protocol error explaining what was wrong with the bytes. */
  constructor(message: string) {
    super(`malformed reply from Redis: ${message}`);
    this.name = "RespProtocolError";
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * One bulk string of a command: text (as UTF-8), bytes, or pieces of bytes that make up one
 * string between them (so that a payload behind a prefix is copied once, into the command).
 */
export type CommandPart = string | Uint8Array | readonly Uint8Array[];

/** Encodes a command: an array of bulk strings. */
export function encodeCommand(parts: readonly CommandPart[]): Uint8Array {
  const pieces = parts.map((part) =>
    typeof part === "string" ? [encoder.encode(part)] : part instanceof Uint8Array ? [part] : part
  );
  const sizes = pieces.map((list) => list.reduce((sum, piece) => sum + piece.length, 0));
  const heads = sizes.map((size) => encoder.encode(`$${size}\r\n`));
  const first = encoder.encode(`*${parts.length}\r\n`);
  let length = first.length;
  for (let i = 0; i < parts.length; i++) length += heads[i].length + sizes[i] + 2;
  const out = new Uint8Array(length);
  out.set(first);
  let at = first.length;
  for (let i = 0; i < parts.length; i++) {
    out.set(heads[i], at);
    at += heads[i].length;
    for (const piece of pieces[i]) {
      out.set(piece, at);
      at += piece.length;
    }
    out[at++] = CR;
    out[at++] = LF;
  }
  return out;
}

/** Limits on what one reply may announce. */
export interface RespLimits {
  /** Longest bulk string, in bytes. */
  maxBulkLength: number;
  /** Most elements of one array, map or set. */
  maxElements: number;
  /** Deepest nesting of arrays. */
  maxDepth: number;
}

const CR = 0x0d, LF = 0x0a;
/** Longest line (a type byte and its header or simple value) that is not a bulk string. */
const MAX_LINE = 64 * 1024;

/** An aggregate being read: its elements so far and how many are still to come (a map's pairs count twice). */
interface Frame {
  items: RespValue[];
  left: number;
}

/**
 * Reads RESP replies from a byte stream, in any split. `push` returns the replies completed by
 * the bytes given; bytes that are not RESP, or a reply over the limits, throw
 * {@linkcode RespProtocolError}.
 */
export class RespReader {
  readonly #limits: RespLimits;
  /** Bytes received; those before `#start` are read already. */
  readonly #received = new GrowableBuffer(4096);
  #buffer: Uint8Array = new Uint8Array(0);
  #start = 0;
  #end = 0;
  readonly #stack: Frame[] = [];

  /** A reader enforcing `limits`. */
  constructor(limits: RespLimits) {
    this.#limits = limits;
  }

  /** Takes `chunk` and returns every reply it completed, in order. */
  push(chunk: Uint8Array): RespValue[] {
    const received = this.#received;
    received.append(chunk);
    this.#buffer = received.bytes;
    this.#end = received.length;
    const replies: RespValue[] = [];
    try {
      while (true) {
        const value = this.#readValue();
        if (value === INCOMPLETE) break;
        const done = this.#complete(value);
        if (done !== INCOMPLETE) replies.push(done);
      }
    } finally {
      received.shift(this.#start); // what was read goes; the rest moves to the front
      this.#start = 0;
    }
    return replies;
  }

  /** Puts a finished value into the aggregate being read; returns a whole reply, or INCOMPLETE. */
  #complete(value: RespValue): RespValue | typeof INCOMPLETE {
    let finished: RespValue = value;
    while (true) {
      const top = this.#stack[this.#stack.length - 1];
      if (top === undefined) return finished;
      top.items.push(finished);
      if (--top.left > 0) return INCOMPLETE;
      this.#stack.pop();
      finished = top.items;
    }
  }

  /**
   * Reads one value at the read position: a scalar, or the header of an aggregate (pushed on the
   * stack; an empty one is a finished value at once). INCOMPLETE when its bytes have not arrived.
   */
  #readValue(): RespValue | typeof INCOMPLETE {
    while (true) {
      const lineEnd = this.#lineEnd();
      if (lineEnd < 0) return INCOMPLETE;
      const type = this.#buffer[this.#start];
      const line = decoder.decode(this.#buffer.subarray(this.#start + 1, lineEnd));
      switch (type) {
        case 0x2b: // + simple string
          this.#start = lineEnd + 2;
          return encoder.encode(line);
        case 0x2d: // - error
          this.#start = lineEnd + 2;
          return new RespError(line);
        case 0x3a: // : integer
          this.#start = lineEnd + 2;
          return integerReply(line);
        case 0x5f: // _ null (RESP3)
          this.#start = lineEnd + 2;
          return null;
        case 0x23: // # boolean (RESP3)
          this.#start = lineEnd + 2;
          if (line !== "t" && line !== "f") throw new RespProtocolError(`boolean "${line}"`);
          return line === "t";
        case 0x2c: // , double (RESP3)
          this.#start = lineEnd + 2;
          return double(line);
        case 0x28: // ( big number (RESP3)
          this.#start = lineEnd + 2;
          if (!/^-?\d+$/.test(line)) throw new RespProtocolError(`big number "${line}"`);
          return BigInt(line);
        case 0x24: // $ bulk string
        case 0x3d: // = verbatim string (RESP3)
        case 0x21: { // ! bulk error (RESP3)
          const length = this.#integer(line);
          if (length === -1) {
            this.#start = lineEnd + 2;
            return null;
          }
          if (length < 0 || length > this.#limits.maxBulkLength) {
            throw new RespProtocolError(`bulk string of ${length} bytes`);
          }
          const dataStart = lineEnd + 2;
          if (this.#end < dataStart + length + 2) return INCOMPLETE;
          if (this.#buffer[dataStart + length] !== CR || this.#buffer[dataStart + length + 1] !== LF) {
            throw new RespProtocolError("bulk string not followed by CRLF");
          }
          const bytes = this.#buffer.slice(dataStart, dataStart + length);
          this.#start = dataStart + length + 2;
          if (type === 0x21) return new RespError(decoder.decode(bytes));
          return type === 0x3d ? bytes.subarray(4) : bytes; // verbatim: "txt:" before the text
        }
        case 0x2a: // * array
        case 0x3e: // > push (RESP3)
        case 0x7e: // ~ set (RESP3)
        case 0x25: { // % map (RESP3): key, value pairs
          this.#start = lineEnd + 2;
          let count = this.#integer(line);
          if (count === -1) return null;
          if (type === 0x25) count *= 2;
          if (count < 0 || count > this.#limits.maxElements) {
            throw new RespProtocolError(`aggregate of ${count}`);
          }
          if (count === 0) return [];
          if (this.#stack.length >= this.#limits.maxDepth) throw new RespProtocolError("nesting too deep");
          this.#stack.push({ items: [], left: count });
          continue;
        }
        case 0x7c: // | attribute (RESP3): key, value pairs that come before a reply; skipped
          throw new RespProtocolError("attributes are not supported");
        default:
          throw new RespProtocolError(`unknown type byte 0x${(type ?? 0).toString(16)}`);
      }
    }
  }

  /** Index of the CR of the CRLF ending the line at the read position, or -1 if it has not come. */
  #lineEnd(): number {
    const limit = Math.min(this.#end, this.#start + MAX_LINE);
    for (let i = this.#start; i + 1 < limit; i++) {
      if (this.#buffer[i] === CR) {
        if (this.#buffer[i + 1] !== LF) throw new RespProtocolError("CR without LF");
        return i;
      }
    }
    if (this.#end - this.#start >= MAX_LINE) throw new RespProtocolError("line too long");
    return -1;
  }

  /** A length or a count: small enough to be a number. */
  #integer(line: string): number {
    if (!/^-?\d{1,15}$/.test(line)) throw new RespProtocolError(`integer "${line}"`);
    return Number(line);
  }
}

/** An integer reply: any signed 64-bit value, a number where that is exact and a bigint beyond. */
function integerReply(line: string): number | bigint {
  if (!/^[-+]?\d{1,19}$/.test(line)) throw new RespProtocolError(`integer "${line}"`);
  const value = Number(line);
  if (Number.isSafeInteger(value)) return value;
  const big = BigInt(line);
  if (big < -(2n ** 63n) || big >= 2n ** 63n) throw new RespProtocolError(`integer "${line}"`);
  return big;
}

/** Decimal notation of a RESP3 double other than `inf`, `-inf` and `nan`. */
const DECIMAL = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** A RESP3 double. */
function double(line: string): number {
  if (line === "inf") return Infinity;
  if (line === "-inf") return -Infinity;
  if (line === "nan") return NaN;
  if (!DECIMAL.test(line)) throw new RespProtocolError(`double "${line}"`);
  return Number(line);
}

const INCOMPLETE = Symbol("incomplete");

/** A bulk string reply as text (UTF-8), for replies whose strings are names. */
export function respText(value: RespValue): string | null {
  return value instanceof Uint8Array ? decoder.decode(value) : null;
}
