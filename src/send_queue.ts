/**
 * One connection's outgoing frames for the current turn of the event loop. Frames are encoded
 * straight into one buffer as they are sent (their payload copied once), frames shared between
 * sockets (publish) are queued by reference, and when the turn ends everything goes to the
 * transport in one write. One microtask flushes every queue that has data. Large buffers are
 * recycled through a pool shared by all queues once their bytes are written.
 * @module
 */

import { frameHeaderSize, Opcode, writeFrameHeader } from "./frame.ts";
import type { Transport } from "./runtime/types.ts";

/** Smallest buffer started for a turn's frames (small enough for engines' inline typed arrays). */
const MIN_BUFFER = 512;
/**
 * A turn's buffer up to this size is kept for the next turn when the transport wrote it at once
 * (so busy sockets do not allocate every turn); `trim` lets it go when the socket goes quiet.
 */
const REUSE_LIMIT = 2048;
/** Queued pieces are joined into one write up to this size; larger turns go piece by piece. */
const COALESCE_LIMIT = 64 * 1024;

/**
 * Turn buffers over REUSE_LIMIT whose bytes were written, for any queue's next large turn: a new
 * large buffer is zero-filled (and page-faulted in) at a cost above that of the copy into it.
 * Bounded in total, so it costs little memory however many sockets there are.
 */
const pool: Uint8Array[] = [];
const POOL_BUDGET = 8 * 1024 * 1024;
let pooledBytes = 0;

/**
 * A buffer of at least `size` bytes: for a large size, the last pooled one that fits without
 * wasting most of it; else a new one.
 */
function takeBuffer(size: number): Uint8Array {
  if (size <= REUSE_LIMIT) return new Uint8Array(size);
  for (let i = pool.length - 1; i >= 0; i--) {
    const buffer = pool[i];
    if (buffer.length >= size && buffer.length <= 4 * size) {
      pool.splice(i, 1);
      pooledBytes -= buffer.length;
      return buffer;
    }
  }
  return new Uint8Array(size);
}

function recycle(buffer: Uint8Array): void {
  if (pooledBytes + buffer.length > POOL_BUDGET) return;
  pool.push(buffer);
  pooledBytes += buffer.length;
}

/** Longest text (in UTF-16 code units) encoded straight into the buffer; longer text is encoded first. */
const MAX_DIRECT_TEXT = 64 * 1024;
const encoder = new TextEncoder();

/** Queues with data this turn, flushed together by one microtask. */
const dirty: SendQueue[] = [];
let flushQueued = false;

function flushDirty(): void {
  try {
    // A write may close a socket, but its close handler runs in a later microtask, not in here.
    for (let i = 0; i < dirty.length; i++) dirty[i].flush();
  } finally {
    dirty.length = 0;
    flushQueued = false;
  }
}

/** The frames one connection sends in this turn. */
export class SendQueue {
  readonly #transport: Transport;
  /** This turn's buffer; bytes before `#start` were sealed into `#pieces` already. */
  #buffer: Uint8Array | null = null;
  #start = 0;
  #end = 0;
  /** Pieces in order, kept only when a shared frame had to go between this turn's frames. */
  #pieces: Uint8Array[] | null = null;
  #bytes = 0;
  #scheduled = false;
  /** Large buffers the transport kept, to recycle once it has written everything. */
  #lent: Uint8Array[] | null = null;

  /** A queue whose bytes go to `transport`. */
  constructor(transport: Transport) {
    this.#transport = transport;
  }

  /** Bytes queued this turn. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Encodes an unmasked, final frame with a copy of `payload`; `rsv1` marks it compressed. */
  frame(opcode: number, payload: Uint8Array, rsv1 = false): void {
    const size = frameHeaderSize(payload.length) + payload.length;
    const at = this.#reserve(size);
    this.#buffer!.set(payload, writeFrameHeader(this.#buffer!, at, opcode, payload.length, rsv1));
  }

  /**
   * Encodes a final text frame of `text` as UTF-8 straight into this turn's buffer, and returns
   * its payload's length. That needs the header's size up front: it is known when text of 1 to 3
   * bytes per UTF-16 code unit lands in the same length class, which is true of all but a few
   * lengths (those are encoded first).
   */
  text(text: string): number {
    const most = text.length * 3;
    const headerSize = frameHeaderSize(most);
    if (text.length > MAX_DIRECT_TEXT || headerSize !== frameHeaderSize(text.length)) {
      const payload = encoder.encode(text);
      this.frame(Opcode.Text, payload);
      return payload.length;
    }
    const at = this.#reserve(headerSize + most);
    const buffer = this.#buffer!;
    const payloadAt = at + headerSize;
    const { written } = encoder.encodeInto(text, buffer.subarray(payloadAt, payloadAt + most));
    writeFrameHeader(buffer, at, Opcode.Text, written);
    const unused = most - written;
    this.#end -= unused;
    this.#bytes -= unused;
    return written;
  }

  /** Queues an encoded frame by reference; it must never change (other sockets send it too). */
  shared(frame: Uint8Array): void {
    this.#seal();
    (this.#pieces ??= []).push(frame);
    this.#bytes += frame.length;
    this.#schedule();
  }

  /** Hands this turn's bytes to the transport, in one write when they are small. */
  flush(): void {
    this.#scheduled = false;
    if (this.#bytes === 0) return;
    const transport = this.#transport;
    const buffer = this.#buffer;
    const pieces = this.#pieces;
    /** Whether the transport may still read from `buffer`. */
    let kept = false;
    if (pieces === null) {
      kept = transport.write(buffer!.subarray(0, this.#end));
      if (!kept && buffer!.length <= REUSE_LIMIT) {
        this.#end = this.#bytes = 0;
        return;
      }
    } else {
      this.#seal();
      if (pieces.length === 1 || this.#bytes > COALESCE_LIMIT) {
        for (const piece of pieces) kept = transport.write(piece) || kept;
      } else {
        const joined = new Uint8Array(this.#bytes);
        let at = 0;
        for (const piece of pieces) {
          joined.set(piece, at);
          at += piece.length;
        }
        transport.write(joined);
      }
    }
    this.#buffer = this.#pieces = null;
    this.#start = this.#end = this.#bytes = 0;
    if (buffer === null || buffer.length <= REUSE_LIMIT) return;
    if (kept) (this.#lent ??= []).push(buffer);
    else recycle(buffer);
  }

  /** The transport has written everything it was given: the buffers it kept are free again. */
  reclaim(): void {
    const lent = this.#lent;
    if (lent === null) return;
    this.#lent = null;
    for (const buffer of lent) recycle(buffer);
  }

  /** Lets go of a buffer kept for reuse, unless frames wait in it. */
  trim(): void {
    if (this.#bytes === 0) this.#buffer = null;
  }

  /**
   * Drops what is queued (the connection is gone). The transport owns what it was given, so
   * buffers it kept are never recycled.
   */
  clear(): void {
    this.#buffer = this.#pieces = this.#lent = null;
    this.#start = this.#end = this.#bytes = 0;
  }

  /** Makes room for `size` more bytes in this turn's buffer; returns where they go. */
  #reserve(size: number): number {
    const buffer = this.#buffer;
    const end = this.#end;
    if (buffer === null || end + size > buffer.length) {
      // Grow by doubling, moving over what was written since the last seal.
      const grown = takeBuffer(Math.max(MIN_BUFFER, end - this.#start + size, (buffer?.length ?? 0) * 2));
      if (buffer !== null) grown.set(buffer.subarray(this.#start, end));
      this.#end = end - this.#start;
      this.#start = 0;
      this.#buffer = grown;
    }
    const at = this.#end;
    this.#end += size;
    this.#bytes += size;
    this.#schedule();
    return at;
  }

  /** Moves the buffer's unsealed bytes into the piece list, before a shared frame or a flush. */
  #seal(): void {
    if (this.#end > this.#start) {
      (this.#pieces ??= []).push(this.#buffer!.subarray(this.#start, this.#end));
      this.#start = this.#end;
    }
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    dirty.push(this);
    if (!flushQueued) {
      flushQueued = true;
      queueMicrotask(flushDirty);
    }
  }
}
