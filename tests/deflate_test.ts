/**
 * permessage-deflate (RFC 7692) against running servers: hand-built compressed frames over TCP,
 * the `ws` npm client and the runtime's built-in `WebSocket` across parameter combinations, and
 * publish/subscribe to subscribers with and without compression.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { deflateRawSync } from "node:zlib";
import WsModule from "ws";
import { type PerMessageDeflateOptions, prometheusText, serve, type Server } from "../mod.ts";
import { negotiateDeflate } from "../src/deflate/negotiate.ts";
import {
  BINARY,
  concat,
  CONTINUATION,
  frame,
  RawClient,
  type ReceivedFrame,
  TEXT,
  upgradeRequest,
} from "./helpers/raw_client.ts";
import {
  firstDifference,
  Inbox,
  type RecordingServer,
  recordingServer,
  withTimeout,
} from "./helpers/events.ts";
import {
  chatMessages,
  compressAlone,
  compressibleBytes,
  inflateAlone,
  inflateStream,
  splitInto,
  StreamCompressor,
} from "./helpers/deflate.ts";
import { MessageInflater } from "../src/deflate/codec.ts";
import { Random } from "./helpers/random.ts";
import { until } from "./helpers/server.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const BASE = "permessage-deflate; server_no_context_takeover";
/** The server keeps its compression context. */
const KEPT: PerMessageDeflateOptions = { serverContextTakeover: true };
const RSV1 = 0x40;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Bun's node:test gives each test 5 s unless told; internal waits fail first, with a message. */
const SLOW = { timeout: 30_000 };

/** Connects, sends an upgrade request with `offer` (none when null) and reads the 101. */
async function openRaw(
  port: number,
  path: string,
  offer: string | null,
): Promise<{ client: RawClient; extensions: string | null }> {
  const client = await RawClient.connect(port);
  client.write(upgradeRequest(path, offer === null ? {} : { "Sec-WebSocket-Extensions": offer }));
  const response = await client.readResponse();
  assert.equal(response.status, 101, `upgrade refused: ${response.body}`);
  return { client, extensions: response.headers.get("sec-websocket-extensions") };
}

/**
 * Frames of one message whose payload is `data` (already compressed when `compressed`), cut into
 * `pieces` frames; RSV1 goes on the first frame only (RFC 7692 §6.1).
 */
function messageFrames(opcode: number, data: Uint8Array, compressed: boolean, pieces = 1): Uint8Array[] {
  return splitInto(data, pieces).map((piece, i) =>
    frame(i === 0 ? opcode : CONTINUATION, piece, {
      fin: i === pieces - 1,
      rsv: i === 0 && compressed ? RSV1 : 0,
      key: Uint8Array.of(i * 17 + 1, 0x5a, 0xa5, i),
    })
  );
}

/** Writes frames in one go (separate small writes would wait on Nagle's algorithm). */
function sendFrames(client: RawClient, frames: Uint8Array[]): void {
  client.write(concat(...frames));
}

/** Reads one server message (a single frame) and inflates it when RSV1 is set. */
async function readMessage(
  client: RawClient,
  serverBits = 15,
): Promise<{ frame: ReceivedFrame; data: Uint8Array }> {
  const received = await client.readFrame();
  assert.equal(received.fin, true, "server messages come in one frame");
  assert.equal(received.rsv & ~RSV1, 0, "only RSV1 may be set");
  const data = received.rsv === RSV1 ? inflateAlone(received.payload, serverBits) : received.payload;
  return { frame: received, data };
}

/**
 * Expects the server to fail the connection with `code` and `reason`: close frame, TCP closed,
 * handler told the same.
 */
async function expectFailure(
  server: RecordingServer,
  client: RawClient,
  path: string,
  code: number,
  reason: string,
): Promise<void> {
  const close = await client.readClose();
  assert.equal(close.code, code, `close code (reason "${close.reason}")`);
  assert.equal(close.reason, reason, "close reason");
  await client.waitForEnd();
  assert.ok(client.ended, "the TCP connection is closed");
  const event = await server.next("close", path);
  assert.deepEqual([event.code, event.reason], [code, reason], "the close handler saw the same");
}

// The reasons Wisp names broken rules with, written out here rather than taken from its table.
const RESERVED_BITS = "reserved bits set without an extension";
const RSV1_CONTINUATION = "RSV1 on a continuation frame";
const BAD_DEFLATE = "invalid DEFLATE data";

/** Bytes of text: printable ASCII that compresses well. */
function textBytes(size: number, seed: number): Uint8Array {
  return compressibleBytes(size, seed);
}

/** A JSON-like document of about `size` characters, with multi-byte characters in it. */
function jsonText(size: number, seed: number): string {
  const random = new Random(seed);
  const words = ["alpha", "beta", "gamma", "δέλτα", "epsilon", "ζήτα", "naïve", "café", "日本語", "emoji😀"];
  const items: string[] = [];
  let length = 2;
  while (length < size) {
    const item = JSON.stringify({
      id: random.int(0, 1e6),
      name: `${random.pick(words)} ${random.pick(words)}`,
      tags: [random.pick(words), random.pick(words)],
      score: random.next(),
    });
    items.push(item);
    length += item.length + 1;
  }
  return `[${items.join(",")}]`;
}

describe("permessage-deflate over raw frames", () => {
  let server: RecordingServer;
  let plain: RecordingServer;
  const extra: Server[] = [];
  const clients: RawClient[] = [];
  before(() => {
    server = recordingServer({ perMessageDeflate: true, closeTimeout: 1000 });
    plain = recordingServer({ closeTimeout: 1000 });
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await Promise.all([server.server.close(), plain.server.close(), ...extra.map((s) => s.close())]);
  });

  /** Opens a raw client on the deflate server (or `target`), remembered for cleanup. */
  async function open(path: string, offer: string | null, target: { port: number } = server) {
    const opened = await openRaw(target.port, path, offer);
    clients.push(opened.client);
    return opened;
  }

  describe("handshake", () => {
    /** [offer, server option clientMaxWindowBits, expected response or null] */
    const cases: [string | null, number, string | null][] = [
      [null, 15, null],
      ["permessage-deflate", 15, BASE],
      ["permessage-deflate; client_max_window_bits", 15, BASE],
      ["permessage-deflate; client_no_context_takeover", 15, `${BASE}; client_no_context_takeover`],
      ["permessage-deflate; server_no_context_takeover", 15, BASE],
      ["permessage-deflate; server_max_window_bits=10", 15, `${BASE}; server_max_window_bits=10`],
      ["permessage-deflate; client_max_window_bits=9", 15, `${BASE}; client_max_window_bits=9`],
      ["permessage-deflate; client_max_window_bits", 9, `${BASE}; client_max_window_bits=9`],
      ["permessage-deflate; client_max_window_bits=12", 10, `${BASE}; client_max_window_bits=10`],
      ["permessage-deflate", 9, BASE],
      [
        "permessage-deflate; foo, permessage-deflate; server_max_window_bits=12",
        15,
        `${BASE}; server_max_window_bits=12`,
      ],
      [
        "x-webkit-deflate-frame, permessage-deflate; client_no_context_takeover",
        15,
        `${BASE}; client_no_context_takeover`,
      ],
      ["permessage-deflate; server_max_window_bits=16", 15, null],
      ["permessage-deflate; server_max_window_bits", 15, null],
      ["x-webkit-deflate-frame", 15, null],
      ["permessage-deflate;;", 15, null],
    ];
    const capped = new Map<number, RecordingServer>();
    after(async () => {
      await Promise.all([...capped.values()].map((s) => s.server.close()));
    });

    for (const [index, [offer, cap, expected]] of cases.entries()) {
      it(
        `answers ${JSON.stringify(offer)} (clientMaxWindowBits ${cap}) with ${JSON.stringify(expected)}`,
        SLOW,
        async () => {
          let target = server;
          if (cap !== 15) {
            if (!capped.has(cap)) {
              capped.set(
                cap,
                recordingServer({ perMessageDeflate: { clientMaxWindowBits: cap }, closeTimeout: 1000 }),
              );
            }
            target = capped.get(cap)!;
          }
          const path = `/handshake/${index}`;
          const { client, extensions } = await open(path, offer, target);
          assert.equal(extensions, expected);
          const opened = await target.next("open", path);
          assert.equal(opened.ws.extensions, expected ?? "", "ws.extensions reports the agreed response");
          // Whatever was agreed, an uncompressed message still works.
          client.write(frame(TEXT, "plain"));
          const echo = await client.readFrame();
          assert.equal(echo.rsv, 0);
          assert.equal(decoder.decode(echo.payload), "plain");
          client.destroy();
        },
      );
    }

    it("reads offers split over two Sec-WebSocket-Extensions lines as one list", SLOW, async () => {
      const path = "/handshake/two-lines";
      const client = await RawClient.connect(server.port);
      clients.push(client);
      const lines = "Sec-WebSocket-Extensions: x-unknown; a=1\r\n" +
        "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n";
      client.write(upgradeRequest(path).replace(/\r\n$/, `${lines}\r\n`));
      const response = await client.readResponse();
      assert.equal(response.status, 101);
      assert.equal(response.headers.get("sec-websocket-extensions"), `${BASE}; client_no_context_takeover`);
      assert.equal((await server.next("open", path)).ws.extensions, `${BASE}; client_no_context_takeover`);
      client.destroy();
    });

    it("a server without perMessageDeflate ignores the offer", SLOW, async () => {
      const { client, extensions } = await open("/handshake/plain", "permessage-deflate", plain);
      assert.equal(extensions, null);
      assert.equal((await plain.next("open", "/handshake/plain")).ws.extensions, "");
      client.destroy();
    });
  });

  describe("messages", () => {
    it("echoes a compressed text message, compressed when above the threshold", SLOW, async () => {
      const path = "/messages/text";
      const { client } = await open(path, "permessage-deflate");
      const big = textBytes(5000, 1);
      sendFrames(client, messageFrames(TEXT, compressAlone(big), true));
      const echo = await readMessage(client);
      assert.equal(echo.frame.opcode, TEXT);
      assert.equal(echo.frame.rsv, RSV1, "5000 B >= threshold 1024: compressed");
      assert.ok(echo.frame.payload.length < big.length / 2, "and actually smaller");
      assert.equal(firstDifference(echo.data, big), -1);
      const message = await server.next("message", path);
      assert.equal(message.data, decoder.decode(big), "the handler got the inflated text");

      const small = encoder.encode("Hello, Hello, Hello!");
      sendFrames(client, messageFrames(TEXT, compressAlone(small), true));
      const smallEcho = await readMessage(client);
      assert.equal(smallEcho.frame.rsv, 0, "below the threshold: uncompressed");
      assert.deepEqual(smallEcho.frame.payload, small);
      client.destroy();
    });

    it("compresses from exactly the threshold, counted in UTF-8 bytes", SLOW, async () => {
      const path = "/messages/threshold";
      const { client } = await open(path, "permessage-deflate");
      const cases: [string, number][] = [
        ["é".repeat(512), RSV1], // 512 characters, 1024 bytes
        ["x".repeat(1023), 0],
        ["x".repeat(1024), RSV1],
        ["é".repeat(511) + "x", 0], // 1023 bytes
      ];
      for (const [text, rsv] of cases) {
        client.write(frame(TEXT, text));
        const echo = await readMessage(client);
        assert.equal(echo.frame.rsv, rsv, `${encoder.encode(text).length} bytes`);
        assert.equal(decoder.decode(echo.data), text);
      }
      client.destroy();
    });

    it("with threshold 0 compresses every message, empty ones too", SLOW, async () => {
      const zero = recordingServer({ perMessageDeflate: { threshold: 0 }, closeTimeout: 1000 });
      extra.push(zero.server);
      const { client } = await open("/messages/zero", "permessage-deflate", zero);
      for (const text of ["", "a", "Hello"]) {
        client.write(frame(TEXT, text));
        const echo = await readMessage(client);
        assert.equal(echo.frame.rsv, RSV1, JSON.stringify(text));
        assert.equal(decoder.decode(echo.data), text);
      }
      client.destroy();
    });

    it("accepts compressed empty messages in their usual forms", SLOW, async () => {
      const path = "/messages/empty";
      const { client } = await open(path, "permessage-deflate");
      for (const payload of [new Uint8Array(0), Uint8Array.of(0x00), Uint8Array.of(0x02, 0x00)]) {
        client.write(frame(BINARY, payload, { rsv: RSV1 }));
        const echo = await readMessage(client);
        assert.equal(echo.data.length, 0, `payload [${payload}]`);
      }
      client.destroy();
    });

    it(
      "accepts the other DEFLATE forms of RFC 7692 §7.2.3: stored blocks, two flushed blocks, a final block",
      SLOW,
      async () => {
        const path = "/messages/forms";
        const { client } = await open(path, "permessage-deflate; client_no_context_takeover");
        const data = textBytes(3000, 40);
        // Stored (uncompressed) blocks: level 0.
        const stored = compressAlone(data, 15, 0);
        assert.ok(stored.length > data.length);
        // Two blocks with a sync flush between them, in one message.
        const compressor = new StreamCompressor(15);
        let twoBlocks: Uint8Array;
        try {
          const first = await compressor.compress(data.subarray(0, 1000));
          const second = await compressor.compress(data.subarray(1000));
          twoBlocks = concat(first, Uint8Array.of(0x00, 0x00, 0xff, 0xff), second);
        } finally {
          compressor.close();
        }
        // A block with BFINAL set, then the header octet of an empty stored block.
        const final = concat(deflateRawSync(data), Uint8Array.of(0x00));
        for (
          const [name, payload] of [["stored", stored], ["two blocks", twoBlocks], ["BFINAL", final]] as const
        ) {
          sendFrames(client, messageFrames(TEXT, payload, true, 2));
          const echo = await readMessage(client);
          assert.equal(firstDifference(echo.data, data), -1, name);
        }
        client.destroy();
      },
    );

    it("reads compressed fragments that arrive one byte at a time", SLOW, async () => {
      const path = "/messages/bytewise";
      const { client } = await open(path, "permessage-deflate");
      const data = encoder.encode(jsonText(1500, 41));
      await client.writeBytewise(concat(...messageFrames(TEXT, compressAlone(data), true, 3)));
      const echo = await readMessage(client);
      assert.equal(echo.frame.rsv, RSV1);
      assert.equal(firstDifference(echo.data, data), -1);
      client.destroy();
    });

    it("compresses with the configured level", SLOW, async () => {
      const data = encoder.encode(jsonText(20000, 42));
      const sizes: number[] = [];
      for (const level of [0, 9]) {
        const leveled = recordingServer({ perMessageDeflate: { level }, closeTimeout: 1000 });
        extra.push(leveled.server);
        const { client } = await open(`/messages/level-${level}`, "permessage-deflate", leveled);
        client.write(frame(TEXT, data));
        const echo = await readMessage(client);
        assert.equal(echo.frame.rsv, RSV1, `level ${level}`);
        assert.equal(firstDifference(echo.data, data), -1, `level ${level}`);
        sizes.push(echo.frame.payload.length);
        client.destroy();
      }
      assert.ok(sizes[0] > data.length, `level 0 stores (${sizes[0]} B for ${data.length})`);
      assert.ok(sizes[1] < data.length / 2, `level 9 compresses (${sizes[1]} B)`);
    });

    it("accepts uncompressed messages on a connection that agreed to deflate", SLOW, async () => {
      const path = "/messages/mixed";
      const { client } = await open(path, "permessage-deflate");
      const data = compressibleBytes(3000, 4);
      client.write(frame(BINARY, data));
      const echo = await readMessage(client);
      assert.equal(firstDifference(echo.data, data), -1);
      client.destroy();
    });

    it(
      "accepts a compressed message fragmented into several frames, with a ping between them",
      SLOW,
      async () => {
        const path = "/messages/fragmented";
        const { client } = await open(path, "permessage-deflate");
        const data = textBytes(20000, 5);
        const frames = messageFrames(TEXT, compressAlone(data), true, 6);
        sendFrames(client, frames.slice(0, 3));
        client.write(frame(0x9, "mid"));
        sendFrames(client, frames.slice(3));
        const pong = await client.readFrame();
        assert.equal(pong.opcode, 0xa);
        assert.equal(decoder.decode(pong.payload), "mid");
        const echo = await readMessage(client);
        assert.equal(echo.frame.opcode, TEXT);
        assert.equal(firstDifference(echo.data, data), -1);
        client.destroy();
      },
    );

    it("accepts compressed text whose fragments split multi-byte characters", SLOW, async () => {
      const path = "/messages/utf8";
      const { client } = await open(path, "permessage-deflate");
      const text = jsonText(30000, 6);
      const compressed = compressAlone(encoder.encode(text));
      // Uneven pieces: the server must validate the inflated message, not the compressed pieces.
      sendFrames(client, messageFrames(TEXT, compressed, true, 7));
      const echo = await readMessage(client);
      assert.equal(decoder.decode(echo.data), text);
      assert.equal((await server.next("message", path)).data, text);
      client.destroy();
    });

    it("sends a big message uncompressed when send() is given { compress: false }", SLOW, async () => {
      const big = jsonText(64 * KiB, 7);
      const bytes = new Uint8Array(40000).fill(7);
      const custom = recordingServer({
        perMessageDeflate: true,
        closeTimeout: 1000,
        websocket: {
          message(ws, data) {
            if (data === "plain text") ws.send(big, { compress: false });
            else if (data === "plain binary") ws.send(bytes, { compress: false });
            else if (data === "auto") ws.send(big);
            else if (data === "explicit") ws.send(big, { compress: true });
          },
        },
      });
      extra.push(custom.server);
      const { client } = await open("/messages/override", "permessage-deflate", custom);
      for (
        const [request, rsv, expected] of [
          ["plain text", 0, encoder.encode(big)],
          ["plain binary", 0, bytes],
          ["auto", RSV1, encoder.encode(big)],
          ["explicit", RSV1, encoder.encode(big)],
        ] as const
      ) {
        client.write(frame(TEXT, request));
        const echo = await readMessage(client);
        assert.equal(echo.frame.rsv, rsv, request);
        if (rsv === 0) assert.equal(echo.frame.payload.length, expected.length, `${request}: sent as is`);
        assert.equal(firstDifference(echo.data, expected), -1, request);
      }
      client.destroy();
    });
  });

  describe("protocol errors", () => {
    it("fails RSV1 on a continuation frame with 1002", SLOW, async () => {
      const path = "/errors/rsv1-continuation";
      const { client } = await open(path, "permessage-deflate");
      const compressed = compressAlone(textBytes(3000, 8));
      const [first, second] = splitInto(compressed, 2);
      client.write(frame(TEXT, first, { fin: false, rsv: RSV1 }));
      client.write(frame(CONTINUATION, second, { rsv: RSV1 }));
      await expectFailure(server, client, path, 1002, RSV1_CONTINUATION);
    });

    it("fails RSV1 on an uncompressed message's continuation frame with 1002", SLOW, async () => {
      const path = "/errors/rsv1-late";
      const { client } = await open(path, "permessage-deflate");
      client.write(frame(TEXT, "abc", { fin: false }));
      client.write(frame(CONTINUATION, compressAlone(encoder.encode("def")), { rsv: RSV1 }));
      await expectFailure(server, client, path, 1002, RSV1_CONTINUATION);
    });

    for (const [name, opcode] of [["ping", 0x9], ["pong", 0xa], ["close", 0x8]] as const) {
      it(`fails RSV1 on a ${name} frame with 1002`, SLOW, async () => {
        const path = `/errors/rsv1-${name}`;
        const { client } = await open(path, "permessage-deflate");
        client.write(
          frame(opcode, opcode === 0x8 ? Uint8Array.of(0x03, 0xe8) : compressAlone(encoder.encode("x")), {
            rsv: RSV1,
          }),
        );
        await expectFailure(server, client, path, 1002, "RSV1 on a control frame");
      });
    }

    for (const rsv of [0x20, 0x10]) {
      it(`fails RSV${rsv === 0x20 ? 2 : 3} with 1002 even when deflate was agreed`, SLOW, async () => {
        const path = `/errors/rsv-${rsv}`;
        const { client } = await open(path, "permessage-deflate");
        client.write(frame(TEXT, "x", { rsv }));
        await expectFailure(server, client, path, 1002, RESERVED_BITS);
      });
    }

    it("fails RSV1 with 1002 on a server without perMessageDeflate", SLOW, async () => {
      const path = "/errors/no-deflate-server";
      const { client } = await open(path, "permessage-deflate", plain);
      client.write(frame(TEXT, compressAlone(encoder.encode("Hello")), { rsv: RSV1 }));
      await expectFailure(plain, client, path, 1002, RESERVED_BITS);
    });

    for (
      const [name, offer] of [["no offer", null], ["a refused offer", "permessage-deflate; foo"]] as const
    ) {
      it(`fails RSV1 with 1002 when deflate was not agreed (${name})`, SLOW, async () => {
        const path = `/errors/not-agreed/${name.replaceAll(" ", "-")}`;
        const { client, extensions } = await open(path, offer);
        assert.equal(extensions, null);
        client.write(frame(TEXT, compressAlone(encoder.encode("Hello")), { rsv: RSV1 }));
        await expectFailure(server, client, path, 1002, RESERVED_BITS);
      });
    }

    it("fails invalid compressed data with 1007", SLOW, async () => {
      const path = "/errors/invalid-deflate";
      const { client } = await open(path, "permessage-deflate");
      client.write(frame(BINARY, Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03), { rsv: RSV1 }));
      await expectFailure(server, client, path, 1007, BAD_DEFLATE);
    });

    it("fails compressed data cut short (mid-block) with 1007, not a shorter message", SLOW, async () => {
      const path = "/errors/truncated-deflate";
      const { client } = await open(path, "permessage-deflate");
      const whole = compressAlone(textBytes(4000, 7));
      client.write(frame(TEXT, whole.subarray(0, whole.length >> 1), { rsv: RSV1 }));
      await expectFailure(server, client, path, 1007, BAD_DEFLATE);
    });

    it("fails invalid compressed data spread over fragments with 1007", SLOW, async () => {
      const path = "/errors/invalid-deflate-fragmented";
      const { client } = await open(path, "permessage-deflate");
      sendFrames(client, messageFrames(BINARY, Uint8Array.of(0x07, 0x00, 0x11, 0x22, 0x33, 0x44), true, 3));
      await expectFailure(server, client, path, 1007, BAD_DEFLATE);
    });

    for (
      const [name, bytes] of [
        ["a bad continuation byte", Uint8Array.of(0x48, 0xc3, 0x28)],
        ["an encoded surrogate", Uint8Array.of(0x61, 0xed, 0xa0, 0x80)],
        ["a truncated character at the end", [...textBytes(4000, 9), 0xf0, 0x9f, 0x98]],
      ] as const
    ) {
      it(`fails compressed text with ${name} with 1007`, SLOW, async () => {
        const path = `/errors/utf8/${name.replaceAll(" ", "-")}`;
        const { client } = await open(path, "permessage-deflate");
        sendFrames(client, messageFrames(TEXT, compressAlone(Uint8Array.from(bytes)), true, 2));
        await expectFailure(server, client, path, 1007, "invalid UTF-8 in text message");
      });
    }

    it("echoes the same invalid UTF-8 bytes when they are a binary message (control)", SLOW, async () => {
      const path = "/errors/utf8-binary";
      const { client } = await open(path, "permessage-deflate");
      const bytes = Uint8Array.of(0x48, 0xc3, 0x28, 0xed, 0xa0, 0x80);
      client.write(frame(BINARY, compressAlone(bytes), { rsv: RSV1 }));
      assert.deepEqual((await readMessage(client)).data, bytes);
      client.destroy();
    });

    it("fails a compression bomb with 1009, closes TCP and stays responsive", SLOW, async () => {
      const small = recordingServer({ perMessageDeflate: true, maxPayloadLength: MiB, closeTimeout: 1000 });
      const BOMB = "inflated message over maxPayloadLength (1048576 bytes)";
      extra.push(small.server);
      // Exactly the limit inflated is fine.
      const { client: exact } = await open("/bomb/exact", "permessage-deflate", small);
      exact.write(frame(BINARY, compressAlone(new Uint8Array(MiB)), { rsv: RSV1 }));
      const echo = await readMessage(exact);
      assert.equal(echo.data.length, MiB);
      assert.ok(echo.data.every((byte) => byte === 0));
      exact.write(frame(BINARY, compressAlone(new Uint8Array(MiB + 1)), { rsv: RSV1 }));
      await expectFailure(small, exact, "/bomb/exact", 1009, BOMB);

      const bomb = compressAlone(new Uint8Array(64 * MiB));
      assert.ok(bomb.length < 100 * KiB, `64 MiB of zeros compress to ${bomb.length} B`);
      const { client } = await open("/bomb/big", "permessage-deflate", small);
      client.write(frame(BINARY, bomb, { rsv: RSV1 }));
      await expectFailure(small, client, "/bomb/big", 1009, BOMB);

      // The same bomb in fragments, on a connection with context takeover and some history.
      const { client: fragmented } = await open("/bomb/fragmented", "permessage-deflate", small);
      fragmented.write(frame(TEXT, compressAlone(encoder.encode("history")), { rsv: RSV1 }));
      assert.equal(decoder.decode((await readMessage(fragmented)).data), "history");
      sendFrames(fragmented, messageFrames(BINARY, bomb, true, 5));
      await expectFailure(small, fragmented, "/bomb/fragmented", 1009, BOMB);

      const { client: next } = await open("/bomb/after", "permessage-deflate", small);
      next.write(frame(TEXT, compressAlone(encoder.encode("still here")), { rsv: RSV1 }));
      assert.equal(decoder.decode((await readMessage(next)).data), "still here");
      next.destroy();
    });
  });

  describe("context takeover", () => {
    /** Messages that refer back to earlier ones: exact repeats and shared phrases. */
    function conversation(): Uint8Array[] {
      const messages = [
        encoder.encode("Hello"),
        encoder.encode("Hello"),
        textBytes(3000, 10),
        textBytes(3000, 10), // an exact repeat of 3000 bytes: one back-reference
        encoder.encode(""),
        textBytes(50000, 11),
        encoder.encode(jsonText(2000, 12)),
        encoder.encode(jsonText(2000, 12)),
      ];
      return messages;
    }

    it("inflates several messages from one client compressor (real context takeover)", SLOW, async () => {
      const path = "/context/takeover";
      const { client, extensions } = await open(path, "permessage-deflate");
      assert.equal(extensions, BASE);
      const compressor = new StreamCompressor(15);
      try {
        const sizes: number[] = [];
        for (const [index, message] of conversation().entries()) {
          const compressed = await compressor.compress(message);
          sizes.push(compressed.length);
          sendFrames(client, messageFrames(index % 2 ? BINARY : TEXT, compressed, true, index % 3 + 1));
          const echo = await readMessage(client);
          assert.equal(firstDifference(echo.data, message), -1, `message ${index}`);
        }
        assert.ok(sizes[3] < 60, `the 3000 B repeat was sent as back-references (${sizes[3]} B)`);
      } finally {
        compressor.close();
        client.destroy();
      }
    });

    it("keeps uncompressed messages out of the context", SLOW, async () => {
      const path = "/context/interleaved";
      const { client } = await open(path, "permessage-deflate");
      const compressor = new StreamCompressor(15);
      try {
        const first = textBytes(2000, 13);
        sendFrames(client, messageFrames(TEXT, await compressor.compress(first), true));
        assert.equal(firstDifference((await readMessage(client)).data, first), -1);
        // An uncompressed message never goes through the client's compressor.
        const between = new Random(14).bytes(5000);
        client.write(frame(BINARY, between));
        assert.equal(firstDifference((await readMessage(client)).data, between), -1);
        const again = await compressor.compress(first);
        assert.ok(again.length < 60, `refers back to the first message (${again.length} B)`);
        sendFrames(client, messageFrames(TEXT, again, true));
        assert.equal(firstDifference((await readMessage(client)).data, first), -1);
      } finally {
        compressor.close();
        client.destroy();
      }
    });

    it(
      "with client_no_context_takeover inflates each message alone, and keeps no history",
      SLOW,
      async () => {
        const path = "/context/none";
        const { client, extensions } = await open(path, "permessage-deflate; client_no_context_takeover");
        assert.equal(extensions, `${BASE}; client_no_context_takeover`);
        for (const [index, message] of conversation().entries()) {
          sendFrames(client, messageFrames(BINARY, compressAlone(message), true, index % 3 + 1));
          assert.equal(firstDifference((await readMessage(client)).data, message), -1, `message ${index}`);
        }
        // A client that refers back anyway is refused: the server kept nothing to refer to.
        const compressor = new StreamCompressor(15);
        try {
          const message = new Random(15).bytes(2000);
          sendFrames(client, messageFrames(BINARY, await compressor.compress(message), true));
          assert.equal(firstDifference((await readMessage(client)).data, message), -1);
          sendFrames(client, messageFrames(BINARY, await compressor.compress(message), true));
          await expectFailure(server, client, path, 1007, BAD_DEFLATE);
        } finally {
          compressor.close();
        }
      },
    );

    it("with the client's window capped at 9 bits keeps only that much history", SLOW, async () => {
      const capped = recordingServer({ perMessageDeflate: { clientMaxWindowBits: 9 }, closeTimeout: 1000 });
      extra.push(capped.server);
      const path = "/context/capped";
      const { client, extensions } = await open(path, "permessage-deflate; client_max_window_bits", capped);
      assert.equal(extensions, `${BASE}; client_max_window_bits=9`);
      const honest = new StreamCompressor(9);
      const cheat = new StreamCompressor(15);
      try {
        for (const [index, message] of conversation().entries()) {
          sendFrames(client, messageFrames(BINARY, await honest.compress(message), true));
          assert.equal(firstDifference((await readMessage(client)).data, message), -1, `message ${index}`);
        }
        // A client that ignores the agreed window and refers 2000 bytes back is refused.
        const message = new Random(16).bytes(2000);
        sendFrames(client, messageFrames(BINARY, await cheat.compress(message), true));
        await readMessage(client);
        sendFrames(client, messageFrames(BINARY, await cheat.compress(message), true));
        await expectFailure(capped, client, path, 1007, BAD_DEFLATE);
      } finally {
        honest.close();
        cheat.close();
      }
    });

    it(
      "inflates messages ending in a BFINAL block (RFC 7692 §7.2.3.4) with context takeover",
      SLOW,
      async () => {
        // "Hello" as a final fixed block plus the octet of an empty stored block's header.
        const path = "/context/bfinal";
        const { client } = await open(path, "permessage-deflate");
        for (const word of ["Hello", "Hello again", "Hello, world"]) {
          const finished = deflateRawSync(encoder.encode(word));
          const payload = new Uint8Array(finished.length + 1);
          payload.set(finished);
          client.write(frame(TEXT, payload, { rsv: RSV1 }));
          const next = await client.readFrame();
          if (next.opcode === 0x8) {
            const code = (next.payload[0] << 8) | next.payload[1];
            assert.fail(`"${word}" was refused with close ${code}`);
          }
          assert.equal(decoder.decode(next.payload), word);
        }
        client.destroy();
      },
    );
  });

  describe("server context takeover (perMessageDeflate.serverContextTakeover)", () => {
    let kept: RecordingServer;
    let narrow: RecordingServer;
    before(() => {
      kept = recordingServer({ perMessageDeflate: { serverContextTakeover: true }, closeTimeout: 1000 });
      narrow = recordingServer({
        perMessageDeflate: { serverContextTakeover: true, serverMaxWindowBits: 12 },
        closeTimeout: 1000,
      });
      extra.push(kept.server, narrow.server);
    });

    /** [offer, serverMaxWindowBits of the server, the exact answer or null] */
    const answers: [string, number, string | null][] = [
      // Chromium's, ws's and the runtimes' offer, and Firefox's.
      ["permessage-deflate; client_max_window_bits", 15, "permessage-deflate"],
      ["permessage-deflate", 15, "permessage-deflate"],
      [
        "permessage-deflate; server_no_context_takeover",
        15,
        "permessage-deflate; server_no_context_takeover",
      ],
      [
        "permessage-deflate; client_no_context_takeover",
        15,
        "permessage-deflate; client_no_context_takeover",
      ],
      ["permessage-deflate; server_max_window_bits=10", 15, "permessage-deflate; server_max_window_bits=10"],
      [
        "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
        15,
        "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
      ],
      ["permessage-deflate; server_max_window_bits=15", 12, "permessage-deflate; server_max_window_bits=12"],
      ["permessage-deflate; server_max_window_bits=9", 12, "permessage-deflate; server_max_window_bits=9"],
      ["permessage-deflate; client_max_window_bits", 12, "permessage-deflate"],
      ["permessage-deflate; server_no_context_takeover=1", 15, null],
    ];
    for (const [index, [offer, bits, expected]] of answers.entries()) {
      it(
        `answers ${JSON.stringify(offer)} (serverMaxWindowBits ${bits}) with ${JSON.stringify(expected)}`,
        SLOW,
        async () => {
          const target = bits === 15 ? kept : narrow;
          const path = `/kept/answer/${index}`;
          const { client, extensions } = await open(path, offer, target);
          assert.equal(extensions, expected);
          assert.equal((await target.next("open", path)).ws.extensions, expected ?? "");
          client.destroy();
        },
      );
    }

    /**
     * Sends `messages` as plain binary frames, reads each compressed echo, and checks the payloads
     * as a client with context takeover inflates them (window `bits`); returns the payloads.
     */
    async function echoes(client: RawClient, messages: Uint8Array[], bits: number): Promise<Uint8Array[]> {
      const inflater = new MessageInflater(bits, true);
      const payloads: Uint8Array[] = [];
      for (const [index, message] of messages.entries()) {
        client.write(frame(BINARY, message));
        const echo = await client.readFrame();
        assert.equal(echo.rsv, RSV1, `message ${index} is compressed`);
        const out = inflater.inflate(echo.payload, message.length);
        assert.equal(firstDifference(out, message), -1, `message ${index} (${message.length} B)`);
        payloads.push(echo.payload);
      }
      assert.equal(
        firstDifference(inflateStream(payloads, bits), concat(...messages)),
        -1,
        "the payloads inflate as one stream with exactly the window",
      );
      return payloads;
    }

    const chat = chatMessages(400, 5);
    const chatBytes = chat.reduce((sum, message) => sum + message.length, 0);

    it(
      "compresses every message with the last 32 KiB as context: a chat stream shrinks 3x",
      SLOW,
      async () => {
        const path = "/kept/chat";
        const { client, extensions } = await open(path, "permessage-deflate; client_max_window_bits", kept);
        assert.equal(extensions, "permessage-deflate");
        const payloads = await echoes(client, chat, 15);
        const compressed = payloads.reduce((sum, payload) => sum + payload.length, 0);
        assert.ok(chatBytes / compressed > 3, `${chatBytes} B as ${compressed} B`);
        // The same message again is a back-reference, which an inflater without the context refuses.
        client.write(frame(TEXT, chat[399]));
        const repeat = await client.readFrame();
        assert.ok(repeat.payload.length < 10, `the repeat is ${repeat.payload.length} B`);
        assert.throws(() => inflateAlone(repeat.payload), /distance too far back/);
        client.destroy();
      },
    );

    it(
      "keeps its references within the window the client offered (server_max_window_bits=9)",
      SLOW,
      async () => {
        const path = "/kept/window9";
        const { client, extensions } = await open(path, "permessage-deflate; server_max_window_bits=9", kept);
        assert.equal(extensions, "permessage-deflate; server_max_window_bits=9");
        // Messages with repeats from 400 bytes to 3 KiB back: only the nearest may be referred to.
        const random = new Random(9);
        const phrase = random.bytes(300);
        const messages = [
          phrase,
          random.bytes(100),
          phrase,
          random.bytes(3000),
          phrase,
          ...chat.slice(0, 100),
        ];
        await echoes(client, messages, 9);
        client.destroy();
      },
    );

    it("compresses each message alone when the client offers server_no_context_takeover", SLOW, async () => {
      const path = "/kept/refused";
      const offer = "permessage-deflate; server_no_context_takeover";
      const { client, extensions } = await open(path, offer, kept);
      assert.equal(extensions, offer);
      for (const [index, message] of chat.slice(0, 50).entries()) {
        client.write(frame(TEXT, message));
        const echo = await client.readFrame();
        assert.equal(echo.rsv, RSV1, "the threshold is 0 with serverContextTakeover, whatever was agreed");
        assert.equal(firstDifference(inflateAlone(echo.payload), message), -1, `message ${index} alone`);
      }
      client.destroy();
    });

    it(
      "sends an empty message as 0x00 and leaves messages sent with compress: false out of the context",
      SLOW,
      async () => {
        const first = encoder.encode(jsonText(600, 41));
        const plain = encoder.encode(jsonText(600, 42));
        const target = recordingServer({
          perMessageDeflate: { serverContextTakeover: true },
          closeTimeout: 1000,
          websocket: {
            message(ws) {
              ws.send(first);
              ws.send(plain, { compress: false });
              ws.send("");
              ws.send(first);
            },
          },
        });
        extra.push(target.server);
        const { client } = await open("/kept/mixed", "permessage-deflate", target);
        client.write(frame(TEXT, "go"));
        const frames = [
          await client.readFrame(),
          await client.readFrame(),
          await client.readFrame(),
          await client.readFrame(),
        ];
        assert.deepEqual(frames.map((f) => f.rsv), [RSV1, 0, RSV1, RSV1]);
        assert.equal(firstDifference(frames[1].payload, plain), -1, "sent as is");
        assert.deepEqual(frames[2].payload, Uint8Array.of(0x00), "the empty message");
        assert.ok(frames[3].payload.length < 20, `the repeat refers back (${frames[3].payload.length} B)`);
        // The compressed ones alone make the client's stream; the plain one is not in it.
        const compressed = [frames[0].payload, frames[2].payload, frames[3].payload];
        assert.equal(firstDifference(inflateStream(compressed), concat(first, first)), -1);
        client.destroy();
      },
    );

    it("keeps the context across long messages (16 KiB and up go through zlib)", SLOW, async () => {
      const path = "/kept/long";
      const { client } = await open(path, "permessage-deflate", kept);
      const long = encoder.encode(jsonText(100 * KiB, 43));
      const messages = [
        chat[0],
        long,
        chat[1],
        long.subarray(0, 20000),
        chat[0],
        long.subarray(long.length - 300),
      ];
      const payloads = await echoes(client, messages, 15);
      assert.ok(payloads[5].length < 20, `the long message's tail is referred to (${payloads[5].length} B)`);
      client.destroy();
    });
  });

  describe("Autobahn-style sizes and parameters", () => {
    interface Combo {
      name: string;
      offer: string;
      options?: PerMessageDeflateOptions;
      response: string;
      /** The window the client compresses with, and whether it keeps its context. */
      clientBits: number;
      clientContext: boolean;
      /** The window the server must stay within. */
      serverBits: number;
    }
    const combos: Combo[] = [
      {
        name: "default",
        offer: "permessage-deflate",
        response: BASE,
        clientBits: 15,
        clientContext: true,
        serverBits: 15,
      },
      {
        name: "client_no_context_takeover",
        offer: "permessage-deflate; client_no_context_takeover",
        response: `${BASE}; client_no_context_takeover`,
        clientBits: 15,
        clientContext: false,
        serverBits: 15,
      },
      {
        name: "server_max_window_bits=9",
        offer: "permessage-deflate; server_max_window_bits=9",
        response: `${BASE}; server_max_window_bits=9`,
        clientBits: 15,
        clientContext: true,
        serverBits: 9,
      },
      {
        name: "server_max_window_bits=15",
        offer: "permessage-deflate; server_max_window_bits=15",
        response: `${BASE}; server_max_window_bits=15`,
        clientBits: 15,
        clientContext: true,
        serverBits: 15,
      },
      {
        name: "client_max_window_bits=9",
        offer: "permessage-deflate; client_max_window_bits=9",
        response: `${BASE}; client_max_window_bits=9`,
        clientBits: 9,
        clientContext: true,
        serverBits: 15,
      },
      {
        name: "client_max_window_bits=15",
        offer: "permessage-deflate; client_max_window_bits=15",
        response: BASE,
        clientBits: 15,
        clientContext: true,
        serverBits: 15,
      },
      {
        name: "server_max_window_bits=8",
        offer: "permessage-deflate; server_max_window_bits=8",
        response: `${BASE}; server_max_window_bits=8`,
        clientBits: 15,
        clientContext: true,
        serverBits: 8,
      },
      {
        name: "client_max_window_bits=8, both without context takeover",
        offer: "permessage-deflate; client_no_context_takeover; client_max_window_bits=8",
        response: `${BASE}; client_no_context_takeover; client_max_window_bits=8`,
        clientBits: 8,
        clientContext: false,
        serverBits: 15,
      },
      {
        name: "client_max_window_bits=8 with context takeover",
        offer: "permessage-deflate; client_max_window_bits=8",
        response: `${BASE}; client_max_window_bits=8`,
        clientBits: 8,
        clientContext: true,
        serverBits: 15,
      },
      {
        name: "clientMaxWindowBits: 9 on the server, bare client_max_window_bits offered",
        offer: "permessage-deflate; client_max_window_bits",
        options: { clientMaxWindowBits: 9 },
        response: `${BASE}; client_max_window_bits=9`,
        clientBits: 9,
        clientContext: true,
        serverBits: 15,
      },
    ];
    const SIZES = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072];
    const PIECES = [1, 3, 10];

    for (const [index, combo] of combos.entries()) {
      it(`echoes 16 B to 128 KiB, whole and in 3 and 10 frames: ${combo.name}`, SLOW, async () => {
        let target = server;
        if (combo.options !== undefined) {
          target = recordingServer({ perMessageDeflate: combo.options, closeTimeout: 1000 });
          extra.push(target.server);
        }
        const { client, extensions } = await open(`/autobahn/${index}`, combo.offer, target);
        assert.equal(extensions, combo.response);
        const compressor = combo.clientContext ? new StreamCompressor(combo.clientBits) : null;
        try {
          let count = 0;
          for (const size of SIZES) {
            for (const pieces of PIECES) {
              const opcode = count++ % 2 === 0 ? TEXT : BINARY;
              const data = compressibleBytes(size, size * 10 + pieces);
              const compressed = compressor === null
                ? compressAlone(data, combo.clientBits)
                : await compressor.compress(data);
              sendFrames(client, messageFrames(opcode, compressed, true, pieces));
              const what = `${size} B in ${pieces} frame(s)`;
              const echo = await readMessage(client, combo.serverBits);
              assert.equal(echo.frame.opcode, opcode, what);
              assert.equal(echo.frame.rsv, size >= 1024 ? RSV1 : 0, `${what}: compressed from the threshold`);
              assert.equal(firstDifference(echo.data, data), -1, what);
            }
          }
        } finally {
          compressor?.close();
          client.destroy();
        }
      });
    }
  });
});

// --- Interop with the ws npm client ---------------------------------------------------------------

/** The part of the `ws` client's API used here. */
interface NodeWsClient {
  readonly extensions: string;
  readonly readyState: number;
  on(event: "open", listener: () => void): void;
  on(event: "message", listener: (data: Uint8Array, isBinary: boolean) => void): void;
  on(event: "close", listener: (code: number, reason: Uint8Array) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
  send(data: string | Uint8Array, options?: { binary?: boolean; compress?: boolean }): void;
  close(code?: number): void;
  terminate(): void;
}
interface WsDeflateOptions {
  serverNoContextTakeover?: boolean;
  clientNoContextTakeover?: boolean;
  serverMaxWindowBits?: number;
  clientMaxWindowBits?: number | boolean;
  threshold?: number;
}
const NodeWebSocket = WsModule as unknown as new (
  url: string,
  options?: { perMessageDeflate?: WsDeflateOptions | false },
) => NodeWsClient;

/** A TCP relay that counts the bytes going each way, to see whether messages were compressed. */
async function countingProxy(target: number) {
  const counts = { up: 0, down: 0 };
  const sockets = new Set<Socket>();
  const relay = createServer((inbound) => {
    const outbound = connect({ host: "127.0.0.1", port: target });
    sockets.add(inbound);
    sockets.add(outbound);
    inbound.on("data", (chunk: Uint8Array) => {
      counts.up += chunk.length;
      outbound.write(chunk);
    });
    outbound.on("data", (chunk: Uint8Array) => {
      counts.down += chunk.length;
      inbound.write(chunk);
    });
    inbound.on("end", () => outbound.end());
    outbound.on("end", () => inbound.end());
    for (const [a, b] of [[inbound, outbound], [outbound, inbound]]) {
      a.on("error", () => b.destroy());
      a.on("close", () => {
        sockets.delete(a);
        b.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  const address = relay.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    port,
    counts,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => relay.close(() => resolve()));
    },
  };
}

/** Messages of many sizes and both kinds, mostly compressible, plus their total size. */
function interopMessages(seed: number): { messages: (string | Uint8Array)[]; total: number } {
  const messages: (string | Uint8Array)[] = [
    "",
    "a",
    "Hello, Hello, Hello",
    jsonText(1000, seed),
    decoder.decode(textBytes(1023, seed)),
    decoder.decode(textBytes(1024, seed)),
    jsonText(70000, seed + 1),
    jsonText(70000, seed + 1), // a repeat, for context takeover
    jsonText(600 * KiB, seed + 2),
    new Uint8Array(0),
    Uint8Array.of(0, 255),
    compressibleBytes(5000, seed),
    new Random(seed).bytes(70000), // incompressible
    compressibleBytes(300 * KiB, seed + 3),
  ];
  let total = 0;
  for (const message of messages) {
    total += typeof message === "string" ? encoder.encode(message).length : message.length;
  }
  return { messages, total };
}

describe("permessage-deflate interop with the ws client", () => {
  const servers = new Map<string, RecordingServer>();
  after(async () => {
    await Promise.all([...servers.values()].map((s) => s.server.close()));
  });

  function serverFor(options: PerMessageDeflateOptions): RecordingServer {
    const key = JSON.stringify(options);
    if (!servers.has(key)) {
      servers.set(key, recordingServer({ perMessageDeflate: options, closeTimeout: 1000 }));
    }
    return servers.get(key)!;
  }

  const combos: {
    name: string;
    client: WsDeflateOptions;
    server?: PerMessageDeflateOptions;
    response: string;
  }[] = [
    { name: "defaults", client: {}, response: BASE },
    {
      name: "clientNoContextTakeover",
      client: { clientNoContextTakeover: true },
      response: `${BASE}; client_no_context_takeover`,
    },
    { name: "serverNoContextTakeover", client: { serverNoContextTakeover: true }, response: BASE },
    {
      name: "no context takeover either way",
      client: { serverNoContextTakeover: true, clientNoContextTakeover: true },
      response: `${BASE}; client_no_context_takeover`,
    },
    {
      name: "context takeover asked for both ways",
      client: { serverNoContextTakeover: false, clientNoContextTakeover: false },
      response: BASE,
    },
    {
      name: "serverMaxWindowBits 9",
      client: { serverMaxWindowBits: 9 },
      response: `${BASE}; server_max_window_bits=9`,
    },
    {
      name: "serverMaxWindowBits 15",
      client: { serverMaxWindowBits: 15 },
      response: `${BASE}; server_max_window_bits=15`,
    },
    {
      name: "clientMaxWindowBits 9",
      client: { clientMaxWindowBits: 9 },
      response: `${BASE}; client_max_window_bits=9`,
    },
    { name: "clientMaxWindowBits 15", client: { clientMaxWindowBits: 15 }, response: BASE },
    {
      name: "both windows 8",
      client: { serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
      response: `${BASE}; server_max_window_bits=8; client_max_window_bits=8`,
    },
    {
      name: "both windows 9, no context takeover",
      client: {
        serverMaxWindowBits: 9,
        clientMaxWindowBits: 9,
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
      },
      response: `${BASE}; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9`,
    },
    {
      name: "server caps the client's window at 9",
      client: {},
      server: { clientMaxWindowBits: 9 },
      response: `${BASE}; client_max_window_bits=9`,
    },
    {
      name: "server cap without client_max_window_bits offered",
      client: { clientMaxWindowBits: false },
      server: { clientMaxWindowBits: 9 },
      response: BASE,
    },
    { name: "server threshold 0", client: {}, server: { threshold: 0 }, response: BASE },
    // With the server's context kept (RFC 7692 §7.1.1.1), unless the client forbids it.
    { name: "server context takeover", client: {}, server: KEPT, response: "permessage-deflate" },
    {
      name: "server context takeover refused by the client",
      client: { serverNoContextTakeover: true },
      server: KEPT,
      response: BASE,
    },
    {
      name: "server context takeover, no client context takeover",
      client: { clientNoContextTakeover: true },
      server: KEPT,
      response: "permessage-deflate; client_no_context_takeover",
    },
    {
      name: "server context takeover, serverMaxWindowBits 9",
      client: { serverMaxWindowBits: 9 },
      server: KEPT,
      response: "permessage-deflate; server_max_window_bits=9",
    },
    {
      name: "server context takeover, both windows 8",
      client: { serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
      server: KEPT,
      response: "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
    },
    {
      name: "server context takeover with a 12-bit window, 15 offered",
      client: { serverMaxWindowBits: 15 },
      server: { ...KEPT, serverMaxWindowBits: 12 },
      response: "permessage-deflate; server_max_window_bits=12",
    },
  ];

  for (const [index, combo] of combos.entries()) {
    it(`echoes text and binary byte-identically: ${combo.name}`, SLOW, async () => {
      const target = serverFor(combo.server ?? {});
      const proxy = await countingProxy(target.port);
      const path = `/ws/${index}`;
      const client = new NodeWebSocket(`ws://127.0.0.1:${proxy.port}${path}`, {
        perMessageDeflate: { ...combo.client, threshold: 0 },
      });
      const received = new Inbox<{ data: Uint8Array; isBinary: boolean }>();
      client.on("message", (data, isBinary) => received.push({ data: new Uint8Array(data), isBinary }));
      client.on("error", () => {});
      try {
        await withTimeout(
          new Promise<void>((resolve, reject) => {
            client.on("open", resolve);
            client.on("error", reject);
          }),
          5000,
          "the ws client to open",
        );
        assert.equal(client.extensions, "permessage-deflate", "the client agreed to permessage-deflate");
        assert.equal((await target.next("open", path)).ws.extensions, combo.response);

        const { messages, total } = interopMessages(index);
        for (const message of messages) client.send(message);
        for (const [i, message] of messages.entries()) {
          const echo = await received.take(() => true, 10000, `echo ${i}`);
          const expected = typeof message === "string" ? encoder.encode(message) : message;
          assert.equal(echo.isBinary, typeof message !== "string", `message ${i} kind`);
          assert.equal(firstDifference(echo.data, expected), -1, `message ${i} (${expected.length} B)`);
        }
        // Both directions were compressed: far fewer bytes crossed the wire than were sent.
        assert.ok(proxy.counts.up < total / 2, `client to server: ${proxy.counts.up} B for ${total} B`);
        assert.ok(proxy.counts.down < total / 2, `server to client: ${proxy.counts.down} B for ${total} B`);
      } finally {
        client.terminate();
        await proxy.close();
      }
    });
  }

  it(
    "a chat stream to the ws client shrinks 3x with server context takeover, and not without",
    SLOW,
    async () => {
      const chat = chatMessages(1000, 7).map((message) => decoder.decode(message));
      const total = chat.reduce((sum, message) => sum + encoder.encode(message).length, 0);
      const down: number[] = [];
      for (const options of [KEPT, {}]) {
        const target = serverFor(options);
        const proxy = await countingProxy(target.port);
        const client = new NodeWebSocket(`ws://127.0.0.1:${proxy.port}/ws/chat`, { perMessageDeflate: {} });
        const received = new Inbox<string>();
        client.on("message", (data) => received.push(decoder.decode(data)));
        client.on("error", () => {});
        try {
          await withTimeout(new Promise<void>((resolve) => client.on("open", resolve)), 5000, "open");
          const opened = await target.next("open", "/ws/chat");
          const before = proxy.counts.down;
          for (const message of chat) opened.ws.send(message);
          for (const [i, message] of chat.entries()) {
            assert.equal(await received.take(() => true, 10000, `message ${i}`), message, `message ${i}`);
          }
          down.push(proxy.counts.down - before);
        } finally {
          client.terminate();
          await proxy.close();
        }
      }
      assert.ok(total / down[0] > 3, `with context: ${total} B as ${down[0]} B on the wire`);
      assert.ok(total / down[1] < 1.1, `without (threshold 1024): ${total} B as ${down[1]} B`);
    },
  );

  it("a ws client without perMessageDeflate gets uncompressed messages", SLOW, async () => {
    const target = serverFor({});
    const proxy = await countingProxy(target.port);
    const client = new NodeWebSocket(`ws://127.0.0.1:${proxy.port}/ws/plain`, { perMessageDeflate: false });
    const received = new Inbox<Uint8Array>();
    client.on("message", (data) => received.push(new Uint8Array(data)));
    client.on("error", () => {});
    try {
      await withTimeout(new Promise<void>((resolve) => client.on("open", resolve)), 5000, "open");
      assert.equal(client.extensions, "");
      assert.equal((await target.next("open", "/ws/plain")).ws.extensions, "");
      const text = jsonText(100 * KiB, 1);
      client.send(text);
      const echo = await received.take(() => true, 5000, "the echo");
      assert.equal(decoder.decode(echo), text);
      assert.ok(proxy.counts.down > encoder.encode(text).length, "sent as is");
    } finally {
      client.terminate();
      await proxy.close();
    }
  });
});

describe("permessage-deflate with the runtime's built-in WebSocket", () => {
  let target: RecordingServer;
  const offers: (string | null)[] = [];
  before(() => {
    target = recordingServer({
      perMessageDeflate: true,
      closeTimeout: 1000,
      upgrade(request) {
        offers.push(request.headers.get("sec-websocket-extensions"));
      },
    });
  });
  after(() => target.server.close());

  it("agrees to whatever it offered and round-trips big JSON text", SLOW, async () => {
    const proxy = await countingProxy(target.port);
    const client = new WebSocket(`ws://127.0.0.1:${proxy.port}/builtin`);
    const received = new Inbox<string>();
    client.addEventListener("message", (event) => received.push(String(event.data)));
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          client.addEventListener("open", () => resolve());
          client.addEventListener("error", () => reject(new Error("the built-in client failed")));
        }),
        5000,
        "the built-in client to open",
      );
      const offer = offers[0] ?? null;
      const expected = negotiateDeflate(offer, { clientMaxWindowBits: 15 })?.response ?? "";
      const opened = await target.next("open", "/builtin");
      assert.equal(opened.ws.extensions, expected, `the client offered ${JSON.stringify(offer)}`);
      if (expected !== "") {
        assert.ok(client.extensions.includes("permessage-deflate"), `client sees "${client.extensions}"`);
      } else {
        assert.equal(client.extensions, "");
      }
      const texts = [jsonText(200 * KiB, 21), jsonText(5000, 22), "short", jsonText(1024 * KiB, 23)];
      for (const text of texts) client.send(text);
      let total = 0;
      for (const [i, text] of texts.entries()) {
        assert.equal(await received.take(() => true, 10000, `echo ${i}`), text, `message ${i}`);
        total += encoder.encode(text).length;
      }
      if (expected !== "") {
        assert.ok(
          proxy.counts.down < total / 2,
          `the server compressed: ${proxy.counts.down} B for ${total} B`,
        );
      } else {
        assert.ok(proxy.counts.down > total, "nothing agreed: sent as is");
      }
    } finally {
      client.close();
      await until(() => client.readyState === WebSocket.CLOSED, "the built-in client to close").catch(
        () => {},
      );
      await proxy.close();
    }
  });
});

describe("server context takeover with the runtime's built-in WebSocket", () => {
  let target: RecordingServer;
  const offers: (string | null)[] = [];
  before(() => {
    target = recordingServer({
      perMessageDeflate: KEPT,
      closeTimeout: 1000,
      upgrade(request) {
        offers.push(request.headers.get("sec-websocket-extensions"));
      },
    });
  });
  after(() => target.server.close());

  it("decompresses a chat stream and long JSON sent with the server's context kept", SLOW, async () => {
    const proxy = await countingProxy(target.port);
    const client = new WebSocket(`ws://127.0.0.1:${proxy.port}/builtin-kept`);
    const received = new Inbox<string>();
    client.addEventListener("message", (event) => received.push(String(event.data)));
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          client.addEventListener("open", () => resolve());
          client.addEventListener("error", () => reject(new Error("the built-in client failed")));
        }),
        5000,
        "the built-in client to open",
      );
      const offer = offers[0] ?? null;
      const expected =
        negotiateDeflate(offer, { clientMaxWindowBits: 15, serverContextTakeover: true })?.response ??
          "";
      const opened = await target.next("open", "/builtin-kept");
      assert.equal(opened.ws.extensions, expected, `the client offered ${JSON.stringify(offer)}`);
      const chat = chatMessages(1000, 8).map((message) => decoder.decode(message));
      const texts = [...chat.slice(0, 500), jsonText(200 * KiB, 24), ...chat.slice(500)];
      const total = texts.reduce((sum, text) => sum + encoder.encode(text).length, 0);
      const before = proxy.counts.down;
      for (const text of texts) opened.ws.send(text);
      for (const [i, text] of texts.entries()) {
        assert.equal(await received.take(() => true, 10000, `message ${i}`), text, `message ${i}`);
      }
      const wire = proxy.counts.down - before;
      if (expected.startsWith("permessage-deflate")) {
        assert.ok(total / wire > 3, `${total} B as ${wire} B on the wire`);
      } else {
        assert.ok(wire > total, "nothing agreed: sent as is");
      }
    } finally {
      client.close();
      await until(() => client.readyState === WebSocket.CLOSED, "the built-in client to close").catch(
        () => {},
      );
      await proxy.close();
    }
  });
});

describe("permessage-deflate and publish/subscribe", () => {
  let target: RecordingServer;
  const clients: RawClient[] = [];
  before(() => {
    target = recordingServer({
      perMessageDeflate: true,
      closeTimeout: 1000,
      websocket: {
        open(ws) {
          ws.subscribe("news");
        },
        message(ws, data) {
          ws.publish("news", data);
        },
      },
    });
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await target.server.close();
  });

  it("encodes once per kind: same window, same compressed bytes; no deflate, plain bytes", SLOW, async () => {
    const offers = {
      a: "permessage-deflate",
      b: "permessage-deflate; client_no_context_takeover; client_max_window_bits",
      plain: null,
      narrow: "permessage-deflate; server_max_window_bits=10",
    };
    const opened: Record<string, RawClient> = {};
    for (const [name, offer] of Object.entries(offers)) {
      opened[name] = (await openRaw(target.port, `/pubsub/${name}`, offer)).client;
      clients.push(opened[name]);
    }
    await until(() => target.server.subscriberCount("news") === 4, "4 subscribers");

    const text = decoder.decode(compressibleBytes(20000, 31));
    assert.equal(target.server.publish("news", text), 4);
    const frames: Record<string, ReceivedFrame> = {};
    for (const name of Object.keys(offers)) frames[name] = await opened[name].readFrame();

    assert.equal(frames.a.rsv, RSV1);
    assert.equal(frames.a.opcode, TEXT);
    assert.equal(firstDifference(frames.a.payload, frames.b.payload), -1, "a and b got the same bytes");
    assert.equal(decoder.decode(inflateAlone(frames.a.payload, 15)), text);
    assert.equal(frames.plain.rsv, 0, "the subscriber without deflate gets the plain frame");
    assert.equal(decoder.decode(frames.plain.payload), text);
    assert.equal(frames.narrow.rsv, RSV1);
    assert.notDeepEqual(frames.narrow.payload, frames.a.payload, "a 10-bit window is encoded apart");
    assert.equal(decoder.decode(inflateAlone(frames.narrow.payload, 10)), text);

    // Below the threshold every subscriber gets the same plain frame.
    assert.equal(target.server.publish("news", "short news"), 4);
    for (const name of Object.keys(offers)) {
      const received = await opened[name].readFrame();
      assert.equal(received.rsv, 0, name);
      assert.equal(decoder.decode(received.payload), "short news", name);
    }

    // A compressed message published by one subscriber reaches the others, re-encoded per kind.
    const binary = compressibleBytes(8000, 32);
    opened.plain.write(frame(BINARY, binary));
    for (const name of ["a", "b", "narrow"]) {
      const received = await opened[name].readFrame();
      assert.equal(received.rsv, RSV1, name);
      assert.equal(
        firstDifference(inflateAlone(received.payload, name === "narrow" ? 10 : 15), binary),
        -1,
        name,
      );
    }
    opened.a.write(frame(BINARY, compressAlone(binary), { rsv: RSV1 }));
    const toPlain = await opened.plain.readFrame();
    assert.equal(toPlain.rsv, 0);
    assert.equal(firstDifference(toPlain.payload, binary), -1);
  });
});

describe("server context takeover and publish/subscribe", () => {
  let target: RecordingServer;
  const clients: RawClient[] = [];
  before(() => {
    target = recordingServer({
      perMessageDeflate: KEPT,
      closeTimeout: 1000,
      websocket: {
        open(ws) {
          ws.subscribe("room");
        },
        message(ws, data) {
          ws.publish("room", data);
        },
      },
    });
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await target.server.close();
  });

  it(
    "compresses a publish for each subscriber with its own context, and once for those without",
    SLOW,
    async () => {
      const offers = {
        kept: "permessage-deflate",
        late: "permessage-deflate",
        alone: "permessage-deflate; server_no_context_takeover",
        plain: null,
      };
      const opened: Record<string, RawClient> = {};
      for (const [name, offer] of Object.entries(offers)) {
        if (name === "late") continue;
        opened[name] = (await openRaw(target.port, `/room/${name}`, offer)).client;
        clients.push(opened[name]);
      }
      await until(() => target.server.subscriberCount("room") === 3, "3 subscribers");
      const chat = chatMessages(300, 9);
      const payloads: Record<string, Uint8Array[]> = { kept: [], late: [], alone: [] };
      const publishAll = async (messages: Uint8Array[], names: string[]) => {
        for (const message of messages) {
          assert.equal(target.server.publish("room", decoder.decode(message)), names.length);
          for (const name of names) {
            const received = await opened[name].readFrame();
            if (name === "plain") {
              assert.equal(received.rsv, 0);
              assert.equal(firstDifference(received.payload, message), -1);
            } else {
              assert.equal(received.rsv, RSV1, name);
              payloads[name].push(received.payload);
            }
          }
        }
      };
      await publishAll(chat.slice(0, 150), ["kept", "alone", "plain"]);
      // A subscriber that joins later has a context of its own, which starts empty.
      opened.late = (await openRaw(target.port, "/room/late", offers.late)).client;
      clients.push(opened.late);
      await until(() => target.server.subscriberCount("room") === 4, "4 subscribers");
      await publishAll(chat.slice(150), ["kept", "late", "alone", "plain"]);

      assert.equal(firstDifference(inflateStream(payloads.kept), concat(...chat)), -1, "kept: one stream");
      assert.equal(
        firstDifference(inflateStream(payloads.late), concat(...chat.slice(150))),
        -1,
        "late: its own",
      );
      for (const [i, payload] of payloads.alone.entries()) {
        assert.equal(firstDifference(inflateAlone(payload), chat[i]), -1, `alone: message ${i} by itself`);
      }
      const size = (list: Uint8Array[]) => list.reduce((sum, payload) => sum + payload.length, 0);
      assert.ok(size(payloads.kept) * 2 < size(payloads.alone), "the context pays");

      // A subscriber's publish reaches the others, each through its own context.
      const said = encoder.encode(jsonText(300, 51));
      opened.plain.write(frame(TEXT, said));
      for (const name of ["kept", "late"]) {
        const received = await opened[name].readFrame();
        payloads[name].push(received.payload);
      }
      assert.equal(firstDifference(inflateStream(payloads.kept), concat(...chat, said)), -1);
      assert.equal(firstDifference(inflateStream(payloads.late), concat(...chat.slice(150), said)), -1);
      assert.equal(firstDifference(inflateAlone((await opened.alone.readFrame()).payload), said), -1);
    },
  );
});

describe("perMessageDeflate.serverContextTakeover and serverMaxWindowBits as options", () => {
  for (
    const [options, error] of [
      [
        { serverContextTakeover: "yes" },
        /option "perMessageDeflate.serverContextTakeover" must be true or false/,
      ],
      [
        { serverContextTakeover: 1 },
        /option "perMessageDeflate.serverContextTakeover" must be true or false/,
      ],
      [{ serverMaxWindowBits: 7 }, /option "perMessageDeflate.serverMaxWindowBits" must be between 8 and 15/],
      [
        { serverMaxWindowBits: 16 },
        /option "perMessageDeflate.serverMaxWindowBits" must be between 8 and 15/,
      ],
      [{ serverMaxWindowBits: 12.5 }, /option "perMessageDeflate.serverMaxWindowBits" must be an integer/],
    ] as const
  ) {
    it(`refuses ${JSON.stringify(options)}`, () => {
      assert.throws(
        () => recordingServer({ perMessageDeflate: options as unknown as PerMessageDeflateOptions }),
        (thrown: unknown) =>
          (thrown instanceof TypeError || thrown instanceof RangeError) && error.test(thrown.message),
      );
    });
  }

  it(
    "compresses even a 2-byte message by default with it, and not without (threshold 1024)",
    SLOW,
    async () => {
      const kept = recordingServer({ perMessageDeflate: KEPT, closeTimeout: 1000 });
      const alone = recordingServer({ perMessageDeflate: true, closeTimeout: 1000 });
      try {
        for (const [target, rsv] of [[kept, RSV1], [alone, 0]] as const) {
          const { client } = await openRaw(target.port, "/small", "permessage-deflate");
          client.write(frame(TEXT, "ok"));
          const echo = await client.readFrame();
          assert.equal(echo.rsv, rsv);
          assert.equal(decoder.decode(rsv === 0 ? echo.payload : inflateAlone(echo.payload)), "ok");
          client.destroy();
        }
      } finally {
        await Promise.all([kept.server.close(), alone.server.close()]);
      }
    },
  );
});

describe("permessage-deflate: the kept contexts, counted", () => {
  it("counts each socket's context and its bytes once it was sent a compressed message, and forgets it on close", async () => {
    const server = serve({
      port: 0,
      perMessageDeflate: { serverContextTakeover: true, serverMaxWindowBits: 12 },
      websocket: { message: (ws, data) => void ws.send(data) },
    });
    try {
      const client = new WsModule(`ws://127.0.0.1:${server.port}/`, { perMessageDeflate: true });
      await new Promise((resolve, reject) => (client.once("open", resolve), client.once("error", reject)));
      assert.deepEqual(
        server.stats().compression,
        { contexts: 0, bytes: 0 },
        "none before a compressed send",
      );
      client.send("hello hello hello");
      await new Promise((resolve) => client.once("message", resolve));
      // 3.75 × 2^12 bytes: the compressor's window, its hash tables and its chains.
      assert.deepEqual(server.stats().compression, { contexts: 1, bytes: 3.75 * 4096 });
      assert.match(prometheusText(server.stats()), /^wisp_compression_bytes 15360$/m);
      client.close();
      await until(() => server.connections === 0, "the close");
      assert.deepEqual(server.stats().compression, { contexts: 0, bytes: 0 });
    } finally {
      await server.close();
    }
  });
});
