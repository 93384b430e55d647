import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CloseCode } from "../src/api.ts";
import {
  encodeClosePayload,
  Failure,
  failureCode,
  failureReason,
  FAILURES,
  isValidWireCloseCode,
  MAX_CLOSE_REASON_BYTES,
  parseClosePayload,
  withDetail,
} from "../src/close.ts";

const encoder = new TextEncoder();
const LIMITS = { maxPayloadLength: 1000, maxMessagesPerSecond: 5 };

/** A close payload from a code and raw reason bytes. */
function payload(code: number, reason: number[] | string = []): Uint8Array {
  const reasonBytes = typeof reason === "string" ? encoder.encode(reason) : Uint8Array.from(reason);
  return Uint8Array.from([code >> 8, code & 0xff, ...reasonBytes]);
}

describe("isValidWireCloseCode", () => {
  const cases: [number, boolean][] = [
    [0, false],
    [999, false],
    [1000, true],
    [1001, true],
    [1002, true],
    [1003, true],
    [1004, false],
    [1005, false],
    [1006, false],
    [1007, true],
    [1008, true],
    [1009, true],
    [1010, true],
    [1011, true],
    [1012, true],
    [1013, true],
    [1014, true],
    [1015, false],
    [1016, false],
    [2000, false],
    [2999, false],
    [3000, true],
    [3999, true],
    [4000, true],
    [4999, true],
    [5000, false],
    [65535, false],
  ];
  for (const [code, valid] of cases) {
    it(`${code} is ${valid ? "" : "not "}valid on the wire`, () => {
      assert.equal(isValidWireCloseCode(code), valid);
    });
  }
});

describe("parseClosePayload", () => {
  it("reports 1005 and an empty reason for an empty payload", () => {
    assert.deepEqual(parseClosePayload(new Uint8Array(0)), { code: 1005, reason: "" });
    assert.equal(CloseCode.NoStatus, 1005);
  });

  it("fails a one-byte payload (CloseOneByte, 1002)", () => {
    assert.deepEqual(parseClosePayload(Uint8Array.of(0x03)), { error: Failure.CloseOneByte });
    assert.deepEqual(parseClosePayload(Uint8Array.of(0xe8)), { error: Failure.CloseOneByte });
    assert.equal(failureCode(Failure.CloseOneByte), 1002);
  });

  it("reads the code in network order and the UTF-8 reason", () => {
    assert.deepEqual(parseClosePayload(Uint8Array.of(0x03, 0xe8)), { code: 1000, reason: "" });
    assert.deepEqual(parseClosePayload(payload(1001, "going away")), { code: 1001, reason: "going away" });
    assert.deepEqual(parseClosePayload(payload(4999, "café 😀")), { code: 4999, reason: "café 😀" });
    // A leading byte order mark is part of the reason.
    assert.deepEqual(parseClosePayload(payload(4000, [0xef, 0xbb, 0xbf, 0x41])), {
      code: 4000,
      reason: "\uFEFFA",
    });
    assert.deepEqual(parseClosePayload(payload(3000, "x".repeat(123))), {
      code: 3000,
      reason: "x".repeat(123),
    });
  });

  it("fails every code that may not be sent (InvalidCloseCode naming the code, 1002)", () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
      const error = withDetail(Failure.InvalidCloseCode, code);
      assert.deepEqual(parseClosePayload(payload(code)), { error }, `code ${code}`);
      assert.deepEqual(parseClosePayload(payload(code, "why")), { error }, `code ${code} with reason`);
      assert.equal(failureCode(error), 1002);
      assert.equal(failureReason(error, LIMITS), `invalid close code ${code}`);
    }
  });

  it("accepts every code that may be sent", () => {
    for (const code of [1000, 1001, 1002, 1003, 1007, 1010, 1014, 3000, 4000, 4999]) {
      assert.deepEqual(parseClosePayload(payload(code, "ok")), { code, reason: "ok" });
    }
  });

  it("fails a reason that is not UTF-8 (InvalidCloseReason, 1007)", () => {
    const invalidReasons = [
      [0xff],
      [0x61, 0x80],
      [0xc0, 0x80],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0x61, 0xe2, 0x82], // truncated at the end
    ];
    for (const reason of invalidReasons) {
      assert.deepEqual(
        parseClosePayload(payload(1000, reason)),
        { error: Failure.InvalidCloseReason },
        String(reason),
      );
    }
  });

  it("checks the code before the reason", () => {
    assert.deepEqual(parseClosePayload(payload(1005, [0xff])), {
      error: withDetail(Failure.InvalidCloseCode, 1005),
    });
  });
});

describe("encodeClosePayload", () => {
  it("writes the code in network order followed by the UTF-8 reason", () => {
    assert.deepEqual([...encodeClosePayload(1000, "")], [0x03, 0xe8]);
    assert.deepEqual([...encodeClosePayload(1001, "")], [0x03, 0xe9]);
    assert.deepEqual([...encodeClosePayload(4999, "")], [0x13, 0x87]);
    assert.deepEqual([...encodeClosePayload(3000, "é")], [0x0b, 0xb8, 0xc3, 0xa9]);
    assert.deepEqual([...encodeClosePayload(1011, "bye")], [0x03, 0xf3, 0x62, 0x79, 0x65]);
  });

  it("round-trips through parseClosePayload", () => {
    for (const [code, reason] of [[1000, ""], [1008, "policy"], [4321, "日本語 😀"]] as const) {
      assert.deepEqual(parseClosePayload(encodeClosePayload(code, reason)), { code, reason });
    }
  });

  it("fits the longest reason in a control frame", () => {
    assert.equal(MAX_CLOSE_REASON_BYTES, 123);
    assert.equal(encodeClosePayload(1000, "x".repeat(MAX_CLOSE_REASON_BYTES)).length, 125);
  });
});

describe("FAILURES", () => {
  const ids = Object.values(Failure);

  it("has one rule per failure id, each id fitting in the low byte", () => {
    assert.deepEqual(Object.keys(FAILURES).map(Number).sort((a, b) => a - b), ids);
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(ids.every((id) => id > 0 && id < 256));
  });

  it("sends codes that may go on the wire, and reasons unique to each rule", () => {
    const reasons = ids.map((id) => failureReason(id, LIMITS));
    assert.equal(new Set(reasons).size, reasons.length, reasons.join(" | "));
    for (const id of ids) assert.ok(isValidWireCloseCode(failureCode(id)), `failure ${id}`);
  });

  it("fits every reason in a close frame, at the largest limits and details", () => {
    const largest = { maxPayloadLength: 2 ** 32 - 1, maxMessagesPerSecond: 1e9 };
    for (const id of ids) {
      const reason = failureReason(withDetail(id, 65535), largest);
      assert.ok(encoder.encode(reason).length <= MAX_CLOSE_REASON_BYTES, reason);
      assert.ok(reason.length > 0, `failure ${id}`);
    }
  });

  it("names the details and limits a reason is about", () => {
    assert.equal(failureReason(withDetail(Failure.ReservedOpcode, 0xb), LIMITS), "reserved opcode 0xb");
    assert.equal(failureReason(Failure.MessageTooBig, LIMITS), "message over maxPayloadLength (1000 bytes)");
    assert.equal(
      failureReason(Failure.InflatedTooBig, LIMITS),
      "inflated message over maxPayloadLength (1000 bytes)",
    );
    assert.equal(failureReason(Failure.MessageRate, LIMITS), "message rate over maxMessagesPerSecond (5/s)");
  });
});
