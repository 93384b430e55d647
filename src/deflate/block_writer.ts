/**
 * DEFLATE blocks (RFC 1951 §3.2.3–3.2.7): literals and matches gathered for one block, then
 * written as whichever of a stored, fixed-Huffman or dynamic-Huffman block is shortest.
 * @module
 */

import type { BitWriter } from "./bit_writer.ts";
import { canonicalCodes, huffmanLengths } from "./huffman.ts";

/** Symbols gathered before a block is written (more only adds to the block's memory). */
const MAX_BLOCK_SYMBOLS = 16384;
/** Literal/length codes that may occur: 0–255 literals, 256 end of block, 257–285 lengths. */
const LITERAL_CODES = 286;
const DISTANCE_CODES = 30;
const END_OF_BLOCK = 256;
/** The code-length alphabet (§3.2.7) and the order its own code lengths are sent in. */
const LENGTH_CODES = 19;
const LENGTH_CODE_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
/**
 * Blocks of fewer symbols are not tried with dynamic codes: on chat-like JSON their header
 * outweighed what they saved in all but 5 of 2,900 such blocks (55 bits in all), and building
 * the codes is a third of the cost of a short message.
 */
const DYNAMIC_FROM = 32;
/** The largest stored block (§3.2.4: LEN is 16 bits). */
const MAX_STORED = 65535;

/** Length codes (less 257) by match length less 3, and each code's extra bits and base. */
const LENGTH_INDEX = new Uint8Array(256);
const LENGTH_EXTRA = new Uint8Array(29);
const LENGTH_BASE = new Uint16Array(29);
/** Each distance code's extra bits and base (distance less 1). */
const DISTANCE_EXTRA = new Uint8Array(DISTANCE_CODES);
const DISTANCE_BASE = new Uint16Array(DISTANCE_CODES);

for (let index = 0; index < 28; index++) {
  const extra = index < 8 ? 0 : (index >> 2) - 1;
  LENGTH_EXTRA[index] = extra;
  LENGTH_BASE[index] = index < 8 ? index : (4 | (index & 3)) << extra;
  for (let i = 0; i < 1 << extra; i++) LENGTH_INDEX[LENGTH_BASE[index] + i] = index;
}
// Length 258 has a code of its own (285), not 284 with all extra bits set.
LENGTH_BASE[28] = 255;
LENGTH_INDEX[255] = 28;
for (let code = 0; code < DISTANCE_CODES; code++) {
  const extra = code < 4 ? 0 : (code >> 1) - 1;
  DISTANCE_EXTRA[code] = extra;
  DISTANCE_BASE[code] = code < 4 ? code : (2 | (code & 1)) << extra;
}

/** The distance code of `distance` (1–32768). */
function distanceCode(distance: number): number {
  const d = distance - 1;
  if (d < 4) return d;
  const log = 31 - Math.clz32(d);
  return 2 * log + ((d >>> (log - 1)) & 1);
}

/** The fixed codes (§3.2.6). */
const FIXED_LITERAL_LENGTHS = new Uint8Array(288);
FIXED_LITERAL_LENGTHS.fill(8, 0, 144).fill(9, 144, 256).fill(7, 256, 280).fill(8, 280, 288);
const FIXED_LITERAL_CODES = new Uint16Array(288);
canonicalCodes(FIXED_LITERAL_LENGTHS, 288, FIXED_LITERAL_CODES);
const FIXED_DISTANCE_LENGTHS = new Uint8Array(DISTANCE_CODES).fill(5);
const FIXED_DISTANCE_CODES = new Uint16Array(DISTANCE_CODES);
canonicalCodes(FIXED_DISTANCE_LENGTHS, DISTANCE_CODES, FIXED_DISTANCE_CODES);

/**
 * One block's worth of literals and matches, and the writing of it. A compressor writes every
 * block of a message before it returns, so one `BlockWriter` serves every compressor of the
 * process: its memory (about 70 KiB) is not per connection.
 */
export class BlockWriter {
  /** A literal as its byte (below 256), a match as `distance << 9 | length`. */
  readonly #symbols = new Uint32Array(MAX_BLOCK_SYMBOLS);
  #count = 0;
  readonly #literalFreqs = new Uint32Array(LITERAL_CODES);
  readonly #distanceFreqs = new Uint32Array(DISTANCE_CODES);
  /** Extra bits of the lengths and distances gathered, which every block type but stored sends. */
  #extraBits = 0;

  // The dynamic codes of the block being written.
  readonly #literalLengths = new Uint8Array(LITERAL_CODES);
  readonly #literalCodes = new Uint16Array(LITERAL_CODES);
  readonly #distanceLengths = new Uint8Array(DISTANCE_CODES);
  readonly #distanceCodes = new Uint16Array(DISTANCE_CODES);
  /** The code lengths of both alphabets, then run-length encoded (§3.2.7) with extra bits. */
  readonly #allLengths = new Uint8Array(LITERAL_CODES + DISTANCE_CODES);
  readonly #runSymbols = new Uint8Array(LITERAL_CODES + DISTANCE_CODES);
  readonly #runExtra = new Uint8Array(LITERAL_CODES + DISTANCE_CODES);
  #runs = 0;
  readonly #lengthFreqs = new Uint32Array(LENGTH_CODES);
  readonly #lengthLengths = new Uint8Array(LENGTH_CODES);
  readonly #lengthCodes = new Uint16Array(LENGTH_CODES);

  /** Whether the block is full: write it before adding more. */
  get full(): boolean {
    return this.#count === MAX_BLOCK_SYMBOLS;
  }

  /** Whether nothing was added since the last block was written. */
  get empty(): boolean {
    return this.#count === 0;
  }

  /** Adds a literal byte. */
  literal(byte: number): void {
    this.#symbols[this.#count++] = byte;
    this.#literalFreqs[byte]++;
  }

  /** Adds a match: `length` (3–258) bytes from `distance` (1–32768) bytes back. */
  match(length: number, distance: number): void {
    this.#symbols[this.#count++] = (distance << 9) | length;
    const index = LENGTH_INDEX[length - 3];
    this.#literalFreqs[257 + index]++;
    const code = distanceCode(distance);
    this.#distanceFreqs[code]++;
    this.#extraBits += LENGTH_EXTRA[index] + DISTANCE_EXTRA[code];
  }

  /**
   * Writes what was added as one block (not the last of the stream) and starts a new one.
   * `raw` is the uncompressed bytes the block stands for, when they are still at hand: with them
   * a stored block is among the choices.
   */
  write(out: BitWriter, raw: Uint8Array | null): void {
    const literalFreqs = this.#literalFreqs;
    const distanceFreqs = this.#distanceFreqs;
    literalFreqs[END_OF_BLOCK] = 1;
    const dynamicBits = this.#count < DYNAMIC_FROM ? Infinity : this.#dynamicCodes();
    let fixedBits = 3 + this.#extraBits;
    for (let code = 0; code < LITERAL_CODES; code++) {
      fixedBits += literalFreqs[code] * FIXED_LITERAL_LENGTHS[code];
    }
    for (let code = 0; code < DISTANCE_CODES; code++) fixedBits += distanceFreqs[code] * 5;
    const storedBits = raw === null ? Infinity : storedSize(out.bitLength, raw.length);
    if (storedBits <= Math.min(fixedBits, dynamicBits)) {
      writeStored(out, raw!);
    } else if (fixedBits <= dynamicBits) {
      out.ensure(this.#count * 6 + 8);
      out.bits(0b010, 3); // BFINAL 0, BTYPE 01
      this.#writeSymbols(
        out,
        FIXED_LITERAL_LENGTHS,
        FIXED_LITERAL_CODES,
        FIXED_DISTANCE_LENGTHS,
        FIXED_DISTANCE_CODES,
      );
    } else {
      out.ensure(this.#count * 6 + 400);
      out.bits(0b100, 3); // BFINAL 0, BTYPE 10
      this.#writeDynamicHeader(out);
      this.#writeSymbols(
        out,
        this.#literalLengths,
        this.#literalCodes,
        this.#distanceLengths,
        this.#distanceCodes,
      );
    }
    this.#count = 0;
    this.#extraBits = 0;
    literalFreqs.fill(0);
    distanceFreqs.fill(0);
  }

  /** Builds the block's dynamic codes and returns the size in bits of a dynamic block. */
  #dynamicCodes(): number {
    const literalLengths = this.#literalLengths;
    const distanceLengths = this.#distanceLengths;
    huffmanLengths(this.#literalFreqs, LITERAL_CODES, 15, literalLengths);
    huffmanLengths(this.#distanceFreqs, DISTANCE_CODES, 15, distanceLengths);
    let literals = LITERAL_CODES;
    while (literals > 257 && literalLengths[literals - 1] === 0) literals--;
    let distances = DISTANCE_CODES;
    while (distances > 1 && distanceLengths[distances - 1] === 0) distances--;
    const all = this.#allLengths;
    all.set(literalLengths.subarray(0, literals));
    all.set(distanceLengths.subarray(0, distances), literals);
    const lengthFreqs = this.#lengthFreqs;
    lengthFreqs.fill(0);
    const runBits = this.#encodeRuns(all, literals + distances);
    const lengthLengths = this.#lengthLengths;
    huffmanLengths(lengthFreqs, LENGTH_CODES, 7, lengthLengths);
    let lengthCodes = LENGTH_CODES;
    while (lengthCodes > 4 && lengthLengths[LENGTH_CODE_ORDER[lengthCodes - 1]] === 0) lengthCodes--;
    let bits = 3 + 5 + 5 + 4 + 3 * lengthCodes + runBits + this.#extraBits;
    for (let code = 0; code < LENGTH_CODES; code++) bits += lengthFreqs[code] * lengthLengths[code];
    const literalFreqs = this.#literalFreqs;
    for (let code = 0; code < literals; code++) bits += literalFreqs[code] * literalLengths[code];
    const distanceFreqs = this.#distanceFreqs;
    for (let code = 0; code < distances; code++) bits += distanceFreqs[code] * distanceLengths[code];
    this.#header = (literals - 257) | ((distances - 1) << 5) | ((lengthCodes - 4) << 10);
    return bits;
  }

  /** HLIT, HDIST and HCLEN of the dynamic header (§3.2.7), packed in 14 bits. */
  #header = 0;

  /**
   * Run-length encodes `count` code lengths (§3.2.7: 16 repeats the last length 3–6 times, 17
   * and 18 give 3–10 and 11–138 zeros), counting the symbols; returns their extra bits.
   */
  #encodeRuns(lengths: Uint8Array, count: number): number {
    const symbols = this.#runSymbols;
    const extras = this.#runExtra;
    const freqs = this.#lengthFreqs;
    let runs = 0;
    let extraBits = 0;
    for (let i = 0; i < count;) {
      const length = lengths[i];
      let run = 1;
      while (i + run < count && lengths[i + run] === length) run++;
      i += run;
      if (length === 0) {
        while (run >= 11) {
          const n = Math.min(run, 138);
          symbols[runs] = 18;
          extras[runs++] = n - 11;
          extraBits += 7;
          run -= n;
        }
        if (run >= 3) {
          symbols[runs] = 17;
          extras[runs++] = run - 3;
          extraBits += 3;
          run = 0;
        }
      } else {
        symbols[runs++] = length;
        run--;
        while (run >= 3) {
          const n = Math.min(run, 6);
          symbols[runs] = 16;
          extras[runs++] = n - 3;
          extraBits += 2;
          run -= n;
        }
      }
      for (; run > 0; run--) symbols[runs++] = length;
    }
    for (let r = 0; r < runs; r++) freqs[symbols[r]]++;
    this.#runs = runs;
    return extraBits;
  }

  /** Writes HLIT, HDIST, HCLEN, the code-length code and the run-length encoded lengths. */
  #writeDynamicHeader(out: BitWriter): void {
    const header = this.#header;
    out.bits(header, 14);
    const lengthCodes = (header >>> 10) + 4;
    const lengthLengths = this.#lengthLengths;
    for (let i = 0; i < lengthCodes; i++) out.bits(lengthLengths[LENGTH_CODE_ORDER[i]], 3);
    const codes = this.#lengthCodes;
    canonicalCodes(lengthLengths, LENGTH_CODES, codes);
    canonicalCodes(this.#literalLengths, LITERAL_CODES, this.#literalCodes);
    canonicalCodes(this.#distanceLengths, DISTANCE_CODES, this.#distanceCodes);
    const symbols = this.#runSymbols;
    const extras = this.#runExtra;
    for (let r = 0; r < this.#runs; r++) {
      const symbol = symbols[r];
      out.bits(codes[symbol], lengthLengths[symbol]);
      if (symbol === 16) out.bits(extras[r], 2);
      else if (symbol === 17) out.bits(extras[r], 3);
      else if (symbol === 18) out.bits(extras[r], 7);
    }
  }

  /** Writes the gathered symbols and the end of the block with the given codes. */
  #writeSymbols(
    out: BitWriter,
    literalLengths: Uint8Array,
    literalCodes: Uint16Array,
    distanceLengths: Uint8Array,
    distanceCodes: Uint16Array,
  ): void {
    const symbols = this.#symbols;
    for (let s = 0, count = this.#count; s < count; s++) {
      const symbol = symbols[s];
      if (symbol < 256) {
        out.bits(literalCodes[symbol], literalLengths[symbol]);
        continue;
      }
      const length = symbol & 511;
      const distance = symbol >>> 9;
      const index = LENGTH_INDEX[length - 3];
      out.bits(literalCodes[257 + index], literalLengths[257 + index]);
      if (LENGTH_EXTRA[index] !== 0) out.bits(length - 3 - LENGTH_BASE[index], LENGTH_EXTRA[index]);
      const code = distanceCode(distance);
      out.bits(distanceCodes[code], distanceLengths[code]);
      if (DISTANCE_EXTRA[code] !== 0) out.bits(distance - 1 - DISTANCE_BASE[code], DISTANCE_EXTRA[code]);
    }
    out.bits(literalCodes[END_OF_BLOCK], literalLengths[END_OF_BLOCK]);
  }
}

/** The size in bits of `length` bytes as stored blocks, starting at bit `at` of the output. */
function storedSize(at: number, length: number): number {
  const blocks = Math.max(1, Math.ceil(length / MAX_STORED));
  // The first header pads to a byte boundary from wherever it starts; later ones start aligned.
  const first = 3 + ((8 - ((at + 3) & 7)) & 7);
  return first + (blocks - 1) * 8 + blocks * 32 + length * 8;
}

/** Writes `data` as stored blocks (none of them the last). */
export function writeStored(out: BitWriter, data: Uint8Array): void {
  out.ensure(data.length + 5 * Math.ceil(data.length / MAX_STORED + 1));
  let at = 0;
  do {
    const length = Math.min(MAX_STORED, data.length - at);
    out.bits(0b000, 3); // BFINAL 0, BTYPE 00
    out.align();
    out.bits(length, 16);
    out.bits(~length & 0xffff, 16);
    out.copy(data.subarray(at, at + length));
    at += length;
  } while (at < data.length);
}
