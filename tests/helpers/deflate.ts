/**
 * permessage-deflate from the client's side, for tests: compressing messages as a peer does
 * (each alone, or with context takeover through one zlib stream) and inflating what the server
 * sent, with node:zlib.
 */

import { constants, createDeflateRaw, deflateRawSync, inflateRawSync } from "node:zlib";
import { Random } from "./random.ts";
import { concat } from "./raw_client.ts";

/** The empty stored block that ends a sync-flushed message (RFC 7692 §7.2.1). */
export const TAIL = Uint8Array.of(0x00, 0x00, 0xff, 0xff);

/** Whether `bytes` ends with the sync-flush tail. */
export function endsWithTail(bytes: Uint8Array): boolean {
  const n = bytes.length;
  return n >= 4 && bytes[n - 4] === 0 && bytes[n - 3] === 0 && bytes[n - 2] === 0xff && bytes[n - 1] === 0xff;
}

function asBytes(buffer: Uint8Array): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** Compresses one message on its own, as a peer without context takeover does (tail stripped). */
export function compressAlone(data: Uint8Array, windowBits = 15, level = 6): Uint8Array {
  const out = asBytes(deflateRawSync(data, { windowBits, level, finishFlush: constants.Z_SYNC_FLUSH }));
  if (!endsWithTail(out)) throw new Error("deflateRawSync did not end with a sync-flush tail");
  return out.slice(0, out.length - 4);
}

/**
 * Inflates one message (its tail stripped) with a fresh raw inflater of `windowBits`. Output is
 * taken 64 bytes at a time, so zlib keeps only its window between steps and a distance further
 * back than the window (plus under 64 bytes) fails with "invalid distance too far back": a
 * sender that ignored the agreed window is caught.
 */
export function inflateAlone(data: Uint8Array, windowBits = 15): Uint8Array {
  const input = new Uint8Array(data.length + 4);
  input.set(data);
  input.set(TAIL, data.length);
  return asBytes(inflateRawSync(input, { windowBits, chunkSize: 64, finishFlush: constants.Z_SYNC_FLUSH }));
}

/**
 * A peer's compressor with context takeover: one node:zlib raw deflate stream, flushed with
 * Z_SYNC_FLUSH after each message, so later messages may refer back to earlier ones.
 */
export class StreamCompressor {
  readonly #stream: ReturnType<typeof createDeflateRaw>;
  #chunks: Uint8Array[] = [];
  #failure: unknown = null;

  constructor(windowBits = 15, level = 6) {
    this.#stream = createDeflateRaw({ windowBits, level });
    this.#stream.on("data", (chunk: Uint8Array) => this.#chunks.push(asBytes(chunk)));
    this.#stream.on("error", (error: unknown) => this.#failure = error);
  }

  /** Compresses the next message; returns its DEFLATE data without the tail. */
  async compress(data: Uint8Array, ms = 5000): Promise<Uint8Array> {
    this.#chunks = [];
    this.#stream.write(data);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.#stream.flush(constants.Z_SYNC_FLUSH, () => resolve())),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("timed out waiting for zlib")), ms);
      }),
    ]).finally(() => clearTimeout(timer));
    // The flushed bytes normally arrive before the callback; allow a few turns in case they lag.
    for (let turn = 0; turn < 100 && !endsWithTail(concat(...this.#chunks)); turn++) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    if (this.#failure !== null) throw this.#failure;
    const out = concat(...this.#chunks);
    if (!endsWithTail(out)) throw new Error("zlib stream flush did not end with a sync-flush tail");
    return out.slice(0, out.length - 4);
  }

  close(): void {
    this.#stream.close();
  }
}

/**
 * `size` bytes of printable ASCII (so also valid UTF-8 text) that compress like real data: random
 * literals mixed with copies of earlier bytes from distances up to `maxDistance`, so that window
 * sizes and context matter.
 */
export function compressibleBytes(size: number, seed: number, maxDistance = 30000): Uint8Array {
  const random = new Random(seed);
  const out = new Uint8Array(size);
  let at = 0;
  while (at < size) {
    const run = Math.min(size - at, random.int(3, 40));
    if (at > 16 && random.next() < 0.6) {
      const distance = random.int(1, Math.min(at, maxDistance));
      for (let i = 0; i < run; i++, at++) out[at] = out[at - distance];
    } else {
      for (let i = 0; i < run; i++, at++) out[at] = random.int(0x20, 0x7e);
    }
  }
  return out;
}

/** Splits `bytes` into `count` consecutive pieces of near-equal size (some may be empty). */
export function splitInto(bytes: Uint8Array, count: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    pieces.push(
      bytes.subarray(Math.floor((i * bytes.length) / count), Math.floor(((i + 1) * bytes.length) / count)),
    );
  }
  return pieces;
}

/**
 * Inflates `messages` (each a permessage-deflate payload, tail stripped) as one client with
 * context takeover does: one raw stream, the tail put back after each message. zlib inflates
 * with exactly `windowBits` and 64 bytes of output at a time, so a reference further back than
 * the window (plus under 64 bytes) fails with "invalid distance too far back".
 */
export function inflateStream(messages: Uint8Array[], windowBits = 15): Uint8Array {
  const stream = concat(...messages.flatMap((message) => [message, TAIL]));
  return asBytes(
    inflateRawSync(stream, {
      windowBits,
      chunkSize: 64,
      finishFlush: constants.Z_SYNC_FLUSH,
      maxOutputLength: 1 << 30,
    }),
  );
}

/**
 * `count` JSON messages of the chat demo's shapes (`message`, `join`, `leave`, `welcome`), UTF-8
 * encoded: 60–400 bytes, the same keys again and again, a few names, words from a small
 * vocabulary, times a few seconds apart.
 */
export function chatMessages(count: number, seed: number): Uint8Array[] {
  const random = new Random(seed);
  const names = ["Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Radia", "Δημήτρης", "紫"];
  const words =
    ("the a to and of is it you that for on this with was are be have not but at what so we can " +
      "just like if all about get up out one how there now when time know good think here would see well yes " +
      "really right today going back new thanks ok great sounds meeting tomorrow deploy build test release bug " +
      "fix review merge branch server client socket café naïve 👍").split(" ");
  const encoder = new TextEncoder();
  const out: Uint8Array[] = [];
  let time = Date.UTC(2026, 11, 6, 9, 0, 0);
  let online = 5;
  for (let i = 0; i < count; i++) {
    time += random.int(0, 20_000);
    const kind = random.next();
    const name = random.pick(names);
    const at = new Date(time).toISOString();
    let message: unknown;
    if (kind < 0.06) message = { type: "join", name, online: ++online, time: at };
    else if (kind < 0.1) {
      message = { type: "leave", name, online: online = Math.max(1, online - 1), time: at };
    } else if (kind < 0.12) message = { type: "welcome", name, online, time: at };
    else {
      const text = Array.from({ length: random.int(2, 50) }, () => random.pick(words)).join(" ");
      message = { type: "message", name, text, time: at };
    }
    out.push(encoder.encode(JSON.stringify(message)));
  }
  return out;
}
