// Bun's own WebSocket server (Bun.serve, uWebSockets underneath): the baseline
// for Wisp on Bun.  Echo on any path; /fanout subscribes to topic "bench", and
// a message sent on /publish is published to it with Bun's native pub/sub.
// With "deflate" it agrees to permessage-deflate and asks for every echo to
// be compressed: Bun compresses only the sends that pass `compress` = true.
// Usage: bun run bench/servers/bun_native.ts PORT [deflate]
const port = Number(Bun.argv[2]);
const deflate = Bun.argv[3] === "deflate";

const server = Bun.serve<{ path: string }>({
  port,
  hostname: "127.0.0.1",
  fetch(request, server) {
    const path = new URL(request.url).pathname;
    if (server.upgrade(request, { data: { path } })) return undefined;
    return new Response("WebSocket only", { status: 426 });
  },
  websocket: {
    perMessageDeflate: deflate,
    open(ws) {
      if (ws.data.path === "/fanout") ws.subscribe("bench");
    },
    message(ws, message) {
      if (ws.data.path === "/publish") server.publish("bench", message);
      else ws.send(message, deflate);
    },
  },
});
console.log(`listening on ws://127.0.0.1:${server.port}`);
