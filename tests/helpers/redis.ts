/**
 * A real `redis-server` (Debian's package) for the scale-out tests, started on a free loopback
 * port with a temporary directory (no persistence unless asked for), a real Redis Cluster of
 * three such servers, commands to send them, and Wisp processes to put on them.
 */

import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { encodeCommand, RespReader, type RespValue } from "../../src/pubsub/resp.ts";
import assert from "node:assert/strict";
import { type CliServer, startListening } from "./cli.ts";
import { frame, RawClient, TEXT } from "./raw_client.ts";
import { delay, freePort, until } from "./server.ts";

/** Why `program --version` cannot run here, or `false` when it can. */
function missing(program: string, packageName: string): string | false {
  try {
    execFileSync(program, ["--version"], { stdio: "ignore" });
    return false;
  } catch {
    return `${program} is not installed (apt-get install ${packageName})`;
  }
}

/** Why the Redis tests cannot run here, or `false` when they can (pass it as a test's `skip`). */
export const redisSkipReason: string | false = missing("redis-server", "redis-server");

/** Why the Redis Cluster tests cannot run here (they need `redis-cli` too), or `false`. */
export const clusterSkipReason: string | false = redisSkipReason || missing("redis-cli", "redis-tools");

/** Options of a Redis that keeps its data across a restart: every write in the append-only file, synced. */
export const PERSISTENT: readonly string[] = ["--appendonly", "yes", "--appendfsync", "always"];

/** Sends one command to Redis at `port` on a connection of its own and returns the reply. */
export function redisCommand(port: number, parts: (string | Uint8Array)[]): Promise<RespValue> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const reader = new RespReader({ maxBulkLength: 1 << 26, maxElements: 1 << 20, maxDepth: 8 });
    socket.on("data", (chunk: Uint8Array) => {
      const [reply] = reader.push(new Uint8Array(chunk));
      if (reply === undefined) return;
      socket.destroy();
      resolve(reply);
    });
    socket.once("error", reject);
    socket.connect(port, "127.0.0.1", () => socket.write(encodeCommand(parts)));
  });
}

/** The text of a reply that is a string (a bulk or simple string), else "". */
export function replyText(reply: RespValue): string {
  return reply instanceof Uint8Array ? new TextDecoder().decode(reply) : "";
}

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

  /** A server on `port` keeping its files in `dir` (made when not given), not started yet. */
  constructor(port: number, options: readonly string[], dir?: string) {
    this.port = port;
    this.#dir = dir ?? mkdtempSync(join(tmpdir(), "wisp-redis-"));
    this.#options = options;
  }

  /**
   * Starts one on a free port, with more command-line `options` (`["--maxclients", "1"]`, or
   * {@linkcode PERSISTENT}, say), which override the defaults (no persistence).
   */
  static async start(options: readonly string[] = []): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), options);
    await server.restart();
    return server;
  }

  /** `redis://127.0.0.1:PORT`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it (again) on the same port and data directory. */
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

/**
 * A Redis Cluster of three primaries (no replicas) on free loopback ports, each with its own
 * directory and an append-only file synced on every write, joined with `redis-cli --cluster create`.
 */
export class RedisCluster {
  /** The nodes, in the order of their ports. */
  readonly nodes: RedisServer[];
  readonly #dir: string;

  private constructor(nodes: RedisServer[], dir: string) {
    this.nodes = nodes;
    this.#dir = dir;
  }

  /** Starts three nodes, joins them, and waits until every node says the cluster is ok. */
  static async start(): Promise<RedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), "wisp-cluster-"));
    const nodes: RedisServer[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const nodeDir = join(dir, String(port));
      mkdirSync(nodeDir);
      nodes.push(
        new RedisServer(port, [
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          "nodes.conf",
          ...PERSISTENT,
        ], nodeDir),
      );
    }
    const cluster = new RedisCluster(nodes, dir);
    try {
      await Promise.all(nodes.map((node) => node.restart()));
      await new Promise<void>((resolve, reject) =>
        execFile(
          "redis-cli",
          [
            "--cluster",
            "create",
            ...nodes.map((node) => `127.0.0.1:${node.port}`),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
          ],
          (error) => error ? reject(error) : resolve(),
        )
      );
      await cluster.ready();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** The nodes' URLs (the seeds to give a backplane). */
  get urls(): string[] {
    return this.nodes.map((node) => node.url);
  }

  /** Resolves once every node says `cluster_state:ok`. */
  async ready(): Promise<void> {
    await until(
      async () => {
        const states = await Promise.all(
          this.nodes.map((node) => redisCommand(node.port, ["CLUSTER", "INFO"]).then(replyText, () => "")),
        );
        return states.every((info) => info.includes("cluster_state:ok"));
      },
      "the cluster to be ok",
      20_000,
    );
  }

  /** The node that owns `slot`. */
  async owner(slot: number): Promise<RedisServer> {
    const reply = await redisCommand(this.nodes[0].port, ["CLUSTER", "SLOTS"]) as RespValue[][];
    const range = reply.find((range) => (range[0] as number) <= slot && slot <= (range[1] as number))!;
    const port = (range[2] as RespValue[])[1] as number;
    return this.nodes.find((node) => node.port === port)!;
  }

  /** Stops every node and removes their directories. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/**
 * A TCP proxy in front of a Redis, to break the links through it on purpose: it can hold back
 * Redis's replies (the commands still reach Redis and take effect) and cut every connection.
 */
export class RedisProxy {
  readonly port: number;
  readonly #server: Server;
  readonly #pairs = new Set<[Socket, Socket]>();
  #holding = false;

  private constructor(server: Server) {
    this.#server = server;
    this.port = (server.address() as { port: number }).port;
  }

  /** A proxy on a free loopback port to Redis at `port`. */
  static async start(port: number): Promise<RedisProxy> {
    let proxy: RedisProxy | null = null;
    const server = createServer((client) => proxy!.#pass(client, port));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return proxy = new RedisProxy(server);
  }

  /** `redis://127.0.0.1:PORT` of the proxy. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** From now on, until `cut`, what Redis sends back is dropped: nothing is acknowledged. */
  holdReplies(): void {
    this.#holding = true;
  }

  /** Cuts every connection through it; new ones pass everything again. */
  cut(): void {
    this.#holding = false;
    for (const [client, upstream] of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  /** Stops listening and cuts every connection. */
  close(): void {
    this.cut();
    this.#server.close();
  }

  #pass(client: Socket, port: number): void {
    const upstream = new Socket();
    const pair: [Socket, Socket] = [client, upstream];
    this.#pairs.add(pair);
    const end = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (chunk: Uint8Array) => upstream.write(chunk));
    upstream.on("data", (chunk: Uint8Array) => {
      if (!this.#holding) client.write(chunk);
    });
    for (const socket of pair) {
      socket.on("error", end);
      socket.on("close", end);
    }
    upstream.connect(port, "127.0.0.1");
  }
}

const FIXTURE = fileURLToPath(new URL("../fixtures/backplane_server.ts", import.meta.url));
const BIN = fileURLToPath(new URL("../../node_modules/.bin/", import.meta.url));

/** A Wisp server process on the backplane (see tests/fixtures/backplane_server.ts). */
export type WispProcess = CliServer;

/** How the fixture's backplane carries topics: Redis pub/sub, sharded pub/sub, or streams. */
export type BackplaneMode = "classic" | "sharded" | "streams";

/**
 * Starts the backplane fixture on `runtime` against `redis` (one URL, or a cluster's), in `mode`;
 * resolves once it listens.
 */
export function startWisp(
  runtime: "deno" | "bun",
  redis: string | readonly string[],
  mode: BackplaneMode = "classic",
): Promise<WispProcess> {
  const urls = typeof redis === "string" ? redis : redis.join(",");
  const script = [FIXTURE, urls, mode];
  return startListening(BIN + runtime, runtime === "deno" ? ["run", "-A", ...script] : ["run", ...script]);
}

/** The backplane stats a fixture process serves at `GET /stats`. */
export async function fixtureStats(
  process: WispProcess,
): Promise<{ state: string; reconnects: number; dropped: number }> {
  return await (await fetch(`http://127.0.0.1:${process.port}/stats`)).json();
}

/** Every text message a client receives, as it comes, until it is destroyed. */
export function received(client: RawClient): string[] {
  const texts: string[] = [];
  (async () => {
    while (true) {
      const message = await client.readFrame(60_000).catch(() => null);
      if (message === null) return;
      texts.push(new TextDecoder().decode(message.payload));
    }
  })();
  return texts;
}

/**
 * A Deno and a Bun process in streams mode on the Redis at `url` (or a cluster's), a publisher and
 * a subscriber on each, of the topic `outage`; `script` sends numbered messages from both publishers (`send(from, to)`, one
 * pair every `everyMs`) around what it does to Redis. Then each subscriber must have each
 * publisher's messages exactly once, in order.
 */
export async function twoProcesses(
  url: string | readonly string[],
  script: (
    send: (from: number, to: number, everyMs?: number) => Promise<void>,
    processes: WispProcess[],
    subscribers: string[][],
  ) => Promise<void>,
): Promise<void> {
  const processes = await Promise.all([startWisp("deno", url, "streams"), startWisp("bun", url, "streams")]);
  const clients: RawClient[] = [];
  try {
    for (const wisp of processes) {
      clients.push(
        await RawClient.open(wisp.port, "/?topic=outage"),
        await RawClient.open(wisp.port, "/?topic=outage"),
      );
    }
    const [denoPublisher, denoSubscriber, bunPublisher, bunSubscriber] = clients;
    const publishers = [denoPublisher, bunPublisher], names = ["deno", "bun"];
    const subscribers = [received(denoSubscriber), received(bunSubscriber)];
    // Each process reads the topic once a probe from the other has come through.
    await until(
      () => {
        if (subscribers.every((texts, i) => texts.includes(`probe ${names[1 - i]}`))) return true;
        publishers.forEach((client, i) => client.write(frame(TEXT, `probe ${names[i]}`)));
        return false;
      },
      "both processes to read the topic",
      5000,
    );
    let sent = 0;
    const send = async (from: number, to: number, everyMs = 5) => {
      for (let i = from; i < to; i++) {
        publishers.forEach((client, p) => client.write(frame(TEXT, `${names[p]} ${i}`)));
        sent = i + 1;
        if (everyMs > 0) await new Promise((resolve) => setTimeout(resolve, everyMs));
      }
    };
    await script(send, processes, subscribers);
    const expected = (name: string) => Array.from({ length: sent }, (_, i) => `${name} ${i}`);
    const of = (texts: string[], name: string) => texts.filter((text) => text.startsWith(`${name} `));
    await until(
      () => subscribers.every((texts) => names.every((name) => of(texts, name).length >= sent)),
      "every message at both subscribers",
      20_000,
    ).catch(() => {}); // the assertions below say what is missing
    for (const [i, texts] of subscribers.entries()) {
      for (const name of names) {
        assert.deepEqual(of(texts, name), expected(name), `${name}'s messages at the ${names[i]} subscriber`);
      }
    }
  } finally {
    for (const client of clients) client.destroy();
    await Promise.all(processes.map((wisp) => wisp.stop()));
  }
}
