// Wisp's fan-out server for the benchmark, the same program on Deno, Bun and Node:
// /fanout subscribes to topic "bench", a message sent on /publish is published
// to it, and every other path echoes.
// Usage: deno run -A bench/servers/wisp_fanout.ts PORT
//        bun run bench/servers/wisp_fanout.ts PORT
//        node --import ./scripts/node_ts.mjs bench/servers/wisp_fanout.ts PORT
import { serve } from "../../mod.ts";

// `process` is a global on all three runtimes; argv[2] is the first script argument.
const port = Number(process.argv[2]);

const server = serve({
  port,
  hostname: "127.0.0.1",
  upgrade(request) {
    return { data: { path: new URL(request.url).pathname } };
  },
  websocket: {
    open(ws) {
      if (ws.data.path === "/fanout") ws.subscribe("bench");
    },
    message(ws, data) {
      if (ws.data.path === "/publish") server.publish("bench", data);
      else ws.send(data);
    },
  },
});
console.log(`listening on ws://127.0.0.1:${port}`);
