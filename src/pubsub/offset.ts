/**
 * Offsets in a topic's history: Redis stream entry ids, `"ms-seq"` (two unsigned 64-bit integers
 * in decimal), ordered by `ms`, then by `seq`. Pure.
 * @module
 */

/** The offset before every entry: a position taken when a topic had none yet. */
export const FIRST_OFFSET = "0-0";

const OFFSET = /^(0|[1-9]\d{0,19})-(0|[1-9]\d{0,19})$/;
/** The largest unsigned 64-bit integer, in decimal. */
const MAX_PART = "18446744073709551615";

/** Whether `part` (digits, no leading zero) is at most 2^64 - 1. */
function fits(part: string): boolean {
  return part.length < MAX_PART.length || (part.length === MAX_PART.length && part <= MAX_PART);
}

/**
 * Whether `value` is an offset as Redis writes them: `ms-seq`, both decimal without leading zeros
 * and below 2^64. Anything else (from a client, say) is no offset.
 */
export function isOffset(value: unknown): value is string {
  if (typeof value !== "string") return false;
  const match = OFFSET.exec(value);
  return match !== null && fits(match[1]) && fits(match[2]);
}

/** Compares two decimal numbers without leading zeros. */
function compareParts(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Orders two offsets (checked with {@linkcode isOffset}): negative when `a` comes first, positive
 * when `b` does, 0 when they are the same.
 */
export function compareOffsets(a: string, b: string): number {
  const dashA = a.indexOf("-"), dashB = b.indexOf("-");
  return compareParts(a.slice(0, dashA), b.slice(0, dashB)) ||
    compareParts(a.slice(dashA + 1), b.slice(dashB + 1));
}
