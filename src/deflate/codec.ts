/**
 * Message compression for permessage-deflate, over `node:zlib`'s one-shot calls (the one module
 * of Wisp that uses a `node:` built-in; see the README's "Compression" section for the figures
 * that chose it) and, for a context kept between messages, Wisp's own compressor. Every call is
 * synchronous, so messages stay in order without any queue, and no zlib stream is kept open per
 * connection.
 * @module
 */

import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { ContextCompressor } from "./context_compressor.ts";
import { History } from "./history.ts";

/** The empty stored block that ends a sync-flushed message (RFC 7692 §7.2.1). */
const TAIL = Uint8Array.of(0x00, 0x00, 0xff, 0xff);
/**
 * What follows a received message's data: the tail the peer stripped (RFC 7692 §7.2.2), then an
 * empty final block. zlib, told to finish, then refuses data that was cut short (mid-block, it
 * ends before the final block) instead of handing out what it inflated so far.
 */
const INFLATE_END = Uint8Array.of(0x00, 0x00, 0xff, 0xff, 0x03, 0x00);

/**
 * Compresses one message on its own (no context taken over from earlier messages). Returns the
 * DEFLATE data without the trailing `00 00 FF FF`.
 */
export function deflateMessage(data: Uint8Array, windowBits: number, level: number): Uint8Array {
  const out = deflateRawSync(data, {
    // zlib cannot make raw streams with an 8-bit window; with 9 its distances stay below 256.
    windowBits: Math.max(9, windowBits),
    level,
    finishFlush: constants.Z_SYNC_FLUSH,
  });
  return new Uint8Array(out.buffer, out.byteOffset, out.length - TAIL.length);
}

/**
 * Messages from this size up go through zlib, which is faster on long inputs than Wisp's own
 * compressor (which wins on short ones, as it keeps its tables between messages).
 */
const ZLIB_FROM = 16 * 1024;

/**
 * Whether this runtime's `deflateRawSync` honours a preset dictionary (Node's and Bun's do;
 * Deno's ignores it, yet takes its time over it): a phrase compresses to less with itself as
 * the dictionary.
 */
const DICTIONARY_HONOURED = (() => {
  const phrase = new TextEncoder().encode("permessage-deflate, context takeover");
  const options = { finishFlush: constants.Z_SYNC_FLUSH };
  return deflateRawSync(phrase, { ...options, dictionary: phrase }).length <
    deflateRawSync(phrase, options).length;
})();

/**
 * Compresses one connection's messages with its context kept between them (server context
 * takeover, RFC 7692 §7.1.1.1): each message may refer back to the last window of the ones
 * before, which the client's inflater keeps. Short messages go through
 * {@linkcode ContextCompressor}; long ones through zlib, given the window as a preset dictionary
 * where the runtime honours one (elsewhere those messages only lose their references back), and
 * then join the window all the same.
 */
export class MessageCompressor {
  readonly #context: ContextCompressor;
  readonly #windowBits: number;
  readonly #level: number;

  /** A compressor with a window of 2^`windowBits` bytes (8–15), at zlib's `level` (0–9). */
  constructor(windowBits: number, level: number) {
    this.#context = new ContextCompressor(windowBits, level);
    this.#windowBits = windowBits;
    this.#level = level;
  }

  /** Bytes of memory held for the context (see {@linkcode ContextCompressor.memoryFor}). */
  get memory(): number {
    return this.#context.memory;
  }

  /**
   * Compresses one message; returns its DEFLATE data without the trailing `00 00 FF FF`. The
   * bytes are the caller's.
   */
  compress(data: Uint8Array): Uint8Array {
    const context = this.#context;
    if (data.length < ZLIB_FROM || this.#level === 0) return context.compress(data);
    const window = context.window;
    const out = deflateRawSync(data, {
      windowBits: Math.max(9, this.#windowBits),
      level: this.#level,
      finishFlush: constants.Z_SYNC_FLUSH,
      ...(window.length > 0 && DICTIONARY_HONOURED ? { dictionary: window } : {}),
    });
    context.append(data);
    return new Uint8Array(out.buffer, out.byteOffset, out.length - TAIL.length);
  }
}

/** Why an inflate failed: the output passed the size limit, or the data was not valid DEFLATE. */
export class InflateError extends Error {
  /** True when the message grew past the limit (close 1009); false for corrupt data (1007). */
  readonly tooBig: boolean;

  /** An inflate failure; `tooBig` is true for a message over the limit, false for corrupt data. */
  constructor(tooBig: boolean, options?: ErrorOptions) {
    super(tooBig ? "decompressed message exceeds the size limit" : "invalid compressed data", options);
    this.tooBig = tooBig;
  }
}

/**
 * Decompresses one peer's messages. When the peer takes its context over between messages, the
 * last window of output is kept and replayed in front of each message as an uncompressed
 * (stored) DEFLATE block: zlib then has exactly the history the peer's compressor may refer back
 * to, and the replayed bytes are cut from the output. (zlib's preset-dictionary option would do
 * the same, but Deno's `node:zlib` ignores it in raw mode.)
 */
export class MessageInflater {
  #history: History | null;

  /**
   * An inflater for one peer.
   * @param windowBits the peer's window size in bits, 8–15.
   * @param contextTakeover whether the peer refers back to earlier messages.
   */
  constructor(windowBits: number, contextTakeover: boolean) {
    this.#history = contextTakeover ? new History(1 << windowBits) : null;
  }

  /**
   * Inflates one message's DEFLATE data (the tail already stripped by the peer). Output beyond
   * `maxLength` bytes stops zlib at once, so a compression bomb costs bounded memory and time.
   * Data cut short, or not DEFLATE, throws {@linkcode InflateError}. No data at all is an empty
   * message: with the tail appended it would be a stored block cut short, but it is how a peer
   * may well compress nothing.
   */
  inflate(data: Uint8Array, maxLength: number): Uint8Array {
    if (data.length === 0) return new Uint8Array(0);
    const history = this.#history?.bytes ?? EMPTY;
    let out: Uint8Array;
    try {
      out = inflateRawSync(withHistory(history, data), {
        maxOutputLength: history.length + Math.max(1, maxLength),
      });
    } catch (error) {
      throw new InflateError((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE", { cause: error });
    }
    const message = new Uint8Array(out.buffer, out.byteOffset + history.length, out.length - history.length);
    if (message.length > maxLength) throw new InflateError(true);
    this.#history?.append(message);
    return message;
  }
}

const EMPTY = new Uint8Array(0);
/** A stored block's header: BFINAL 0, BTYPE 00, padding, then LEN and its complement. */
const STORED_HEADER = 5;

/** `history` as one stored block (when not empty), then `data`, then {@linkcode INFLATE_END}. */
function withHistory(history: Uint8Array, data: Uint8Array): Uint8Array {
  const prefix = history.length === 0 ? 0 : STORED_HEADER + history.length;
  const out = new Uint8Array(prefix + data.length + INFLATE_END.length);
  if (prefix > 0) {
    // A window is at most 32 KiB, so one stored block (up to 65,535 bytes) holds it.
    const length = history.length;
    out[1] = length & 0xff;
    out[2] = length >>> 8;
    out[3] = ~length & 0xff;
    out[4] = (~length >>> 8) & 0xff;
    out.set(history, STORED_HEADER);
  }
  out.set(data, prefix);
  out.set(INFLATE_END, prefix + data.length);
  return out;
}
