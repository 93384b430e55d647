/**
 * Message compression for permessage-deflate, over `node:zlib`'s one-shot calls (the one module
 * of Wisp that uses a `node:` built-in; see the README's "Compression" section for the figures
 * that chose it). Both calls are synchronous, so messages stay in order without any queue, and no
 * zlib stream is kept open per connection.
 * @module
 */

import { constants, deflateRawSync, inflateRawSync, inflateSync } from "node:zlib";
import { History } from "./history.ts";

/** The empty stored block that ends a sync-flushed message (RFC 7692 §7.2.1). */
const TAIL = Uint8Array.of(0x00, 0x00, 0xff, 0xff);

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

/** Why an inflate failed: the output passed the size limit, or the data was not valid DEFLATE. */
export class InflateError extends Error {
  /** True when the message grew past the limit (close 1009); false for corrupt data (1007). */
  readonly tooBig: boolean;

  constructor(tooBig: boolean, options?: ErrorOptions) {
    super(tooBig ? "decompressed message exceeds the size limit" : "invalid compressed data", options);
    this.tooBig = tooBig;
  }
}

/**
 * Decompresses one peer's messages. When the peer takes its context over between messages, the
 * last window of output is kept and given to zlib as a preset dictionary, which is exactly the
 * history the peer's compressor may refer back to.
 */
export class MessageInflater {
  #history: History | null;

  /**
   * @param windowBits the peer's window size in bits, 8–15.
   * @param contextTakeover whether the peer refers back to earlier messages.
   */
  constructor(windowBits: number, contextTakeover: boolean) {
    this.#history = contextTakeover ? new History(1 << windowBits) : null;
  }

  /**
   * Inflates one message's DEFLATE data (the tail already stripped by the peer). Output beyond
   * `maxLength` bytes stops zlib at once, so a compression bomb costs bounded memory and time.
   * Throws {@linkcode InflateError}.
   */
  inflate(data: Uint8Array, maxLength: number): Uint8Array {
    const history = this.#history;
    const dictionary = history === null || history.bytes.length === 0 ? null : history.bytes;
    let out: Uint8Array;
    try {
      const options = { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: Math.max(1, maxLength) };
      out = dictionary === null
        ? inflateRawSync(withTail(data, 0), options)
        // A zlib-format header announcing the dictionary lets zlib take it (raw mode cannot on Deno).
        : inflateSync(withZlibHeader(data, history!.adler32), { ...options, dictionary });
    } catch (error) {
      throw new InflateError((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE", { cause: error });
    }
    if (out.length > maxLength) throw new InflateError(true);
    history?.append(out);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }
}

/** `data` followed by the sync-flush tail, with `offset` free bytes in front. */
function withTail(data: Uint8Array, offset: number): Uint8Array {
  const out = new Uint8Array(offset + data.length + TAIL.length);
  out.set(data, offset);
  out.set(TAIL, offset + data.length);
  return out;
}

/** Wraps raw DEFLATE data as a zlib stream (RFC 1950) that uses the preset dictionary `dictId`. */
function withZlibHeader(data: Uint8Array, dictId: number): Uint8Array {
  const out = withTail(data, 6);
  const cmf = 0x78; // deflate, 32 KiB window
  const flg = 0x20 | (31 - ((cmf * 256 + 0x20) % 31)); // FDICT, plus the FCHECK bits
  out[0] = cmf;
  out[1] = flg;
  out[2] = dictId >>> 24;
  out[3] = (dictId >>> 16) & 0xff;
  out[4] = (dictId >>> 8) & 0xff;
  out[5] = dictId & 0xff;
  return out;
}
