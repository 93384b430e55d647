// Wisp's server for the cross-process fan-out benchmark (bench/fanout_redis.mjs), the same
// program on Deno and Bun. /fanout subscribes to topic "bench"; a message sent on /publish goes
// to it with server.publish, so every subscriber gets it, here and (with a Redis URL) in every
// other process on that Redis (MODE: classic, the default, or streams), or on that relay for
// relay:PORT:TOKEN (as a --workers worker on its supervisor's relay, bench/servers/wisp_relay.ts).
// With relay:PORT:TOKEN:WORKER it is worker WORKER of such a supervisor, and shares its port with
// the other workers as --workers does (reusePort; on Deno that needs --unstable-net).
// GET /stats answers this process's subscriber count and the backplane's counters as JSON, so the
// driver can tell drops and errors from slowness.
// Usage: deno run -A bench/servers/wisp_backplane.ts PORT [REDIS_URL [MODE] | relay:PORT:TOKEN[:WORKER]]
//        bun run bench/servers/wisp_backplane.ts PORT [REDIS_URL [MODE] | relay:PORT:TOKEN[:WORKER]]
import process from "node:process";
import { redisBackplane, serve, type Server } from "../../mod.ts";
import { workerRelayBackplane } from "../../src/pubsub/worker_relay.ts";

const port = Number(process.argv[2]);
const target = process.argv[3];
const mode = process.argv[4] === "streams" ? "streams" : "classic";
// Every backplane event goes to the log with a timestamp: a reconnect or a refused publish
// during a run is exactly what the benchmark should surface.
const onEvent = (event: { type: string; message: string }) =>
  console.log(`${new Date().toISOString()} backplane ${event.type}: ${event.message}`);
const relay = /^relay:(\d+):(\w+)(?::(\d+))?$/.exec(target ?? "");
const worker = relay?.[3] === undefined ? undefined : Number(relay[3]);
const backplane = relay
  ? workerRelayBackplane({ port: Number(relay[1]), token: relay[2], worker, onEvent })
  : target
  ? redisBackplane({ url: target, mode, onEvent })
  : undefined;

const server: Server = serve<{ path: string }>({
  port,
  hostname: "127.0.0.1",
  reusePort: worker !== undefined,
  backplane,
  upgrade(request) {
    return { data: { path: new URL(request.url).pathname } };
  },
  fetch(): Response {
    const stats = { subscribers: server.subscriberCount("bench"), backplane: backplane?.stats() ?? null };
    return Response.json(stats, { headers: { Connection: "close" } });
  },
  websocket: {
    open(ws) {
      if (ws.data.path === "/fanout") ws.subscribe("bench");
    },
    message(ws, data) {
      if (ws.data.path === "/publish") server.publish("bench", data);
    },
  },
});
console.log(`listening on ws://127.0.0.1:${server.port}`);
