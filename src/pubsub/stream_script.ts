/**
 * What the streams backplane asks Redis, for one topic at a time: its keys (a stream and an epoch,
 * in one cluster slot through a `{hash tag}`) and one Lua script that appends, tells the position,
 * or reads history, each atomically with the epoch. Pure: commands out, replies in.
 * @module
 */

import type { HistoryEntry, HistoryPage, TopicPosition } from "./backplane.ts";
import { crc16, keySlot } from "./crc16.ts";
import { type Opened, openEnvelope } from "./envelope.ts";
import { encodeCommand, respText, type RespValue } from "./resp.ts";

/**
 * The script. KEYS[1] is the topic's stream, KEYS[2] its epoch; ARGV[1] names the operation,
 * ARGV[2] is a fresh epoch (taken only when one must be made), ARGV[3] the milliseconds the keys
 * live on after an append (0: for ever).
 *
 * An epoch stored with a "-" before it was handed out while the stream did not exist: the first
 * entry keeps it. Any other epoch found beside a missing stream belonged to a stream Redis lost
 * (or removed), so it gives way to a fresh one, and no offset of the old stream is ever read
 * against the new one.
 */
export const STREAM_SCRIPT =
  `local stream, epochKey, op, fresh, ttl = KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3])

local function pending(epoch) return epoch and string.sub(epoch, 1, 1) == '-' end

-- Whether stream id a comes after stream id b (both "ms-seq", decimal without leading zeros).
local function later(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if #am ~= #bm then return #am > #bm end
  if am ~= bm then return am > bm end
  if #as ~= #bs then return #as > #bs end
  return as > bs
end

if op == 'append' then
  local id = redis.call('XADD', stream, 'NOMKSTREAM', 'MAXLEN', '~', ARGV[4], '*', 'm', ARGV[5])
  local epoch = redis.call('GET', epochKey)
  if not id or not epoch or pending(epoch) then
    epoch = epoch and (pending(epoch) and string.sub(epoch, 2) or (id and epoch)) or fresh
    redis.call('SET', epochKey, epoch)
  end
  if not id then id = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[4], '*', 'm', ARGV[5]) end
  if ttl > 0 then
    redis.call('PEXPIRE', stream, ttl)
    redis.call('PEXPIRE', epochKey, ttl)
  end
  return {epoch, id}
end

-- The epoch and the last id, making the epoch where there is none; the stream's XINFO fields too.
local epoch = redis.call('GET', epochKey)
local fields = nil
local last = '0-0'
if redis.call('EXISTS', stream) == 0 then
  if pending(epoch) then
    epoch = string.sub(epoch, 2)
  else
    epoch = fresh
    redis.call('SET', epochKey, '-' .. fresh)
    if ttl > 0 then redis.call('PEXPIRE', epochKey, ttl) end
  end
else
  local info = redis.call('XINFO', 'STREAM', stream)
  fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  last = fields['last-generated-id']
  if not epoch or pending(epoch) then
    epoch = epoch and string.sub(epoch, 2) or fresh
    redis.call('SET', epochKey, epoch)
    local left = redis.call('PTTL', stream)
    if left > 0 then redis.call('PEXPIRE', epochKey, left) end
  end
end
if op == 'position' then return {epoch, last} end

-- op == 'read': ARGV[4] the epoch asked about, ARGV[5] the offset after which to read, ARGV[6] how many.
local after = ARGV[5]
if epoch ~= ARGV[4] then return {epoch, last, 'epoch', {}} end
if later(after, last) then return {epoch, last, 'future', {}} end
if after == last then return {epoch, last, 'ok', {}} end
if fields['entries-added'] > fields['length'] and
    (fields['length'] == 0 or later(fields['recorded-first-entry-id'], after)) then
  return {epoch, last, 'trimmed', {}}
end
return {epoch, last, 'ok', redis.call('XRANGE', stream, '(' .. after, '+', 'COUNT', ARGV[6])}
`;

/** `SCRIPT LOAD` of the script, written first on every connection. */
export const LOAD_SCRIPT: Uint8Array = encodeCommand(["SCRIPT", "LOAD", STREAM_SCRIPT]);

/** The script's SHA-1, as Redis names it (hex). */
export async function scriptSha(): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(STREAM_SCRIPT));
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** A topic's keys in Redis, and their cluster slot. */
export interface TopicKeys {
  /** The stream. */
  stream: Uint8Array;
  /** Its epoch. */
  epoch: Uint8Array;
  /** The stream as text (how an `XREAD` reply names it, decoded). */
  name: string;
  /** The slot both keys are in. */
  slot: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The keys of `topic`: `prefix{n}s:topic` and `prefix{n}e:topic`, where n (below `slots`) comes
 * from a hash of the topic, so that both keys share a slot and topics spread over `slots` slots.
 * (A `{hash tag}` in the prefix puts every topic in its slot instead.)
 */
export function topicKeys(prefix: Uint8Array, slots: number, topic: string): TopicKeys {
  const name = encoder.encode(topic);
  const tag = encoder.encode(`{${crc16(name) % slots}}`);
  const key = (kind: number) => {
    const bytes = new Uint8Array(prefix.length + tag.length + 2 + name.length);
    bytes.set(prefix);
    bytes.set(tag, prefix.length);
    bytes[prefix.length + tag.length] = kind;
    bytes[prefix.length + tag.length + 1] = 0x3a; // :
    bytes.set(name, prefix.length + tag.length + 2);
    return bytes;
  };
  const stream = key(0x73); // s
  return { stream, epoch: key(0x65), name: decoder.decode(stream), slot: keySlot(stream) }; // e
}

/** The script's arguments before the operation's own: sha, keys, operation, fresh epoch, ttl. */
function head(sha: string, keys: TopicKeys, op: string, fresh: string, ttl: number): (string | Uint8Array)[] {
  return ["EVALSHA", sha, "2", keys.stream, keys.epoch, op, fresh, String(ttl)];
}

/** Appends an entry whose envelope is `pieces`, keeping about `maxLen`; the reply is its id. */
export function appendCommand(
  sha: string,
  keys: TopicKeys,
  fresh: string,
  ttl: number,
  maxLen: number,
  pieces: readonly Uint8Array[],
): Uint8Array {
  return encodeCommand([...head(sha, keys, "append", fresh, ttl), String(maxLen), pieces]);
}

/** Asks for the topic's epoch and last id (see {@linkcode parsePosition}). */
export function positionCommand(sha: string, keys: TopicKeys, fresh: string, ttl: number): Uint8Array {
  return encodeCommand(head(sha, keys, "position", fresh, ttl));
}

/** Asks for at most `limit` entries after `since` (see {@linkcode parseHistory}). */
export function readCommand(
  sha: string,
  keys: TopicKeys,
  fresh: string,
  ttl: number,
  since: TopicPosition,
  limit: number,
): Uint8Array {
  return encodeCommand([...head(sha, keys, "read", fresh, ttl), since.epoch, since.offset, String(limit)]);
}

/** The reply to a position: `{ epoch, offset }`, or null when it is not one. */
export function parsePosition(reply: RespValue): TopicPosition | null {
  if (!Array.isArray(reply) || reply.length !== 2) return null;
  const epoch = respText(reply[0]), offset = respText(reply[1]);
  return epoch === null || offset === null ? null : { epoch, offset };
}

/** The one field of an entry the script adds: `m`, the message's envelope. */
const FIELD = 0x6d;

/** The message of an entry, from its fields; null when the entry is not Wisp's. */
export function openEntry(fields: RespValue): Opened | null {
  if (!Array.isArray(fields) || fields.length !== 2) return null;
  const [name, value] = fields;
  if (
    !(name instanceof Uint8Array) || name.length !== 1 || name[0] !== FIELD || !(value instanceof Uint8Array)
  ) {
    return null;
  }
  return openEnvelope(value, true);
}

const STATUSES = ["ok", "epoch", "trimmed", "future"];

/**
 * The reply to a read, each entry's fields opened by `open` (null skips an entry that is not
 * Wisp's); null when it is no such reply.
 */
export function parseHistory(
  reply: RespValue,
  open: (fields: RespValue) => string | Uint8Array | null,
): HistoryPage | null {
  if (!Array.isArray(reply) || reply.length !== 4 || !Array.isArray(reply[3])) return null;
  const epoch = respText(reply[0]), last = respText(reply[1]), status = respText(reply[2]);
  if (epoch === null || last === null || status === null || !STATUSES.includes(status)) return null;
  const entries: HistoryEntry[] = [];
  for (const entry of reply[3]) {
    const offset = Array.isArray(entry) && entry.length === 2 ? respText(entry[0]) : null;
    if (offset === null) return null;
    const data = open((entry as RespValue[])[1]);
    if (data !== null) entries.push({ offset, data });
  }
  return { epoch, last, status: status as HistoryPage["status"], entries };
}
