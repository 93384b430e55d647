// ws 8 on Node for the compression benchmark (bench/compression.mjs): `perMessageDeflate: true`,
// ws's defaults, which keep the server's context (and then compress every message, whatever its
// size). A text "next N" sends the corpus's next N messages to every client; "gc" collects
// garbage and answers "gc".
// Usage: node --expose-gc bench/servers/compression_ws.mjs PORT CORPUS
import { readFileSync } from "node:fs";
import { WebSocketServer } from "ws";

const [port, corpusFile] = process.argv.slice(2);
const corpus = JSON.parse(readFileSync(corpusFile, "utf8"));
let next = 0;

const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(port), perMessageDeflate: true });
wss.on("listening", () => console.log(`listening on ws://127.0.0.1:${port}`));
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString();
    if (text === "gc") {
      globalThis.gc?.();
      ws.send("gc");
      return;
    }
    const count = Number(text.slice("next ".length));
    for (let i = 0; i < count; i++) {
      const message = corpus[next++ % corpus.length];
      for (const client of wss.clients) client.send(message);
    }
  });
});
