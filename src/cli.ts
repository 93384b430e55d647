/**
 * The command line: `deno run -A mod.ts [flags]` or `bun run mod.ts [flags]`.
 * @module
 */

import { startChatServer } from "./chat/server.ts";
import { serve, type Server } from "./server.ts";

/** Parsed command-line flags. */
export interface CliOptions {
  /** `--port`: 3368 unless given. */
  port: number;
  /** `--hostname`: 127.0.0.1 unless given. */
  hostname: string;
  /** `--echo`: the echo server instead of the chat demo. */
  echo: boolean;
  /** `--help`: print the usage and exit. */
  help: boolean;
}

/** The `--help` text. */
export const USAGE = `Usage: wisp [--port N] [--hostname HOST] [--echo] [--help]

  --port N          port to listen on (default 3368)
  --hostname HOST   address to listen on (default 127.0.0.1)
  --echo            run an echo server (every text and binary message comes back, on any
                    path) instead of the chat demo
  --help            show this help
`;

/** Parses flags; throws a `TypeError` whose message says what is wrong. */
export function parseArgs(args: readonly string[]): CliOptions {
  const options: CliOptions = { port: 3368, hostname: "127.0.0.1", echo: false, help: false };
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
    } else if (flag === "--echo" && inline === undefined) {
      options.echo = true;
    } else if ((flag === "--help" || flag === "-h") && inline === undefined) {
      options.help = true;
    } else {
      throw new TypeError(`unknown argument "${args[i]}"`);
    }
  }
  return options;
}

/**
 * Starts the server the flags describe: the chat demo (its page at `/`, its WebSocket endpoint at
 * `/chat`), or with `--echo` an echo server.
 */
function startFromCli(options: CliOptions): Server {
  if (!options.echo) return startChatServer({ port: options.port, hostname: options.hostname });
  return serve({
    port: options.port,
    hostname: options.hostname,
    // Echo mode talks to any client, so it agrees to the first subprotocol offered.
    protocols: (offered) => offered[0],
    perMessageDeflate: true,
    websocket: {
      message(ws, data) {
        ws.send(data);
      },
    },
  });
}

/**
 * Runs the command line: parses the process's flags and starts the server. Exits with 2 on bad
 * flags and 1 when the server cannot start (the port is taken, say), saying why.
 */
export function main(): void {
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
  let server: Server;
  try {
    server = startFromCli(options);
  } catch (error) {
    console.error(`wisp: ${(error as Error).message}`);
    process.exit(1);
  }
  if (options.echo) {
    console.log(`Wisp echo server listening on ${server.url.replace("http", "ws")}`);
  } else {
    console.log(`Wisp chat server listening on ${server.url}`);
  }
}
