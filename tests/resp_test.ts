/** RESP: commands encoded byte for byte, replies read in any split, and garbage refused. */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  encodeCommand,
  RespError,
  RespProtocolError,
  RespReader,
  type RespValue,
} from "../src/pubsub/resp.ts";

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);
const LIMITS = { maxBulkLength: 1024, maxElements: 64, maxDepth: 4 };

/** Reads `wire` whole, then byte by byte; both must give the same replies. */
function read(wire: string | Uint8Array): RespValue[] {
  const data = typeof wire === "string" ? bytes(wire) : wire;
  const whole = new RespReader(LIMITS).push(data);
  const reader = new RespReader(LIMITS);
  const bytewise: RespValue[] = [];
  for (let i = 0; i < data.length; i++) bytewise.push(...reader.push(data.subarray(i, i + 1)));
  assert.deepEqual(bytewise, whole, "the same replies whole and byte by byte");
  return whole;
}

describe("RESP", () => {
  it("encodes a command as an array of bulk strings, binary-safe", () => {
    assert.deepEqual(
      encodeCommand(["PUBLISH", "room", Uint8Array.of(0, 13, 10, 255)]),
      new Uint8Array([...bytes("*3\r\n$7\r\nPUBLISH\r\n$4\r\nroom\r\n$4\r\n"), 0, 13, 10, 255, 13, 10]),
    );
    assert.deepEqual(encodeCommand(["PING"]), bytes("*1\r\n$4\r\nPING\r\n"));
    assert.deepEqual(encodeCommand(["SET", "café"]), bytes("*2\r\n$3\r\nSET\r\n$5\r\ncafé\r\n"));
  });

  it("encodes pieces given as a list as one bulk string", () => {
    assert.deepEqual(
      encodeCommand(["PUBLISH", "r", [Uint8Array.of(1), bytes("ab"), new Uint8Array(0), Uint8Array.of(255)]]),
      new Uint8Array([...bytes("*3\r\n$7\r\nPUBLISH\r\n$1\r\nr\r\n$4\r\n"), 1, 97, 98, 255, 13, 10]),
    );
    assert.deepEqual(encodeCommand(["SET", []]), bytes("*2\r\n$3\r\nSET\r\n$0\r\n\r\n"));
  });

  it("reads simple strings, errors, integers, bulk strings and nulls", () => {
    assert.deepEqual(
      read("+OK\r\n-ERR wrong\r\n:42\r\n:-1\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n_\r\n"),
      [
        bytes("OK"),
        new RespError("ERR wrong"),
        42,
        -1,
        bytes("hello"),
        bytes(""),
        null,
        null,
        null,
      ],
    );
  });

  it("reads a pub/sub message with a binary payload containing CRLF", () => {
    const payload = Uint8Array.of(13, 10, 0, 36, 13, 10);
    const wire = new Uint8Array([...bytes("*3\r\n$7\r\nmessage\r\n$1\r\nt\r\n$6\r\n"), ...payload, 13, 10]);
    assert.deepEqual(read(wire), [[bytes("message"), bytes("t"), payload]]);
  });

  it("reads nested arrays and RESP3 pushes, maps, sets, booleans, doubles and big numbers", () => {
    assert.deepEqual(
      read(
        "*2\r\n*1\r\n:1\r\n*0\r\n>2\r\n+a\r\n:2\r\n%1\r\n+k\r\n:3\r\n~1\r\n#t\r\n,1.5\r\n(12345678901234567890\r\n",
      ),
      [
        [[1], []],
        [bytes("a"), 2],
        [bytes("k"), 3],
        [true],
        1.5,
        12345678901234567890n,
      ],
    );
  });

  it("reads any 64-bit integer, as a bigint where a number would not be exact", () => {
    assert.deepEqual(
      read(
        ":9007199254740991\r\n:9007199254740993\r\n:-9223372036854775808\r\n:1234567890123456\r\n:+5\r\n",
      ),
      [9007199254740991, 9007199254740993n, -9223372036854775808n, 1234567890123456, 5],
    );
  });

  it("reads the RESP3 doubles inf, -inf and nan, and exponents", () => {
    assert.deepEqual(read(",inf\r\n,-inf\r\n,nan\r\n,-2.5e3\r\n,10\r\n"), [
      Infinity,
      -Infinity,
      NaN,
      -2500,
      10,
    ]);
  });

  for (
    const [what, wire] of [
      ["an unknown type byte", "?x\r\n"],
      ["a CR without LF", "+OK\rX\n"],
      ["a bulk string longer than the limit", "$2000\r\n"],
      ["a bulk string without its CRLF", "$2\r\nabXY"],
      ["an integer that is not one", ":12a\r\n"],
      ["an integer of more than 19 digits", ":123456789012345678901\r\n"],
      ["an integer past the 64-bit range", ":9223372036854775808\r\n"],
      ["a double that is not one", ",1.2.3\r\n"],
      ["an array longer than the limit", "*100\r\n"],
      ["arrays nested too deep", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n"],
      ["a line that never ends", "+" + "x".repeat(70_000)],
    ]
  ) {
    it(`refuses ${what} with a RespProtocolError`, () => {
      assert.throws(() => new RespReader(LIMITS).push(bytes(wire)), RespProtocolError);
    });
  }
});
