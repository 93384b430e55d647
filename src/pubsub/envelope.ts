/**
 * How a message travels through Redis: a flags byte (text or bytes), the id of the process that
 * published it (so that it knows its own when Redis hands them back), for streams a sequence
 * number, then the payload. Pure.
 * @module
 */

import { textDecoder } from "../utf8.ts";

/** Length of the id each process stamps on its messages. */
export const ORIGIN_LENGTH = 16;
/** Flags: the payload is bytes (else UTF-8 text); the message was sent again after a lost connection. */
const BINARY = 1, RESENT = 2;
/** Length of a stream message's sequence number (big-endian). */
const SEQ_LENGTH = 8;

const encoder = new TextEncoder();
/** The flags byte for each combination (arrays made once: envelopes are built from pieces). */
const FLAGS = [
  Uint8Array.of(0),
  Uint8Array.of(BINARY),
  Uint8Array.of(RESENT),
  Uint8Array.of(BINARY | RESENT),
];

/** A new random process id. */
export function newOrigin(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(ORIGIN_LENGTH));
}

/** A message taken out of its envelope. */
export interface Opened {
  /** The publishing process's id (a view into the envelope). */
  origin: Uint8Array;
  /** Its sequence number (streams), else 0. */
  seq: number;
  /** Whether it was sent again after a lost connection (so it may have arrived before). */
  resent: boolean;
  /** The message: text as a string, bytes as a view into the envelope. */
  data: string | Uint8Array;
}

/**
 * The envelope of `payload` (bytes when `binary`, else UTF-8 text) from `origin`, as pieces of one
 * bulk string (the payload is copied once, into the command). With a `seq` (streams), the
 * sequence number follows the origin, and `resent` marks a second sending.
 */
export function envelope(
  payload: Uint8Array,
  binary: boolean,
  origin: Uint8Array,
  seq: number | null = null,
  resent = false,
): Uint8Array[] {
  const flags = FLAGS[(binary ? BINARY : 0) | (resent ? RESENT : 0)];
  if (seq === null) return [flags, origin, payload];
  const number = new Uint8Array(SEQ_LENGTH);
  const view = new DataView(number.buffer);
  view.setUint32(0, Math.floor(seq / 2 ** 32));
  view.setUint32(4, seq >>> 0);
  return [flags, origin, number, payload];
}

/** A message's payload: its bytes, or its text as UTF-8, and which it is. */
export function payloadOf(data: string | Uint8Array): { payload: Uint8Array; binary: boolean } {
  return typeof data === "string"
    ? { payload: encoder.encode(data), binary: false }
    : { payload: data, binary: true };
}

/** Opens an envelope (`withSeq` for streams); null when it is not in this format. */
export function openEnvelope(bytes: Uint8Array, withSeq: boolean): Opened | null {
  const head = 1 + ORIGIN_LENGTH + (withSeq ? SEQ_LENGTH : 0);
  if (bytes.length < head || bytes[0] > (withSeq ? (BINARY | RESENT) : BINARY)) return null;
  let seq = 0;
  if (withSeq) {
    const view = new DataView(bytes.buffer, bytes.byteOffset + 1 + ORIGIN_LENGTH, SEQ_LENGTH);
    seq = view.getUint32(0) * 2 ** 32 + view.getUint32(4);
  }
  const payload = bytes.subarray(head);
  return {
    origin: bytes.subarray(1, 1 + ORIGIN_LENGTH),
    seq,
    resent: (bytes[0] & RESENT) !== 0,
    data: bytes[0] & BINARY ? payload : textDecoder.decode(payload),
  };
}

/** Whether two byte strings are equal. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
