/**
 * Property-based tests (fast-check, one fixed seed, a bounded number of runs) for the three parsers
 * that read untrusted bytes: the frame parser, the request-head parser and the inflater. A failure
 * prints the shrunk counterexample and the seed, so it can be replayed.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { failureCode } from "../src/close.ts";
import { type FrameHandler, FrameParser, RSV1 } from "../src/frame.ts";
import { parseRequestHead, type RequestHead } from "../src/handshake.ts";
import { InflateError, MessageInflater } from "../src/deflate/codec.ts";
import { compressAlone, compressibleBytes, StreamCompressor } from "./helpers/deflate.ts";
import { Random } from "./helpers/random.ts";
import { concat } from "./helpers/raw_client.ts";

/** Fixed, so that every run of the suite tries the same cases. */
const SEED = 20261201;

/** Runs `property` `numRuns` times from {@linkcode SEED}. */
function check<T>(property: fc.IProperty<T>, numRuns: number): void {
  fc.assert(property, { seed: SEED, numRuns });
}

/** The async form of {@linkcode check}. */
async function checkAsync<T>(property: fc.IAsyncProperty<T>, numRuns: number): Promise<void> {
  await fc.assert(property, { seed: SEED, numRuns });
}

const EMPTY = new Uint8Array(0);
const PROTOCOL_ERROR = 1002;

// --- Frame parser ------------------------------------------------------------------------------

/**
 * One client frame as it goes on the wire. Every field is written as given, so an invalid frame is
 * just a spec with odd values; {@linkcode violation} decides which are invalid.
 */
interface FrameSpec {
  fin: boolean;
  /** The three RSV bits as a number 0–7 (4 is RSV1). */
  rsv: number;
  opcode: number;
  masked: boolean;
  /** The masking key, its four bytes in wire order. */
  key: number;
  /** The payload length the header announces. */
  length: number;
  /** Payload bytes actually sent after the header (fewer than `length` only in a stream's last frame). */
  sent: number;
  /** Seed of the payload bytes. */
  seed: number;
  /** A 64-bit length field with its most significant bit set (RFC 6455 §5.2 forbids it). */
  topBit: boolean;
}

/** The frame's payload before masking: the first `sent` bytes. */
function payloadOf(spec: FrameSpec): Uint8Array {
  return new Random(spec.seed).bytes(spec.sent);
}

/** Encodes `spec` with the shortest length field (except when `topBit` asks for a 64-bit one). */
function encodeClientFrame(spec: FrameSpec): Uint8Array {
  const extended = spec.topBit || spec.length > 0xffff ? 8 : spec.length > 125 ? 2 : 0;
  const header = 2 + extended + (spec.masked ? 4 : 0);
  const out = new Uint8Array(header + spec.sent);
  const view = new DataView(out.buffer);
  out[0] = (spec.fin ? 0x80 : 0) | (spec.rsv << 4) | spec.opcode;
  out[1] = (spec.masked ? 0x80 : 0) | (extended === 8 ? 127 : extended === 2 ? 126 : spec.length);
  if (extended === 2) view.setUint16(2, spec.length);
  if (extended === 8) view.setBigUint64(2, BigInt(spec.length) | (spec.topBit ? 1n << 63n : 0n));
  if (spec.masked) view.setUint32(2 + extended, spec.key);
  const payload = payloadOf(spec);
  for (let i = 0; i < payload.length; i++) {
    out[header + i] = spec.masked ? payload[i] ^ out[header - 4 + (i & 3)] : payload[i];
  }
  return out;
}

/**
 * Whether RFC 6455 §5.2/§5.5 (and RFC 7692 for RSV1) make the frame itself invalid, whatever came
 * before it; {@linkcode outOfOrder} adds the rules of §5.4 that depend on the frames before it.
 */
function violation(spec: FrameSpec, allowedRsv: number): boolean {
  const control = spec.opcode >= 0x8;
  const rsvBits = spec.rsv << 4;
  if (!spec.masked || spec.topBit || (rsvBits & ~allowedRsv) !== 0) return true;
  if (control) return spec.opcode > 0xa || !spec.fin || spec.length > 125 || rsvBits !== 0;
  return spec.opcode > 0x2;
}

/**
 * Whether a data frame breaks the order of fragments (§5.4) after `fragmented` (a message began
 * and has not ended): a continuation outside a message or with RSV1 (RFC 7692 §6.1), or a new
 * message inside one.
 */
function outOfOrder(spec: FrameSpec, fragmented: boolean): boolean {
  if (spec.opcode >= 0x8) return false;
  return spec.opcode === 0 ? !fragmented || (spec.rsv & 4) !== 0 : fragmented;
}

/** A handler call, data payload pieces joined. `ended` says whether the last piece came. */
type Call =
  | {
    kind: "data";
    opcode: number;
    fin: boolean;
    rsv1: boolean;
    length: number;
    payload: Uint8Array;
    ended: boolean;
  }
  | { kind: "control"; opcode: number; payload: Uint8Array };

/** What the parser must report for `specs`: every frame up to the first invalid one, and the error. */
function expectedCalls(specs: FrameSpec[], allowedRsv: number): { calls: Call[]; error: number } {
  const calls: Call[] = [];
  let fragmented = false;
  for (const spec of specs) {
    if (violation(spec, allowedRsv) || outOfOrder(spec, fragmented)) return { calls, error: PROTOCOL_ERROR };
    const payload = payloadOf(spec);
    const ended = spec.sent === spec.length;
    if (spec.opcode < 0x8) {
      const { opcode, fin, length } = spec;
      fragmented = !fin;
      calls.push({ kind: "data", opcode, fin, rsv1: (spec.rsv & 4) !== 0, length, payload, ended });
    } else if (ended) {
      calls.push({ kind: "control", opcode: spec.opcode, payload });
    }
  }
  return { calls, error: 0 };
}

/** A data frame being recorded: its call, and its payload so far gathered in `bytes`. */
interface OpenFrame {
  call: Extract<Call, { kind: "data" }>;
  bytes: Uint8Array;
  received: number;
}

/**
 * Records the parser's calls, copying payload (views into the pushed chunk, or valid only during
 * the call), and checks the order of calls that {@linkcode FrameHandler} promises. It runs once
 * per byte in bytewise parses, so it allocates little and builds no message unless a check fails.
 */
class CallLog implements FrameHandler {
  #calls: (Call | OpenFrame)[] = [];
  /** The data frame whose payload has not ended yet. */
  #open: OpenFrame | null = null;
  /** How many calls were made, for checking that none come after an error. */
  count = 0;

  /** The calls so far. */
  get calls(): Call[] {
    return this.#calls.map((entry) =>
      "received" in entry ? { ...entry.call, payload: entry.bytes.subarray(0, entry.received) } : entry
    );
  }

  onDataFrame(opcode: number, fin: boolean, rsv1: boolean, length: number): number {
    this.count++;
    if (this.#open !== null) assert.fail("a data frame began before the previous one's payload ended");
    const call = { kind: "data" as const, opcode, fin, rsv1, length, payload: EMPTY, ended: false };
    // A cut frame may announce far more than comes: the buffer grows with what does.
    this.#open = { call, bytes: new Uint8Array(Math.min(length, 4096)), received: 0 };
    this.#calls.push(this.#open);
    return 0;
  }

  onDataPayload(piece: Uint8Array, end: boolean): number {
    this.count++;
    const open = this.#open;
    if (open === null) return assert.fail("payload arrived outside a data frame");
    const received = open.received + piece.length;
    if (piece.length === 0 && !(end && open.call.length === 0)) {
      assert.fail("an empty piece of a non-empty frame");
    }
    if (end !== (received === open.call.length)) assert.fail(`end=${end} after ${received} bytes`);
    if (received > open.bytes.length) {
      const grown = new Uint8Array(Math.max(received, 2 * open.bytes.length));
      grown.set(open.bytes.subarray(0, open.received));
      open.bytes = grown;
    }
    open.bytes.set(piece, open.received);
    open.received = received;
    if (end) {
      open.call.ended = true;
      this.#open = null;
    }
    return 0;
  }

  onControlFrame(opcode: number, payload: Uint8Array): number {
    this.count++;
    if (this.#open !== null) assert.fail("a control frame inside a data frame's payload");
    this.#calls.push({ kind: "control", opcode, payload: payload.slice() });
    return 0;
  }
}

/**
 * Parses a copy of `stream` (the parser unmasks in place) pushed in pieces of the `sizes`, taken
 * in turn; checks that every push uses its whole piece and that nothing is reported after an error.
 * Returns the calls, the parser's failure, and that failure's close code (`error`, 0 for none).
 */
function parseInPieces(stream: Uint8Array, sizes: readonly number[], allowedRsv: number) {
  const log = new CallLog();
  const parser = new FrameParser(log, allowedRsv);
  const input = stream.slice();
  for (let at = 0, turn = 0; at < input.length; turn++) {
    const piece = input.subarray(at, at + sizes[turn % sizes.length]);
    const failedBefore = parser.error !== 0;
    const callsBefore = log.count;
    const used = parser.push(piece);
    if (used !== piece.length) assert.fail(`push used ${used} of ${piece.length} bytes`);
    if (failedBefore && log.count !== callsBefore) assert.fail("the parser went on after its error");
    at += piece.length;
  }
  return {
    calls: log.calls,
    failure: parser.error,
    error: parser.error === 0 ? 0 : failureCode(parser.error),
  };
}

/**
 * The first index where `a` and `b` differ (a length mismatch counts), or -1. (Kept here rather
 * than taken from helpers/events.ts, which pulls in the whole server.)
 */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : length;
}

/** Fails unless two call lists are equal; payloads compared byte by byte, naming the first difference. */
function assertSameCalls(actual: Call[], expected: Call[], what: string): void {
  const shape = (calls: Call[]) => calls.map(({ payload, ...rest }) => ({ ...rest, size: payload.length }));
  assert.deepEqual(shape(actual), shape(expected), what);
  for (let i = 0; i < actual.length; i++) {
    const at = firstDifference(actual[i].payload, expected[i].payload);
    if (at >= 0) assert.fail(`${what}: payload of call ${i} differs at byte ${at}`);
  }
}

/** The whole stream at once, one byte at a time, and in the pieces given. */
function splitsOf(stream: Uint8Array, sizes: number[]): [string, number[]][] {
  return [["whole", [Math.max(1, stream.length)]], ["bytewise", [1]], [`in pieces ${sizes}`, sizes]];
}

const key = fc.integer({ min: 0, max: 0xffffffff });
const seed = fc.nat();
const dataLength = fc.oneof(
  { weight: 24, arbitrary: fc.integer({ min: 0, max: 125 }) },
  { weight: 12, arbitrary: fc.integer({ min: 126, max: 1024 }) },
  { weight: 4, arbitrary: fc.constantFrom(0, 1, 125, 126, 127, 128) },
  { weight: 1, arbitrary: fc.constantFrom(0xffff, 0x10000) }, // rare: bytewise parses cost ~1 µs a byte
);

/** A data frame of any size, RSV1 now and then (valid only where deflate was agreed). */
const dataFrame = fc.record({
  fin: fc.boolean(),
  rsv: fc.oneof({ weight: 7, arbitrary: fc.constant(0) }, fc.constant(4)),
  opcode: fc.integer({ min: 0, max: 2 }),
  masked: fc.constant(true),
  key,
  length: dataLength,
  seed,
  topBit: fc.constant(false),
}).map((spec): FrameSpec => ({ ...spec, sent: spec.length }));

const controlFrame = fc.record({
  fin: fc.constant(true),
  rsv: fc.constant(0),
  opcode: fc.integer({ min: 0x8, max: 0xa }),
  masked: fc.constant(true),
  key,
  length: fc.integer({ min: 0, max: 125 }),
  seed,
  topBit: fc.constant(false),
}).map((spec): FrameSpec => ({ ...spec, sent: spec.length }));

const validFrame = fc.oneof({ weight: 3, arbitrary: dataFrame }, { weight: 1, arbitrary: controlFrame });

/** A frame broken in one of the ways RFC 6455 names. */
const invalidFrame = fc.oneof(
  validFrame.map((spec) => ({ ...spec, masked: false })),
  fc.tuple(validFrame, fc.integer({ min: 1, max: 7 })).map(([spec, rsv]) => ({ ...spec, rsv })),
  fc.tuple(validFrame, fc.constantFrom(3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf))
    .map(([spec, opcode]) => ({ ...spec, opcode })),
  fc.tuple(controlFrame, fc.integer({ min: 126, max: 400 }))
    .map(([spec, length]) => ({ ...spec, length, sent: length })),
  controlFrame.map((spec) => ({ ...spec, fin: false })),
  fc.tuple(validFrame, fc.integer({ min: 0, max: 0xffff })).map(([spec, length]) => ({
    ...spec,
    length,
    sent: 0, // nothing after the header matters
    topBit: true,
  })),
);

/**
 * A stream's last frame, cut short: its header announces more than follows. Lengths go up to
 * 2^63 - 2^32 (exact doubles, top bit clear), which the parser must announce as they are.
 */
const cutFrame = fc.tuple(
  validFrame,
  fc.oneof(
    fc.integer({ min: 1, max: 2000 }),
    fc.integer({ min: 0x10000, max: Number.MAX_SAFE_INTEGER }),
    fc.integer({ min: 1, max: 0x7fffffff }).map((high) => high * 0x100000000),
  ),
  fc.nat(),
).map(([spec, length, sent]): FrameSpec => {
  const announced = spec.opcode >= 0x8 ? Math.min(length, 125) : length;
  return { ...spec, length: announced, sent: sent % Math.min(announced, 3000) };
});

const frameStream = fc.record({
  frames: fc.array(fc.oneof({ weight: 12, arbitrary: validFrame }, { weight: 1, arbitrary: invalidFrame }), {
    maxLength: 8,
  }),
  cut: fc.option(cutFrame, { freq: 3 }),
  allowedRsv: fc.constantFrom(0, RSV1),
  /** Mostly true: data frames then follow each other in a valid order, so streams go deep. */
  ordered: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, fc.constant(false)),
});

/** `specs` with data frames put in a valid order of fragments (§5.4), as most real streams are. */
function inOrder(specs: FrameSpec[]): FrameSpec[] {
  let fragmented = false;
  return specs.map((spec) => {
    if (spec.opcode > 0x2) return spec;
    const opcode = fragmented ? 0 : spec.opcode === 0 ? 1 : spec.opcode;
    fragmented = !spec.fin;
    return { ...spec, opcode, rsv: opcode === 0 ? spec.rsv & ~4 : spec.rsv };
  });
}

/** Piece sizes for a split, used in turn: mostly small, some large. */
const pieceSizes = fc.array(
  fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 16 }) }, fc.integer({ min: 1, max: 4096 })),
  { minLength: 1, maxLength: 12 },
);

describe("fuzz: FrameParser", () => {
  it("reports exactly the generated frames up to the first invalid one (1002), in any split", () => {
    check(
      fc.property(frameStream, pieceSizes, ({ frames, cut, allowedRsv, ordered }, sizes) => {
        const generated = cut === null ? frames : [...frames, cut];
        const specs = ordered ? inOrder(generated) : generated;
        const stream = concat(...specs.map(encodeClientFrame));
        const expected = expectedCalls(specs, allowedRsv);
        for (const [how, split] of splitsOf(stream, sizes)) {
          const actual = parseInPieces(stream, split, allowedRsv);
          assert.equal(actual.error, expected.error, `error, ${how}`);
          assertSameCalls(actual.calls, expected.calls, how);
        }
      }),
      250,
    );
  });

  /** Random bytes, and valid streams with a few bytes flipped: the oracle is the whole-stream parse. */
  const noise = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.tuple(
      fc.array(validFrame.filter((spec) => spec.length < 0x10000), { minLength: 1, maxLength: 6 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
    ).map(([specs, flips]) => {
      const stream = concat(...specs.map(encodeClientFrame));
      for (const [at, bits] of flips) stream[at % stream.length] ^= bits;
      return stream;
    }),
  );

  it("makes the same calls and ends with the same failure (none or a 1002) for noise in any split", () => {
    check(
      fc.property(noise, pieceSizes, fc.constantFrom(0, RSV1), (stream, sizes, allowedRsv) => {
        const [[, whole], ...others] = splitsOf(stream, sizes);
        const reference = parseInPieces(stream, whole, allowedRsv);
        assert.ok(reference.error === 0 || reference.error === PROTOCOL_ERROR, `error ${reference.error}`);
        for (const [how, split] of others) {
          const actual = parseInPieces(stream, split, allowedRsv);
          assert.equal(actual.failure, reference.failure, `failure, ${how}`);
          assertSameCalls(actual.calls, reference.calls, how);
        }
      }),
      400,
    );
  });
});

// --- Request heads -----------------------------------------------------------------------------

const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const CRLFCRLF = "\r\n\r\n";

type HeadResult = ReturnType<typeof parseRequestHead>;

/** The status of an error result, or undefined for null and heads. */
function statusOf(result: HeadResult): number | undefined {
  return result !== null && "status" in result ? result.status : undefined;
}

/**
 * Checks that `result` is exactly one of the three things `parseRequestHead` returns, consistent
 * with its input and limits, and says which. Empty lines before the request line may be skipped
 * (RFC 9112 §2.2), so the head is looked for after them.
 */
function classify(
  bytes: Uint8Array,
  limits: { maxHeadSize: number; maxHeaderCount: number },
  result: HeadResult,
): "incomplete" | "error" | "head" {
  const text = String.fromCharCode(...bytes);
  let start = 0;
  while (text.startsWith("\r\n", start)) start += 2;
  const end = text.indexOf(CRLFCRLF, start);
  if (result === null) {
    assert.ok(bytes.length < limits.maxHeadSize, "null for a head already over the size limit");
    assert.equal(end, -1, "null although the head is complete");
    return "incomplete";
  }
  if ("status" in result) {
    assert.ok([400, 431, 505].includes(result.status), `status ${result.status}`);
    assert.equal(typeof result.message, "string");
    assert.ok(!("method" in result), "an error with a method");
    return "error";
  }
  assert.equal(typeof result.method, "string");
  assert.ok(result.method.length > 0 && result.target.length > 0, "empty method or target");
  assert.ok(result.headers instanceof Map, "headers are not a Map");
  assert.ok(result.headers.size <= limits.maxHeaderCount, "more header fields than the limit");
  assert.ok(result.size <= bytes.length && result.size <= limits.maxHeadSize, `size ${result.size}`);
  assert.equal(result.size, end + 4, "size is not where the first blank line ends");
  return "head";
}

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const tokenChar = fc.constantFrom(...TOKEN_CHARS);
const token = fc.string({ unit: tokenChar, minLength: 1, maxLength: 12 });
const charIn = (min: number, max: number) =>
  fc.integer({ min, max }).map((code) => String.fromCharCode(code));
const visible = charIn(0x21, 0x7e);
/** Visible characters and, now and then, obs-text (bytes 0x80–0xFF, read as Latin-1). */
const valueChar = fc.oneof({ weight: 9, arbitrary: visible }, charIn(0x80, 0xff));
const blank = fc.string({ unit: fc.constantFrom(" ", "\t"), maxLength: 3 });
const word = fc.string({ unit: valueChar, minLength: 1, maxLength: 10 });
/** A field value: words with spaces and tabs between them (never around them), or nothing. */
const fieldValue = fc.tuple(word, fc.array(fc.tuple(blank.filter((b) => b !== ""), word), { maxLength: 3 }))
  .map(([first, rest]) => first + rest.map(([b, w]) => b + w).join(""));
/** Names Wisp matches against a table, and any token. */
const fieldName = fc.oneof(
  fc.constantFrom("host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-extensions", "origin"),
  token,
);
/** `name` with the letters whose bit is set in `bits` upper-cased (the rest lower-cased). */
const mixCase = (name: string, bits: number) =>
  Array.from(name, (c, i) => ((bits >>> (i % 31)) & 1 ? c.toUpperCase() : c.toLowerCase())).join("");

const field = fc.record({
  name: fc.tuple(fieldName, fc.nat()).map(([name, bits]) => mixCase(name, bits)),
  before: blank,
  value: fc.oneof({ weight: 5, arbitrary: fieldValue }, fc.constant("")),
  after: blank,
});

/** A well-formed request head, the text that follows it, and what the parser must make of it. */
const validHead = fc.record({
  method: fc.oneof(fc.constant("GET"), token),
  target: fc.string({ unit: visible, minLength: 1, maxLength: 40 }),
  minor: fc.integer({ min: 0, max: 9 }),
  // At most one Host: a second one is an error (RFC 9112 §3.2), see request_head_test.
  fields: fc.array(field, { maxLength: 12 }).filter((fields) =>
    fields.filter(({ name }) => name.toLowerCase() === "host").length <= 1
  ),
  body: fc.string({ unit: "binary-ascii", maxLength: 20 }),
}).map(({ method, target, minor, fields, body }) => {
  let head = `${method} ${target} HTTP/1.${minor}\r\n`;
  const headers = new Map<string, string>();
  for (const { name, before, value, after } of fields) {
    head += `${name}:${before}${value}${after}\r\n`;
    const lower = name.toLowerCase();
    const earlier = headers.get(lower);
    headers.set(lower, earlier === undefined ? value : `${earlier}, ${value}`);
  }
  head += "\r\n";
  return { head, body, method, target, minor, headers, count: fields.length };
});

/** Bytes likely to make something of a head: pieces of request syntax mixed with any byte. */
const headNoise = fc.array(
  fc.oneof(
    charIn(0, 0xff),
    fc.constantFrom(
      "\r\n",
      CRLFCRLF,
      "\r",
      "\n",
      " ",
      "\t",
      ":",
      "GET",
      " / ",
      "HTTP/1.1",
      "HTTP/2.0",
      "Host: x",
    ),
  ),
  { maxLength: 60 },
).map((pieces) => latin1(pieces.join("")));

/** Byte edits: replace, insert or delete at a position (taken modulo the length). */
const edits = fc.array(
  fc.tuple(fc.constantFrom("replace", "insert", "delete"), fc.nat(), fc.integer({ min: 0, max: 255 })),
  { minLength: 1, maxLength: 4 },
);

function applyEdits(bytes: Uint8Array, list: [string, number, number][]): Uint8Array {
  const out = Array.from(bytes);
  for (const [edit, position, byte] of list) {
    const at = position % (out.length + 1);
    if (edit === "insert") out.splice(at, 0, byte);
    else if (at < out.length) out.splice(at, 1, ...(edit === "replace" ? [byte] : []));
  }
  return Uint8Array.from(out);
}

const limits = fc.record({
  maxHeadSize: fc.oneof(fc.integer({ min: 1, max: 400 }), fc.constant(16384)),
  maxHeaderCount: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constant(100)),
});

describe("fuzz: parseRequestHead", () => {
  it("never throws on noise, and returns null, an error status or a head that fits the input", () => {
    check(
      fc.property(headNoise, limits, (bytes, limits) => {
        classify(bytes, limits, parseRequestHead(bytes, limits));
      }),
      1500,
    );
  });

  it("never throws on edited valid heads, and returns null, an error status or a head", () => {
    check(
      fc.property(validHead, edits, limits, ({ head, body }, list, limits) => {
        const bytes = applyEdits(latin1(head + body), list);
        classify(bytes, limits, parseRequestHead(bytes, limits));
      }),
      1000,
    );
  });

  it("reads valid heads as generated: method, target, lower-case names, repeats joined (one Host), size", () => {
    check(
      fc.property(
        validHead,
        fc.nat({ max: 16 }),
        fc.nat({ max: 4 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        ({ head, body, method, target, minor, headers, count }, sizeSlack, countSlack, cuts) => {
          const bytes = latin1(head + body);
          const fits = { maxHeadSize: head.length + sizeSlack, maxHeaderCount: count + countSlack };
          const result = parseRequestHead(bytes, fits);
          assert.equal(classify(bytes, fits, result), "head", JSON.stringify(result));
          const parsed = result as RequestHead;
          assert.equal(parsed.method, method);
          assert.equal(parsed.target, target);
          assert.equal(parsed.minorVersion, minor);
          assert.deepEqual([...parsed.headers], [...headers]);
          assert.equal(parsed.size, head.length);
          // One byte or one field too many for the limits: 431.
          const small = { ...fits, maxHeadSize: head.length - 1 };
          assert.equal(statusOf(parseRequestHead(bytes, small)), 431, "head over maxHeadSize");
          if (count > 0) {
            const few = { ...fits, maxHeaderCount: count - 1 };
            assert.equal(statusOf(parseRequestHead(bytes, few)), 431, "over maxHeaderCount");
          }
          // Every strict prefix of the head is incomplete.
          for (const cut of [...cuts, head.length - 1]) {
            const prefix = bytes.subarray(0, cut % head.length);
            assert.equal(parseRequestHead(prefix, fits), null, `prefix of ${prefix.length} bytes`);
          }
        },
      ),
      500,
    );
  });
});

// --- Inflater ----------------------------------------------------------------------------------

/**
 * One message to build: fresh compressible text, incompressible bytes, or a copy of a stretch of
 * the messages before it (so that a compressor with context takeover refers back to them).
 */
const messagePart = fc.record({
  kind: fc.constantFrom("text", "random", "earlier"),
  size: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 300 }) },
    { weight: 3, arbitrary: fc.integer({ min: 300, max: 6000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 6000, max: 40000 }) },
  ),
  seed,
});
const messages = fc.array(fc.array(messagePart, { minLength: 1, maxLength: 3 }), {
  minLength: 1,
  maxLength: 6,
});

/** Builds the messages in order; an "earlier" part copies from what was built before it. */
function buildMessages(specs: { kind: string; size: number; seed: number }[][]): Uint8Array[] {
  const built: Uint8Array[] = [];
  let sent: Uint8Array = EMPTY;
  for (const parts of specs) {
    const pieces = parts.map(({ kind, size, seed }) => {
      if (kind === "random") return new Random(seed).bytes(size);
      if (kind === "text" || sent.length === 0) return compressibleBytes(size, seed);
      const start = seed % sent.length;
      return sent.subarray(start, start + size);
    });
    const message = concat(...pieces);
    built.push(message);
    sent = concat(sent, message).subarray(-100_000);
  }
  return built;
}

/** Inflates and fails unless the output is `expected`, naming the first differing byte. */
function assertInflates(
  inflater: MessageInflater,
  data: Uint8Array,
  limit: number,
  expected: Uint8Array,
  what: string,
) {
  const out = inflater.inflate(data, limit);
  const at = firstDifference(out, expected);
  if (at >= 0) assert.fail(`${what}: ${out.length} bytes for ${expected.length}, first difference at ${at}`);
}

/** Window bits a node:zlib compressor can use for raw DEFLATE (it cannot make an 8-bit window). */
const windowBits = fc.integer({ min: 9, max: 15 });
const level = fc.integer({ min: 0, max: 9 });

describe("fuzz: MessageInflater", () => {
  it("inflates messages compressed alone back exactly, without context takeover", () => {
    check(
      fc.property(messages, windowBits, level, fc.nat({ max: 3 }), (specs, bits, level, slack) => {
        const inflater = new MessageInflater(bits, false);
        for (const [i, message] of buildMessages(specs).entries()) {
          const limit = message.length + slack; // slack 0: the limit is inclusive
          assertInflates(inflater, compressAlone(message, bits, level), limit, message, `message ${i}`);
        }
      }),
      120,
    );
  });

  it("inflates a peer's messages with context takeover, streamed or compressed alone, back exactly", async () => {
    await checkAsync(
      fc.asyncProperty(
        messages,
        windowBits,
        level,
        fc.array(fc.boolean()),
        async (specs, bits, level, alone) => {
          // One stream sees every message, so its history is the inflater's even when a message is
          // sent compressed alone instead (which a peer with context takeover may also do).
          const compressor = new StreamCompressor(bits, level);
          try {
            const inflater = new MessageInflater(bits, true);
            for (const [i, message] of buildMessages(specs).entries()) {
              const streamed = await compressor.compress(message);
              const data = alone[i] ? compressAlone(message, bits, level) : streamed;
              assertInflates(inflater, data, message.length, message, `message ${i}`);
            }
          } finally {
            compressor.close();
          }
        },
      ),
      60,
    );
  });

  /** Highly compressible output (a bomb) as well as ordinary messages. */
  const sized = fc.oneof(
    fc.record({ size: fc.integer({ min: 0, max: 200_000 }), fill: fc.integer({ min: 0, max: 255 }) })
      .map(({ size, fill }) => new Uint8Array(size).fill(fill)),
    messages.map((specs) => buildMessages(specs).at(-1)!),
  );

  it("returns a message within the limit and throws InflateError (tooBig) beyond it", () => {
    check(
      fc.property(
        sized,
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.boolean(),
        (message, ratio, primed) => {
          const limit = Math.floor(message.length * ratio);
          const inflater = new MessageInflater(15, primed);
          // With context takeover, an earlier message in the window must not count against the limit.
          if (primed) inflater.inflate(compressAlone(compressibleBytes(5000, limit)), 5000);
          const data = compressAlone(message);
          if (message.length <= limit) {
            assertInflates(inflater, data, limit, message, `limit ${limit}`);
            return;
          }
          assert.throws(
            () => inflater.inflate(data, limit),
            (error) => error instanceof InflateError && error.tooBig,
            `${message.length} bytes inflated under a limit of ${limit}`,
          );
        },
      ),
      150,
    );
  });

  /** Random bytes, and valid compressed messages with a few bytes flipped. */
  const garbage = fc.oneof(
    fc.uint8Array({ maxLength: 400 }),
    fc.tuple(
      messages,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }),
    )
      .map(([specs, flips]) => {
        const data = compressAlone(buildMessages(specs).at(-1)!).slice();
        for (const [at, bits] of flips) if (data.length > 0) data[at % data.length] ^= bits;
        return data;
      }),
  );

  it("throws nothing but InflateError on garbage, and never returns more than the limit", () => {
    check(
      fc.property(
        fc.array(garbage, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 8, max: 15 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 70_000 }),
        (inputs, bits, takeover, limit) => {
          const inflater = new MessageInflater(bits, takeover);
          for (const data of inputs) {
            try {
              const out = inflater.inflate(data, limit);
              assert.ok(out.length <= limit, `${out.length} bytes returned under a limit of ${limit}`);
            } catch (error) {
              if (!(error instanceof InflateError)) throw error;
            }
          }
        },
      ),
      400,
    );
  });
});
