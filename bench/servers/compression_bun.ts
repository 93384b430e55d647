// Bun's own WebSocket server for the compression benchmark (bench/compression.mjs): every socket
// subscribes to one topic, and a text "next N" publishes the corpus's next N messages with
// compression, through a compressor per socket that keeps its context ("dedicated", a 32 KiB
// window) or one with a smaller window ("4KB" …). "gc" collects garbage and answers "gc".
// Usage: bun run bench/servers/compression_bun.ts PORT CORPUS [dedicated|3KB|4KB|…|256KB]
import { readFileSync } from "node:fs";

const [port, corpusFile, compressor = "dedicated"] = Bun.argv.slice(2);
const corpus: string[] = JSON.parse(readFileSync(corpusFile, "utf8"));
let next = 0;

const server = Bun.serve({
  port: Number(port),
  hostname: "127.0.0.1",
  fetch(request, server) {
    if (server.upgrade(request)) return undefined;
    return new Response("WebSocket only", { status: 426 });
  },
  websocket: {
    perMessageDeflate: { compress: compressor as Bun.WebSocketCompressor, decompress: true },
    idleTimeout: 0,
    open(ws) {
      ws.subscribe("feed");
    },
    message(ws, data) {
      if (typeof data !== "string") return;
      if (data === "gc") {
        Bun.gc(true);
        ws.send("gc");
        return;
      }
      const count = Number(data.slice("next ".length));
      for (let i = 0; i < count; i++) server.publish("feed", corpus[next++ % corpus.length], true);
    },
  },
});
console.log(`listening on ws://127.0.0.1:${server.port}`);
