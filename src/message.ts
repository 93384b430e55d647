/**
 * Encoding outgoing messages: text or bytes into a payload, a payload into a frame.
 * @module
 */

import { deflateMessage } from "./deflate/codec.ts";
import { encodeFrame, Opcode } from "./frame.ts";
import type { MessageData } from "./api.ts";

const encoder = new TextEncoder();

/** The opcode a message goes out with: text for a string, binary for bytes. */
export function messageOpcode(data: MessageData): number {
  return typeof data === "string" ? Opcode.Text : Opcode.Binary;
}

/** A message's payload: text encoded as UTF-8, bytes viewed (not copied). */
export function messageBytes(data: MessageData, method: string): Uint8Array {
  return typeof data === "string" ? encoder.encode(data) : toBytes(data, method);
}

/**
 * Encodes a message as one unmasked frame, compressed with `bits` window bits unless 0. The
 * payload is copied into the frame, so the caller may reuse its buffer at once.
 */
export function messageFrame(opcode: number, payload: Uint8Array, bits: number, level: number): Uint8Array {
  if (bits === 0) return encodeFrame(opcode, payload);
  return encodeFrame(opcode, deflateMessage(payload, bits, level), true);
}

/** Views any accepted binary form as bytes, without copying. */
function toBytes(data: ArrayBuffer | ArrayBufferView, method: string): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError(
    `${method}() takes a string, an ArrayBuffer or an ArrayBufferView, not ${typeof data}`,
  );
}
