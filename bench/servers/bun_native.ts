// Bun's own WebSocket server (Bun.serve, uWebSockets underneath): the baseline
// for Wisp on Bun.  Echo on any path; /fanout subscribes to topic "bench", and
// a message sent on /publish is published to it with Bun's native pub/sub.
// Usage: bun run bench/servers/bun_native.ts PORT
const port = Number(Bun.argv[2]);

const server = Bun.serve<{ path: string }>({
  port,
  hostname: "127.0.0.1",
  fetch(request, server) {
    const path = new URL(request.url).pathname;
    if (server.upgrade(request, { data: { path } })) return undefined;
    return new Response("WebSocket only", { status: 426 });
  },
  websocket: {
    open(ws) {
      if (ws.data.path === "/fanout") ws.subscribe("bench");
    },
    message(ws, message) {
      if (ws.data.path === "/publish") server.publish("bench", message);
      else ws.send(message);
    },
  },
});
console.log(`listening on ws://127.0.0.1:${server.port}`);
