import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  encodeFrame,
  type FrameHandler,
  frameHeaderSize,
  FrameParser,
  Opcode,
  RSV1,
  unmask,
  writeFrameHeader,
} from "../src/frame.ts";
import { Failure, failureCode, failureReason, withDetail } from "../src/close.ts";
import { concat, frame } from "./helpers/raw_client.ts";
import { Random } from "./helpers/random.ts";

/** A frame as the parser announced it, with its payload pieces joined. */
type Recorded =
  | { kind: "data"; opcode: number; fin: boolean; rsv1: boolean; length: number; payload: Uint8Array }
  | { kind: "control"; opcode: number; payload: Uint8Array };

/** A handler that records every call (copying payload, which is only a view). */
class Recorder implements FrameHandler {
  /** Number of `onDataPayload` calls for each data frame, in order. */
  pieces: number[] = [];
  /** Whether the last data frame's payload ended (`end` was true). */
  ended = true;
  /** Each `onDataPayload` call's bytes and its `copied` flag, in order. */
  payloadCalls: { bytes: Uint8Array; copied: boolean }[] = [];
  /** Codes to return from the callbacks. */
  dataFrameCode = 0;
  dataPayloadCode = 0;
  controlCode = 0;
  /** Called after each callback is recorded (e.g. to pause the parser). */
  after: ((event: "dataFrame" | "dataPayload" | "control", opcode: number) => void) | null = null;
  #records: { frame: Recorded; parts: Uint8Array[] }[] = [];
  #opcode = 0;

  /** The frames so far, each data frame's payload pieces joined. */
  get frames(): Recorded[] {
    return this.#records.map(({ frame, parts }) => ({ ...frame, payload: concat(...parts) }));
  }

  onDataFrame(opcode: number, fin: boolean, rsv1: boolean, length: number): number {
    assert.ok(this.ended, "a data frame began before the previous one's payload ended");
    const frame: Recorded = { kind: "data", opcode, fin, rsv1, length, payload: new Uint8Array(0) };
    this.#records.push({ frame, parts: [] });
    this.pieces.push(0);
    this.ended = false;
    this.#opcode = opcode;
    this.after?.("dataFrame", opcode);
    return this.dataFrameCode;
  }

  onDataPayload(bytes: Uint8Array, end: boolean, copied: boolean): number {
    assert.ok(!this.ended, "payload arrived outside a data frame");
    this.payloadCalls.push({ bytes, copied });
    this.#records[this.#records.length - 1].parts.push(bytes.slice());
    this.pieces[this.pieces.length - 1]++;
    this.ended = end;
    this.after?.("dataPayload", this.#opcode);
    return this.dataPayloadCode;
  }

  onControlFrame(opcode: number, payload: Uint8Array): number {
    const copy = payload.slice();
    this.#records.push({ frame: { kind: "control", opcode, payload: copy }, parts: [copy] });
    this.after?.("control", opcode);
    return this.controlCode;
  }
}

const encoder = new TextEncoder();

/** Pushes `pieces` (copies, since the parser unmasks in place) and returns the recorder. */
function parse(pieces: Uint8Array[], allowedRsv = 0): { recorder: Recorder; parser: FrameParser } {
  const recorder = new Recorder();
  const parser = new FrameParser(recorder, allowedRsv);
  for (const piece of pieces) {
    const used = parser.push(piece.slice());
    if (used !== piece.length) assert.fail(`push used ${used} of ${piece.length} bytes`);
  }
  return { recorder, parser };
}

/** Asserts that two recordings are the same (payloads compared quickly, then in detail if not). */
function assertSameFrames(actual: Recorded[], expected: Recorded[], message?: string): void {
  const shape = (frames: Recorded[]) =>
    frames.map(({ payload, ...rest }) => ({ ...rest, size: payload.length }));
  assert.deepEqual(shape(actual), shape(expected), message);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i].payload;
    const b = expected[i].payload;
    if (!a.every((byte, at) => byte === b[at])) assert.deepEqual(a, b, `${message ?? ""} frame ${i}`);
  }
}

function bytewise(bytes: Uint8Array): Uint8Array[] {
  return Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
}

/** Decodes a server frame (unmasked) by hand. */
function decodeServerFrame(bytes: Uint8Array): {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  length: number;
  payload: Uint8Array;
} {
  const len7 = bytes[1] & 0x7f;
  let length = len7;
  let at = 2;
  if (len7 === 126) {
    length = (bytes[2] << 8) | bytes[3];
    at = 4;
  } else if (len7 === 127) {
    length = Number(new DataView(bytes.buffer, bytes.byteOffset + 2, 8).getBigUint64(0));
    at = 10;
  }
  return {
    fin: (bytes[0] & 0x80) !== 0,
    rsv: bytes[0] & 0x70,
    opcode: bytes[0] & 0x0f,
    masked: (bytes[1] & 0x80) !== 0,
    length,
    payload: bytes.subarray(at),
  };
}

/** The 7-bit length field and extended length of a 64-bit length, for `frame`'s `lengthBytes`. */
function length64(high: number, low: number): Uint8Array {
  const bytes = new Uint8Array(9);
  bytes[0] = 127;
  const view = new DataView(bytes.buffer);
  view.setUint32(1, high);
  view.setUint32(5, low);
  return bytes;
}

const LENGTHS = [0, 125, 126, 65535, 65536];
/** The 7-bit length field each length in `LENGTHS` must use. */
const LEN7 = [0, 125, 126, 126, 127];

describe("FrameParser: lengths", () => {
  for (const [index, length] of LENGTHS.entries()) {
    it(`reads a masked frame with a ${length}-byte payload, whole and bytewise`, () => {
      const payload = new Random(length).bytes(length);
      const bytes = frame(Opcode.Binary, payload);
      assert.equal(bytes[1], 0x80 | LEN7[index]);
      for (const pieces of [[bytes], bytewise(bytes)]) {
        const { recorder, parser } = parse(pieces);
        assert.equal(parser.error, 0);
        assert.deepEqual(recorder.frames, [
          { kind: "data", opcode: Opcode.Binary, fin: true, rsv1: false, length, payload },
        ]);
        assert.ok(recorder.ended);
      }
    });
  }

  it("reports an empty data frame with one empty, final payload piece", () => {
    const { recorder } = parse([frame(Opcode.Text, "")]);
    assert.equal(recorder.frames.length, 1);
    assert.equal(recorder.pieces[0], 1);
    assert.ok(recorder.ended);
  });

  it("reports the exact 64-bit length above 4 GiB before any payload arrives", () => {
    const cases: [number, number, number][] = [
      [1, 5, 2 ** 32 + 5],
      [0x0123, 0x456789ab, 0x0123_456789ab],
      [0x001fffff, 0xffffffff, Number.MAX_SAFE_INTEGER],
    ];
    for (const [high, low, expected] of cases) {
      const header = frame(Opcode.Binary, "", { lengthBytes: length64(high, low) });
      assert.equal(header.length, 14);
      for (const pieces of [[header], bytewise(header)]) {
        const { recorder, parser } = parse(pieces);
        assert.equal(parser.error, 0);
        assert.equal(recorder.frames.length, 1);
        const announced = recorder.frames[0];
        assert.equal(announced.kind === "data" && announced.length, expected);
        assert.equal(recorder.pieces[0], 0, "no payload piece before payload bytes arrive");
        // Payload bytes then come as pieces that do not end the frame.
        assert.equal(parser.push(new Uint8Array(10)), 10);
        assert.equal(recorder.pieces[0], 1);
        assert.equal(recorder.ended, false);
        assert.equal(recorder.frames[0].payload.length, 10);
      }
    }
  });

  it("fails a 64-bit length with the most significant bit set (LengthTopBit, 1002)", () => {
    for (const high of [0x80000000, 0xffffffff]) {
      const header = frame(Opcode.Binary, "", { lengthBytes: length64(high, 0) });
      for (const pieces of [[header], bytewise(header)]) {
        const { recorder, parser } = parse(pieces);
        assert.equal(parser.error, Failure.LengthTopBit);
        assert.equal(failureCode(parser.error), 1002);
        assert.deepEqual(recorder.frames, []);
      }
    }
  });
});

describe("FrameParser: split input", () => {
  /** A stream with every kind of frame, length encoding and fragmentation. */
  function stream(): Uint8Array {
    const random = new Random(7);
    return concat(
      frame(Opcode.Text, "hello"),
      frame(Opcode.Binary, new Uint8Array(0)),
      frame(Opcode.Text, "frag", { fin: false }),
      frame(Opcode.Ping, "in the middle"),
      frame(Opcode.Continuation, random.bytes(200), { fin: false, key: Uint8Array.of(1, 2, 3, 4) }),
      frame(Opcode.Continuation, "", { fin: false }),
      frame(Opcode.Continuation, "end"),
      frame(Opcode.Binary, random.bytes(125), { key: Uint8Array.of(0xff, 0, 0xff, 0) }),
      frame(Opcode.Binary, random.bytes(126)),
      frame(Opcode.Pong, random.bytes(125)),
      frame(Opcode.Ping, ""),
      frame(Opcode.Binary, random.bytes(65535), { key: Uint8Array.of(0xde, 0xad, 0xbe, 0xef) }),
      frame(Opcode.Binary, random.bytes(65536)),
      frame(Opcode.Binary, random.bytes(33), { key: Uint8Array.of(0, 0, 0, 0) }),
      frame(Opcode.Close, concat(Uint8Array.of(0x03, 0xe8), encoder.encode("bye"))),
    );
  }

  it("makes the same calls whether the stream comes whole, bytewise or in random splits", () => {
    const bytes = stream();
    const whole = parse([bytes]).recorder;
    assert.equal(whole.frames.length, 15);
    assert.deepEqual(
      whole.frames.map((f) => [f.kind, f.opcode, f.payload.length]),
      [
        ["data", 1, 5],
        ["data", 2, 0],
        ["data", 1, 4],
        ["control", 9, 13],
        ["data", 0, 200],
        ["data", 0, 0],
        ["data", 0, 3],
        ["data", 2, 125],
        ["data", 2, 126],
        ["control", 10, 125],
        ["control", 9, 0],
        ["data", 2, 65535],
        ["data", 2, 65536],
        ["data", 2, 33],
        ["control", 8, 5],
      ],
    );
    // Whole input gives each data frame its payload in exactly one piece.
    assert.ok(whole.pieces.every((count) => count === 1));
    assert.equal(new TextDecoder().decode(whole.frames[0].payload), "hello");

    const random = new Random(42);
    const splits = [bytewise(bytes)];
    for (const [maxPiece, rounds] of [[3, 1], [7, 2], [64, 4], [1000, 4], [70000, 8]]) {
      for (let round = 0; round < rounds; round++) splits.push(random.split(bytes, maxPiece));
    }
    for (const pieces of splits) {
      const { recorder, parser } = parse(pieces);
      assert.equal(parser.error, 0);
      assertSameFrames(recorder.frames, whole.frames, `${pieces.length} pieces`);
      assert.ok(recorder.ended);
    }
  });

  it("hands pieces shorter than copyBelow on as copies of their own, longer ones as views of the chunk", () => {
    const bytes = stream();
    const expected = parse([bytes]).recorder.frames;
    for (const pieces of [[bytes.slice()], new Random(7).split(bytes, 300)]) {
      const recorder = new Recorder();
      const parser = new FrameParser(recorder, 0, 128);
      for (const piece of pieces) parser.push(piece);
      assert.equal(parser.error, 0);
      assertSameFrames(recorder.frames, expected, `${pieces.length} pieces`);
      const chunks = new Set(pieces.map((piece) => piece.buffer));
      for (const { bytes: piece, copied } of recorder.payloadCalls) {
        if (piece.length === 0) continue; // the shared empty piece of an empty frame
        assert.equal(copied, piece.length < 128, `a piece of ${piece.length} bytes`);
        assert.equal(chunks.has(piece.buffer), !copied, `a piece of ${piece.length} bytes lies in a chunk`);
      }
    }
  });

  it("unmasks a payload split at every position, for every mask offset", () => {
    const payload = new Random(3).bytes(100);
    const bytes = frame(Opcode.Binary, payload, { key: Uint8Array.of(0x11, 0x22, 0x44, 0x88) });
    for (let cut = 0; cut <= bytes.length; cut++) {
      for (let second = cut; second <= bytes.length; second += 37) {
        const pieces = [bytes.subarray(0, cut), bytes.subarray(cut, second), bytes.subarray(second)];
        const { recorder } = parse(pieces.filter((p) => p.length > 0));
        assert.deepEqual(recorder.frames[0].payload, payload, `cut at ${cut} and ${second}`);
      }
    }
  });

  it("unmasks chunks that start at unaligned byte offsets", () => {
    const payload = new Random(4).bytes(1000);
    const bytes = frame(Opcode.Binary, payload, { key: Uint8Array.of(0x9c, 0x01, 0x7e, 0xf3) });
    for (let offset = 0; offset < 8; offset++) {
      const recorder = new Recorder();
      const parser = new FrameParser(recorder);
      const backing = new Uint8Array(bytes.length + offset + 8);
      backing.set(bytes, offset);
      // Two chunks, each starting at a different alignment.
      const cut = 14 + offset * 3;
      parser.push(backing.subarray(offset, offset + cut));
      parser.push(backing.subarray(offset + cut, offset + bytes.length));
      assert.deepEqual(recorder.frames[0].payload, payload, `byteOffset ${offset}`);
      assert.ok(backing.subarray(offset + bytes.length).every((b) => b === 0), "wrote past the chunk");
    }
  });

  it("gathers a control frame payload split across chunks", () => {
    const payload = new Random(5).bytes(125);
    const bytes = frame(Opcode.Ping, payload);
    for (let cut = 1; cut < bytes.length; cut++) {
      const { recorder } = parse([bytes.subarray(0, cut), bytes.subarray(cut)]);
      assert.deepEqual(recorder.frames, [{ kind: "control", opcode: Opcode.Ping, payload }]);
    }
  });
});

describe("FrameParser: header violations", () => {
  const reserved = (opcode: number) => withDetail(Failure.ReservedOpcode, opcode);
  const violations: [string, Uint8Array, number][] = [
    ["an unmasked data frame", frame(Opcode.Text, "hi", { mask: false }), Failure.UnmaskedFrame],
    ["an unmasked control frame", frame(Opcode.Ping, "", { mask: false }), Failure.UnmaskedFrame],
    ["RSV1 without an extension", frame(Opcode.Text, "hi", { rsv: 0x40 }), Failure.ReservedBits],
    ["RSV2", frame(Opcode.Text, "hi", { rsv: 0x20 }), Failure.ReservedBits],
    ["RSV3", frame(Opcode.Binary, "hi", { rsv: 0x10 }), Failure.ReservedBits],
    ...[3, 4, 5, 6, 7].map((op): [string, Uint8Array, number] => [
      `reserved data opcode ${op}`,
      frame(op, "x"),
      reserved(op),
    ]),
    ...[0xb, 0xc, 0xd, 0xe, 0xf].map((op): [string, Uint8Array, number] => [
      `reserved control opcode 0x${op.toString(16)}`,
      frame(op, ""),
      reserved(op),
    ]),
    ["a ping with 126 bytes of payload", frame(Opcode.Ping, new Uint8Array(126)), Failure.ControlTooLong],
    ["a close with 126 bytes of payload", frame(Opcode.Close, new Uint8Array(126)), Failure.ControlTooLong],
    [
      "a pong with a 64-bit length",
      frame(Opcode.Pong, "", { lengthBytes: length64(0, 5) }),
      Failure.ControlTooLong,
    ],
    ["a ping without FIN", frame(Opcode.Ping, "", { fin: false }), Failure.FragmentedControl],
    [
      "a close without FIN",
      frame(Opcode.Close, Uint8Array.of(0x03, 0xe8), { fin: false }),
      Failure.FragmentedControl,
    ],
    ["a pong without FIN", frame(Opcode.Pong, "x", { fin: false }), Failure.FragmentedControl],
    ["a continuation without a message", frame(Opcode.Continuation, "x"), Failure.StrayContinuation],
    [
      "a new message inside a fragmented one",
      concat(frame(Opcode.Binary, "a", { fin: false }), frame(Opcode.Text, "b")),
      Failure.MessageInsideMessage,
    ],
  ];

  for (const [name, bytes, failure] of violations) {
    const reason = failureReason(failure, { maxPayloadLength: 0, maxMessagesPerSecond: 0 });
    it(`fails ${name}: "${reason}" (1002), later input ignored`, () => {
      for (const pieces of [[bytes], bytewise(bytes)]) {
        const { recorder, parser } = parse(pieces);
        assert.equal(parser.error, failure);
        assert.equal(failureCode(parser.error), 1002);
        const before = recorder.frames.length;
        // Later input is taken (push reports all of it used) but not parsed.
        const later = concat(frame(Opcode.Text, "after"), frame(Opcode.Ping, "p"));
        assert.equal(parser.push(later.slice()), later.length);
        assert.equal(recorder.frames.length, before);
        assert.equal(parser.error, failure);
      }
    });
  }

  it("fails at the first two header bytes, before the rest of the header arrives", () => {
    for (
      const bytes of [
        frame(Opcode.Text, "hi", { mask: false }),
        frame(Opcode.Text, "hi", { rsv: 0x20 }),
        frame(3, "x"),
        frame(Opcode.Ping, new Uint8Array(126)),
        frame(Opcode.Ping, "", { fin: false }),
      ]
    ) {
      const { parser } = parse([bytes.subarray(0, 2)]);
      assert.notEqual(parser.error, 0);
    }
  });

  it("delivers the frames before a violation in the same chunk, and none after it", () => {
    const bytes = concat(
      frame(Opcode.Text, "one"),
      frame(Opcode.Ping, "two"),
      frame(Opcode.Text, "bad", { mask: false }),
      frame(Opcode.Text, "three"),
    );
    for (const pieces of [[bytes], bytewise(bytes)]) {
      const { recorder, parser } = parse(pieces);
      assert.equal(parser.error, Failure.UnmaskedFrame);
      assert.deepEqual(recorder.frames.map((f) => f.opcode), [Opcode.Text, Opcode.Ping]);
    }
  });

  it("accepts RSV1 on data frames when allowedRsv = 0x40 and reports it", () => {
    const bytes = concat(
      frame(Opcode.Text, "deflated", { rsv: RSV1 }),
      frame(Opcode.Binary, "plain"),
    );
    const { recorder, parser } = parse([bytes], RSV1);
    assert.equal(parser.error, 0);
    assert.deepEqual(recorder.frames.map((f) => f.kind === "data" && f.rsv1), [true, false]);
  });

  it("still fails RSV2, RSV3, and RSV1 on a control or continuation frame when allowedRsv = 0x40", () => {
    const cases: [Uint8Array, number][] = [
      [frame(Opcode.Text, "x", { rsv: 0x20 }), Failure.ReservedBits],
      [frame(Opcode.Text, "x", { rsv: 0x10 }), Failure.ReservedBits],
      [frame(Opcode.Text, "x", { rsv: 0x60 }), Failure.ReservedBits],
      [frame(Opcode.Ping, "x", { rsv: RSV1 }), Failure.Rsv1OnControl],
      [frame(Opcode.Close, "", { rsv: RSV1 }), Failure.Rsv1OnControl],
      [
        concat(
          frame(Opcode.Text, "x", { fin: false, rsv: RSV1 }),
          frame(Opcode.Continuation, "y", { rsv: RSV1 }),
        ),
        Failure.Rsv1OnContinuation,
      ],
    ];
    for (const [bytes, failure] of cases) {
      const { recorder, parser } = parse([bytes], RSV1);
      assert.equal(parser.error, failure);
      assert.equal(failureCode(parser.error), 1002);
      assert.ok(recorder.frames.length <= 1);
    }
  });

  it("accepts a control frame with exactly 125 bytes of payload and every valid opcode", () => {
    const bytes = concat(
      frame(Opcode.Ping, new Uint8Array(125)),
      frame(Opcode.Pong, new Uint8Array(125)),
      frame(Opcode.Close, new Uint8Array(125)),
      frame(Opcode.Text, "t", { fin: false }),
      frame(Opcode.Continuation, "c"),
      frame(Opcode.Binary, "b"),
    );
    const { recorder, parser } = parse([bytes]);
    assert.equal(parser.error, 0);
    assert.deepEqual(recorder.frames.map((f) => f.opcode), [0x9, 0xa, 0x8, 0x1, 0x0, 0x2]);
  });

  it("fails with the failure a handler returns and then ignores later input", () => {
    const later = frame(Opcode.Text, "later");
    const cases: [keyof Recorder, number, Uint8Array][] = [
      ["dataFrameCode", Failure.MessageTooBig, frame(Opcode.Binary, "too big")],
      ["dataPayloadCode", Failure.InvalidText, frame(Opcode.Text, "bad text")],
      ["controlCode", Failure.CloseOneByte, frame(Opcode.Close, Uint8Array.of(0x03))],
    ];
    for (const [field, code, bytes] of cases) {
      const recorder = new Recorder();
      (recorder[field] as number) = code;
      const parser = new FrameParser(recorder);
      const input = concat(bytes, later);
      assert.equal(parser.push(input), input.length);
      assert.equal(parser.error, code, field);
      assert.equal(recorder.frames.length, 1, field);
      if (field === "dataFrameCode") assert.equal(recorder.pieces[0], 0, "payload after a failed header");
    }
  });
});

describe("FrameParser: pause", () => {
  it("stops after the callback that pauses; push returns the bytes used and the rest parses later", () => {
    const first = frame(Opcode.Text, "a");
    const close = frame(Opcode.Close, Uint8Array.of(0x03, 0xe8));
    const last = frame(Opcode.Text, "b");
    const bytes = concat(first, close, last);
    const recorder = new Recorder();
    const parser = new FrameParser(recorder);
    recorder.after = (event, opcode) => {
      if (event === "control" && opcode === Opcode.Close) parser.pause();
    };
    const used = parser.push(bytes);
    assert.equal(used, first.length + close.length);
    assert.deepEqual(recorder.frames.map((f) => f.opcode), [Opcode.Text, Opcode.Close]);
    // The next push is not paused.
    recorder.after = null;
    assert.equal(parser.push(bytes.subarray(used)), last.length);
    assert.deepEqual(recorder.frames.map((f) => f.opcode), [Opcode.Text, Opcode.Close, Opcode.Text]);
    assert.equal(new TextDecoder().decode(recorder.frames[2].payload), "b");
    assert.equal(parser.error, 0);
  });

  it("pausing in onDataFrame stops right after the header", () => {
    const payload = new Random(9).bytes(300);
    const bytes = frame(Opcode.Binary, payload);
    const recorder = new Recorder();
    const parser = new FrameParser(recorder);
    recorder.after = (event) => {
      if (event === "dataFrame") parser.pause();
    };
    const used = parser.push(bytes);
    assert.equal(used, 2 + 2 + 4);
    assert.equal(recorder.pieces[0], 0);
    recorder.after = null;
    assert.equal(parser.push(bytes.subarray(used)), bytes.length - used);
    assert.deepEqual(recorder.frames[0].payload, payload);
  });

  it("pausing in onDataPayload stops after that piece", () => {
    const one = frame(Opcode.Binary, "first");
    const two = frame(Opcode.Binary, "second");
    const bytes = concat(one, two);
    const recorder = new Recorder();
    const parser = new FrameParser(recorder);
    recorder.after = (event) => {
      if (event === "dataPayload") parser.pause();
    };
    let used = parser.push(bytes);
    assert.equal(used, one.length);
    assert.equal(recorder.frames.length, 1);
    used += parser.push(bytes.subarray(used));
    assert.equal(used, bytes.length);
    assert.deepEqual(
      recorder.frames.map((f) => new TextDecoder().decode(f.payload)),
      ["first", "second"],
    );
  });

  it("push returns the whole chunk once the parser has failed", () => {
    const bytes = concat(frame(Opcode.Text, "x", { mask: false }), new Uint8Array(50));
    const recorder = new Recorder();
    const parser = new FrameParser(recorder);
    assert.equal(parser.push(bytes), bytes.length);
    assert.equal(parser.error, Failure.UnmaskedFrame);
  });
});

/** The masking key as `unmask` takes it: the four bytes in wire order as one 32-bit number. */
function maskKey(bytes: Uint8Array): number {
  return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
}

describe("unmask", () => {
  const masks = [
    Uint8Array.of(0x37, 0xfa, 0x21, 0x3d),
    Uint8Array.of(0x00, 0xff, 0x80, 0x01),
    Uint8Array.of(0xff, 0xff, 0xff, 0xff),
  ];
  const lengths = [0, 1, 2, 3, 4, 5, 7, 31, 32, 33, 34, 35, 36, 63, 64, 65, 100, 257, 4099];

  it("matches a naive XOR at every mask offset, byteOffset and length", () => {
    const random = new Random(11);
    for (const mask of masks) {
      for (let offset = 0; offset < 4; offset++) {
        for (let byteOffset = 0; byteOffset < 8; byteOffset++) {
          for (const length of lengths) {
            const backing = random.bytes(byteOffset + length + 8);
            const original = backing.slice();
            const view = backing.subarray(byteOffset, byteOffset + length);
            const expected = original.slice(byteOffset, byteOffset + length)
              .map((b, i) => b ^ mask[(offset + i) & 3]);
            unmask(view, maskKey(mask), offset);
            const where = `mask ${mask}, offset ${offset}, byteOffset ${byteOffset}, length ${length}`;
            assert.deepEqual(view, expected, where);
            assert.deepEqual(backing.subarray(0, byteOffset), original.subarray(0, byteOffset), where);
            assert.deepEqual(
              backing.subarray(byteOffset + length),
              original.subarray(byteOffset + length),
              where,
            );
          }
        }
      }
    }
  });

  it("is its own inverse", () => {
    const original = new Random(12).bytes(1001);
    const bytes = original.slice();
    const mask = maskKey(Uint8Array.of(1, 2, 3, 4));
    unmask(bytes.subarray(3), mask, 2);
    assert.notDeepEqual(bytes, original);
    unmask(bytes.subarray(3), mask, 2);
    assert.deepEqual(bytes, original);
  });
});

describe("frame encoding", () => {
  it("frameHeaderSize picks 2, 4 or 10 bytes at the boundaries", () => {
    assert.deepEqual(
      [0, 125, 126, 65535, 65536, 2 ** 32 - 1, 2 ** 32 + 5].map(frameHeaderSize),
      [2, 2, 4, 4, 10, 10, 10],
    );
  });

  const expectedLengthBytes: Record<number, number[]> = {
    0: [0],
    125: [125],
    126: [126, 0x00, 0x7e],
    65535: [126, 0xff, 0xff],
    65536: [127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00],
  };

  for (const length of LENGTHS) {
    it(`encodeFrame writes an unmasked, final frame with a ${length}-byte payload`, () => {
      const payload = new Random(length + 1).bytes(length);
      const encoded = encodeFrame(Opcode.Binary, payload);
      const lengthBytes = expectedLengthBytes[length];
      assert.equal(encoded.length, 1 + lengthBytes.length + length);
      assert.equal(encoded[0], 0x82);
      assert.deepEqual([...encoded.subarray(1, 1 + lengthBytes.length)], lengthBytes);
      assert.deepEqual(encoded.subarray(1 + lengthBytes.length), payload);
      const decoded = decodeServerFrame(encoded);
      assert.equal(decoded.masked, false);
      assert.equal(decoded.length, length);
    });
  }

  it("encodeFrame sets RSV1 only when asked and keeps the opcode", () => {
    assert.deepEqual([...encodeFrame(Opcode.Text, encoder.encode("hi"), true)], [0xc1, 2, 0x68, 0x69]);
    assert.deepEqual([...encodeFrame(Opcode.Text, encoder.encode("hi"))], [0x81, 2, 0x68, 0x69]);
    assert.deepEqual([...encodeFrame(Opcode.Close, Uint8Array.of(0x03, 0xe8))], [0x88, 2, 0x03, 0xe8]);
    assert.deepEqual([...encodeFrame(Opcode.Pong, new Uint8Array(0))], [0x8a, 0]);
  });

  it("writeFrameHeader writes at an offset and returns where the payload goes", () => {
    for (const length of LENGTHS) {
      const target = new Uint8Array(20).fill(0xaa);
      const at = 3;
      const next = writeFrameHeader(target, at, Opcode.Binary, length);
      assert.equal(next, at + frameHeaderSize(length));
      assert.deepEqual([...target.subarray(0, at)], [0xaa, 0xaa, 0xaa], "wrote before `at`");
      assert.ok(target.subarray(next).every((b) => b === 0xaa), "wrote past the header");
      assert.deepEqual(
        [...target.subarray(at, next)],
        [0x82, ...expectedLengthBytes[length]],
      );
    }
  });

  it("writeFrameHeader writes 64-bit lengths of 4 GiB and more exactly", () => {
    const cases: [number, number[]][] = [
      [2 ** 32 - 1, [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]],
      [2 ** 32, [0, 0, 0, 1, 0, 0, 0, 0]],
      [2 ** 32 + 5, [0, 0, 0, 1, 0, 0, 0, 5]],
      [0x0123_456789ab, [0, 0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab]],
      [Number.MAX_SAFE_INTEGER, [0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ];
    for (const [length, bytes] of cases) {
      const target = new Uint8Array(10);
      assert.equal(writeFrameHeader(target, 0, Opcode.Binary, length, true), 10);
      assert.deepEqual([...target], [0xc2, 127, ...bytes], `length ${length}`);
    }
  });

  it("a frame the encoder writes, masked by a client, parses back to the same payload", () => {
    const random = new Random(13);
    for (const length of LENGTHS) {
      const payload = random.bytes(length);
      const encoded = encodeFrame(Opcode.Binary, payload);
      const decoded = decodeServerFrame(encoded);
      const { recorder } = parse([frame(decoded.opcode, decoded.payload)]);
      assert.deepEqual(recorder.frames[0].payload, payload);
      assert.equal(recorder.frames[0].kind === "data" && recorder.frames[0].length, length);
    }
  });
});
