import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Utf8Validator } from "../src/utf8.ts";
import { Random } from "./helpers/random.ts";

const encoder = new TextEncoder();

/** Feeds `pieces` in order; returns whether every push held and the text is complete. */
function validate(...pieces: Uint8Array[]): boolean {
  const validator = new Utf8Validator();
  for (const piece of pieces) if (!validator.push(piece)) return false;
  return validator.complete;
}

/** Whether a fatal decoder accepts `bytes`. */
function decodes(bytes: Uint8Array): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * The index of the byte at which a streaming fatal decoder first fails, fed one byte at a time,
 * or -1 when none does (a sequence cut short at the end is not caught until the end).
 */
function decoderFailsAt(bytes: Uint8Array): number {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (let i = 0; i < bytes.length; i++) {
    try {
      decoder.decode(bytes.subarray(i, i + 1), { stream: true });
    } catch {
      return i;
    }
  }
  return -1;
}

/** The index of the byte at which the validator first returns false, fed bytewise, or -1. */
function validatorFailsAt(bytes: Uint8Array): number {
  const validator = new Utf8Validator();
  for (let i = 0; i < bytes.length; i++) {
    if (!validator.push(bytes.subarray(i, i + 1))) return i;
  }
  return -1;
}

const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");

describe("Utf8Validator: valid text", () => {
  const texts: [string, string][] = [
    ["empty", ""],
    ["ASCII", "Hello, world! \u0000\u007f"],
    ["two-byte", "café ñ ß"],
    ["three-byte", "€ 日本語 \ufffd"],
    ["four-byte", "😀 𝄞 🏳️‍🌈"],
    ["mixed", "a é € 😀 z"],
  ];
  for (const [name, text] of texts) {
    it(`accepts ${name} text, whole and bytewise`, () => {
      const bytes = encoder.encode(text);
      assert.equal(validate(bytes), true);
      const validator = new Utf8Validator();
      for (let i = 0; i < bytes.length; i++) {
        assert.equal(validator.push(bytes.subarray(i, i + 1)), true, `byte ${i} of ${hex(bytes)}`);
      }
      assert.equal(validator.complete, true);
    });
  }

  it("accepts every boundary code point", () => {
    const boundaries: [number, string][] = [
      [0x0000, "00"],
      [0x007f, "7f"],
      [0x0080, "c2 80"],
      [0x07ff, "df bf"],
      [0x0800, "e0 a0 80"],
      [0xd7ff, "ed 9f bf"],
      [0xe000, "ee 80 80"],
      [0xfffd, "ef bf bd"],
      [0xffff, "ef bf bf"],
      [0x10000, "f0 90 80 80"],
      [0x10ffff, "f4 8f bf bf"],
    ];
    for (const [codePoint, expected] of boundaries) {
      const bytes = encoder.encode(String.fromCodePoint(codePoint));
      assert.equal(hex(bytes), expected);
      assert.equal(validate(bytes), true, `U+${codePoint.toString(16)}`);
    }
  });

  it("pushing an empty piece keeps the state", () => {
    const validator = new Utf8Validator();
    assert.equal(validator.push(new Uint8Array(0)), true);
    assert.equal(validator.complete, true);
    assert.equal(validator.push(Uint8Array.of(0xe2)), true);
    assert.equal(validator.push(new Uint8Array(0)), true);
    assert.equal(validator.complete, false);
    assert.equal(validator.push(Uint8Array.of(0x82, 0xac)), true);
    assert.equal(validator.complete, true);
  });
});

describe("Utf8Validator: invalid text", () => {
  const invalid: [string, number[]][] = [
    ["overlong C0 80", [0xc0, 0x80]],
    ["overlong C1 BF", [0xc1, 0xbf]],
    ["overlong E0 80 80", [0xe0, 0x80, 0x80]],
    ["overlong E0 9F BF", [0xe0, 0x9f, 0xbf]],
    ["overlong F0 80 80 80", [0xf0, 0x80, 0x80, 0x80]],
    ["overlong F0 8F BF BF", [0xf0, 0x8f, 0xbf, 0xbf]],
    ["surrogate ED A0 80 (U+D800)", [0xed, 0xa0, 0x80]],
    ["surrogate ED BF BF (U+DFFF)", [0xed, 0xbf, 0xbf]],
    ["above U+10FFFF: F4 90 80 80", [0xf4, 0x90, 0x80, 0x80]],
    ["F5 lead byte", [0xf5, 0x80, 0x80, 0x80]],
    ["F7 lead byte", [0xf7, 0xbf, 0xbf, 0xbf]],
    ["F8 lead byte", [0xf8, 0x88, 0x80, 0x80, 0x80]],
    ["FE", [0xfe]],
    ["FF", [0xff]],
    ["stray continuation 80", [0x80]],
    ["stray continuation BF after ASCII", [0x41, 0xbf]],
    ["too many continuations", [0xc2, 0x80, 0x80]],
    ["ASCII where a continuation is due", [0xe2, 0x82, 0x41]],
    ["new lead byte where a continuation is due", [0xc2, 0xc2, 0x80]],
  ];
  for (const [name, bytes] of invalid) {
    it(`rejects ${name}, as the fatal decoder does`, () => {
      const data = Uint8Array.from(bytes);
      assert.equal(decodes(data), false, "the reference decoder should reject it too");
      assert.equal(validate(data), false);
      assert.equal(validate(Uint8Array.of(0x61, 0x62), data, Uint8Array.of(0x63)), false);
    });
  }

  it("reports a sequence truncated at the end as incomplete, not as an error", () => {
    for (const bytes of [[0xc2], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0x61, 0xf4, 0x8f, 0xbf]]) {
      const validator = new Utf8Validator();
      assert.equal(validator.push(Uint8Array.from(bytes)), true, hex(Uint8Array.from(bytes)));
      assert.equal(validator.complete, false, hex(Uint8Array.from(bytes)));
    }
  });

  it("fails fast: push returns false on the first piece holding the offending byte", () => {
    const cases: [string, number[][], number][] = [
      ["E0 | 80", [[0xe0], [0x80, 0x80]], 1],
      ["ED | A0", [[0x61, 0xed], [0xa0], [0x80]], 1],
      ["F0 | 80", [[0xf0], [0x80], [0x80], [0x80]], 1],
      ["F4 | 90", [[0xf4], [0x90, 0x80, 0x80]], 1],
      ["F4 8F | C0", [[0xf4, 0x8f], [0xc0]], 1],
      ["E2 82 | 41", [[0xe2], [0x82], [0x41]], 2],
      ["F0 9F 98 | 28", [[0xf0, 0x9f], [0x98], [0x28, 0x61]], 2],
      ["C2 | C2", [[0xc2], [0xc2]], 1],
      ["ab | 80", [[0x61, 0x62], [0x80]], 1],
      ["valid | F5", [[0xe2, 0x82, 0xac], [0x61, 0xf5]], 1],
    ];
    for (const [name, pieces, failing] of cases) {
      const validator = new Utf8Validator();
      const results = pieces.slice(0, failing + 1).map((piece) => validator.push(Uint8Array.from(piece)));
      assert.deepEqual(results, [...Array(failing).fill(true), false], name);
    }
  });

  it("after reset, an unfinished sequence is forgotten", () => {
    const validator = new Utf8Validator();
    assert.equal(validator.push(Uint8Array.of(0xe0)), true);
    assert.equal(validator.complete, false);
    validator.reset();
    assert.equal(validator.complete, true);
    // Without the reset, 0x80 after E0 would be rejected; after it, a new text starts.
    assert.equal(validator.push(Uint8Array.of(0x41)), true);
    assert.equal(validator.complete, true);
    validator.reset();
    assert.equal(validator.push(Uint8Array.of(0xf4)), true);
    validator.reset();
    assert.equal(validator.push(Uint8Array.of(0xf0, 0x90, 0x80, 0x80)), true);
    assert.equal(validator.complete, true);
  });
});

describe("Utf8Validator: cross-check with TextDecoder", () => {
  /** Code point ranges of 1, 2, 3 (either side of the surrogates) and 4 bytes of UTF-8. */
  const RANGES = [[0, 0x7f], [0x80, 0x7ff], [0x800, 0xd7ff], [0xe000, 0xffff], [0x10000, 0x10ffff]];

  /** A valid character's UTF-8, taken from `RANGES[from...]`. */
  function character(random: Random, from: number): Uint8Array {
    const [low, high] = random.pick(RANGES.slice(from));
    return encoder.encode(String.fromCodePoint(random.int(low, high)));
  }

  /** Random bytes that are often valid UTF-8 and often nearly so. */
  function sample(random: Random): Uint8Array {
    const parts: number[] = [];
    const count = random.int(0, 12);
    for (let i = 0; i < count; i++) {
      const kind = random.int(0, 9);
      if (kind <= 5) {
        parts.push(...character(random, 0));
      } else if (kind <= 7) {
        // A byte that is interesting at a sequence's start or inside one.
        parts.push(
          random.pick([
            0x80,
            0x8f,
            0x90,
            0x9f,
            0xa0,
            0xbf,
            0xc0,
            0xc1,
            0xc2,
            0xdf,
            0xe0,
            0xed,
            0xef,
            0xf0,
            0xf4,
            0xf5,
            0xff,
          ]),
        );
      } else if (kind === 8) {
        // A valid multi-byte sequence cut short.
        const bytes = character(random, 1);
        parts.push(...bytes.subarray(0, random.int(1, bytes.length - 1)));
      } else {
        parts.push(random.int(0, 255));
      }
    }
    return Uint8Array.from(parts);
  }

  it("agrees with a fatal TextDecoder on random byte strings, whole and in random splits", () => {
    const random = new Random(2024);
    let valid = 0;
    let invalid = 0;
    for (let round = 0; round < 600; round++) {
      const bytes = sample(random);
      const expected = decodes(bytes);
      if (expected) valid++;
      else invalid++;
      assert.equal(validate(bytes), expected, `whole: ${hex(bytes)}`);
      for (let split = 0; split < 3; split++) {
        const pieces = random.split(bytes, random.int(1, 5));
        assert.equal(validate(...pieces), expected, `split ${pieces.map(hex).join(" | ")}`);
      }
    }
    // Both outcomes must be well represented for the check to mean anything.
    assert.ok(valid >= 100, `only ${valid} valid samples`);
    assert.ok(invalid >= 100, `only ${invalid} invalid samples`);
  });

  it("fails at the same byte as a streaming fatal TextDecoder", () => {
    const random = new Random(77);
    let failures = 0;
    for (let round = 0; round < 400; round++) {
      const bytes = sample(random);
      const expected = decoderFailsAt(bytes);
      if (expected >= 0) failures++;
      assert.equal(validatorFailsAt(bytes), expected, hex(bytes));
    }
    assert.ok(failures >= 100, `only ${failures} samples failed early`);
  });
});
