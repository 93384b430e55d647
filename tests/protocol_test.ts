/**
 * RFC 6455 rules end to end: hand-built frames over raw TCP against a real server, checking the
 * exact close code sent, that the TCP connection then ends, and what the handlers were told.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  BINARY,
  CLOSE,
  closePayload,
  concat,
  CONTINUATION,
  frame,
  PING,
  PONG,
  RawClient,
  type ReceivedFrame,
  TEXT,
} from "./helpers/raw_client.ts";
import {
  firstDifference,
  Inbox,
  patternBytes,
  type RecordingServer,
  recordingServer,
  withTimeout,
} from "./helpers/events.ts";
import { delay } from "./helpers/server.ts";
import type { SendStatus, ServerWebSocket } from "../mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (...values: number[]) => Uint8Array.from(values);
const text = (received: ReceivedFrame) => decoder.decode(received.payload);

/** Raw clients opened at paths of their own (so server events can be told apart), destroyed at the end. */
class Clients {
  #clients: RawClient[] = [];
  #count = 0;

  async open(port: number): Promise<{ client: RawClient; path: string }> {
    const path = `/client-${++this.#count}`;
    const client = await RawClient.open(port, path);
    this.#clients.push(client);
    return { client, path };
  }

  destroyAll(): void {
    for (const client of this.#clients.splice(0)) client.destroy();
  }
}

/** A recording server and a pool of raw clients for one `describe` block, made and ended with it. */
function suiteServer(options: Parameters<typeof recordingServer>[0] = {}): {
  readonly rec: RecordingServer;
  readonly clients: Clients;
} {
  const clients = new Clients();
  let rec: RecordingServer | undefined;
  before(() => {
    rec = recordingServer(options);
  });
  after(async () => {
    clients.destroyAll();
    await rec?.server.close();
  });
  return {
    get rec() {
      return rec!;
    },
    clients,
  };
}

/** Sends `data` whole or one byte at a time. */
async function send(client: RawClient, data: Uint8Array, bytewise: boolean): Promise<void> {
  if (bytewise) await client.writeBytewise(data);
  else client.write(data);
}

/**
 * Asserts that the server failed the connection with `code` and `reason`: a close frame carrying
 * them (after `before` other frames, no more), then the end of the TCP connection, and the same
 * code and reason reported to the `close` handler.
 */
async function expectFailure(
  rec: RecordingServer,
  client: RawClient,
  path: string,
  code: number,
  reason: string,
  before = 0,
): Promise<ReceivedFrame[]> {
  const close = await client.readClose();
  assert.equal(close.code, code, `close frame code (reason "${close.reason}")`);
  assert.equal(close.reason, reason, "close frame reason");
  assert.equal(close.skipped.length, before, "frames before the close frame");
  await client.waitForEnd();
  const event = await rec.next("close", path);
  assert.equal(event.code, code, "code reported to the close handler");
  assert.equal(event.reason, close.reason, "reason reported to the close handler");
  return close.skipped;
}

/** Completes a client-initiated closing handshake and checks that the server ends TCP. */
async function closeCleanly(client: RawClient, code = 1000): Promise<void> {
  client.write(frame(CLOSE, closePayload(code)));
  const reply = await client.readClose();
  assert.equal(reply.code, code);
  await client.waitForEnd();
}

/** A frame rule violation and the close code and reason it must cause. */
interface Violation {
  name: string;
  data: Uint8Array;
  code: number;
  reason: string;
  /** Frames the server legitimately sends before failing (echoes of earlier messages). */
  before?: number;
}

// The reasons Wisp names broken rules with, written out here rather than taken from its table.
const UNMASKED = "unmasked client frame";
const RESERVED_BITS = "reserved bits set without an extension";
const CONTROL_TOO_LONG = "control frame over 125 bytes";
const FRAGMENTED_CONTROL = "fragmented control frame";
const STRAY_CONTINUATION = "continuation frame without a message";
const NESTED_MESSAGE = "new message inside a fragmented message";
const TOP_BIT = "64-bit length with the top bit set";
const BAD_TEXT = "invalid UTF-8 in text message";

const RESERVED_OPCODES = [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf];

const FRAME_VIOLATIONS: Violation[] = [
  {
    name: "an unmasked client frame",
    data: frame(TEXT, "hi", { mask: false }),
    code: 1002,
    reason: UNMASKED,
  },
  { name: "an unmasked ping", data: frame(PING, "p", { mask: false }), code: 1002, reason: UNMASKED },
  {
    name: "RSV1 set without an extension",
    data: frame(TEXT, "hi", { rsv: 0x40 }),
    code: 1002,
    reason: RESERVED_BITS,
  },
  { name: "RSV2 set", data: frame(TEXT, "hi", { rsv: 0x20 }), code: 1002, reason: RESERVED_BITS },
  { name: "RSV3 set", data: frame(BINARY, "hi", { rsv: 0x10 }), code: 1002, reason: RESERVED_BITS },
  { name: "RSV1 set on a ping", data: frame(PING, "p", { rsv: 0x40 }), code: 1002, reason: RESERVED_BITS },
  ...RESERVED_OPCODES.map((opcode) => ({
    name: `reserved opcode 0x${opcode.toString(16)}`,
    data: frame(opcode, "x"),
    code: 1002,
    reason: `reserved opcode 0x${opcode.toString(16)}`,
  })),
  {
    name: "a ping with a 126-byte payload",
    data: frame(PING, new Uint8Array(126)),
    code: 1002,
    reason: CONTROL_TOO_LONG,
  },
  {
    name: "a pong with a 126-byte payload",
    data: frame(PONG, new Uint8Array(126)),
    code: 1002,
    reason: CONTROL_TOO_LONG,
  },
  {
    name: "a close with a 126-byte payload",
    data: frame(CLOSE, new Uint8Array(126)),
    code: 1002,
    reason: CONTROL_TOO_LONG,
  },
  {
    name: "a fragmented ping (FIN=0)",
    data: frame(PING, "p", { fin: false }),
    code: 1002,
    reason: FRAGMENTED_CONTROL,
  },
  {
    name: "a fragmented close (FIN=0)",
    data: frame(CLOSE, closePayload(1000), { fin: false }),
    code: 1002,
    reason: FRAGMENTED_CONTROL,
  },
  {
    name: "a continuation frame with no message started",
    data: frame(CONTINUATION, "x"),
    code: 1002,
    reason: STRAY_CONTINUATION,
  },
  {
    name: "a continuation frame after a complete message",
    data: concat(frame(TEXT, "done"), frame(CONTINUATION, "x")),
    code: 1002,
    reason: STRAY_CONTINUATION,
    before: 1,
  },
  {
    name: "a new text frame inside a fragmented message",
    data: concat(frame(TEXT, "a", { fin: false }), frame(TEXT, "b")),
    code: 1002,
    reason: NESTED_MESSAGE,
  },
  {
    name: "a new binary frame inside a fragmented text message",
    data: concat(frame(TEXT, "a", { fin: false }), frame(BINARY, "b")),
    code: 1002,
    reason: NESTED_MESSAGE,
  },
  {
    name: "a new text frame inside a fragmented binary message",
    data: concat(
      frame(BINARY, "a", { fin: false }),
      frame(CONTINUATION, "b", { fin: false }),
      frame(TEXT, "c"),
    ),
    code: 1002,
    reason: NESTED_MESSAGE,
  },
  {
    name: "a 64-bit length with the top bit set",
    data: frame(BINARY, new Uint8Array(0), { lengthBytes: bytes(127, 0x80, 0, 0, 0, 0, 0, 0, 0) }),
    code: 1002,
    reason: TOP_BIT,
  },
  {
    name: "a 64-bit length of all ones",
    data: frame(BINARY, new Uint8Array(0), {
      lengthBytes: bytes(127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
    }),
    code: 1002,
    reason: TOP_BIT,
  },
];

const UTF8_VIOLATIONS: Violation[] = [
  {
    name: "a text frame with a 0xFF byte",
    data: frame(TEXT, bytes(0x68, 0x69, 0xff)),
    code: 1007,
    reason: BAD_TEXT,
  },
  {
    name: "a text frame with a lone continuation byte",
    data: frame(TEXT, bytes(0x61, 0x80)),
    code: 1007,
    reason: BAD_TEXT,
  },
  {
    name: "a text frame with an overlong encoding",
    data: frame(TEXT, bytes(0xc0, 0xaf)),
    code: 1007,
    reason: BAD_TEXT,
  },
  {
    name: "a text frame with a surrogate",
    data: frame(TEXT, bytes(0xed, 0xa0, 0x80)),
    code: 1007,
    reason: BAD_TEXT,
  },
  {
    name: "a text frame above U+10FFFF",
    data: frame(TEXT, bytes(0xf4, 0x90, 0x80, 0x80)),
    code: 1007,
    reason: BAD_TEXT,
  },
  {
    name: "a text frame ending inside a sequence",
    data: frame(TEXT, bytes(0x61, 0xe2, 0x82)),
    code: 1007,
    reason: BAD_TEXT,
  },
  {
    name: "a fragmented text message ending inside a sequence",
    data: concat(frame(TEXT, "abc", { fin: false }), frame(CONTINUATION, bytes(0xe2, 0x82))),
    code: 1007,
    reason: BAD_TEXT,
  },
  {
    name: "a fragmented text message whose empty last fragment leaves a sequence open",
    data: concat(frame(TEXT, bytes(0x61, 0xf0, 0x9f), { fin: false }), frame(CONTINUATION)),
    code: 1007,
    reason: BAD_TEXT,
  },
  {
    name: "a close reason that is not UTF-8",
    data: frame(CLOSE, concat(closePayload(1000), bytes(0x61, 0xff))),
    code: 1007,
    reason: "invalid UTF-8 in close reason",
  },
];

const CLOSE_VIOLATIONS: Violation[] = [
  {
    name: "a close frame with a 1-byte payload",
    data: frame(CLOSE, bytes(0x03)),
    code: 1002,
    reason: "close frame with a 1-byte payload",
  },
  ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((code) => ({
    name: `close code ${code}`,
    data: frame(CLOSE, closePayload(code, "reason")),
    code: 1002,
    reason: `invalid close code ${code}`,
  })),
];

describe("protocol: frame, UTF-8 and close-frame violations", () => {
  const suite = suiteServer({ closeTimeout: 1000 });

  for (const violation of [...FRAME_VIOLATIONS, ...UTF8_VIOLATIONS, ...CLOSE_VIOLATIONS]) {
    it(`${violation.name} closes with ${violation.code} "${violation.reason}"`, async () => {
      const { client, path } = await suite.clients.open(suite.rec.port);
      client.write(violation.data);
      await expectFailure(suite.rec, client, path, violation.code, violation.reason, violation.before);
    });
  }

  // The same violations split into single bytes: the parser and validator must not depend on how
  // TCP cuts the stream (and text split across reads takes the incremental UTF-8 path).
  for (const violation of [...FRAME_VIOLATIONS, ...UTF8_VIOLATIONS, ...CLOSE_VIOLATIONS.slice(0, 4)]) {
    it(`${violation.name}, sent byte by byte, closes with ${violation.code}`, async () => {
      const { client, path } = await suite.clients.open(suite.rec.port);
      await client.writeBytewise(violation.data);
      await expectFailure(suite.rec, client, path, violation.code, violation.reason, violation.before);
    });
  }

  it("a reserved opcode does not reach the message handler", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(frame(0x3, "x"));
    await expectFailure(suite.rec, client, path, 1002, "reserved opcode 0x3");
    assert.equal(
      suite.rec.events.items.filter((event) => event.path === path && event.type === "message").length,
      0,
    );
  });
});

describe("protocol: maxPayloadLength (1000 bytes)", () => {
  const LIMIT = 1000;
  const TOO_BIG = "message over maxPayloadLength (1000 bytes)";
  const suite = suiteServer({ maxPayloadLength: LIMIT, closeTimeout: 1000 });

  it("refuses a single frame one byte over the limit at its header, before any payload (1009)", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    // Only the header, announcing 1001 bytes: the payload is never sent.
    client.write(frame(BINARY, new Uint8Array(0), { lengthBytes: bytes(126, 0x03, 0xe9) }));
    await expectFailure(suite.rec, client, path, 1009, TOO_BIG);
  });

  it("refuses a text frame announcing a 64-bit length far over the limit at its header (1009)", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(frame(TEXT, new Uint8Array(0), { lengthBytes: bytes(127, 0, 0, 1, 0, 0, 0, 0, 0) }));
    await expectFailure(suite.rec, client, path, 1009, TOO_BIG);
  });

  it("refuses a fragmented message once the sum of its fragments passes the limit (1009)", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(frame(BINARY, new Uint8Array(600), { fin: false }));
    client.write(frame(CONTINUATION, new Uint8Array(300), { fin: false }));
    // 600 + 300 + 101 = 1001: only the header of the last fragment is sent.
    client.write(frame(CONTINUATION, new Uint8Array(0), { lengthBytes: bytes(101) }));
    await expectFailure(suite.rec, client, path, 1009, TOO_BIG);
    assert.equal(
      suite.rec.events.items.filter((event) => event.path === path && event.type === "message").length,
      0,
    );
  });

  it("refuses a fragmented text message passing the limit (1009)", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(frame(TEXT, "a".repeat(LIMIT), { fin: false }));
    client.write(frame(CONTINUATION, "b"));
    await expectFailure(suite.rec, client, path, 1009, TOO_BIG);
  });

  it("accepts a single-frame message of exactly the limit (inclusive)", async () => {
    const { client } = await suite.clients.open(suite.rec.port);
    const payload = patternBytes(LIMIT, 1);
    client.write(frame(BINARY, payload));
    const echoed = await client.readFrame();
    assert.equal(echoed.opcode, BINARY);
    assert.equal(firstDifference(echoed.payload, payload), -1);
    await closeCleanly(client);
  });

  it("accepts a fragmented message of exactly the limit", async () => {
    const { client } = await suite.clients.open(suite.rec.port);
    const message = "x".repeat(400) + "y".repeat(599) + "z";
    client.write(frame(TEXT, message.slice(0, 400), { fin: false }));
    client.write(frame(CONTINUATION, message.slice(400, 999), { fin: false }));
    client.write(frame(CONTINUATION, message.slice(999)));
    const echoed = await client.readFrame();
    assert.equal(echoed.opcode, TEXT);
    assert.equal(text(echoed), message);
    await closeCleanly(client);
  });

  it("counts control frames between fragments apart from the message size", async () => {
    const { client } = await suite.clients.open(suite.rec.port);
    client.write(frame(BINARY, new Uint8Array(900), { fin: false }));
    client.write(frame(PING, new Uint8Array(125)));
    client.write(frame(CONTINUATION, new Uint8Array(100)));
    const pong = await client.readFrame();
    assert.equal(pong.opcode, PONG);
    const echoed = await client.readFrame();
    assert.equal(echoed.payload.length, 1000);
    await closeCleanly(client);
  });
});

describe("protocol: UTF-8 across fragments", () => {
  const suite = suiteServer({ closeTimeout: 1000 });

  it("fails fast with 1007 on an invalid fragment, before the message's last fragment", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(frame(TEXT, "hello ", { fin: false }));
    client.write(frame(CONTINUATION, bytes(0x77, 0xff, 0x77), { fin: false }));
    // No final fragment is ever sent.
    await expectFailure(suite.rec, client, path, 1007, BAD_TEXT);
  });

  it("fails fast with 1007 when a sequence split across fragments continues wrongly", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    // E0 must be followed by A0..BF; E0 80 starts an overlong form.
    client.write(frame(TEXT, bytes(0x61, 0xe0), { fin: false }));
    client.write(frame(CONTINUATION, bytes(0x80, 0x80), { fin: false }));
    await expectFailure(suite.rec, client, path, 1007, BAD_TEXT);
  });

  it("fails fast with 1007 on an invalid first fragment", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(frame(TEXT, bytes(0x61, 0xc1, 0x81), { fin: false }));
    await expectFailure(suite.rec, client, path, 1007, BAD_TEXT);
  });

  it("accepts a two-byte sequence split across two fragments", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    const cafe = encoder.encode("café"); // é is C3 A9
    client.write(frame(TEXT, cafe.subarray(0, 4), { fin: false }));
    client.write(frame(CONTINUATION, cafe.subarray(4)));
    const echoed = await client.readFrame();
    assert.equal(echoed.opcode, TEXT);
    assert.equal(text(echoed), "café");
    const event = await suite.rec.next("message", path);
    assert.equal(event.data, "café");
    await closeCleanly(client);
  });

  it("accepts a four-byte sequence split across three fragments", async () => {
    const { client } = await suite.clients.open(suite.rec.port);
    const emoji = encoder.encode("a😀!"); // 61 F0 9F 98 80 21
    client.write(frame(TEXT, emoji.subarray(0, 2), { fin: false }));
    client.write(frame(CONTINUATION, emoji.subarray(2, 4), { fin: false }));
    client.write(frame(CONTINUATION, emoji.subarray(4)));
    const echoed = await client.readFrame();
    assert.equal(text(echoed), "a😀!");
    await closeCleanly(client);
  });

  it("accepts a text message with empty fragments", async () => {
    const { client } = await suite.clients.open(suite.rec.port);
    client.write(frame(TEXT, "", { fin: false }));
    client.write(frame(CONTINUATION, "ab", { fin: false }));
    client.write(frame(CONTINUATION, "", { fin: false }));
    client.write(frame(CONTINUATION, "c"));
    const echoed = await client.readFrame();
    assert.equal(text(echoed), "abc");
    await closeCleanly(client);
  });

  it("validates each message afresh after a split sequence", async () => {
    const { client } = await suite.clients.open(suite.rec.port);
    const euro = encoder.encode("€"); // E2 82 AC
    client.write(frame(TEXT, euro.subarray(0, 1), { fin: false }));
    client.write(frame(CONTINUATION, euro.subarray(1)));
    client.write(frame(TEXT, "next"));
    assert.equal(text(await client.readFrame()), "€");
    assert.equal(text(await client.readFrame()), "next");
    await closeCleanly(client);
  });

  it("echoes text holding an encoded U+FFFD (valid UTF-8), whole and in fragments", async () => {
    const { client } = await suite.clients.open(suite.rec.port);
    const message = "a\uFFFDb \uFFFD€";
    client.write(frame(TEXT, message));
    const whole = await client.readFrame();
    assert.equal(whole.opcode, TEXT);
    assert.equal(text(whole), message);
    const encoded = new TextEncoder().encode(message);
    client.write(frame(TEXT, encoded.subarray(0, 2), { fin: false })); // splits the U+FFFD
    client.write(frame(CONTINUATION, encoded.subarray(2)));
    assert.equal(text(await client.readFrame()), message);
    await closeCleanly(client);
  });

  it("keeps a leading U+FEFF (a byte order mark is text like any other), whole and in fragments", async () => {
    const { client } = await suite.clients.open(suite.rec.port);
    const message = "\uFEFFhi";
    client.write(frame(TEXT, message));
    const encoded = new TextEncoder().encode(message);
    assert.deepEqual([...encoded], [0xef, 0xbb, 0xbf, 0x68, 0x69]);
    assert.deepEqual((await client.readFrame()).payload, encoded);
    client.write(frame(TEXT, encoded.subarray(0, 2), { fin: false }));
    client.write(frame(CONTINUATION, encoded.subarray(2)));
    assert.deepEqual((await client.readFrame()).payload, encoded);
    await closeCleanly(client);
  });

  it("fails text with an invalid sequence after an encoded U+FFFD with 1007", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(frame(TEXT, concat(new TextEncoder().encode("ok \uFFFD"), bytes(0xff))));
    await expectFailure(suite.rec, client, path, 1007, BAD_TEXT);
  });

  it("does not validate binary messages as UTF-8", async () => {
    const { client } = await suite.clients.open(suite.rec.port);
    client.write(frame(BINARY, bytes(0xff, 0xfe), { fin: false }));
    client.write(frame(CONTINUATION, bytes(0xc0)));
    const echoed = await client.readFrame();
    assert.equal(echoed.opcode, BINARY);
    assert.deepEqual([...echoed.payload], [0xff, 0xfe, 0xc0]);
    await closeCleanly(client);
  });
});

describe("protocol: the closing handshake from the client", () => {
  const suite = suiteServer({ closeTimeout: 1000 });

  for (const code of [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999]) {
    it(`echoes close code ${code} and reports it with the reason`, async () => {
      const { client, path } = await suite.clients.open(suite.rec.port);
      client.write(frame(CLOSE, closePayload(code, `reason ${code} é`)));
      const reply = await client.readClose();
      assert.equal(reply.code, code);
      assert.deepEqual(reply.skipped, []);
      await client.waitForEnd();
      const event = await suite.rec.next("close", path);
      assert.equal(event.code, code);
      assert.equal(event.reason, `reason ${code} é`);
    });
  }

  it("answers an empty close payload with an empty close and reports 1005", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(frame(CLOSE));
    const reply = await client.readFrame();
    assert.equal(reply.opcode, CLOSE);
    assert.equal(reply.payload.length, 0);
    await client.waitForEnd();
    const event = await suite.rec.next("close", path);
    assert.equal(event.code, 1005);
    assert.equal(event.reason, "");
  });

  it("accepts a close reason of the maximum 123 bytes", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    const reason = "é".repeat(61) + "!"; // 123 bytes of UTF-8
    client.write(frame(CLOSE, closePayload(4123, reason)));
    const reply = await client.readClose();
    assert.equal(reply.code, 4123);
    await client.waitForEnd();
    const event = await suite.rec.next("close", path);
    assert.equal(event.reason, reason);
  });

  it("ignores frames that follow the close frame", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(concat(frame(CLOSE, closePayload(1000)), frame(TEXT, "too late"), frame(PING, "late")));
    const reply = await client.readClose();
    assert.equal(reply.code, 1000);
    assert.deepEqual(reply.skipped, []);
    await client.waitForEnd();
    await suite.rec.next("close", path);
    assert.equal(client.unread, 0, "nothing after the close frame");
    const handled = suite.rec.events.items.filter((event) => event.path === path && event.type !== "open");
    assert.deepEqual(handled.map((event) => event.type), [], "no message or ping handled after the close");
  });

  it("drops a partial message when a close frame arrives between its fragments", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(concat(frame(TEXT, "part", { fin: false }), frame(CLOSE, closePayload(1000))));
    const reply = await client.readClose();
    assert.equal(reply.code, 1000);
    assert.deepEqual(reply.skipped, []);
    await client.waitForEnd();
    const event = await suite.rec.next("close", path);
    assert.equal(event.code, 1000);
    assert.equal(suite.rec.events.items.filter((e) => e.path === path && e.type === "message").length, 0);
  });
});

describe("protocol: ping and pong", () => {
  const suite = suiteServer({ closeTimeout: 1000 });

  it("answers an empty ping with an empty pong and tells the ping handler", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(frame(PING));
    const pong = await client.readFrame();
    assert.equal(pong.opcode, PONG);
    assert.equal(pong.fin, true);
    assert.equal(pong.masked, false);
    assert.equal(pong.payload.length, 0);
    const event = await suite.rec.next("ping", path);
    assert.equal(event.data.length, 0);
    await closeCleanly(client);
  });

  it("answers a 125-byte ping with a pong carrying the same payload", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    const payload = patternBytes(125, 3);
    client.write(frame(PING, payload));
    const pong = await client.readFrame();
    assert.equal(pong.opcode, PONG);
    assert.equal(firstDifference(pong.payload, payload), -1);
    const event = await suite.rec.next("ping", path);
    assert.equal(firstDifference(event.data, payload), -1);
    await closeCleanly(client);
  });

  it("answers each of several pings in order", async () => {
    const { client } = await suite.clients.open(suite.rec.port);
    client.write(concat(frame(PING, "1"), frame(PING, "2"), frame(PING, "3")));
    const payloads = [];
    for (let i = 0; i < 3; i++) payloads.push(text(await client.readFrame()));
    assert.deepEqual(payloads, ["1", "2", "3"]);
    await closeCleanly(client);
  });

  it("ignores an unsolicited pong: no reply, the connection stays open and echoes", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(frame(PONG, "unsolicited"));
    client.write(frame(TEXT, "still here"));
    const next = await client.readFrame();
    assert.equal(next.opcode, TEXT, "the first frame back is the echo, not a reply to the pong");
    assert.equal(text(next), "still here");
    const event = await suite.rec.next("pong", path);
    assert.equal(decoder.decode(event.data), "unsolicited");
    await closeCleanly(client);
  });

  it("answers control frames between fragments at once, and still assembles the message", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    client.write(frame(TEXT, "Hel", { fin: false }));
    client.write(frame(PING, "p1"));
    // The pong comes before the message is complete.
    const pong1 = await client.readFrame();
    assert.equal(pong1.opcode, PONG);
    assert.equal(text(pong1), "p1");
    client.write(frame(CONTINUATION, "lo, ", { fin: false }));
    client.write(frame(PONG, "unsolicited"));
    client.write(frame(PING, "p2"));
    const pong2 = await client.readFrame();
    assert.equal(text(pong2), "p2");
    client.write(frame(CONTINUATION, "world"));
    const echoed = await client.readFrame();
    assert.equal(echoed.opcode, TEXT);
    assert.equal(text(echoed), "Hello, world");
    assert.equal((await suite.rec.next("message", path)).data, "Hello, world");
    await closeCleanly(client);
  });
});

describe("protocol: input split into single bytes", () => {
  const suite = suiteServer({ closeTimeout: 1000 });

  /** A fragmented text message (with a 16-bit length fragment) with a ping between fragments. */
  const long = "ü".repeat(100); // 200 bytes: a 16-bit length
  const interleaved = concat(
    frame(TEXT, "start ", { fin: false }),
    frame(PING, "between"),
    frame(CONTINUATION, long, { fin: false }),
    frame(PONG, "ignored"),
    frame(CONTINUATION, " end"),
    frame(BINARY, bytes(0, 1, 2, 255)),
  );

  /** Sends `interleaved` and returns what came back, in order. */
  async function exchange(bytewise: boolean): Promise<Array<{ opcode: number; payload: number[] }>> {
    const { client } = await suite.clients.open(suite.rec.port);
    await send(client, interleaved, bytewise);
    const received = [];
    for (let i = 0; i < 3; i++) {
      const next = await client.readFrame();
      received.push({ opcode: next.opcode, payload: [...next.payload] });
    }
    await closeCleanly(client);
    return received;
  }

  it("echoes a fragmented message with an interleaved ping the same whole or byte by byte", async () => {
    const expected = [
      { opcode: PONG, payload: [...encoder.encode("between")] },
      { opcode: TEXT, payload: [...encoder.encode(`start ${long} end`)] },
      { opcode: BINARY, payload: [0, 1, 2, 255] },
    ];
    assert.deepEqual(await exchange(false), expected);
    assert.deepEqual(await exchange(true), expected);
  });

  it("completes a closing handshake sent byte by byte", async () => {
    const { client, path } = await suite.clients.open(suite.rec.port);
    await client.writeBytewise(frame(CLOSE, closePayload(4321, "split")));
    const reply = await client.readClose();
    assert.equal(reply.code, 4321);
    await client.waitForEnd();
    const event = await suite.rec.next("close", path);
    assert.deepEqual([event.code, event.reason], [4321, "split"]);
  });
});

describe("protocol: large messages", () => {
  const suite = suiteServer({ closeTimeout: 1000 });

  it("echoes a 4 MiB message sent as 65,536 fragments of 64 bytes intact", async () => {
    const { client } = await suite.clients.open(suite.rec.port);
    const message = patternBytes(4 * 1024 * 1024, 5);
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 65536; i++) {
      const piece = message.subarray(i * 64, (i + 1) * 64);
      frames.push(frame(i === 0 ? BINARY : CONTINUATION, piece, { fin: i === 65535 }));
    }
    // Big writes: 4096 frames (280 KiB) each.
    for (let i = 0; i < frames.length; i += 4096) client.write(concat(...frames.slice(i, i + 4096)));
    const echoed = await client.readFrame(20_000);
    assert.equal(echoed.opcode, BINARY);
    assert.equal(echoed.fin, true);
    assert.equal(echoed.payload.length, message.length);
    assert.equal(firstDifference(echoed.payload, message), -1);
    await closeCleanly(client);
  });

  it("echoes a 1 MiB text message sent in one frame", async () => {
    const { client } = await suite.clients.open(suite.rec.port);
    const message = "0123456789abcdef€".repeat(55_000);
    client.write(frame(TEXT, message));
    const echoed = await client.readFrame(20_000);
    assert.equal(echoed.opcode, TEXT);
    assert.equal(text(echoed) === message, true);
    await closeCleanly(client);
  });
});

describe("protocol: server-initiated close and failing handlers", () => {
  let rec: RecordingServer;
  const clients = new Clients();
  const notes = new Inbox<{ path: string; note: unknown }>();
  const thrown = new Map<string, Error>();
  before(() => {
    rec = recordingServer({
      closeTimeout: 300,
      websocket: {
        message(ws, data) {
          const path = new URL(ws.url).pathname;
          if (data === "close-me") {
            ws.send("before");
            ws.close(4000, "bye");
            notes.push({ path, note: { after: ws.send("after"), readyState: ws.readyState } });
          } else if (data === "throw") {
            const error = new Error(`boom ${path}`);
            thrown.set(path, error);
            throw error;
          } else if (data === "reject") {
            return (async () => {
              await delay(1);
              const error = new Error(`async boom ${path}`);
              thrown.set(path, error);
              throw error;
            })();
          } else if (data === "bad-close") {
            ws.send(JSON.stringify(tryBadCloses(ws)));
          } else if (data === "close-123") {
            ws.close(1000, "é".repeat(61) + "!");
          } else {
            ws.send(data);
          }
        },
      },
    });
  });
  after(async () => {
    clients.destroyAll();
    await rec.server.close();
  });

  /** Calls `close` with arguments it must refuse, returning the error names it threw. */
  function tryBadCloses(ws: ServerWebSocket): Record<string, string> {
    const results: Record<string, string> = {};
    const attempts: Array<[string, unknown, unknown]> = [
      ["1005", 1005, ""],
      ["1006", 1006, ""],
      ["1015", 1015, ""],
      ["1004", 1004, ""],
      ["999", 999, ""],
      ["2999", 2999, ""],
      ["5000", 5000, ""],
      ["1000.5", 1000.5, ""],
      ["124 ASCII bytes", 1000, "x".repeat(124)],
      ["124 UTF-8 bytes", 1000, "é".repeat(62)],
      ['code "1000"', "1000", ""],
      ["reason null", 1000, null],
      ["reason {}", 1000, {}],
    ];
    for (const [name, code, reason] of attempts) {
      try {
        ws.close(code as number, reason as string);
        results[name] = "no error";
      } catch (error) {
        results[name] = (error as Error).name;
      }
    }
    results.readyState = String(ws.readyState);
    return results;
  }

  it("sends the message, then the close frame, and ends TCP after the client's reply", async () => {
    const { client, path } = await clients.open(rec.port);
    client.write(frame(TEXT, "close-me"));
    const first = await client.readFrame();
    assert.equal(first.opcode, TEXT);
    assert.equal(text(first), "before");
    const second = await client.readFrame();
    assert.equal(second.opcode, CLOSE);
    assert.equal((second.payload[0] << 8) | second.payload[1], 4000);
    assert.equal(decoder.decode(second.payload.subarray(2)), "bye");
    const { note } = await notes.take((n) => n.path === path);
    assert.deepEqual(note, { after: "dropped", readyState: 2 }, "send after close is dropped; CLOSING");
    assert.equal(client.ended, false, "the server waits for the client's close frame");
    client.write(frame(CLOSE, closePayload(4000)));
    await client.waitForEnd();
    const event = await rec.next("close", path);
    assert.equal(event.code, 4000);
    assert.equal(client.unread, 0, "no second close frame");
  });

  it("drops the connection after closeTimeout when the client never replies (1006)", async () => {
    const { client, path } = await clients.open(rec.port);
    client.write(frame(TEXT, "close-me"));
    assert.equal(text(await client.readFrame()), "before");
    assert.equal((await client.readFrame()).opcode, CLOSE);
    await client.waitForEnd(3000);
    const event = await rec.next("close", path, 3000);
    assert.equal(event.code, 1006);
  });

  it("closes with 1011 and calls the error handler when a handler throws", async () => {
    const { client, path } = await clients.open(rec.port);
    client.write(frame(TEXT, "throw"));
    const close = await client.readClose();
    assert.deepEqual([close.code, close.reason], [1011, "handler failed"]);
    assert.deepEqual(close.skipped, []);
    const error = await rec.next("error", path);
    assert.equal(error.error, thrown.get(path));
    client.write(frame(CLOSE, closePayload(1011)));
    await client.waitForEnd();
    assert.equal((await rec.next("close", path)).code, 1011, "the client's reply");
  });

  it("closes with 1011 and calls the error handler when an async handler rejects", async () => {
    const { client, path } = await clients.open(rec.port);
    client.write(frame(TEXT, "reject"));
    const close = await client.readClose();
    assert.deepEqual([close.code, close.reason], [1011, "handler failed"]);
    const error = await rec.next("error", path);
    assert.equal(error.error, thrown.get(path));
    assert.match((error.error as Error).message, /^async boom/);
    client.write(frame(CLOSE, closePayload(1011)));
    await client.waitForEnd();
  });

  it("leaves other connections unaffected when one handler throws", async () => {
    const other = await clients.open(rec.port);
    const failing = await clients.open(rec.port);
    failing.client.write(frame(TEXT, "throw"));
    assert.equal((await failing.client.readClose()).code, 1011);
    failing.client.write(frame(CLOSE, closePayload(1011)));
    await failing.client.waitForEnd();
    other.client.write(frame(TEXT, "unaffected"));
    const echoed = await other.client.readFrame();
    assert.equal(text(echoed), "unaffected");
    await closeCleanly(other.client);
  });

  it("refuses close codes that may not be sent and reasons over 123 bytes with RangeError, other types with TypeError", async () => {
    const { client } = await clients.open(rec.port);
    client.write(frame(TEXT, "bad-close"));
    const results = JSON.parse(text(await client.readFrame()));
    assert.deepEqual(results, {
      "1005": "RangeError",
      "1006": "RangeError",
      "1015": "RangeError",
      "1004": "RangeError",
      "999": "RangeError",
      "2999": "RangeError",
      "5000": "RangeError",
      "1000.5": "RangeError",
      "124 ASCII bytes": "RangeError",
      "124 UTF-8 bytes": "RangeError",
      'code "1000"': "TypeError",
      "reason null": "TypeError",
      "reason {}": "TypeError",
      readyState: "1",
    });
    // The refused calls left the socket open.
    client.write(frame(TEXT, "still open"));
    assert.equal(text(await client.readFrame()), "still open");
    await closeCleanly(client);
  });

  it("sends a close reason of exactly 123 bytes", async () => {
    const { client } = await clients.open(rec.port);
    client.write(frame(TEXT, "close-123"));
    const close = await client.readClose();
    assert.equal(close.code, 1000);
    assert.equal(close.reason, "é".repeat(61) + "!");
    client.write(frame(CLOSE, closePayload(1000)));
    await client.waitForEnd();
  });
});

describe("protocol: sending and backpressure", () => {
  const MiB = 1024 * 1024;
  const clients = new Clients();
  const servers: RecordingServer[] = [];
  after(async () => {
    clients.destroyAll();
    await Promise.all(servers.map((rec) => rec.server.close()));
  });

  it("returns 'queued' with bufferedAmount > 0 while the client does not read, then drains", async () => {
    const notes = new Inbox<{ statuses: SendStatus[]; buffered: number }>();
    const rec = recordingServer({
      closeTimeout: 1000,
      websocket: {
        async message(ws) {
          const statuses: SendStatus[] = [];
          let buffered = 0;
          const chunk = patternBytes(MiB, 9);
          // At most 24 MiB, under the default 32 MiB backlog limit.
          for (let i = 0; i < 24; i++) {
            chunk[0] = i;
            const status = ws.send(chunk);
            chunk[0] = 0xee; // send copied the data: changing the buffer now must not matter
            statuses.push(status);
            if (status !== "sent") {
              buffered = ws.bufferedAmount;
              break;
            }
            await delay(1);
          }
          notes.push({ statuses, buffered });
        },
      },
    });
    servers.push(rec);
    const { client, path } = await clients.open(rec.port);
    client.pause();
    client.write(frame(TEXT, "flood"));
    const { statuses, buffered } = await notes.take(() => true, 10_000);
    assert.equal(statuses.at(-1), "queued", `statuses: ${statuses.join(",")}`);
    assert.ok(statuses.slice(0, -1).every((status) => status === "sent"));
    assert.ok(buffered > 0, "bufferedAmount while queued");
    client.resume();
    const expected = patternBytes(MiB, 9);
    for (let i = 0; i < statuses.length; i++) {
      const received = await client.readFrame(10_000);
      assert.equal(received.opcode, BINARY);
      assert.equal(received.payload.length, MiB);
      assert.equal(received.payload[0], i, "messages arrive in order");
      assert.equal(firstDifference(received.payload.subarray(1), expected.subarray(1)), -1);
    }
    await rec.next("drain", path, 10_000);
    await closeCleanly(client);
  });

  it("drops a client that does not read once the backlog passes maxBufferedAmount", async () => {
    const notes = new Inbox<{ statuses: SendStatus[]; after: SendStatus; readyState: number }>();
    const rec = recordingServer({
      closeTimeout: 1000,
      maxBufferedAmount: MiB,
      websocket: {
        async message(ws) {
          const statuses: SendStatus[] = [];
          const chunk = new Uint8Array(256 * 1024);
          // At most 200 × 256 KiB = 50 MiB, far more than the socket buffers hold.
          for (let i = 0; i < 200; i++) {
            const status = ws.send(chunk);
            statuses.push(status);
            if (status === "dropped") break;
            await delay(1);
          }
          notes.push({ statuses, after: ws.send("after"), readyState: ws.readyState });
        },
      },
    });
    servers.push(rec);
    const { client, path } = await clients.open(rec.port);
    client.pause();
    client.write(frame(TEXT, "flood"));
    const note = await notes.take(() => true, 10_000);
    assert.equal(note.statuses.at(-1), "dropped", `statuses: ${note.statuses.join(",")}`);
    assert.equal(note.after, "dropped", "send after the drop");
    assert.equal(note.readyState, 3);
    const event = await rec.next("close", path);
    assert.equal(event.code, 1006);
    client.resume();
    await client.waitForEnd();
  });

  it("delivers several sends from one handler call, in order and intact", async () => {
    const big = patternBytes(100_000, 2);
    const words = new Uint16Array([0x0102, 0x0304, 0x0506]);
    const view = words.subarray(1); // a view that does not start at its buffer's beginning
    const buffer = bytes(9, 8, 7).buffer;
    const rec = recordingServer({
      websocket: {
        message(ws) {
          const statuses = [
            ws.send("one"),
            ws.send(big),
            ws.send(view),
            ws.send(new DataView(buffer, 1, 2)),
            ws.send(buffer),
            ws.send(""),
            ws.send(new Uint8Array(0)),
          ];
          ws.send(JSON.stringify(statuses));
        },
      },
    });
    servers.push(rec);
    const { client } = await clients.open(rec.port);
    client.write(frame(TEXT, "go"));
    const received: ReceivedFrame[] = [];
    for (let i = 0; i < 8; i++) received.push(await client.readFrame());
    assert.deepEqual(received.map((f) => f.opcode), [
      TEXT,
      BINARY,
      BINARY,
      BINARY,
      BINARY,
      TEXT,
      BINARY,
      TEXT,
    ]);
    assert.ok(received.every((f) => f.fin && !f.masked && f.rsv === 0));
    assert.equal(text(received[0]), "one");
    assert.equal(firstDifference(received[1].payload, big), -1);
    assert.deepEqual([...received[2].payload], [
      ...new Uint8Array(view.buffer, view.byteOffset, view.byteLength),
    ]);
    assert.deepEqual([...received[3].payload], [8, 7]);
    assert.deepEqual([...received[4].payload], [9, 8, 7]);
    assert.equal(received[5].payload.length, 0);
    assert.equal(received[6].payload.length, 0);
    const statuses = JSON.parse(text(received[7]));
    assert.equal(statuses.length, 7);
    assert.ok(statuses.every((status: string) => status === "sent" || status === "queued"));
    await closeCleanly(client);
  });
});

describe("protocol: idle connections", () => {
  const clients = new Clients();
  const servers: RecordingServer[] = [];
  after(async () => {
    clients.destroyAll();
    await Promise.all(servers.map((rec) => rec.server.close()));
  });

  function idleServer(sendPings: boolean, idleTimeout = 200): RecordingServer {
    const rec = recordingServer({ idleTimeout, sendPings, closeTimeout: 1000 });
    servers.push(rec);
    return rec;
  }

  it("pings a silent client, then drops it when it does not answer (1006)", async () => {
    const rec = idleServer(true);
    const { client, path } = await clients.open(rec.port);
    const ping = await client.readFrame(3000);
    assert.equal(ping.opcode, PING);
    await client.waitForEnd(3000);
    assert.equal(client.ended, true);
    assert.equal(client.unread, 0, "dropped without a close frame");
    const event = await rec.next("close", path, 3000);
    assert.equal(event.code, 1006);
  });

  it("keeps a client that answers the pings open over several periods", async () => {
    // A longer period leaves the pongs time to arrive on a busy machine.
    const rec = idleServer(true, 300);
    const { client, path } = await clients.open(rec.port);
    for (let i = 0; i < 3; i++) {
      const ping = await client.readFrame(3000);
      assert.equal(ping.opcode, PING);
      client.write(frame(PONG, ping.payload));
      await rec.next("pong", path, 3000);
    }
    assert.equal(client.ended, false);
    client.write(frame(TEXT, "alive"));
    const echoed = await client.readFrame(3000);
    assert.equal(echoed.opcode, TEXT);
    assert.equal(text(echoed), "alive");
    assert.equal(rec.events.items.some((event) => event.path === path && event.type === "close"), false);
    await closeCleanly(client);
  });

  it("drops a silent client without a ping when sendPings is false (1006)", async () => {
    const rec = idleServer(false);
    const { client, path } = await clients.open(rec.port);
    await client.waitForEnd(3000);
    assert.equal(client.ended, true);
    assert.equal(client.unread, 0, "no ping and no close frame");
    const event = await rec.next("close", path, 3000);
    assert.equal(event.code, 1006);
  });
});

describe("protocol: connections ending", () => {
  const clients = new Clients();
  const servers: RecordingServer[] = [];
  after(async () => {
    clients.destroyAll();
    await Promise.all(servers.map((rec) => rec.server.close()));
  });

  it("reports 1006 when the client drops TCP without a close frame", async () => {
    const rec = recordingServer();
    servers.push(rec);
    const { client, path } = await clients.open(rec.port);
    client.write(frame(TEXT, "hi"));
    assert.equal(text(await client.readFrame()), "hi");
    client.destroy();
    const event = await rec.next("close", path);
    assert.equal(event.code, 1006);
    assert.equal(event.reason, "");
  });

  it("server.close() sends what was queued, then 1001, and resolves once clients reply", async () => {
    const rec = recordingServer({ closeTimeout: 5000 });
    servers.push(rec);
    const opened = [];
    for (let i = 0; i < 3; i++) {
      const { client, path } = await clients.open(rec.port);
      const { ws } = await rec.next("open", path);
      opened.push({ client, path, ws });
    }
    for (const { ws, path } of opened) ws.send(`last words for ${path}`);
    let resolved = false;
    const closing = rec.server.close().then(() => (resolved = true));
    for (const { client, path } of opened) {
      const data = await client.readFrame();
      assert.equal(data.opcode, TEXT);
      assert.equal(text(data), `last words for ${path}`);
      const close = await client.readFrame();
      assert.equal(close.opcode, CLOSE);
      assert.equal((close.payload[0] << 8) | close.payload[1], 1001);
    }
    assert.equal(resolved, false, "close() waits for the clients' replies");
    for (const { client } of opened) client.write(frame(CLOSE, closePayload(1001)));
    for (const { client } of opened) await client.waitForEnd();
    await withTimeout(closing, 3000, "server.close() to resolve");
    assert.equal(rec.server.connections, 0);
    for (const { path } of opened) assert.equal((await rec.next("close", path)).code, 1001);
  });

  it("server.close() resolves after closeTimeout when a client never replies", async () => {
    const rec = recordingServer({ closeTimeout: 300 });
    servers.push(rec);
    const replying = await clients.open(rec.port);
    const silent = await clients.open(rec.port);
    await rec.next("open", replying.path);
    await rec.next("open", silent.path);
    const closing = rec.server.close();
    assert.equal((await replying.client.readClose()).code, 1001);
    assert.equal((await silent.client.readClose()).code, 1001);
    replying.client.write(frame(CLOSE, closePayload(1001)));
    await replying.client.waitForEnd();
    await withTimeout(closing, 3000, "server.close() to resolve");
    await silent.client.waitForEnd();
    assert.equal(rec.server.connections, 0);
    assert.equal((await rec.next("close", replying.path)).code, 1001);
    assert.equal((await rec.next("close", silent.path)).code, 1006);
  });
});
