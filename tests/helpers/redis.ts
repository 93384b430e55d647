/**
 * A real `redis-server` (Debian's package) for the scale-out tests, started on a free loopback
 * port with a temporary directory and no persistence, and Wisp processes to put on it.
 */

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { type CliServer, startListening } from "./cli.ts";
import { delay, freePort } from "./server.ts";

/** Why the Redis tests cannot run here, or `false` when they can (pass it as a test's `skip`). */
export const redisSkipReason: string | false = (() => {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return false;
  } catch {
    return "redis-server is not installed (apt-get install redis-server)";
  }
})();

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** Resolves once something accepts TCP connections on `port`, or fails after `ms`. */
async function listening(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
      socket.connect(port, "127.0.0.1");
    });
    if (up) return;
    await delay(20);
  }
  throw new Error(`nothing listens on ${port} after ${ms} ms`);
}

/** A running `redis-server`. */
export class RedisServer {
  readonly port: number;
  readonly #dir: string;
  readonly #options: readonly string[];
  #child: ChildProcess | null = null;

  private constructor(port: number, options: readonly string[]) {
    this.port = port;
    this.#dir = mkdtempSync(join(tmpdir(), "wisp-redis-"));
    this.#options = options;
  }

  /** Starts one on a free port, with more command-line `options` (`["--maxclients", "1"]`, say). */
  static async start(options: readonly string[] = []): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), options);
    await server.restart();
    return server;
  }

  /** `redis://127.0.0.1:PORT`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it (again) on the same port. */
  async restart(): Promise<void> {
    const child = spawn("redis-server", [
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--dir",
      this.#dir,
      "--save",
      "",
      "--appendonly",
      "no",
      ...this.#options,
    ], { stdio: "ignore" });
    children.add(child);
    child.once("exit", () => children.delete(child));
    this.#child = child;
    await listening(this.port, 5000);
  }

  /** Kills it at once (SIGKILL), as a crash would. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (child === null || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  /**
   * Freezes it (SIGSTOP), as a hung server would be: connections stay open, nothing answers.
   * Signalled by pid: Deno's `ChildProcess.kill` records SIGSTOP as how the child ended.
   */
  freeze(): void {
    if (this.#child?.pid !== undefined) process.kill(this.#child.pid, "SIGSTOP");
  }

  /** Lets a frozen server go on (SIGCONT). */
  thaw(): void {
    if (this.#child?.pid !== undefined) process.kill(this.#child.pid, "SIGCONT");
  }

  /** Stops it and removes its directory. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

const FIXTURE = fileURLToPath(new URL("../fixtures/backplane_server.ts", import.meta.url));
const BIN = fileURLToPath(new URL("../../node_modules/.bin/", import.meta.url));

/** A Wisp server process on the backplane (see tests/fixtures/backplane_server.ts). */
export type WispProcess = CliServer;

/** Starts the backplane fixture on `runtime` against `redisUrl`; resolves once it listens. */
export function startWisp(runtime: "deno" | "bun", redisUrl: string, sharded = false): Promise<WispProcess> {
  const args = runtime === "deno" ? ["run", "-A", FIXTURE, redisUrl] : ["run", FIXTURE, redisUrl];
  if (sharded) args.push("sharded");
  return startListening(BIN + runtime, args);
}
