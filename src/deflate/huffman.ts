/**
 * Huffman codes for DEFLATE blocks (RFC 1951 §3.2.2): code lengths from symbol frequencies,
 * limited to a longest code, and the canonical codes the lengths stand for.
 * @module
 */

/** The most symbols of any DEFLATE alphabet (literal/length codes 0–287). */
const MAX_SYMBOLS = 288;
/** The longest code any alphabet allows (15 bits; code-length codes are limited to 7). */
const MAX_LENGTH = 15;

// Scratch space shared by every call (nothing is kept between calls).
const sorted = new Int32Array(MAX_SYMBOLS);
const weight = new Int32Array(2 * MAX_SYMBOLS);
const parent = new Int32Array(2 * MAX_SYMBOLS);
const depth = new Int32Array(2 * MAX_SYMBOLS);
const lengthCount = new Int32Array(2 * MAX_SYMBOLS);
const nextCode = new Int32Array(MAX_LENGTH + 2);

/**
 * Fills `lengths[0..count)` with code lengths for symbols of frequencies `freqs[0..count)`: a
 * Huffman code (shortest total length) whose codes are at most `limit` bits, 0 for unused
 * symbols. At least two symbols get a code (a lone used symbol is paired with another), as
 * every inflater accepts such a code and some refuse a single code.
 */
export function huffmanLengths(freqs: Uint32Array, count: number, limit: number, lengths: Uint8Array): void {
  let used = 0;
  for (let symbol = 0; symbol < count; symbol++) {
    lengths[symbol] = 0;
    if (freqs[symbol] !== 0) sorted[used++] = freqs[symbol] * 512 + symbol;
  }
  if (used < 2) {
    const only = used === 1 ? sorted[0] & 511 : 0;
    lengths[only] = 1;
    lengths[only === 0 ? 1 : 0] = 1;
    return;
  }
  const leaves = sorted.subarray(0, used).sort();
  // Two queues: leaves in order of weight, and inner nodes, which are made in order of weight.
  for (let i = 0; i < used; i++) weight[i] = leaves[i] >>> 9;
  let leaf = 0;
  let inner = used;
  let made = used;
  for (let step = 1; step < used; step++) {
    const a = leaf < used && (inner >= made || weight[leaf] <= weight[inner]) ? leaf++ : inner++;
    const b = leaf < used && (inner >= made || weight[leaf] <= weight[inner]) ? leaf++ : inner++;
    weight[made] = weight[a] + weight[b];
    parent[a] = made;
    parent[b] = made;
    made++;
  }
  const root = made - 1;
  depth[root] = 0;
  lengthCount.fill(0, 0, used + 1);
  let longest = 0;
  for (let node = root - 1; node >= 0; node--) {
    const d = depth[node] = depth[parent[node]] + 1;
    if (node < used) {
      lengthCount[d]++;
      if (d > longest) longest = d;
    }
  }
  // Too long: take two leaves from the deepest level and hang them, with the leaf they replace,
  // under a shorter one (the tree stays full, and the total grows the least).
  for (let level = longest; level > limit; level--) {
    while (lengthCount[level] > 0) {
      let shorter = level - 2;
      while (lengthCount[shorter] === 0) shorter--;
      lengthCount[level] -= 2;
      lengthCount[level - 1]++;
      lengthCount[shorter + 1] += 2;
      lengthCount[shorter]--;
    }
  }
  // The rarest symbols get the longest codes.
  let next = 0;
  for (let length = Math.min(longest, limit); length > 0; length--) {
    for (let n = lengthCount[length]; n > 0; n--) lengths[leaves[next++] & 511] = length;
  }
}

/**
 * Fills `codes[0..count)` with the canonical code of each symbol of `lengths` (RFC 1951
 * §3.2.2), bit-reversed: DEFLATE sends a code from its most significant bit, and
 * {@linkcode BitWriter} writes from the least significant one.
 */
export function canonicalCodes(lengths: Uint8Array, count: number, codes: Uint16Array): void {
  lengthCount.fill(0, 0, MAX_LENGTH + 1);
  for (let symbol = 0; symbol < count; symbol++) lengthCount[lengths[symbol]]++;
  lengthCount[0] = 0;
  let code = 0;
  for (let length = 1; length <= MAX_LENGTH; length++) {
    code = (code + lengthCount[length - 1]) << 1;
    nextCode[length] = code;
  }
  for (let symbol = 0; symbol < count; symbol++) {
    const length = lengths[symbol];
    if (length === 0) continue;
    codes[symbol] = reverse(nextCode[length]++, length);
  }
}

/** The low `length` bits of `code`, in reverse order. */
function reverse(code: number, length: number): number {
  let out = 0;
  for (let i = 0; i < length; i++) {
    out = (out << 1) | (code & 1);
    code >>>= 1;
  }
  return out;
}
