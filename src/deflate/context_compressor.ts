/**
 * A DEFLATE compressor (RFC 1951) that keeps its context between messages, for
 * permessage-deflate with server context takeover (RFC 7692 §7.1.1.1): each message may refer
 * back to the bytes of the messages before it, as the client's inflater keeps them.
 *
 * It is written in TypeScript rather than over `node:zlib` because no runtime offers a
 * synchronous zlib stream (a kept `createDeflateRaw` answers each flush in a callback), and
 * Deno's `node:zlib` ignores a preset dictionary, so one-shot calls cannot take context over
 * there. Its state is three typed arrays sized by the window (allocated at the first message),
 * so the memory a connection holds is known to the byte: {@linkcode ContextCompressor.memory}.
 * @module
 */

import { BitWriter } from "./bit_writer.ts";
import { BlockWriter, writeStored } from "./block_writer.ts";

const MIN_MATCH = 3;
const MAX_MATCH = 258;
/** Multiplier of the hash of three bytes (its top bits are the hash). */
const HASH = 0x9e3779b1;
/** A match of the shortest length this far back costs more than its literals. */
const TOO_FAR = 4096;
/** Bytes beyond the window the buffer holds, so that the window slides once per this many. */
const MIN_SLACK = 1024;

/**
 * How hard each level (1–9) searches for matches: the longest hash chain followed, the match
 * length past which a chain is followed only a quarter as far (`good`), the length from which
 * the next position is not tried for a longer match (`lazy`), and the length that ends a search
 * at once (`nice`).
 */
const LEVELS: readonly { chain: number; good: number; lazy: number; nice: number }[] = [
  { chain: 0, good: 0, lazy: 0, nice: 0 }, // 0: stored blocks, no search
  { chain: 4, good: 4, lazy: 3, nice: 8 },
  { chain: 8, good: 4, lazy: 4, nice: 16 },
  { chain: 16, good: 4, lazy: 6, nice: 32 },
  { chain: 16, good: 4, lazy: 8, nice: 32 },
  { chain: 32, good: 8, lazy: 16, nice: 64 },
  { chain: 128, good: 8, lazy: 16, nice: 128 },
  { chain: 256, good: 8, lazy: 32, nice: 128 },
  { chain: 1024, good: 32, lazy: 128, nice: 258 },
  { chain: 4096, good: 32, lazy: 258, nice: 258 },
];

// The output and the block being gathered: every message is written out before `compress`
// returns, so all compressors of the process share them.
const out = new BitWriter(4096);
const blocks = new BlockWriter();
/** The distance of the match `longestMatch` found last. */
let matchDistance = 0;

/** A compressor for one connection's messages, each able to refer back to the ones before. */
export class ContextCompressor {
  readonly #windowSize: number;
  readonly #hashShift: number;
  readonly #level: (typeof LEVELS)[number];
  /** The window and room for new bytes: positions below are indices into it. */
  #buffer: Uint8Array | null = null;
  /** The latest position (plus one; 0 is none) of each hash of three bytes. */
  #head: Uint16Array | null = null;
  /** The position before each one with the same hash, indexed by absolute position mod window. */
  #prev: Uint16Array | null = null;
  /** Bytes in the buffer: the history (and, inside `compress`, the message). */
  #end = 0;
  /** Positions from here on are not in the hash chains yet (the last two of the history). */
  #hashFrom = 0;
  /** Bytes slid out of the buffer so far, mod the window: positions plus this index `#prev`. */
  #slid = 0;

  /**
   * A compressor whose matches reach at most 2^`windowBits` bytes back (8–15), searching as hard
   * as zlib's `level` (0–9; 0 sends stored blocks, which refer to nothing).
   */
  constructor(windowBits: number, level: number) {
    this.#windowSize = 1 << windowBits;
    // One hash slot per two window positions (at least 256): chains stay short, memory small.
    this.#hashShift = 32 - Math.max(8, windowBits - 1);
    this.#level = LEVELS[level];
  }

  /** Bytes of memory this compressor holds: none until its first message, then fixed. */
  get memory(): number {
    return (this.#buffer?.byteLength ?? 0) + (this.#head?.byteLength ?? 0) + (this.#prev?.byteLength ?? 0);
  }

  /**
   * The bytes of memory a compressor of `windowBits` holds once it has compressed a message:
   * the window and a quarter more (at least 1 KiB) of room, 2 bytes per window position for the
   * hash chains, and 2 bytes per hash slot.
   */
  static memoryFor(windowBits: number): number {
    const window = 1 << windowBits;
    return window + Math.max(MIN_SLACK, window >> 2) + 2 * window + 2 * (1 << Math.max(8, windowBits - 1));
  }

  /**
   * Compresses one message and returns its DEFLATE data, ended as permessage-deflate sends it:
   * after an empty stored block's header, without that block's `00 00 FF FF` (RFC 7692 §7.2.1).
   * The message joins the context of the next one. The bytes are a fresh copy.
   */
  compress(data: Uint8Array): Uint8Array {
    out.reset();
    if (this.#level.chain === 0) {
      if (data.length > 0) writeStored(out, data);
    } else {
      this.#deflate(data);
    }
    // The sync flush's empty stored block: its header, padded to a byte boundary.
    out.ensure(1);
    out.bits(0, 3);
    out.align();
    return out.bytes.slice(0, out.length);
  }

  #allocate(): void {
    const window = this.#windowSize;
    this.#buffer = new Uint8Array(window + Math.max(MIN_SLACK, window >> 2));
    this.#head = new Uint16Array(1 << (32 - this.#hashShift));
    this.#prev = new Uint16Array(window);
  }

  /** Drops the buffer's first `offset` bytes, moving the rest (and their positions) to the front. */
  #slide(offset: number): void {
    const head = this.#head!;
    const prev = this.#prev!;
    this.#buffer!.copyWithin(0, offset, this.#end);
    this.#end -= offset;
    this.#hashFrom -= offset;
    this.#slid = (this.#slid + offset) & (this.#windowSize - 1);
    for (let i = 0; i < head.length; i++) head[i] = head[i] > offset ? head[i] - offset : 0;
    for (let i = 0; i < prev.length; i++) prev[i] = prev[i] > offset ? prev[i] - offset : 0;
  }

  /**
   * The last window of what was compressed or appended (a view, valid until the next call): the
   * history the peer's inflater holds.
   */
  get window(): Uint8Array {
    const buffer = this.#buffer;
    if (buffer === null) return new Uint8Array(0);
    return buffer.subarray(Math.max(0, this.#end - this.#windowSize), this.#end);
  }

  /**
   * Adds `data` to the context without compressing it, for a message that was compressed some
   * other way (the peer's inflater then holds it as history all the same).
   */
  append(data: Uint8Array): void {
    if (this.#level.chain === 0) return; // stored blocks refer to nothing
    if (this.#buffer === null) this.#allocate();
    const window = this.#windowSize;
    const buffer = this.#buffer!;
    if (data.length >= window) {
      // The window is all new: start over with its last bytes.
      data = data.subarray(data.length - window);
      this.#end = 0;
      this.#hashFrom = 0;
      this.#slid = 0;
      this.#head!.fill(0);
      this.#prev!.fill(0);
    } else if (this.#end + data.length > buffer.length) {
      this.#slide(this.#end - (window - data.length));
    }
    buffer.set(data, this.#end);
    this.#end += data.length;
    this.#hashUpTo(this.#end - (MIN_MATCH - 1));
  }

  /** Puts the positions from `#hashFrom` up to `limit` into the hash chains. */
  #hashUpTo(limit: number): void {
    const buffer = this.#buffer!;
    const head = this.#head!;
    const prev = this.#prev!;
    const shift = this.#hashShift;
    const mask = this.#windowSize - 1;
    const slid = this.#slid;
    let p = this.#hashFrom;
    for (; p < limit; p++) {
      const h = Math.imul((buffer[p] << 16) | (buffer[p + 1] << 8) | buffer[p + 2], HASH) >>> shift;
      prev[(p + slid) & mask] = head[h];
      head[h] = p + 1;
    }
    this.#hashFrom = Math.max(this.#hashFrom, p);
  }

  /** Finds matches in `data` against the history and itself, written out as blocks. */
  #deflate(data: Uint8Array): void {
    if (this.#buffer === null) this.#allocate();
    const buffer = this.#buffer!;
    const head = this.#head!;
    const prev = this.#prev!;
    const { chain: maxChain, good, lazy, nice } = this.#level;
    const window = this.#windowSize;
    const mask = window - 1;
    const shift = this.#hashShift;
    let pos = this.#end;
    /** Where the history ends and the message starts. */
    let historyEnd = pos;
    /** Where the block being gathered starts (below 0 once slid out: no stored block then). */
    let blockStart = pos;
    // The lazy match: what was found at `pos - 1`, held back while `pos` is tried for a longer one.
    let pending = false;
    let prevLength = 0;
    let prevDistance = 0;
    for (let taken = 0; taken < data.length;) {
      if (this.#end === buffer.length) {
        // Full: keep the window before `pos` (and the lookahead after it).
        const offset = pos - window;
        this.#slide(offset);
        pos -= offset;
        historyEnd -= offset;
        blockStart -= offset;
      }
      const count = Math.min(buffer.length - this.#end, data.length - taken);
      buffer.set(data.subarray(taken, taken + count), this.#end);
      const end = this.#end += count;
      taken += count;
      // The history's last positions have bytes after them now.
      if (this.#hashFrom < historyEnd) this.#hashUpTo(Math.min(historyEnd, end - (MIN_MATCH - 1)));
      const slid = this.#slid;
      // Parse to the end of the message, or leave a longest match's worth to look ahead at.
      const stop = taken === data.length ? end : end - MAX_MATCH;
      while (pos < stop) {
        let length = 0;
        let distance = 0;
        if (pos + MIN_MATCH <= end) {
          const h = Math.imul((buffer[pos] << 16) | (buffer[pos + 1] << 8) | buffer[pos + 2], HASH) >>> shift;
          const candidate = head[h] - 1;
          prev[(pos + slid) & mask] = head[h];
          head[h] = pos + 1;
          if (candidate >= 0 && prevLength < lazy && pos - candidate < window) {
            const chain = prevLength >= good ? maxChain >> 2 : maxChain;
            const best = Math.max(prevLength, MIN_MATCH - 1);
            length = longestMatch(buffer, prev, pos, candidate, best, end, window, slid, chain, nice);
            distance = matchDistance;
            if (length === MIN_MATCH && distance > TOO_FAR) length = 0;
          }
        }
        if (prevLength >= MIN_MATCH && length <= prevLength) {
          // The match at pos - 1 is at least as long: take it, hashing the positions it covers.
          blocks.match(prevLength, prevDistance);
          const matchEnd = pos - 1 + prevLength;
          for (let p = pos + 1; p < matchEnd && p + MIN_MATCH <= end; p++) {
            const h = Math.imul((buffer[p] << 16) | (buffer[p + 1] << 8) | buffer[p + 2], HASH) >>> shift;
            prev[(p + slid) & mask] = head[h];
            head[h] = p + 1;
          }
          pos = matchEnd;
          pending = false;
          prevLength = 0;
        } else {
          if (pending) blocks.literal(buffer[pos - 1]);
          pending = true;
          prevLength = length;
          prevDistance = distance;
          pos++;
        }
        if (blocks.full) {
          const blockEnd = pending ? pos - 1 : pos;
          blocks.write(out, blockStart >= 0 ? buffer.subarray(blockStart, blockEnd) : null);
          blockStart = blockEnd;
        }
      }
    }
    if (pending) blocks.literal(buffer[pos - 1]);
    if (!blocks.empty) blocks.write(out, blockStart >= 0 ? buffer.subarray(blockStart, pos) : null);
    // The message's last two positions wait for the bytes after them (unless it was too short to
    // hash even the history's tail).
    if (this.#hashFrom >= historyEnd) this.#hashFrom = Math.max(historyEnd, this.#end - (MIN_MATCH - 1));
  }
}

/**
 * The longest match for `pos` longer than `best`, following the hash chain from `candidate` up
 * to `chain` links and no further back than the window; sets `matchDistance` and returns its
 * length (0 when none is longer than `best`).
 */
function longestMatch(
  buffer: Uint8Array,
  prev: Uint16Array,
  pos: number,
  candidate: number,
  best: number,
  end: number,
  window: number,
  slid: number,
  chain: number,
  nice: number,
): number {
  const maxLength = Math.min(MAX_MATCH, end - pos);
  if (best >= maxLength) return 0;
  const start = best;
  const lowest = Math.max(pos - window, -1);
  const mask = window - 1;
  if (nice > maxLength) nice = maxLength;
  while (candidate > lowest) {
    if (
      buffer[candidate + best] === buffer[pos + best] && buffer[candidate] === buffer[pos] &&
      buffer[candidate + 1] === buffer[pos + 1]
    ) {
      let length = 2;
      while (length < maxLength && buffer[candidate + length] === buffer[pos + length]) length++;
      if (length > best) {
        best = length;
        matchDistance = pos - candidate;
        if (length >= nice) break;
      }
    }
    if (--chain === 0) break;
    const next = prev[(candidate + slid) & mask] - 1;
    if (next >= candidate) break;
    candidate = next;
  }
  return best > start ? best : 0;
}
