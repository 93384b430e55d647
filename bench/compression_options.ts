/**
 * The ways a runtime offers to compress a connection's messages with permessage-deflate, measured
 * in one process on the chat-like corpus (bench/compression_corpus.mjs): payload ÷ compressed
 * bytes, CPU time per message, and the memory each connection keeps. Messages go through
 * `--sockets` compressors in turn, each message to every one of them, as a publish does: with
 * many sockets, each compression starts with another socket's state out of the cache.
 *
 *   deno run -A bench/compression_options.ts [--sockets 50] [--messages 1000] [--rounds 3]
 *   bun bench/compression_options.ts […]
 *   node --import ./scripts/node_ts.mjs bench/compression_options.ts […]
 *
 * Rows: zlib one-shot on each message alone; zlib one-shot with the connection's last window as
 * preset dictionary (checked against an inflater that keeps its context); a kept zlib stream
 * per connection, flushed with Z_SYNC_FLUSH (asynchronous: each message waits for its
 * callbacks); Bun.deflateSync (on Bun); Wisp's ContextCompressor at several window sizes. Then
 * long messages: Wisp's compressor against zlib with the window as dictionary (what
 * MessageCompressor chooses from 16 KiB up). CPU time is the process's (zlib's threads
 * included); rounds are interleaved and the report gives medians.
 */

import { constants, createDeflateRaw, deflateRawSync, inflateRawSync } from "node:zlib";
import process from "node:process";
import { ContextCompressor } from "../src/deflate/context_compressor.ts";
import { chatCorpus } from "./compression_corpus.mjs";

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  return at < 0 ? fallback : Number(args[at + 1]);
};
const SOCKETS = option("sockets", 50);
const MESSAGES = option("messages", 1000);
const ROUNDS = option("rounds", 3);
const WARMUP = 200;
const TAIL = 4;
const runtime = "Bun" in globalThis ? "Bun" : "Deno" in globalThis ? "Deno" : "Node";
const encoder = new TextEncoder();
const messages = chatCorpus(WARMUP + MESSAGES).map((text: string) => encoder.encode(text));
const payload = messages.slice(WARMUP).reduce((sum: number, m: Uint8Array) => sum + m.length, 0);

interface Method {
  name: string;
  /** Messages end in a final block (no context can follow): not checked against an inflater. */
  final?: boolean;
  /** Bytes each connection keeps between messages. */
  memory: number;
  /** A compressor per connection: compress(message) gives the bytes without the tail. */
  make(): (message: Uint8Array) => Uint8Array | Promise<Uint8Array>;
}

/** zlib's own figure for a deflate stream (zconf.h): 2^(windowBits+2) + 2^(memLevel+9) bytes. */
const zlibDeflateMemory = (windowBits: number, memLevel: number) =>
  (1 << (windowBits + 2)) + (1 << (memLevel + 9));

function sync(out: Uint8Array): Uint8Array {
  return out.subarray(0, out.length - TAIL);
}

/** zlib one-shot with the last window of what this connection sent as preset dictionary. */
function withDictionary(windowBits: number): Method {
  return {
    name: `zlib one-shot, last ${1 << (windowBits - 10)} KiB as dictionary`,
    memory: 1 << windowBits,
    make() {
      const window = 1 << windowBits;
      // The last window, in a buffer of two that slides once per window's worth.
      const history = new Uint8Array(2 * window);
      let end = 0;
      return (message) => {
        const options = { windowBits, level: 6, finishFlush: constants.Z_SYNC_FLUSH };
        const out = deflateRawSync(
          message,
          end === 0 ? options : { ...options, dictionary: history.subarray(Math.max(0, end - window), end) },
        );
        if (message.length >= window) {
          history.set(message.subarray(message.length - window));
          end = window;
        } else {
          if (end + message.length > history.length) {
            history.copyWithin(0, end - window, end);
            end = window;
          }
          history.set(message, end);
          end += message.length;
        }
        return sync(new Uint8Array(out.buffer, out.byteOffset, out.length));
      };
    },
  };
}

/** A kept zlib stream per connection, flushed after each message. */
function keptStream(windowBits: number, memLevel: number): Method {
  return {
    name: `kept zlib stream (${windowBits} bits, memLevel ${memLevel}), async`,
    memory: zlibDeflateMemory(windowBits, memLevel),
    make() {
      const stream = createDeflateRaw({ windowBits, memLevel, level: 6 });
      let chunks: Uint8Array[] = [];
      stream.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      return (message) =>
        new Promise<Uint8Array>((resolve) => {
          stream.write(message);
          stream.flush(constants.Z_SYNC_FLUSH, () => {
            const out = concat(chunks);
            chunks = [];
            resolve(sync(out));
          });
        });
    },
  };
}

function wisp(windowBits: number): Method {
  return {
    name: `Wisp ContextCompressor, ${windowBits} bits`,
    memory: ContextCompressor.memoryFor(windowBits),
    make() {
      const compressor = new ContextCompressor(windowBits, 6);
      return (message) => compressor.compress(message);
    },
  };
}

const methods: Method[] = [
  {
    name: "zlib one-shot, each message alone",
    memory: 0,
    make: () => (message) =>
      sync(deflateRawSync(message, { level: 6, finishFlush: constants.Z_SYNC_FLUSH }) as Uint8Array),
  },
  withDictionary(15),
  withDictionary(12),
  keptStream(15, 8),
  keptStream(12, 2),
];
const bun = (globalThis as { Bun?: { deflateSync(data: Uint8Array, options?: object): Uint8Array } }).Bun;
if (bun !== undefined) {
  methods.push({
    name: "Bun.deflateSync (ignores `dictionary`; each message alone, ends in a final block)",
    memory: 0,
    final: true,
    make: () => (message) => bun.deflateSync(message, { level: 6 }),
  });
}
methods.push(wisp(15), wisp(13), wisp(12), wisp(10));

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function cpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

/** Whether a client inflater with context gets the messages back from `compressed`. */
function inflatesBack(compressed: Uint8Array[], sent: Uint8Array[]): boolean {
  const stream = concat(compressed.flatMap((c) => [c, Uint8Array.of(0, 0, 0xff, 0xff)]));
  const out = new Uint8Array(inflateRawSync(stream, { finishFlush: constants.Z_SYNC_FLUSH }));
  const expected = concat(sent);
  return out.length === expected.length && out.every((byte, i) => byte === expected[i]);
}

async function run(method: Method): Promise<{ ratio: number; micros: number; valid: boolean }> {
  const compressors = Array.from({ length: SOCKETS }, () => method.make());
  const firsts: Uint8Array[] = [];
  const sendAll = async (message: Uint8Array) => {
    const results = compressors.map((compress) => compress(message));
    return results[0] instanceof Promise ? await Promise.all(results) : results as Uint8Array[];
  };
  for (const message of messages.slice(0, WARMUP)) firsts.push((await sendAll(message))[0]);
  let bytes = 0;
  const start = cpuMicros();
  for (const message of messages.slice(WARMUP)) {
    const outs = await sendAll(message);
    firsts.push(outs[0]);
    bytes += outs[0].length;
  }
  const micros = (cpuMicros() - start) / (MESSAGES * SOCKETS);
  return { ratio: payload / bytes, micros, valid: method.final === true || inflatesBack(firsts, messages) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

const results = new Map<Method, { ratio: number; micros: number[]; valid: boolean }>();
for (let round = 0; round < ROUNDS; round++) {
  for (const method of methods) {
    const r = await run(method);
    const entry = results.get(method) ?? { ratio: r.ratio, micros: [], valid: r.valid };
    entry.micros.push(r.micros);
    entry.valid &&= r.valid;
    results.set(method, entry);
  }
}

console.log(
  `${runtime}: ${MESSAGES} chat messages (${
    (payload / MESSAGES).toFixed(0)
  } B on average), each to ${SOCKETS} ` +
    `connections in turn; medians of ${ROUNDS} rounds\n`,
);
console.log("| method | payload ÷ compressed | CPU µs/message | memory kept per connection |");
console.log("|---|---|---|---|");
for (const [method, r] of results) {
  const memory = method.memory === 0
    ? "none"
    : `${(method.memory / 1024).toFixed(method.memory % 1024 ? 1 : 0)} KiB`;
  const ratio = `${r.ratio.toFixed(2)}×${r.valid ? "" : " (does not inflate back!)"}`;
  console.log(`| ${method.name} | ${ratio} | ${median(r.micros).toFixed(1)} | ${memory} |`);
}

// Long messages: what MessageCompressor sends through zlib (16 KiB and up) instead of its own.
const long = encoder.encode(JSON.stringify(chatCorpus(3000)));
console.log("\n| one message of | Wisp ContextCompressor µs | zlib with the window as dictionary µs |");
console.log("|---|---|---|");
for (const size of [4096, 16384, 65536, 1 << 20]) {
  const data = long.subarray(0, size);
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let round = 0; round < ROUNDS * 3; round++) {
    const compressor = new ContextCompressor(15, 6);
    compressor.compress(messages[0]);
    let start = cpuMicros();
    compressor.compress(data);
    ours.push(cpuMicros() - start);
    const dictionary = compressor.window;
    start = cpuMicros();
    deflateRawSync(data, { level: 6, finishFlush: constants.Z_SYNC_FLUSH, dictionary });
    compressor.append(data);
    theirs.push(cpuMicros() - start);
  }
  console.log(
    `| ${size >= 1 << 20 ? "1 MiB" : `${size / 1024} KiB`} | ${median(ours).toFixed(0)} | ${
      median(theirs).toFixed(0)
    } |`,
  );
}
