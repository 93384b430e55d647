/**
 * A DEFLATE compressor (RFC 1951) that keeps its context between messages, for
 * permessage-deflate with server context takeover (RFC 7692 §7.1.1.1): each message may refer
 * back to the bytes of the messages before it, as the client's inflater keeps them.
 *
 * It is written in TypeScript rather than over `node:zlib` because no runtime offers a
 * synchronous zlib stream (a kept `createDeflateRaw` answers each flush in a callback), Deno's
 * `node:zlib` ignores a preset dictionary (so one-shot calls cannot take context over there),
 * and where a dictionary works (Node, Bun) zlib hashes the whole window again for every message.
 * Its state is three typed arrays sized by the window (allocated at the first message), so the
 * memory a connection holds is known to the byte: {@linkcode ContextCompressor.memory}. The
 * README's "Compression" section has the figures.
 *
 * The hash chains hold positions as 16-bit absolute offsets in the stream (mod 65,536), and a
 * candidate is taken only if its distance is below the window and its bytes are still in the
 * buffer: when the window slides, the tables need no rewriting. An entry of a position long gone
 * can only name another position in the window, whose bytes are compared like any candidate's.
 * @module
 */

import { BitWriter } from "./bit_writer.ts";
import { BlockWriter, writeStored } from "./block_writer.ts";

const MIN_MATCH = 3;
const MAX_MATCH = 258;
/**
 * Positions are hashed by their first four bytes: in JSON, three (`":"`, `","`) are shared by
 * so many positions that chains fill with candidates that match no further, and a search then
 * follows twice the links for the same matches.
 */
const HASH_BYTES = 4;
/** Multiplier of the hash (its top bits are the hash slot). */
const HASH = 0x9e3779b1;
/** A match of the shortest length this far back costs more than its literals. */
const TOO_FAR = 4096;
/** Bytes beyond the window the buffer holds, so that the window slides once per this many. */
const MIN_SLACK = 1024;

/**
 * How hard each level (1–9) searches for matches: the most hash-chain links followed, the match
 * length past which only a quarter as many are followed (`good`), the length from which the next
 * position is not tried for a longer match (`lazy`), and the length that ends a search (`nice`).
 * Tuned on chat-like JSON (bench/compression_corpus.mjs): level 6 matches zlib's level 6 in size
 * while following half as many links.
 */
const LEVELS: readonly { chain: number; good: number; lazy: number; nice: number }[] = [
  { chain: 0, good: 0, lazy: 0, nice: 0 }, // 0: stored blocks, no search
  { chain: 4, good: 4, lazy: 3, nice: 32 },
  { chain: 8, good: 4, lazy: 4, nice: 64 },
  { chain: 16, good: 8, lazy: 8, nice: 128 },
  { chain: 24, good: 8, lazy: 16, nice: 128 },
  { chain: 32, good: 8, lazy: 32, nice: 258 },
  { chain: 64, good: 8, lazy: 32, nice: 258 },
  { chain: 128, good: 16, lazy: 64, nice: 258 },
  { chain: 512, good: 32, lazy: 258, nice: 258 },
  { chain: 4096, good: 32, lazy: 258, nice: 258 },
];

// The output and the block being gathered: every message is written out before `compress`
// returns, so all compressors of the process share them.
const out = new BitWriter(4096);
const blocks = new BlockWriter();
/** The distance of the match `longestMatch` found last. */
let matchDistance = 0;

/** Bits of the hash slots of a window of `windowBits`. */
function hashBits(windowBits: number): number {
  return Math.max(8, windowBits - 2);
}

/** The hash slot of the four bytes at `at`. */
function hash(buffer: Uint8Array, at: number, shift: number): number {
  const word = (buffer[at] << 24) | (buffer[at + 1] << 16) | (buffer[at + 2] << 8) | buffer[at + 3];
  return Math.imul(word, HASH) >>> shift;
}

/** A compressor for one connection's messages, each able to refer back to the ones before. */
export class ContextCompressor {
  readonly #windowSize: number;
  readonly #hashShift: number;
  readonly #level: (typeof LEVELS)[number];
  /** The window and room for new bytes: positions are indices into it. */
  #buffer: Uint8Array | null = null;
  /** The latest position of each hash slot, as an absolute offset mod 65,536. */
  #head: Uint16Array | null = null;
  /** The position before each one with the same hash; indexed by absolute offset mod window. */
  #prev: Uint16Array | null = null;
  /** Bytes in the buffer: the history (and, inside `compress`, the message). */
  #end = 0;
  /** Positions from here on are not in the hash chains yet (the history's last three). */
  #hashFrom = 0;
  /** The absolute offset of the buffer's first byte, mod 65,536. */
  #base = 0;

  /**
   * A compressor whose matches reach less than 2^`windowBits` bytes back (8–15), searching as
   * hard as `level` says (1–9; 0 sends stored blocks, which refer to nothing).
   */
  constructor(windowBits: number, level: number) {
    this.#windowSize = 1 << windowBits;
    // One hash slot per four window positions (at least 256): about as few links followed as
    // with more slots, in a quarter of the memory.
    this.#hashShift = 32 - hashBits(windowBits);
    this.#level = LEVELS[level];
  }

  /** Bytes of memory this compressor holds: none until its first message, then fixed. */
  get memory(): number {
    return (this.#buffer?.byteLength ?? 0) + (this.#head?.byteLength ?? 0) + (this.#prev?.byteLength ?? 0);
  }

  /**
   * The bytes of memory a compressor of `windowBits` holds once it has compressed a message:
   * the window and a quarter more (at least 1 KiB) of room, 2 bytes per window position for the
   * hash chains, and 2 bytes per hash slot (one per four positions, at least 256).
   */
  static memoryFor(windowBits: number): number {
    const window = 1 << windowBits;
    return window + Math.max(MIN_SLACK, window >> 2) + 2 * window + 2 * (1 << hashBits(windowBits));
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
    if (data.length >= window) {
      // The window is all new: drop what was there, keep the data's last window.
      this.#slide(this.#end);
      data = data.subarray(data.length - window);
    } else if (this.#end + data.length > this.#buffer!.length) {
      this.#slide(this.#end - (window - data.length));
    }
    this.#buffer!.set(data, this.#end);
    this.#end += data.length;
    this.#hashUpTo(this.#end - (HASH_BYTES - 1));
  }

  #allocate(): void {
    const window = this.#windowSize;
    this.#buffer = new Uint8Array(window + Math.max(MIN_SLACK, window >> 2));
    this.#head = new Uint16Array(1 << (32 - this.#hashShift));
    this.#prev = new Uint16Array(window);
  }

  /** Drops the buffer's first `offset` bytes, moving the rest to the front. */
  #slide(offset: number): void {
    this.#buffer!.copyWithin(0, offset, this.#end);
    this.#end -= offset;
    this.#hashFrom = Math.max(0, this.#hashFrom - offset);
    this.#base = (this.#base + offset) & 0xffff;
  }

  /** Puts the positions from `#hashFrom` up to `limit` into the hash chains. */
  #hashUpTo(limit: number): void {
    const buffer = this.#buffer!;
    const head = this.#head!;
    const prev = this.#prev!;
    const shift = this.#hashShift;
    const mask = this.#windowSize - 1;
    const base = this.#base;
    let p = this.#hashFrom;
    for (; p < limit; p++) {
      const h = hash(buffer, p, shift);
      const at = (p + base) & 0xffff;
      prev[at & mask] = head[h];
      head[h] = at;
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
      if (this.#hashFrom < historyEnd) this.#hashUpTo(Math.min(historyEnd, end - (HASH_BYTES - 1)));
      const base = this.#base;
      // Parse to the end of the message, or leave a longest match's worth to look ahead at.
      const stop = taken === data.length ? end : end - MAX_MATCH;
      while (pos < stop) {
        let length = 0;
        let distance = 0;
        if (pos + HASH_BYTES <= end) {
          const h = hash(buffer, pos, shift);
          const at = (pos + base) & 0xffff;
          const latest = head[h];
          prev[at & mask] = latest;
          head[h] = at;
          const back = (at - latest) & 0xffff;
          if (prevLength < lazy && back !== 0 && back < window && back <= pos) {
            const chain = prevLength >= good ? maxChain >> 2 : maxChain;
            const best = Math.max(prevLength, MIN_MATCH - 1);
            length = longestMatch(buffer, prev, pos, at, back, best, end, window, chain, nice);
            distance = matchDistance;
            if (length === MIN_MATCH && distance > TOO_FAR) length = 0;
          }
        }
        if (prevLength >= MIN_MATCH && length <= prevLength) {
          // The match at pos - 1 is at least as long: take it, hashing the positions it covers.
          blocks.match(prevLength, prevDistance);
          const matchEnd = pos - 1 + prevLength;
          for (let p = pos + 1; p < matchEnd && p + HASH_BYTES <= end; p++) {
            const h = hash(buffer, p, shift);
            const at = (p + base) & 0xffff;
            prev[at & mask] = head[h];
            head[h] = at;
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
    // The message's last three positions wait for the bytes after them (unless it was too short
    // to hash even the history's tail).
    if (this.#hashFrom >= historyEnd) this.#hashFrom = Math.max(historyEnd, this.#end - (HASH_BYTES - 1));
  }
}

/**
 * The longest match for `pos` (at absolute offset `at`) longer than `best`, following the hash
 * chain from the candidate `back` bytes back, up to `chain` links and less than the window back;
 * sets `matchDistance` and returns its length (0 when none is longer than `best`).
 */
function longestMatch(
  buffer: Uint8Array,
  prev: Uint16Array,
  pos: number,
  at: number,
  back: number,
  best: number,
  end: number,
  window: number,
  chain: number,
  nice: number,
): number {
  const maxLength = Math.min(MAX_MATCH, end - pos);
  if (best >= maxLength) return 0;
  const start = best;
  // Not past the window, nor before the buffer's first byte.
  const farthest = Math.min(window - 1, pos);
  const mask = window - 1;
  if (nice > maxLength) nice = maxLength;
  // The bytes a candidate must match first: the one past the best so far, and the first two.
  let scan = buffer[pos + best];
  const first = buffer[pos];
  const second = buffer[pos + 1];
  for (;;) {
    const candidate = pos - back;
    // The next link is loaded before this candidate is compared, so that the two loads overlap.
    const next = (at - prev[(at - back) & mask]) & 0xffff;
    if (
      buffer[candidate + best] === scan && buffer[candidate] === first && buffer[candidate + 1] === second
    ) {
      let length = 2;
      while (length < maxLength && buffer[candidate + length] === buffer[pos + length]) length++;
      if (length > best) {
        best = length;
        matchDistance = back;
        if (length >= nice) break;
        scan = buffer[pos + best];
      }
    }
    // Links go strictly further back; stale ones may not, or lead out of range.
    if (--chain === 0 || next <= back || next > farthest) break;
    back = next;
  }
  return best > start ? best : 0;
}
