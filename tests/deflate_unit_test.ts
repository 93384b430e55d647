/**
 * permessage-deflate's pure parts: the extension negotiation (RFC 7692 §5, §7.1), the sliding
 * history, and message compression / inflation (with and without the peer's
 * context, against real node:zlib streams).
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { deflateRawSync } from "node:zlib";
import { negotiateDeflate, parseExtensions } from "../src/deflate/negotiate.ts";
import { History } from "../src/deflate/history.ts";
import { deflateMessage, InflateError, MessageCompressor, MessageInflater } from "../src/deflate/codec.ts";
import { ContextCompressor } from "../src/deflate/context_compressor.ts";
import { canonicalCodes, huffmanLengths } from "../src/deflate/huffman.ts";
import { Random } from "./helpers/random.ts";
import {
  chatMessages,
  compressAlone,
  compressibleBytes,
  endsWithTail,
  inflateAlone,
  inflateStream,
  StreamCompressor,
} from "./helpers/deflate.ts";
import { firstDifference } from "./helpers/events.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const BASE = "permessage-deflate; server_no_context_takeover";
/** The server's settings without and with its own context kept. */
const NO_CONTEXT = { clientMaxWindowBits: 15 };
const CONTEXT = { clientMaxWindowBits: 15, serverContextTakeover: true, serverMaxWindowBits: 15 };

describe("parseExtensions", () => {
  it("parses names and parameters, with and without values, lower-casing names", () => {
    assert.deepEqual(
      parseExtensions(
        'permessage-deflate; client_max_window_bits, Foo; Bar="Baz";qux=1 , x-webkit-deflate-frame',
      ),
      [
        { name: "permessage-deflate", params: [["client_max_window_bits", true]] },
        { name: "foo", params: [["bar", "Baz"], ["qux", "1"]] },
        { name: "x-webkit-deflate-frame", params: [] },
      ],
    );
  });

  it("allows spaces and tabs around separators, and empty list elements", () => {
    assert.deepEqual(parseExtensions(" ,permessage-deflate\t;\tserver_max_window_bits = 10 ,,x"), [
      { name: "permessage-deflate", params: [["server_max_window_bits", "10"]] },
      { name: "x", params: [] },
    ]);
    assert.deepEqual(parseExtensions("a,"), [{ name: "a", params: [] }]);
    assert.deepEqual(parseExtensions(""), []);
  });

  it("ignores an empty list element at the end even when whitespace follows it", () => {
    // What `Headers` makes of two Sec-WebSocket-Extensions lines when the second is empty.
    assert.deepEqual(parseExtensions("permessage-deflate, "), [{ name: "permessage-deflate", params: [] }]);
    assert.deepEqual(parseExtensions("permessage-deflate,\t"), [{ name: "permessage-deflate", params: [] }]);
    assert.equal(negotiateDeflate("permessage-deflate, ", NO_CONTEXT)?.response, BASE);
  });

  it("keeps repeated parameters in order (so negotiation can refuse them)", () => {
    assert.deepEqual(parseExtensions("a; p=1; p=2"), [{ name: "a", params: [["p", "1"], ["p", "2"]] }]);
  });

  for (
    const header of [
      "permessage-deflate;", // parameter missing after ";"
      "permessage-deflate; ;client_max_window_bits",
      ";permessage-deflate",
      "permessage deflate", // two tokens
      'permessage-deflate; server_max_window_bits="10', // unterminated quote
      'permessage-deflate; server_max_window_bits="1 0"', // quoted value that is not a token
      'permessage-deflate; server_max_window_bits=""',
      "permessage-deflate; server_max_window_bits=", // "=" without a value
      "permessage-deflate; a=b=c",
      "permessage-deflate; client@max=1", // "@" is not a token character
      '"permessage-deflate"',
      "permessage-deflate; x=1 2",
    ]
  ) {
    it(`returns null for the malformed header ${JSON.stringify(header)}`, () => {
      assert.equal(parseExtensions(header), null);
      assert.equal(negotiateDeflate(header, NO_CONTEXT), null, "a malformed header agrees on nothing");
    });
  }
});

describe("negotiateDeflate", () => {
  /** [header, server's clientMaxWindowBits, response, clientContextTakeover, clientBits, serverBits] */
  const accepted: [string, number, string, boolean, number, number][] = [
    ["permessage-deflate", 15, BASE, true, 15, 15],
    ["permessage-deflate; server_no_context_takeover", 15, BASE, true, 15, 15],
    [
      "permessage-deflate; client_no_context_takeover",
      15,
      `${BASE}; client_no_context_takeover`,
      false,
      15,
      15,
    ],
    [
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
      15,
      `${BASE}; client_no_context_takeover`,
      false,
      15,
      15,
    ],
    ["permessage-deflate; server_max_window_bits=8", 15, `${BASE}; server_max_window_bits=8`, true, 15, 8],
    ["permessage-deflate; server_max_window_bits=10", 15, `${BASE}; server_max_window_bits=10`, true, 15, 10],
    ["permessage-deflate; server_max_window_bits=15", 15, `${BASE}; server_max_window_bits=15`, true, 15, 15],
    [
      'permessage-deflate; server_max_window_bits="12"',
      15,
      `${BASE}; server_max_window_bits=12`,
      true,
      15,
      12,
    ],
    // client_max_window_bits without a value: the server may choose, and only says so below 15.
    ["permessage-deflate; client_max_window_bits", 15, BASE, true, 15, 15],
    ["permessage-deflate; client_max_window_bits", 9, `${BASE}; client_max_window_bits=9`, true, 9, 15],
    ["permessage-deflate; client_max_window_bits", 8, `${BASE}; client_max_window_bits=8`, true, 8, 15],
    // A value is only a hint: without the parameter in the answer the client may use 15 bits
    // (RFC 7692 §7.1.2.2), so the server names every smaller window it keeps history for.
    ["permessage-deflate; client_max_window_bits=9", 15, `${BASE}; client_max_window_bits=9`, true, 9, 15],
    ["permessage-deflate; client_max_window_bits=12", 12, `${BASE}; client_max_window_bits=12`, true, 12, 15],
    ["permessage-deflate; client_max_window_bits=12", 9, `${BASE}; client_max_window_bits=9`, true, 9, 15],
    ["permessage-deflate; client_max_window_bits=8", 9, `${BASE}; client_max_window_bits=8`, true, 8, 15],
    ["permessage-deflate; client_max_window_bits=15", 15, BASE, true, 15, 15],
    [
      'permessage-deflate; client_max_window_bits="10"',
      15,
      `${BASE}; client_max_window_bits=10`,
      true,
      10,
      15,
    ],
    // Without the parameter the client may use any window, whatever the server's cap.
    ["permessage-deflate", 9, BASE, true, 15, 15],
    [
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=13",
      10,
      `${BASE}; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10`,
      false,
      10,
      11,
    ],
    // Names are case-insensitive.
    [
      "Permessage-Deflate; Client_No_Context_Takeover; SERVER_MAX_WINDOW_BITS=9",
      15,
      `${BASE}; client_no_context_takeover; server_max_window_bits=9`,
      false,
      15,
      9,
    ],
    // Unknown extensions are ignored; the first acceptable deflate offer wins.
    ["x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", 15, BASE, true, 15, 15],
    [
      "foo; bar=1, permessage-deflate; client_no_context_takeover",
      15,
      `${BASE}; client_no_context_takeover`,
      false,
      15,
      15,
    ],
    ["permessage-deflate; foo=1, permessage-deflate", 15, BASE, true, 15, 15],
    [
      "permessage-deflate; unknown, permessage-deflate; server_max_window_bits=10",
      15,
      `${BASE}; server_max_window_bits=10`,
      true,
      15,
      10,
    ],
    [
      "permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=9",
      15,
      `${BASE}; server_max_window_bits=10`,
      true,
      15,
      10,
    ],
    [
      "permessage-deflate; server_max_window_bits=7, permessage-deflate; client_no_context_takeover",
      15,
      `${BASE}; client_no_context_takeover`,
      false,
      15,
      15,
    ],
    [
      "permessage-deflate; client_no_context_takeover; client_no_context_takeover, permessage-deflate",
      15,
      BASE,
      true,
      15,
      15,
    ],
  ];
  for (const [header, cap, response, takeover, clientBits, serverBits] of accepted) {
    it(`agrees to ${JSON.stringify(header)} (cap ${cap}) with ${JSON.stringify(response)}`, () => {
      assert.deepEqual(negotiateDeflate(header, { clientMaxWindowBits: cap }), {
        clientContextTakeover: takeover,
        clientWindowBits: clientBits,
        serverContextTakeover: false,
        serverWindowBits: serverBits,
        response,
      });
    });
  }

  const refused = [
    "x-webkit-deflate-frame",
    "deflate-frame; no_context_takeover",
    "permessage-deflate-x",
    // Duplicate parameters.
    "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
    "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
    "permessage-deflate; Client_Max_Window_Bits=9; client_max_window_bits=9",
    // Invalid window bits.
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=08",
    "permessage-deflate; server_max_window_bits=abc",
    "permessage-deflate; server_max_window_bits=0",
    "permessage-deflate; server_max_window_bits=-9",
    "permessage-deflate; server_max_window_bits=9.0",
    'permessage-deflate; server_max_window_bits="16"',
    "permessage-deflate; server_max_window_bits", // a value is required
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; client_max_window_bits=08",
    "permessage-deflate; client_max_window_bits=abc",
    // Parameters that take no value, given one.
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; client_no_context_takeover=true",
    // Unknown parameters.
    "permessage-deflate; foo",
    "permessage-deflate; mux=1",
    "permessage-deflate; foo, permessage-deflate; bar",
  ];
  for (const header of refused) {
    it(`refuses ${JSON.stringify(header)}`, () => {
      assert.equal(negotiateDeflate(header, NO_CONTEXT), null);
      assert.equal(negotiateDeflate(header, { clientMaxWindowBits: 9 }), null);
      assert.equal(negotiateDeflate(header, CONTEXT), null);
    });
  }

  it("agrees to nothing without the header", () => {
    assert.equal(negotiateDeflate(null, NO_CONTEXT), null);
    assert.equal(negotiateDeflate("", CONTEXT), null);
  });
});

describe("negotiateDeflate with serverContextTakeover", () => {
  /** [header, serverMaxWindowBits, response, serverContextTakeover, serverBits] */
  const cases: [string, number, string, boolean, number][] = [
    // What Chromium, Firefox, ws and the runtimes' clients offer: the context is kept.
    ["permessage-deflate; client_max_window_bits", 15, "permessage-deflate", true, 15],
    ["permessage-deflate", 15, "permessage-deflate", true, 15],
    // The client forbids it (RFC 7692 §7.1.1.1): each message alone, and the answer says so.
    [
      "permessage-deflate; server_no_context_takeover",
      15,
      "permessage-deflate; server_no_context_takeover",
      false,
      15,
    ],
    [
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
      15,
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
      false,
      15,
    ],
    // The client's own context does not matter to ours.
    [
      "permessage-deflate; client_no_context_takeover",
      15,
      "permessage-deflate; client_no_context_takeover",
      true,
      15,
    ],
    // An offered server_max_window_bits bounds our window and is answered with the window we use
    // (§7.1.2.1: the same or a smaller value).
    [
      "permessage-deflate; server_max_window_bits=10",
      15,
      "permessage-deflate; server_max_window_bits=10",
      true,
      10,
    ],
    [
      "permessage-deflate; server_max_window_bits=8",
      15,
      "permessage-deflate; server_max_window_bits=8",
      true,
      8,
    ],
    [
      "permessage-deflate; server_max_window_bits=15",
      12,
      "permessage-deflate; server_max_window_bits=12",
      true,
      12,
    ],
    [
      "permessage-deflate; server_max_window_bits=10",
      12,
      "permessage-deflate; server_max_window_bits=10",
      true,
      10,
    ],
    // Not offered: our smaller window needs no word (the client's inflater takes any up to 15).
    ["permessage-deflate; client_max_window_bits", 12, "permessage-deflate", true, 12],
    ["permessage-deflate", 9, "permessage-deflate", true, 9],
    [
      "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
      12,
      "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
      false,
      9,
    ],
    // The first acceptable offer still wins.
    [
      "permessage-deflate; server_max_window_bits=16, permessage-deflate; server_no_context_takeover",
      15,
      "permessage-deflate; server_no_context_takeover",
      false,
      15,
    ],
  ];
  for (const [header, serverMax, response, context, serverBits] of cases) {
    it(`agrees to ${JSON.stringify(header)} (serverMaxWindowBits ${serverMax}) with ${JSON.stringify(response)}`, () => {
      const agreed = negotiateDeflate(header, { ...CONTEXT, serverMaxWindowBits: serverMax });
      assert.equal(agreed?.response, response);
      assert.equal(agreed?.serverContextTakeover, context);
      assert.equal(agreed?.serverWindowBits, serverBits);
    });
  }

  it("with serverContextTakeover false, always answers server_no_context_takeover", () => {
    const agreed = negotiateDeflate("permessage-deflate; client_max_window_bits", NO_CONTEXT);
    assert.equal(agreed?.response, BASE);
    assert.equal(agreed?.serverContextTakeover, false);
  });

  it("serverMaxWindowBits bounds the window without context too", () => {
    const agreed = negotiateDeflate("permessage-deflate", { ...NO_CONTEXT, serverMaxWindowBits: 10 });
    assert.deepEqual([agreed?.response, agreed?.serverWindowBits], [BASE, 10]);
  });
});

describe("History", () => {
  it("starts empty", () => {
    assert.equal(new History(512).bytes.length, 0);
  });

  it("holds memory in proportion to what it was given, up to its capacity", () => {
    const history = new History(32768);
    history.append(new Uint8Array(10));
    assert.ok(history.bytes.buffer.byteLength <= 256, `${history.bytes.buffer.byteLength} bytes for 10`);
    for (let i = 0; i < 100; i++) history.append(new Uint8Array(1000));
    assert.equal(history.bytes.length, 32768);
    assert.equal(history.bytes.buffer.byteLength, 32768);
  });

  for (const capacity of [1, 2, 7, 256, 512, 5552, 32768]) {
    it(`keeps the last ${capacity} bytes over random appends`, () => {
      const random = new Random(capacity * 7919 + 1);
      const history = new History(capacity);
      let expected: Uint8Array = new Uint8Array(0);
      for (let step = 0; step < 150; step++) {
        const size = random.pick([
          0,
          1,
          random.int(1, Math.max(1, capacity >> 3)),
          random.int(1, capacity),
          capacity - 1,
          capacity,
          capacity + 1,
          random.int(capacity, 3 * capacity + 5),
        ]);
        const data = random.bytes(size);
        history.append(data);
        const all = new Uint8Array(expected.length + data.length);
        all.set(expected);
        all.set(data, expected.length);
        expected = all.slice(Math.max(0, all.length - capacity));
        assert.equal(history.bytes.length, expected.length, `length after step ${step}`);
        assert.equal(firstDifference(history.bytes, expected), -1, `bytes after step ${step} (+${size})`);
      }
    });
  }
});

const SIZES = [0, 1, 16, 64, 256, 1024, 4096, 16384, 65536, 131072];

describe("deflateMessage and MessageInflater", () => {
  for (const bits of [8, 9, 15]) {
    it(`round-trips messages of 0 B to 128 KiB with window bits ${bits}`, () => {
      for (const size of SIZES) {
        const data = compressibleBytes(size, size + bits);
        const compressed = deflateMessage(data, bits, 6);
        assert.ok(!endsWithTail(compressed) || size === 0, `the tail is stripped (${size} B)`);
        if (size >= 1024) assert.ok(compressed.length < size, `${size} B compress`);
        // A peer inflating with exactly the agreed window must manage (distances stay inside it).
        const peer = inflateAlone(compressed, bits);
        assert.equal(firstDifference(peer, data), -1, `peer inflate of ${size} B, ${bits} bits`);
        const ours = new MessageInflater(bits, false).inflate(compressed, size);
        assert.equal(firstDifference(ours, data), -1, `MessageInflater of ${size} B, ${bits} bits`);
      }
    });
  }

  it("compresses at every level", () => {
    const data = compressibleBytes(20000, 3);
    const sizes = [0, 1, 6, 9].map((level) => {
      const compressed = deflateMessage(data, 15, level);
      assert.equal(firstDifference(inflateAlone(compressed), data), -1, `level ${level}`);
      return compressed.length;
    });
    assert.ok(sizes[0] > data.length, "level 0 stores");
    assert.ok(sizes[3] < sizes[0] / 2, "level 9 compresses");
  });

  it("really limits distances to the window it is given", () => {
    // 1000 random bytes twice: with a 32 KiB window the copy is one back-reference of 1000.
    const half = new Random(5).bytes(1000);
    const data = new Uint8Array(2000);
    data.set(half);
    data.set(half, 1000);
    const wide = deflateMessage(data, 15, 6);
    const narrow = deflateMessage(data, 9, 6);
    assert.ok(wide.length < 1100, `15 bits find the repeat (${wide.length} B)`);
    assert.ok(narrow.length > 1900, `9 bits cannot (${narrow.length} B)`);
    assert.throws(() => inflateAlone(wide, 9), "a 9-bit inflater refuses the 15-bit stream");
    assert.equal(firstDifference(inflateAlone(narrow, 9), data), -1);
  });

  for (const bits of [8, 9, 15]) {
    it(`inflates a context-takeover stream (node:zlib, Z_SYNC_FLUSH per message) with window bits ${bits}`, async () => {
      const random = new Random(bits);
      const seedText = compressibleBytes(3000, bits);
      const messages: Uint8Array[] = [];
      for (const size of [200, 200, 0, 1, 5000, 300, 70000, 50, 2000, 1 << bits, (1 << bits) + 1, 40]) {
        // Reuse earlier bytes so that messages refer back to their predecessors.
        const message = new Uint8Array(size);
        for (let i = 0; i < size; i++) message[i] = seedText[(i * 7 + random.int(0, 3)) % seedText.length];
        messages.push(message);
      }
      messages[1] = messages[0].slice(); // an exact repeat: compresses to a back-reference
      const compressor = new StreamCompressor(bits);
      try {
        const inflater = new MessageInflater(bits, true);
        const compressed: Uint8Array[] = [];
        for (const [index, message] of messages.entries()) {
          const data = await compressor.compress(message);
          compressed.push(data);
          const out = inflater.inflate(data, 1 << 20);
          assert.equal(firstDifference(out, message), -1, `message ${index} (${message.length} B)`);
        }
        assert.ok(compressed[1].length < 20, `the repeat is a back-reference (${compressed[1].length} B)`);
        // Without the context the repeat cannot be inflated: the history really is needed.
        assert.throws(
          () => new MessageInflater(bits, false).inflate(compressed[1], 1 << 20),
          (error: unknown) => error instanceof InflateError && !error.tooBig,
        );
      } finally {
        compressor.close();
      }
    });

    it(`inflates messages each compressed alone with window bits ${bits}, keeping context or not`, () => {
      const withContext = new MessageInflater(bits, true);
      const withoutContext = new MessageInflater(bits, false);
      for (const [index, size] of [100, 100, 0, 40000, 1, 4096, 4096].entries()) {
        const message = compressibleBytes(size, index % 2 === 0 ? 1 : index);
        const data = compressAlone(message, Math.max(9, bits));
        assert.equal(firstDifference(withContext.inflate(data, size), message), -1, `message ${index}`);
        assert.equal(firstDifference(withoutContext.inflate(data, size), message), -1, `message ${index}`);
      }
    });
  }

  it("keeps only the agreed window of history: references further back fail", async () => {
    // The peer said 9 bits but compresses with 15 and refers 4 KiB back into the last message.
    const message = new Random(77).bytes(4096);
    const compressor = new StreamCompressor(15);
    try {
      const inflater = new MessageInflater(9, true);
      assert.equal(firstDifference(inflater.inflate(await compressor.compress(message), MiB), message), -1);
      const repeat = await compressor.compress(message);
      assert.throws(
        () => inflater.inflate(repeat, MiB),
        (error: unknown) => error instanceof InflateError && !error.tooBig,
      );
    } finally {
      compressor.close();
    }
  });

  it("accepts messages whose DEFLATE data ends in a BFINAL block (RFC 7692 §7.2.3.4), with or without context", () => {
    // A peer may end each message with a final block instead of a sync flush; the payload is the
    // final block plus the header octet of an empty stored block (0x00).
    const encoder = new TextEncoder();
    for (const contextTakeover of [false, true]) {
      const inflater = new MessageInflater(15, contextTakeover);
      for (const word of ["Hello", "Hello", "world, Hello"]) {
        const finished = deflateRawSync(encoder.encode(word)); // Z_FINISH: BFINAL set
        const payload = new Uint8Array(finished.length + 1);
        payload.set(finished);
        let out: Uint8Array;
        try {
          out = inflater.inflate(payload, 1000);
        } catch (error) {
          const cause = (error as { cause?: { message?: string } }).cause?.message;
          assert.fail(`context takeover ${contextTakeover}: "${word}" failed: ${cause ?? error}`);
        }
        assert.equal(new TextDecoder().decode(out), word);
      }
    }
  });

  it("inflates empty messages in every form (no bytes, an empty stored block header, an empty fixed block)", () => {
    for (const contextTakeover of [false, true]) {
      const inflater = new MessageInflater(15, contextTakeover);
      inflater.inflate(compressAlone(new TextEncoder().encode("some history")), 100);
      for (const data of [new Uint8Array(0), Uint8Array.of(0x00), Uint8Array.of(0x02, 0x00)]) {
        assert.equal(inflater.inflate(data, 100).length, 0, `[${data}] with context ${contextTakeover}`);
      }
    }
  });

  it("stops a compression bomb at the limit: 16 MiB of zeros with a 1 MiB limit", () => {
    const bomb = compressAlone(new Uint8Array(16 * MiB));
    assert.ok(bomb.length < 20 * KiB, `the bomb is small (${bomb.length} B)`);
    for (const contextTakeover of [false, true]) {
      const inflater = new MessageInflater(15, contextTakeover);
      // With context, give it some history so that the preset-dictionary path is used too.
      if (contextTakeover) inflater.inflate(compressAlone(Uint8Array.of(1, 2, 3)), 10);
      // zlib itself stopped at the output limit (its own error is the cause), rather than
      // inflating all 16 MiB and being refused afterwards.
      assert.throws(
        () => inflater.inflate(bomb, MiB),
        (error: unknown) =>
          error instanceof InflateError && error.tooBig === true &&
          (error.cause as { code?: string } | undefined)?.code === "ERR_BUFFER_TOO_LARGE",
        `context takeover ${contextTakeover}`,
      );
    }
  });

  it("allows exactly maxLength bytes and refuses one more", () => {
    const data = compressibleBytes(5000, 11);
    const compressed = compressAlone(data);
    for (const contextTakeover of [false, true]) {
      assert.equal(new MessageInflater(15, contextTakeover).inflate(compressed, 5000).length, 5000);
      assert.throws(
        () => new MessageInflater(15, contextTakeover).inflate(compressed, 4999),
        (error: unknown) => error instanceof InflateError && error.tooBig,
      );
    }
    assert.equal(new MessageInflater(15, false).inflate(compressAlone(new Uint8Array(0)), 0).length, 0);
  });

  it("reports invalid DEFLATE data as not too big", () => {
    const garbage = [
      Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x01, 0x02),
      Uint8Array.of(0x07), // BTYPE 11: reserved
      Uint8Array.of(0x00, 0x05, 0x00, 0x05, 0x00), // stored block whose NLEN is not ~LEN
      new Random(3).bytes(300),
    ];
    for (const contextTakeover of [false, true]) {
      for (const data of garbage) {
        const inflater = new MessageInflater(15, contextTakeover);
        if (contextTakeover) inflater.inflate(compressAlone(Uint8Array.of(9, 9, 9)), 10);
        assert.throws(
          () => inflater.inflate(data, MiB),
          (error: unknown) => error instanceof InflateError && error.tooBig === false,
          `[${data.subarray(0, 6)}…] with context ${contextTakeover}`,
        );
      }
    }
  });

  it("the output is a fresh buffer, unaffected by later inflates", () => {
    const inflater = new MessageInflater(15, true);
    const first = inflater.inflate(compressAlone(new TextEncoder().encode("first message")), 100);
    const copy = first.slice();
    inflater.inflate(compressAlone(new TextEncoder().encode("second, different message")), 100);
    assert.deepEqual(first, copy);
    assert.equal(new TextDecoder().decode(first), "first message");
  });
});

/** `parts` joined. */
function joined(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The bytes of `parts` joined. */
function totalLength(parts: Uint8Array[]): number {
  return parts.reduce((sum, part) => sum + part.length, 0);
}

/**
 * Compresses `messages` in order with `compressor` and checks them as a client with context
 * takeover inflates them: message by message with an inflater holding exactly the window (so a
 * reference beyond it fails), and as one zlib stream. Returns the compressed messages.
 */
function roundTrip(
  compressor: { compress(data: Uint8Array): Uint8Array },
  messages: Uint8Array[],
  bits: number,
  label: string,
): Uint8Array[] {
  const inflater = new MessageInflater(bits, true);
  const compressed = messages.map((message, index) => {
    const data = compressor.compress(message);
    assert.ok(!endsWithTail(data) || message.length === 0, `${label}: message ${index} has no tail`);
    const out = inflater.inflate(data, message.length);
    assert.equal(firstDifference(out, message), -1, `${label}: message ${index} (${message.length} B)`);
    return data;
  });
  assert.equal(
    firstDifference(inflateStream(compressed, bits), joined(messages)),
    -1,
    `${label}: as one stream`,
  );
  return compressed;
}

describe("huffmanLengths and canonicalCodes", () => {
  /** Whether `lengths` make a complete prefix code (Kraft sum exactly 1) no longer than `limit`. */
  function checkCode(lengths: Uint8Array, count: number, limit: number, label: string): void {
    let kraft = 0;
    for (let i = 0; i < count; i++) {
      assert.ok(lengths[i] <= limit, `${label}: symbol ${i} has ${lengths[i]} bits > ${limit}`);
      if (lengths[i] > 0) kraft += 2 ** -lengths[i];
    }
    assert.equal(kraft, 1, `${label}: the code is complete`);
    const codes = new Uint16Array(count);
    canonicalCodes(lengths, count, codes);
    const seen = new Set<string>();
    for (let i = 0; i < count; i++) {
      if (lengths[i] === 0) continue;
      // Codes are stored bit-reversed; read back most significant bit first.
      let code = "";
      for (let b = 0; b < lengths[i]; b++) code += (codes[i] >> b) & 1;
      for (const other of seen) {
        assert.ok(!code.startsWith(other) && !other.startsWith(code), `${label}: ${code} and ${other}`);
      }
      seen.add(code);
    }
  }

  it("makes complete codes within the limit for random frequencies", () => {
    const random = new Random(42);
    for (let round = 0; round < 200; round++) {
      const count = random.pick([2, 19, 30, 286]);
      const limit = count === 19 ? 7 : 15;
      const freqs = new Uint32Array(count);
      for (let i = 0; i < count; i++) {
        freqs[i] = random.next() < 0.3 ? 0 : random.int(1, random.pick([3, 100, 5000]));
      }
      const lengths = new Uint8Array(count);
      huffmanLengths(freqs, count, limit, lengths);
      checkCode(lengths, count, limit, `round ${round}`);
      for (let i = 0; i < count; i++) {
        if (freqs[i] > 0) assert.ok(lengths[i] > 0, `round ${round}: used symbol ${i} has a code`);
      }
    }
  });

  it("limits lengths that a plain Huffman code would make longer (Fibonacci frequencies)", () => {
    // Fibonacci weights make a Huffman tree as deep as there are symbols.
    const freqs = new Uint32Array(30);
    for (let i = 0, a = 1, b = 1; i < 30; i++, [a, b] = [b, a + b]) freqs[i] = a;
    const lengths = new Uint8Array(30);
    huffmanLengths(freqs, 30, 15, lengths);
    checkCode(lengths, 30, 15, "limit 15");
    assert.equal(Math.max(...lengths), 15);
    const short = new Uint8Array(19);
    huffmanLengths(freqs.subarray(0, 19), 19, 7, short);
    checkCode(short, 19, 7, "limit 7");
  });

  it("gives a lone used symbol (or none) a partner, so that the code has two codes of one bit", () => {
    for (const used of [[], [0], [5], [285]]) {
      const freqs = new Uint32Array(286);
      for (const symbol of used) freqs[symbol] = 7;
      const lengths = new Uint8Array(286);
      huffmanLengths(freqs, 286, 15, lengths);
      checkCode(lengths, 286, 15, `used ${used}`);
      assert.equal(lengths.filter((length) => length > 0).length, 2);
      for (const symbol of used) assert.equal(lengths[symbol], 1);
    }
  });
});

describe("ContextCompressor", () => {
  const chat = chatMessages(600, 1);

  for (const bits of [8, 9, 10, 12, 15]) {
    it(`round-trips a chat stream with a ${bits}-bit window at levels 0, 1, 6 and 9`, () => {
      for (const level of [0, 1, 6, 9]) {
        roundTrip(new ContextCompressor(bits, level), chat, bits, `level ${level}`);
      }
    });
  }

  it("takes its context over: later messages shrink several times, and need the earlier ones", () => {
    const compressor = new ContextCompressor(15, 6);
    const compressed = roundTrip(compressor, chat, 15, "chat");
    const alone = chat.map((message) => deflateMessage(message, 15, 6));
    const ratio = totalLength(chat.slice(100)) / totalLength(compressed.slice(100));
    const aloneRatio = totalLength(chat.slice(100)) / totalLength(alone.slice(100));
    assert.ok(
      ratio > 3 && ratio > 2 * aloneRatio,
      `with context ${ratio.toFixed(2)}x, alone ${aloneRatio.toFixed(2)}x`,
    );
    // A message that refers back cannot be inflated without its predecessors.
    const repeat = compressor.compress(chat[599]);
    assert.ok(repeat.length < 10, `a repeat is one back-reference (${repeat.length} B)`);
    assert.throws(() => inflateAlone(repeat), /distance too far back/);
  });

  for (const bits of [8, 9, 12, 15]) {
    it(`never refers further back than its ${bits}-bit window`, () => {
      const window = 1 << bits;
      const random = new Random(bits);
      const phrase = random.bytes(Math.min(200, window >> 2));
      // The phrase starts `distance` bytes before the second message, which repeats it.
      for (const distance of [window - 1, window, window + 1]) {
        const first = joined([phrase, random.bytes(distance - phrase.length)]);
        const compressor = new ContextCompressor(bits, 9);
        const [, second] = roundTrip(compressor, [first, phrase], bits, `distance ${distance}`);
        if (distance < window) assert.ok(second.length < 10, `${distance} back is in the window`);
        else assert.ok(second.length > phrase.length, `${distance} back is not (${second.length} B)`);
      }
    });
  }

  it("compresses a message that fills the buffer many times over, and messages around it", () => {
    for (const bits of [9, 15]) {
      const window = 1 << bits;
      const random = new Random(bits);
      const messages = [chat[0], compressibleBytes(9 * window + 17, 3, window), chat[1]];
      for (let i = 0; i < 60; i++) {
        messages.push(
          compressibleBytes(
            random.pick([0, 1, 2, 3, random.int(4, window), random.int(window, 3 * window)]),
            i,
            window,
          ),
        );
      }
      roundTrip(new ContextCompressor(bits, 6), messages, bits, `${bits} bits`);
    }
  });

  it("writes random bytes as stored blocks: 5 bytes more per 16 KiB (a block's worth of symbols)", () => {
    for (const size of [1, 100, 65535, 65536, 200_000]) {
      const data = new Random(size).bytes(size);
      const [compressed] = roundTrip(new ContextCompressor(15, 6), [data], 15, `${size} B`);
      assert.ok(
        compressed.length <= size + 5 * Math.ceil(size / 16384) + 1,
        `${size} B → ${compressed.length} B`,
      );
    }
  });

  it("sends an empty message as the single byte 0x00, keeping its context", () => {
    const compressor = new ContextCompressor(15, 6);
    assert.deepEqual(compressor.compress(new Uint8Array(0)), Uint8Array.of(0x00));
    const messages = [chat[0], new Uint8Array(0), chat[0], new Uint8Array(0), Uint8Array.of(0x41), chat[0]];
    roundTrip(compressor, messages, 15, "empty among others");
  });

  it("holds no memory before its first message, then exactly memoryFor(windowBits), whatever it sends", () => {
    for (const bits of [8, 10, 12, 13, 15]) {
      const compressor = new ContextCompressor(bits, 6);
      assert.equal(compressor.memory, 0);
      compressor.compress(chat[0]);
      const memory = ContextCompressor.memoryFor(bits);
      assert.equal(compressor.memory, memory);
      for (const message of [...chat.slice(0, 200), new Random(1).bytes(5 << bits)]) {
        compressor.compress(message);
      }
      assert.equal(compressor.memory, memory, `${bits} bits`);
    }
    // The figures the README states.
    assert.deepEqual([15, 13, 12, 10].map((bits) => ContextCompressor.memoryFor(bits) / KiB), [
      120,
      30,
      15,
      4.5,
    ]);
  });

  it("returns fresh bytes, unaffected by later messages", () => {
    const compressor = new ContextCompressor(15, 6);
    const first = compressor.compress(chat[0]);
    const copy = first.slice();
    compressor.compress(chat[1]);
    new ContextCompressor(15, 6).compress(chat[2]);
    assert.deepEqual(first, copy);
  });

  it("appends what was compressed elsewhere to its context", () => {
    for (const bits of [8, 12, 15]) {
      const window = 1 << bits;
      const compressor = new ContextCompressor(bits, 6);
      const inflater = new MessageInflater(bits, true);
      const random = new Random(bits);
      let sent = new Uint8Array(0);
      for (let i = 0; i < 80; i++) {
        const size = random.pick([0, 1, 5, random.int(6, window), random.int(window, 3 * window)]);
        const message = compressibleBytes(size, i, window);
        sent = joined([sent, message]).slice(-window);
        if (random.next() < 0.4) {
          // Compressed elsewhere (node:zlib, without context), then appended.
          inflater.inflate(compressAlone(message, Math.max(9, bits)), message.length);
          compressor.append(message);
          assert.equal(firstDifference(compressor.window, sent), -1, `window after append ${i}`);
        } else {
          const out = inflater.inflate(compressor.compress(message), message.length);
          assert.equal(firstDifference(out, message), -1, `message ${i} (${message.length} B)`);
        }
      }
    }
  });
});

describe("MessageCompressor", () => {
  it("sends long messages through zlib with the window as dictionary, short ones with its own", () => {
    const chat = chatMessages(300, 2);
    const long = joined(chat.slice(0, 200));
    for (const bits of [8, 12, 15]) {
      const messages = [
        ...chat.slice(200, 250),
        long,
        ...chat.slice(250),
        long.subarray(5000),
        long.slice(-40),
      ];
      const compressor = new MessageCompressor(bits, 6);
      const compressed = roundTrip(compressor, messages, bits, `${bits} bits`);
      // The short message after a long one refers back into it.
      assert.ok(
        compressed[compressed.length - 1].length < 10,
        `${compressed[compressed.length - 1].length} B`,
      );
      assert.equal(compressor.memory, ContextCompressor.memoryFor(bits));
    }
  });
});
