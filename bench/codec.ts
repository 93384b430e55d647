/**
 * Per-message cost of Wisp's permessage-deflate codec (src/deflate/codec.ts) for a 300-byte
 * JSON message, in one process: compression, inflation without the client's context, and
 * inflation with it. Run with `deno run -A bench/codec.ts` or `bun bench/codec.ts`.
 */

import { constants, createDeflateRaw } from "node:zlib";
import { deflateMessage, MessageInflater } from "../src/deflate/codec.ts";

const COUNT = 2000;
const encoder = new TextEncoder();
const messages = Array.from({ length: COUNT }, (_, i) =>
  encoder.encode(JSON.stringify({
    id: i,
    user: `user${i % 7}`,
    text: `hello world, this is chat message number ${i}`,
    tags: ["a", "b", "c"],
    time: 1_700_000_000_000 + i,
    pad: "x".repeat(150),
  })));

/** The messages as a browser sends them: one deflate stream, sync-flushed after each message. */
async function withContext(): Promise<Uint8Array[]> {
  const stream = createDeflateRaw();
  const out: Uint8Array[] = [];
  let pending: Uint8Array[] = [];
  stream.on("data", (chunk: Uint8Array) => pending.push(chunk));
  for (const message of messages) {
    stream.write(message);
    await new Promise((resolve) => stream.flush(constants.Z_SYNC_FLUSH, () => resolve(undefined)));
    const joined = new Uint8Array(pending.reduce((sum, chunk) => sum + chunk.length, 0));
    let at = 0;
    for (const chunk of pending) {
      joined.set(chunk, at);
      at += chunk.length;
    }
    pending = [];
    out.push(joined.subarray(0, joined.length - 4)); // without the 00 00 ff ff tail
  }
  return out;
}

function rate(run: () => void): number {
  run(); // warm up
  const start = performance.now();
  run();
  return Math.round(COUNT / ((performance.now() - start) / 1000));
}

const contextual = await withContext();
const alone = messages.map((message) => deflateMessage(message, 15, 6));
const runtime = "Bun" in globalThis ? "bun" : "deno";
console.log(`${runtime}, ${COUNT} messages of ~${messages[0].length} bytes, per second:`);
console.log(
  `  deflate (no context):            ${rate(() => messages.forEach((m) => deflateMessage(m, 15, 6)))}`,
);
console.log(`  inflate without client context:  ${
  rate(() => {
    const inflater = new MessageInflater(15, false);
    for (const data of alone) inflater.inflate(data, 1 << 20);
  })
}`);
console.log(`  inflate with client context:     ${
  rate(() => {
    const inflater = new MessageInflater(15, true);
    for (const data of contextual) inflater.inflate(data, 1 << 20);
  })
}`);
