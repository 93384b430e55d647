// Socket.IO 4 on Node for the cross-process fan-out benchmark (bench/fanout_redis.mjs): the
// baseline the issue compares Wisp's Redis backplane with. A client connecting with
// ?role=sub joins room "bench"; an event "p" from a client with ?role=pub is emitted to the
// room with io.to(), so with a Redis URL it also crosses to every other process through
// @socket.io/redis-adapter (pub/sub), or @socket.io/redis-streams-adapter when ADAPTER is
// "streams". GET /stats answers the room's local size and the Redis clients' error count as JSON.
// Usage: node bench/servers/socketio_redis.mjs PORT [REDIS_URL [ADAPTER]]
import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";

const port = Number(process.argv[2]);
const redisUrl = process.argv[3];
const streams = process.argv[4] === "streams";
let redisErrors = 0;

let adapter;
if (redisUrl && streams) {
  // One client: the adapter reads the stream with XREAD on a connection it duplicates itself.
  const client = createClient({ url: redisUrl });
  client.on("error", (error) => {
    redisErrors++;
    console.log(`${new Date().toISOString()} redis error: ${error.message}`);
  });
  await client.connect();
  adapter = createStreamsAdapter(client);
} else if (redisUrl) {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) {
    client.on("error", (error) => {
      redisErrors++;
      console.log(`${new Date().toISOString()} redis error: ${error.message}`);
    });
  }
  // The adapter subscribes when it is created, so the clients must be up first; listening only
  // afterwards means no publish can come before the subscription.
  await Promise.all([pub.connect(), sub.connect()]);
  adapter = createAdapter(pub, sub);
}

const http = createServer((_request, response) => {
  // Socket.IO answers its own path (/socket.io/) before this listener sees the request.
  const stats = { subscribers: io.of("/").adapter.rooms.get("bench")?.size ?? 0, redisErrors };
  response.writeHead(200, { "Content-Type": "application/json", Connection: "close" });
  response.end(JSON.stringify(stats));
});
// WebSocket only (the clients ask for it too): long-polling would measure something else.
// perMessageDeflate is off by default in Socket.IO 4, as it is in Wisp.
const io = new Server(http, { transports: ["websocket"], adapter, serveClient: false });
io.on("connection", (socket) => {
  if (socket.handshake.query.role === "sub") socket.join("bench");
  else socket.on("p", (message) => io.to("bench").emit("m", message));
});
http.listen(port, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${port}`));
