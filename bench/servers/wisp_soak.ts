// Wisp's server for the soak run (bench/soak.ts), the same program on Deno and Bun: every socket
// subscribes to topic "soak", a text message starting with "publish " is published to it, and
// every other message is echoed. permessage-deflate is on, so that clients that offer it soak
// the codec too. Once a second it prints its open sockets and the topic's subscribers as a
// line of JSON, so the soak can tell whether they go back to zero once every client has left.
// Usage: deno run -A bench/servers/wisp_soak.ts [PORT]   (0, the default, picks a free port)
//        bun run bench/servers/wisp_soak.ts [PORT]
import process from "node:process";
import { serve } from "../../mod.ts";

const server = serve({
  port: Number(process.argv[2] ?? 0),
  hostname: "127.0.0.1",
  perMessageDeflate: true,
  websocket: {
    open(ws) {
      ws.subscribe("soak");
    },
    message(ws, data) {
      if (typeof data === "string" && data.startsWith("publish ")) server.publish("soak", data);
      else ws.send(data);
    },
  },
});
console.log(`listening on ws://127.0.0.1:${server.port}`);
setInterval(() => {
  console.log(
    JSON.stringify({ connections: server.connections, subscribers: server.subscriberCount("soak") }),
  );
}, 1000);
