// Wisp for the compression benchmark (bench/compression.mjs), on Deno, Bun or Node: every
// socket subscribes to one topic, and a text "next N" publishes the corpus's next N messages to
// all of them, compressed with server context takeover. "gc" collects garbage (when the runtime
// lets it) and answers "gc". Usage:
//   deno run -A --v8-flags=--expose-gc bench/servers/compression_wisp.ts PORT CORPUS [BITS [LEVEL]]
//   bun run bench/servers/compression_wisp.ts PORT CORPUS [BITS [LEVEL]]
//   node --expose-gc --import ./scripts/node_ts.mjs bench/servers/compression_wisp.ts PORT CORPUS [BITS [LEVEL]]
// BITS is serverMaxWindowBits (default 15), LEVEL perMessageDeflate.level (default 6); BITS 0
// compresses without context (Wisp's default, server_no_context_takeover, threshold 0).
import { readFileSync } from "node:fs";
import process from "node:process";
import { serve } from "../../mod.ts";

const [port, corpusFile, bitsArg = "15", levelArg = "6"] = process.argv.slice(2);
const corpus: string[] = JSON.parse(readFileSync(corpusFile, "utf8"));
const bits = Number(bitsArg);
const level = Number(levelArg);
let next = 0;

const server = serve({
  port: Number(port),
  perMessageDeflate: bits === 0
    ? { threshold: 0, level }
    : { serverContextTakeover: true, serverMaxWindowBits: bits, level },
  maxBufferedAmount: 1 << 30,
  idleTimeout: 0,
  websocket: {
    open(ws) {
      ws.subscribe("feed");
    },
    message(ws, data) {
      if (typeof data !== "string") return;
      if (data === "gc") {
        collectGarbage();
        ws.send("gc");
        return;
      }
      const count = Number(data.slice("next ".length));
      for (let i = 0; i < count; i++) server.publish("feed", corpus[next++ % corpus.length]);
    },
  },
});
console.log(`listening on ${server.url}`);

function collectGarbage(): void {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun !== undefined) bun.gc(true);
  else (globalThis as { gc?: () => void }).gc?.();
}
