import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { type HttpError, parseRequestHead, type RequestHead } from "../src/handshake.ts";

const LIMITS = { maxHeadSize: 8192, maxHeaderCount: 100 };
const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

function parsed(text: string): RequestHead {
  const head = parseRequestHead(latin1(text), LIMITS);
  assert.ok(head !== null && !("status" in head), `expected a head, got ${JSON.stringify(head)}`);
  return head;
}

function refusal(text: string): HttpError {
  const head = parseRequestHead(latin1(text), LIMITS);
  assert.ok(head !== null && "status" in head, `expected an error, got ${JSON.stringify(head)}`);
  return head;
}

describe("parseRequestHead", () => {
  it("reads the request line, the fields by lower-case name, and the head's size", () => {
    const text = "POST /a?b=1 HTTP/1.0\r\nHOST: x\r\nX-Custom-Thing: Some Value\r\n\r\nbody";
    const head = parsed(text);
    assert.equal(head.method, "POST");
    assert.equal(head.target, "/a?b=1");
    assert.equal(head.minorVersion, 0);
    assert.equal(head.size, text.length - "body".length);
    assert.deepEqual([...head.headers], [["host", "x"], ["x-custom-thing", "Some Value"]]);
  });

  it("is null until the blank line arrives", () => {
    assert.equal(parseRequestHead(latin1("GET / HTTP/1.1\r\nHost: x\r\n"), LIMITS), null);
  });

  it("matches well-known names in any case and joins repeated fields with a comma", () => {
    const head = parsed("GET / HTTP/1.1\r\nsEc-WeBsOcKeT-pRoToCoL: a\r\nSec-WebSocket-Protocol: b\r\n\r\n");
    assert.deepEqual([...head.headers], [["sec-websocket-protocol", "a, b"]]);
  });

  it("refuses a second Host field with 400 (RFC 9112 §3.2), even an equal or empty one", () => {
    for (const fields of ["Host: a\r\nHost: a", "Host: a\r\nhOST: b", "Host:\r\nHost:"]) {
      assert.deepEqual(refusal(`GET / HTTP/1.1\r\n${fields}\r\n\r\n`), {
        status: 400,
        message: "more than one Host header",
      });
    }
  });

  it("trims spaces and tabs around a value but nothing else, keeping obs-text as Latin-1", () => {
    const head = parsed("GET / HTTP/1.1\r\nA: \t x y \t\r\nB:\xa0caf\xe9\xa0\r\nC:\r\n\r\n");
    assert.equal(head.headers.get("a"), "x y");
    assert.equal(head.headers.get("b"), "\xa0caf\xe9\xa0");
    assert.equal(head.headers.get("c"), "");
  });

  for (
    const [what, field, message] of [
      ["a value with a control character", "A: x\x01y", "invalid header value"],
      ["a value with a bare CR", "A: x\ry", "lines must end with CRLF"],
      ["a value with a bare LF", "A: x\ny", "lines must end with CRLF"],
      ["a value with DEL", "A: x\x7fy", "invalid header value"],
      ["a field with no colon", "no colon here", "malformed header field"],
      ["a space before the colon", "Name : x", "malformed header field"],
      ["an empty name", ": x", "malformed header field"],
      ["a separator in the name", "A/B: x", "malformed header field"],
      ["obsolete line folding", "A: x\r\n  folded", "malformed header field"],
    ]
  ) {
    it(`refuses ${what} with 400 (${message})`, () => {
      assert.deepEqual(refusal(`GET / HTTP/1.1\r\n${field}\r\n\r\n`), { status: 400, message });
    });
  }

  for (
    const line of [
      "GET",
      "GET /",
      "GET / HTTP/1.1 x",
      "GET  / HTTP/1.1",
      "G(T / HTTP/1.1",
      "GET / HTTP/1.x",
    ]
  ) {
    it(`refuses the request line ${JSON.stringify(line)} with 400`, () => {
      assert.deepEqual(refusal(`${line}\r\n\r\n`), { status: 400, message: "malformed request line" });
    });
  }

  it("refuses a line ending in a bare LF at once, before the head is complete", () => {
    const message = "lines must end with CRLF";
    assert.deepEqual(refusal("GET / HTTP/1.1\nHost: x"), { status: 400, message });
    assert.deepEqual(refusal("GET / HTTP/1.1\r\nHost: x\n"), { status: 400, message });
    assert.deepEqual(refusal("GET / HTTP/1.1\r\nHost: x\r\n\n"), { status: 400, message });
    assert.deepEqual(refusal("GET / HTTP/1.1\rHost: x"), { status: 400, message });
    assert.equal(parseRequestHead(latin1("GET / HTTP/1.1\r"), LIMITS), null, "a CR whose LF is still coming");
  });

  it("skips empty lines before the request line, counting them in the head's size", () => {
    const head = parsed("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(head.method, "GET");
    assert.equal(head.size, 4 + "GET / HTTP/1.1\r\nHost: x\r\n\r\n".length);
    assert.equal(parseRequestHead(latin1("\r\n"), LIMITS), null);
  });

  it("answers another major version with 505", () => {
    assert.equal(refusal("GET / HTTP/2.0\r\n\r\n").status, 505);
  });

  it("counts fields against maxHeaderCount (431) and the head against maxHeadSize (431)", () => {
    const fields = "A: 1\r\n".repeat(3);
    const limits = { maxHeadSize: 64, maxHeaderCount: 2 };
    assert.equal(
      (parseRequestHead(latin1(`GET / HTTP/1.1\r\n${fields}\r\n`), limits) as HttpError).status,
      431,
    );
    const long = latin1(`GET / HTTP/1.1\r\nA: ${"x".repeat(64)}\r\n\r\n`);
    assert.equal((parseRequestHead(long, limits) as HttpError).status, 431);
  });
});
