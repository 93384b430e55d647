/**
 * The command line: `deno run -A mod.ts [flags]` or `bun run mod.ts [flags]`.
 * @module
 */

import { type ChatServerOptions, startChatServer } from "./chat/server.ts";
import { printEvent } from "./events.ts";
import { coreCount, readTextFile, spawnSelf, whenParentGone } from "./process.ts";
import type { Backplane } from "./pubsub/backplane.ts";
import { redisBackplane } from "./pubsub/redis.ts";
import { type RelayHub, startRelayHub } from "./pubsub/relay_hub.ts";
import { workerRelayBackplane } from "./pubsub/worker_relay.ts";
import { runtimeListen } from "./runtime/mod.ts";
import { serve, type Server } from "./server.ts";
import { WorkerPool } from "./workers.ts";

/** Parsed command-line flags. */
export interface CliOptions {
  /** `--port`: 3368 unless given. */
  port: number;
  /** `--hostname`: 127.0.0.1 unless given. */
  hostname: string;
  /** `--echo`: the echo server instead of the chat demo. */
  echo: boolean;
  /** `--cert`: the TLS certificate chain's PEM file, or null. */
  cert: string | null;
  /** `--key`: the TLS key's PEM file, or null. */
  key: string | null;
  /** `--workers`: how many worker processes, or 0 to serve in this process. */
  workers: number;
  /** `--redis`: the Redis backplane's URL, or null for none. */
  redis: string | null;
  /** `--redis-mode`: Redis pub/sub (`"classic"`, unless given) or Redis Streams (`"streams"`). */
  redisMode: "classic" | "streams";
  /** `--metrics`: the path of the Prometheus metrics (`/metrics` unless given), or null for none. */
  metrics: string | null;
  /** `--help`: print the usage and exit. */
  help: boolean;
}

/** The `--help` text. */
export const USAGE = `Usage: wisp [--port N] [--hostname HOST] [--echo] [--cert FILE --key FILE]
            [--workers N|auto] [--redis URL [--redis-mode classic|streams]]
            [--metrics[=PATH]] [--help]

  --port N          port to listen on (default 3368)
  --hostname HOST   address to listen on (default 127.0.0.1)
  --echo            run an echo server (every text and binary message comes back, on any
                    path) instead of the chat demo
  --cert FILE       serve https:// and wss:// with this certificate chain (PEM); needs --key
  --key FILE        the certificate's private key (PEM)
  --workers N|auto  run N worker processes on the one port (auto: one per core); a worker
                    that dies is restarted, SIGINT/SIGTERM stops them all gracefully, and
                    the supervisor relays the chat's topics between them
  --redis URL       carry topics across processes through Redis (redis://host:port), in
                    place of the supervisor's relay
  --redis-mode M    classic (default): Redis pub/sub, which keeps nothing; streams: Redis
                    Streams, so that nothing Redis kept is lost across its restarts
  --metrics[=PATH]  serve the counters in the Prometheus text format at PATH (default
                    /metrics) on the same port; with --workers, each scrape reaches one worker
  --help            show this help
`;

/** Parses flags; throws a `TypeError` whose message says what is wrong. */
export function parseArgs(args: readonly string[]): CliOptions {
  const options: CliOptions = {
    port: 3368,
    hostname: "127.0.0.1",
    echo: false,
    cert: null,
    key: null,
    workers: 0,
    redis: null,
    redisMode: "classic",
    metrics: null,
    help: false,
  };
  let modeGiven = false;
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split(/=(.*)/s, 2);
    const value = () => {
      const next = inline ?? args[++i];
      if (next === undefined) throw new TypeError(`${flag} needs a value`);
      return next;
    };
    if (flag === "--port") {
      const text = value();
      const port = Number(text);
      if (!/^\d+$/.test(text) || port > 65535) throw new TypeError(`--port must be 0-65535, got "${text}"`);
      options.port = port;
    } else if (flag === "--hostname") {
      options.hostname = value();
    } else if (flag === "--cert") {
      options.cert = value();
    } else if (flag === "--key") {
      options.key = value();
    } else if (flag === "--workers") {
      const text = value();
      const count = text === "auto" ? coreCount() : Number(text);
      if (!/^(auto|\d+)$/.test(text) || count < 1 || count > 1024) {
        throw new TypeError(`--workers must be 1-1024 or auto, got "${text}"`);
      }
      options.workers = count;
    } else if (flag === "--redis") {
      options.redis = value();
    } else if (flag === "--redis-mode") {
      const mode = value();
      if (mode !== "classic" && mode !== "streams") {
        throw new TypeError(`--redis-mode must be classic or streams, got "${mode}"`);
      }
      options.redisMode = mode;
      modeGiven = true;
    } else if (flag === "--metrics") {
      const path = inline ?? "/metrics";
      if (!path.startsWith("/")) {
        throw new TypeError(`--metrics must be a path starting with "/", got "${path}"`);
      }
      options.metrics = path;
    } else if (flag === "--echo" && inline === undefined) {
      options.echo = true;
    } else if ((flag === "--help" || flag === "-h") && inline === undefined) {
      options.help = true;
    } else {
      throw new TypeError(`unknown argument "${args[i]}"`);
    }
  }
  if (modeGiven && options.redis === null) throw new TypeError("--redis-mode needs --redis URL");
  if ((options.cert === null) !== (options.key === null)) {
    throw new TypeError("--cert and --key go together: give both files, or neither");
  }
  return options;
}

/** What the supervisor tells each worker, through its environment. */
const env = globalThis.process?.env ?? {};
/** The worker id this process serves as, or 0 when it is no worker. */
const WORKER = Number(env.WISP_WORKER ?? "0");

/**
 * The backplane the flags and the supervisor ask for: Redis with `--redis`, else the
 * supervisor's relay for a worker it told where that is, else none.
 */
function backplane(options: CliOptions): Backplane | undefined {
  if (options.redis !== null) return redisBackplane({ url: options.redis, mode: options.redisMode });
  if (WORKER === 0 || env.WISP_RELAY === undefined) return undefined;
  return workerRelayBackplane({
    port: Number(env.WISP_RELAY),
    token: env.WISP_RELAY_TOKEN ?? "",
    worker: WORKER,
  });
}

/**
 * Starts the server the flags describe, in this process: the chat demo (its page at `/`, its
 * WebSocket endpoint at `/chat`), or with `--echo` an echo server. A worker listens with
 * `reusePort` and names itself in an `X-Wisp-Worker` header of its 101 responses.
 */
async function startServer(options: CliOptions): Promise<Server> {
  const shared: ChatServerOptions = {
    port: options.port,
    hostname: options.hostname,
    reusePort: WORKER > 0,
    metrics: options.metrics ?? undefined,
    backplane: backplane(options),
  };
  if (options.cert !== null && options.key !== null) {
    const [cert, key] = await Promise.all([readTextFile(options.cert), readTextFile(options.key)]);
    shared.tls = { cert, key };
  }
  const upgradeHeaders = WORKER > 0 ? { "X-Wisp-Worker": String(WORKER) } : undefined;
  if (!options.echo) return startChatServer({ ...shared, upgradeHeaders });
  return serve({
    ...shared,
    // Echo mode talks to any client, so it agrees to the first subprotocol offered.
    protocols: (offered) => offered[0],
    perMessageDeflate: true,
    upgrade: upgradeHeaders && (() => ({ headers: upgradeHeaders })),
    websocket: {
      message(ws, data) {
        ws.send(data);
      },
    },
  });
}

/**
 * Runs the command line: parses the process's flags and starts the server, or with `--workers`
 * the worker processes. Exits with 2 on bad flags and 1 when the server cannot start (the port
 * is taken, say), saying why. SIGINT and SIGTERM close every connection with 1001 (after what was
 * already sent), then exit.
 */
export async function main(): Promise<void> {
  let options: CliOptions;
  try {
    // `process` is a global on Deno, Bun and Node alike: argv is [runtime, script, ...flags].
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`wisp: ${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (options.help) {
    console.log(USAGE);
    return;
  }
  if (options.workers > 0 && WORKER === 0) return supervise(options);
  let server: Server;
  try {
    server = await startServer(options);
  } catch (error) {
    console.error(`wisp: ${(error as Error).message}`);
    process.exit(1);
  }
  const kind = options.echo ? "echo" : "chat";
  const url = options.echo ? server.url.replace("http", "ws") : server.url;
  const who = WORKER > 0 ? `worker ${WORKER} (pid ${process.pid}): ` : "";
  console.log(`${who}Wisp ${kind} server listening on ${url}`);
  const shutdown = onShutdown(() => server.close());
  if (WORKER > 0) {
    whenParentGone().then(() => {
      console.error(`wisp: ${who}the supervisor is gone; closing`);
      shutdown();
    });
  }
}

/**
 * On the first SIGINT or SIGTERM, runs `stop`, then exits with 0; later signals are ignored.
 * Returns the same shutdown, for other reasons to stop.
 */
function onShutdown(stop: () => Promise<void>): () => void {
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    stop().then(() => process.exit(0));
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
  return shutdown;
}

/**
 * Runs `options.workers` worker processes on one port until SIGINT or SIGTERM, and for the chat
 * demo without `--redis` the relay that carries its topics between them.
 */
function supervise(options: CliOptions): void {
  let port = options.port;
  if (port === 0) {
    // The workers must share one port: find a free one here, then hand it to all of them.
    try {
      const probe = runtimeListen()(
        { hostname: options.hostname, port: 0 },
        (transport) => transport.destroy(),
      );
      port = probe.port;
      probe.close();
    } catch (error) {
      console.error(`wisp: ${(error as Error).message}`);
      process.exit(1);
    }
  }
  const args = process.argv.slice(2).filter((_, i, all) =>
    !["--workers", "--port"].includes(all[i]) && !["--workers", "--port"].includes(all[i - 1]) &&
    !/^--(workers|port)=/.test(all[i])
  );
  // The echo server has no topics, and with --redis they go through Redis.
  let relay: RelayHub | null = null;
  const relayEnv: Record<string, string> = {};
  if (!options.echo && options.redis === null) {
    try {
      relay = startRelayHub({
        onEvent: (event) =>
          printEvent({
            level: event.type === "error" ? "warn" : "info",
            kind: "worker",
            message: event.message,
          }),
      });
    } catch (error) {
      console.error(`wisp: cannot start the relay: ${(error as Error).message}`);
      process.exit(1);
    }
    relayEnv.WISP_RELAY = String(relay.port);
    relayEnv.WISP_RELAY_TOKEN = relay.token;
  }
  const pool = new WorkerPool(options.workers, {
    spawn: (id) => spawnSelf([...args, "--port", String(port)], { ...relayEnv, WISP_WORKER: String(id) }),
    log: (line) => printEvent({ level: "warn", kind: "worker", message: line }),
  });
  const relayed = relay === null ? "" : `, relaying their topics at 127.0.0.1:${relay.port}`;
  printEvent({
    level: "info",
    kind: "worker",
    message: `supervisor (pid ${process.pid}) runs ${options.workers} workers on port ${port}${relayed}`,
  });
  onShutdown(() => pool.stop().then(() => relay?.close()));
}
