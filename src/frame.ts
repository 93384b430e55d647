/**
 * WebSocket framing (RFC 6455 §5): a streaming parser for client frames and an encoder for
 * server frames. Pure: bytes in, callbacks out, no I/O and no timers.
 * @module
 */

import { Failure, withDetail } from "./close.ts";

/** Frame opcodes. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** The RSV1 bit, which permessage-deflate uses to mark a compressed message. */
export const RSV1 = 0x40;

/** Largest payload of a control frame. */
export const MAX_CONTROL_PAYLOAD = 125;

/**
 * Receives what {@linkcode FrameParser} reads. Each method returns 0, or a failure (a
 * {@linkcode Failure} number) to fail with.
 */
export interface FrameHandler {
  /**
   * A data frame (opcode 0, 1 or 2) begins, in an order the parser has checked (a continuation
   * only inside a fragmented message); its payload follows through `onDataPayload`.
   */
  onDataFrame(opcode: number, fin: boolean, rsv1: boolean, length: number): number;
  /**
   * The next unmasked bytes of the current data frame: a view into the pushed chunk, or when
   * `copied`, a copy of its own (a piece shorter than the parser's `copyBelow`). `end` is true on
   * the frame's last piece, which is empty for an empty frame.
   */
  onDataPayload(bytes: Uint8Array, end: boolean, copied: boolean): number;
  /** A whole, unmasked control frame. The payload is only valid during the call. */
  onControlFrame(opcode: number, payload: Uint8Array): number;
}

const EMPTY = new Uint8Array(0);
const enum State {
  Header,
  Payload,
}

/**
 * Reads client frames from a byte stream, in any split: the calls it makes are the same whether
 * the bytes come whole or one at a time (payload may only come in more pieces). Payloads are
 * unmasked in place and handed on as views (pieces under `copyBelow` bytes as copies); only a
 * header or a control payload split across chunks is gathered in a small fixed buffer.
 *
 * It enforces every framing rule of RFC 6455 §5: masking, reserved bits (RSV1 only as a
 * negotiated extension allows, on a message's first frame), reserved opcodes, control-frame
 * length and FIN, 64-bit lengths, and the order of fragments. The first violation (or failure a
 * handler returns) is kept in {@linkcode FrameParser.error} and all later input is ignored.
 */
export class FrameParser {
  #handler: FrameHandler;
  #allowedRsv: number;
  readonly #copyBelow: number;
  #state = State.Header;
  /** A header split across chunks (allocated the first time one is: idle sockets stay small). */
  #head: Uint8Array | null = null;
  #headFilled = 0;
  #opcode = 0;
  #remaining = 0;
  /** The current frame's masking key, its four bytes in wire order as one 32-bit number. */
  #mask = 0;
  #maskOffset = 0;
  /** A control payload split across chunks (allocated the first time one is). */
  #control: Uint8Array | null = null;
  #controlFilled = 0;
  #controlLength = 0;
  #error = 0;
  #paused = false;
  /** A data message has begun and its final frame has not: only continuations may follow. */
  #fragmented = false;

  /**
   * A parser for one connection's incoming bytes.
   * @param handler receives frames and payload.
   * @param allowedRsv the RSV bits a negotiated extension defines (`RSV1` for deflate), else 0.
   * @param copyBelow payload pieces shorter than this are copied rather than viewed (0: none are).
   */
  constructor(handler: FrameHandler, allowedRsv = 0, copyBelow = 0) {
    this.#handler = handler;
    this.#allowedRsv = allowedRsv;
    this.#copyBelow = copyBelow;
  }

  /** The first failure (a {@linkcode Failure} number, see `failureCode` and `failureReason`), or 0. */
  get error(): number {
    return this.#error;
  }

  /** Payload bytes of the current data frame still to come; 0 between frames and in control frames. */
  get payloadRemaining(): number {
    return this.#state === State.Payload && this.#opcode < 0x8 ? this.#remaining : 0;
  }

  /** Stops the current `push` after the callback that calls it; `push` then returns the bytes used. */
  pause(): void {
    this.#paused = true;
  }

  /**
   * Parses `chunk` (unmasking its payload bytes in place). Returns how many bytes were used:
   * all of them unless the handler paused the parser, in which case the caller pushes the rest
   * again later.
   */
  push(chunk: Uint8Array): number {
    this.#paused = false;
    const length = chunk.length;
    let pos = 0;
    while (pos < length && this.#error === 0 && !this.#paused) {
      if (this.#state === State.Header) {
        pos = this.#readHeader(chunk, pos);
      } else {
        pos = this.#readPayload(chunk, pos);
      }
    }
    return this.#error === 0 ? pos : length;
  }

  #fail(failure: number): void {
    this.#error = failure;
  }

  #readHeader(chunk: Uint8Array, pos: number): number {
    const available = chunk.length - pos;
    if (this.#headFilled === 0 && available >= 2) {
      const size = this.#checkFirstBytes(chunk[pos], chunk[pos + 1]);
      if (size === 0) return pos;
      if (available >= size) {
        this.#startFrame(chunk, pos);
        return pos + size;
      }
    }
    // Gather a split header: first the two fixed bytes, then the rest.
    const head = this.#head ??= new Uint8Array(14);
    if (this.#headFilled < 2) {
      const take = Math.min(2 - this.#headFilled, available);
      head.set(chunk.subarray(pos, pos + take), this.#headFilled);
      this.#headFilled += take;
      pos += take;
      if (this.#headFilled < 2) return pos;
      if (this.#checkFirstBytes(head[0], head[1]) === 0) return pos;
    }
    const size = headerSize(head[1]);
    const take = Math.min(size - this.#headFilled, chunk.length - pos);
    head.set(chunk.subarray(pos, pos + take), this.#headFilled);
    this.#headFilled += take;
    pos += take;
    if (this.#headFilled === size) {
      this.#headFilled = 0;
      this.#startFrame(head, 0);
    }
    return pos;
  }

  /** Checks the first two header bytes; returns the header size, or 0 after failing. */
  #checkFirstBytes(b0: number, b1: number): number {
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70 & ~this.#allowedRsv) !== 0) return this.#failHeader(Failure.ReservedBits);
    if ((b1 & 0x80) === 0) return this.#failHeader(Failure.UnmaskedFrame);
    if (opcode >= 0x8) {
      if (opcode > Opcode.Pong) return this.#failHeader(withDetail(Failure.ReservedOpcode, opcode));
      if ((b0 & 0x80) === 0) return this.#failHeader(Failure.FragmentedControl);
      if ((b1 & 0x7f) > MAX_CONTROL_PAYLOAD) return this.#failHeader(Failure.ControlTooLong);
      if ((b0 & RSV1) !== 0) return this.#failHeader(Failure.Rsv1OnControl);
    } else if (opcode > Opcode.Binary) {
      return this.#failHeader(withDetail(Failure.ReservedOpcode, opcode));
    } else if (opcode === Opcode.Continuation) {
      // A continuation only inside a fragmented message (§5.4), and RSV1 marks a compressed
      // message on its first frame only (RFC 7692 §6.1).
      if (!this.#fragmented) return this.#failHeader(Failure.StrayContinuation);
      if ((b0 & RSV1) !== 0) return this.#failHeader(Failure.Rsv1OnContinuation);
    } else if (this.#fragmented) {
      return this.#failHeader(Failure.MessageInsideMessage);
    }
    return headerSize(b1);
  }

  #failHeader(failure: number): number {
    this.#fail(failure);
    return 0;
  }

  /** Reads a complete header at `src[at]` and announces the frame. */
  #startFrame(src: Uint8Array, at: number): void {
    const b0 = src[at];
    const len7 = src[at + 1] & 0x7f;
    let length = len7;
    let maskAt = at + 2;
    if (len7 === 126) {
      length = (src[at + 2] << 8) | src[at + 3];
      maskAt = at + 4;
    } else if (len7 === 127) {
      const high = ((src[at + 2] << 24) | (src[at + 3] << 16) | (src[at + 4] << 8) | src[at + 5]) >>> 0;
      if (high >= 0x80000000) return this.#fail(Failure.LengthTopBit);
      const low = ((src[at + 6] << 24) | (src[at + 7] << 16) | (src[at + 8] << 8) | src[at + 9]) >>> 0;
      // Beyond 2^53 the value is inexact, but it is then far above any message limit anyway.
      length = high * 0x100000000 + low;
      maskAt = at + 10;
    }
    this.#mask =
      ((src[maskAt] << 24) | (src[maskAt + 1] << 16) | (src[maskAt + 2] << 8) | src[maskAt + 3]) >>>
      0;
    this.#maskOffset = 0;
    this.#remaining = length;
    const opcode = b0 & 0x0f;
    this.#opcode = opcode;
    if (opcode >= 0x8) {
      this.#controlLength = length;
      this.#controlFilled = 0;
      if (length === 0) this.#report(this.#handler.onControlFrame(opcode, EMPTY));
      else this.#state = State.Payload;
      return;
    }
    const fin = (b0 & 0x80) !== 0;
    this.#fragmented = !fin;
    const failure = this.#handler.onDataFrame(opcode, fin, (b0 & RSV1) !== 0, length);
    if (failure !== 0) return this.#fail(failure);
    if (length === 0) this.#report(this.#handler.onDataPayload(EMPTY, true, true));
    else this.#state = State.Payload;
  }

  #readPayload(chunk: Uint8Array, pos: number): number {
    const take = Math.min(this.#remaining, chunk.length - pos);
    const copied = take < this.#copyBelow;
    const piece = copied ? chunk.slice(pos, pos + take) : chunk.subarray(pos, pos + take);
    unmask(piece, this.#mask, this.#maskOffset);
    this.#maskOffset = (this.#maskOffset + take) & 3;
    this.#remaining -= take;
    const end = this.#remaining === 0;
    if (end) this.#state = State.Header;
    if (this.#opcode < 0x8) {
      this.#report(this.#handler.onDataPayload(piece, end, copied));
    } else if (end && this.#controlFilled === 0) {
      this.#report(this.#handler.onControlFrame(this.#opcode, piece));
    } else {
      const control = this.#control ??= new Uint8Array(MAX_CONTROL_PAYLOAD);
      control.set(piece, this.#controlFilled);
      this.#controlFilled += take;
      if (end) {
        const payload = control.subarray(0, this.#controlLength);
        this.#report(this.#handler.onControlFrame(this.#opcode, payload));
      }
    }
    return pos + take;
  }

  #report(failure: number): void {
    if (failure !== 0) this.#fail(failure);
  }
}

/** Header size implied by the second header byte: 2, plus 2 or 8 length bytes, plus the mask. */
function headerSize(b1: number): number {
  const len7 = b1 & 0x7f;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((b1 & 0x80) !== 0 ? 4 : 0);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Below this many bytes, making a 32-bit view costs more than it saves. */
const WORD_THRESHOLD = 256;

/**
 * XORs `bytes` in place with the masking key `mask` (its four bytes in wire order, as one 32-bit
 * number), starting at key position `offset` (0–3). Long runs go a 32-bit word at a time.
 */
export function unmask(bytes: Uint8Array, mask: number, offset: number): void {
  const length = bytes.length;
  // Rotate the key so that its top byte is the one for bytes[0]; each byte rotates it by 8 bits.
  const shift = (offset & 3) << 3;
  let key = shift === 0 ? mask >>> 0 : ((mask << shift) | (mask >>> (32 - shift))) >>> 0;
  let i = 0;
  if (length >= WORD_THRESHOLD) {
    for (; ((bytes.byteOffset + i) & 3) !== 0; i++) {
      bytes[i] ^= key >>> 24;
      key = ((key << 8) | (key >>> 24)) >>> 0;
    }
    const words = (length - i) >>> 2;
    const word = LITTLE_ENDIAN
      ? ((key >>> 24) | ((key >>> 8) & 0xff00) | ((key << 8) & 0xff0000) | (key << 24))
      : key | 0;
    // Int32 elements (every XOR result fits without conversion), four per iteration: measured
    // 1.4-2x faster on JavaScriptCore than a plain Uint32 loop, and the same on V8.
    const view = new Int32Array(bytes.buffer, bytes.byteOffset + i, words);
    const unrolled = words & ~3;
    let w = 0;
    for (; w < unrolled; w += 4) {
      view[w] ^= word;
      view[w + 1] ^= word;
      view[w + 2] ^= word;
      view[w + 3] ^= word;
    }
    for (; w < words; w++) view[w] ^= word;
    i += words << 2; // whole words leave the key's rotation unchanged
  }
  for (; i < length; i++) {
    bytes[i] ^= key >>> 24;
    key = ((key << 8) | (key >>> 24)) >>> 0;
  }
}

/** Size of the header of an unmasked server frame with a payload of `length` bytes. */
export function frameHeaderSize(length: number): number {
  return length < 126 ? 2 : length < 0x10000 ? 4 : 10;
}

/**
 * Writes the header of an unmasked, final server frame into `target` at `at`; returns where the
 * payload goes. `rsv1` marks a compressed message.
 */
export function writeFrameHeader(
  target: Uint8Array,
  at: number,
  opcode: number,
  length: number,
  rsv1 = false,
): number {
  target[at] = 0x80 | (rsv1 ? RSV1 : 0) | opcode;
  if (length < 126) {
    target[at + 1] = length;
    return at + 2;
  }
  if (length < 0x10000) {
    target[at + 1] = 126;
    target[at + 2] = length >>> 8;
    target[at + 3] = length & 0xff;
    return at + 4;
  }
  target[at + 1] = 127;
  const high = Math.floor(length / 0x100000000);
  target[at + 2] = high >>> 24;
  target[at + 3] = (high >>> 16) & 0xff;
  target[at + 4] = (high >>> 8) & 0xff;
  target[at + 5] = high & 0xff;
  target[at + 6] = length >>> 24;
  target[at + 7] = (length >>> 16) & 0xff;
  target[at + 8] = (length >>> 8) & 0xff;
  target[at + 9] = length & 0xff;
  return at + 10;
}

/** Encodes one unmasked, final server frame (header and payload in one buffer). */
export function encodeFrame(opcode: number, payload: Uint8Array, rsv1 = false): Uint8Array {
  const frame = new Uint8Array(frameHeaderSize(payload.length) + payload.length);
  frame.set(payload, writeFrameHeader(frame, 0, opcode, payload.length, rsv1));
  return frame;
}
