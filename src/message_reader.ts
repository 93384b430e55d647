/**
 * Incoming messages: data frames (in the order the frame parser has checked) into whole
 * messages, with their size limit, UTF-8 validation as fragments arrive, and inflation.
 * @module
 */

import { Failure } from "./close.ts";
import { InflateError, type MessageInflater } from "./deflate/codec.ts";
import { Opcode } from "./frame.ts";
import { GrowableBuffer } from "./growable_buffer.ts";
import { strictTextDecoder, textDecoder, Utf8Validator } from "./utf8.ts";

/** How a binary message's bytes are held, as {@linkcode MessageSink.message} is told. */
export const Holding = {
  /** A view of the chunk being parsed (the message arrived in one piece): whoever keeps it keeps the chunk. */
  Borrowed: 0,
  /** A buffer of the message's own (assembled from pieces, or copied). */
  Owned: 1,
  /** Part of a buffer that others may share (zlib's output). */
  Shared: 2,
} as const;

/** Where whole messages go. */
export interface MessageSink {
  /** Whether messages are wanted: a closing connection discards them unread (and uninflated). */
  readonly accepting: boolean;
  /**
   * A whole message: text as a string, binary as bytes held as `holding` says (a
   * {@linkcode Holding} value). `size` is its payload's length in bytes (inflated, when it came
   * compressed).
   */
  message(data: string | Uint8Array, holding: number, size: number): void;
}

/** Smallest frame remainder worth a read of its own into the message buffer. */
const READ_INTO_MIN = 16 * 1024;

/**
 * Gathers one connection's data frames into messages. Each method returns 0, or the
 * {@linkcode Failure} to fail the connection with: a message past `maxPayloadLength` (checked at
 * each frame header, so an oversized message is refused before its payload arrives, and on
 * inflated output), text that is not UTF-8 (on the fragment that makes it invalid), or data that
 * does not inflate.
 */
export class MessageReader {
  readonly #sink: MessageSink;
  readonly #maxPayloadLength: number;
  /** Inflates compressed messages when permessage-deflate was agreed. */
  readonly #inflater: MessageInflater | null;
  #opcode = 0;
  #size = 0;
  #frameFin = false;
  /** The message being received has RSV1 set: it is compressed. */
  #compressed = false;
  /** Pieces of a message that did not arrive in one piece (made on first use: idle sockets stay small). */
  #assembly: GrowableBuffer | null = null;
  #utf8: Utf8Validator | null = null;

  /** A reader handing messages of at most `maxPayloadLength` bytes to `sink`. */
  constructor(sink: MessageSink, maxPayloadLength: number, inflater: MessageInflater | null) {
    this.#sink = sink;
    this.#maxPayloadLength = maxPayloadLength;
    this.#inflater = inflater;
  }

  /** A data frame begins (the parser has checked that a continuation continues a message). */
  onDataFrame(opcode: number, fin: boolean, rsv1: boolean, length: number): number {
    if (opcode !== Opcode.Continuation) {
      this.#opcode = opcode;
      this.#size = 0;
      this.#compressed = rsv1;
    }
    if (length > this.#maxPayloadLength - this.#size) return Failure.MessageTooBig;
    this.#size += length;
    this.#frameFin = fin;
    return 0;
  }

  /** The next piece of the current frame's payload; `end` on the frame's last piece. */
  onDataPayload(bytes: Uint8Array, end: boolean, copied: boolean): number {
    const complete = end && this.#frameFin;
    if (complete && bytes.length === this.#size && (this.#assembly?.length ?? 0) === 0) {
      // The whole message is in this piece: hand it on as it is (`copied`: not a view).
      return this.#deliver(bytes, copied ? Holding.Owned : Holding.Borrowed, false);
    }
    if (this.#opcode === Opcode.Text && !this.#compressed) {
      this.#utf8 ??= new Utf8Validator();
      if (!this.#utf8.push(bytes)) return Failure.InvalidText;
    }
    const assembly = this.#assembly ??= new GrowableBuffer(0);
    // At least the whole current message so far, and doubling so many small fragments cost few copies.
    assembly.append(bytes, this.#maxPayloadLength, this.#size);
    if (!complete) return 0;
    if (this.#utf8 !== null && !this.#utf8.complete) return Failure.InvalidText;
    this.#utf8?.reset();
    return this.#deliver(assembly.take(), Holding.Owned, true);
  }

  /**
   * The rest of the frame being assembled, right in the message buffer, when at least
   * `READ_INTO_MIN` bytes of it (`remaining` in all) are still to come: read there, they are not
   * copied again. `null` otherwise.
   */
  readTarget(remaining: number): Uint8Array | null {
    const spare = this.#assembly?.spare;
    if (spare === undefined) return null;
    const room = Math.min(remaining, spare.length);
    return room >= READ_INTO_MIN ? spare.subarray(0, room) : null;
  }

  /**
   * Hands a complete message on, its bytes held as `holding` says; `validated`
   * that it was assembled, and text in it was validated piece by piece.
   */
  #deliver(payload: Uint8Array, holding: number, validated: boolean): number {
    const opcode = this.#opcode;
    this.#opcode = 0;
    this.#size = 0;
    if (!this.#sink.accepting) return 0;
    if (this.#compressed) {
      try {
        payload = this.#inflater!.inflate(payload, this.#maxPayloadLength);
      } catch (error) {
        if (!(error instanceof InflateError)) throw error;
        return error.tooBig ? Failure.InflatedTooBig : Failure.InvalidDeflate;
      }
      holding = Holding.Shared;
      validated = false;
    }
    if (opcode !== Opcode.Text) {
      this.#sink.message(payload, holding, payload.length);
      return 0;
    }
    const text = textDecoder.decode(payload);
    // Unless validated piece by piece as it arrived: U+FFFD in the lenient decoder's output means a
    // bad sequence or an encoded U+FFFD, which only the fatal decoder (on V8 several times slower,
    // so not the first choice) tells apart.
    if (!validated && text.includes("\uFFFD")) {
      try {
        strictTextDecoder.decode(payload);
      } catch {
        return Failure.InvalidText;
      }
    }
    this.#sink.message(text, Holding.Owned, payload.length);
    return 0;
  }
}
