/**
 * Redis Cluster's key slots: CRC16 (the XMODEM variant: polynomial 0x1021, initial value 0) of the
 * key, or of its `{hash tag}`, modulo 16384. Pure.
 * @module
 */

/** How many slots a Redis Cluster has. */
export const SLOT_COUNT = 16384;

/** CRC16 of every byte value, for one table lookup per byte. */
const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    table[byte] = crc;
  }
  return table;
})();

/** CRC16/XMODEM of `bytes`. */
export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[(crc >> 8) ^ bytes[i]];
  return crc;
}

const OPEN = 0x7b, CLOSE = 0x7d; // { }

/**
 * The cluster slot of `key`: when it holds a `{`, and a `}` later with something in between, only
 * the bytes between the first `{` and the first `}` after it count (its hash tag), so that keys
 * sharing a tag share a slot.
 */
export function keySlot(key: Uint8Array): number {
  const open = key.indexOf(OPEN);
  if (open >= 0) {
    const close = key.indexOf(CLOSE, open + 1);
    if (close > open + 1) return crc16(key.subarray(open + 1, close)) % SLOT_COUNT;
  }
  return crc16(key) % SLOT_COUNT;
}
