// The floor for any server built on Bun.listen, run in scenario (e) only: it
// answers whatever a connection sends first with one fixed 101 response, with
// no parsing, no accept-key digest and no state. Its connections/s bounds
// what Wisp on Bun (or anything else on Bun.listen) can reach.
// Usage: bun run bench/servers/bun_listen_floor.ts PORT
const ACCEPTED = new TextEncoder().encode(
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", // the generator's fixed key
);

const listener = Bun.listen({
  hostname: "127.0.0.1",
  port: Number(Bun.argv[2]),
  socket: {
    binaryType: "uint8array",
    data(socket) {
      socket.write(ACCEPTED);
    },
  },
});
console.log(`listening on 127.0.0.1:${listener.port}`);
