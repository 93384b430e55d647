/**
 * Real-browser testing: headless Chromium driven by playwright-core, and cutting a page's TCP
 * connections (as root, with `ss -K`) so that it sees its WebSocket end with 1006.
 */

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type BrowserContext, chromium, type Page } from "playwright-core";

/** Where the browser tests expect Chromium (Debian's package). */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/**
 * Why the browser tests cannot run here, or `false` when they can. Pass it as a test's `skip`
 * option, so that a missing browser shows as skipped, never as passed.
 */
export const browserSkipReason: string | false = existsSync(CHROMIUM_PATH)
  ? false
  : `chromium not installed at ${CHROMIUM_PATH} (apt-get install chromium)`;

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A Chromium with a fresh profile; `close` shuts it down and removes the profile. */
export interface TestBrowser {
  context: BrowserContext;
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/**
 * Launches headless Chromium with a profile in a new temporary directory; with
 * `ignoreHTTPSErrors` it trusts any certificate (the TLS tests' self-signed one).
 */
export async function launchBrowser({ ignoreHTTPSErrors = false } = {}): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), "wisp-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      ignoreHTTPSErrors,
      timeout: 20_000,
    });
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
  context.setDefaultTimeout(10_000);
  let closed: Promise<void> | null = null;
  return {
    context,
    newPage: () => context.newPage(),
    close: () =>
      closed ??= context.close().catch(() => {}).finally(() =>
        rmSync(profile, { recursive: true, force: true })
      ),
  };
}

/** Runs `body`, failing if it takes longer than `ms` (so that no test hangs the suite). */
export async function withTimeout<T>(ms: number, body: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`test timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([body(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A resource made on first use and disposed of once. Tests set up browsers and servers through
 * it inside the test (bounded by the test's timeout) rather than in `before`, because `bun test`
 * gives hooks 5 s whatever their options say.
 */
export class Lazy<T> {
  #value: Promise<T> | null = null;
  readonly #create: () => Promise<T>;
  readonly #dispose: (value: T) => Promise<void>;

  constructor(create: () => Promise<T>, dispose: (value: T) => Promise<void>) {
    this.#create = create;
    this.#dispose = dispose;
  }

  /** The resource, created on the first call. */
  get(): Promise<T> {
    return this.#value ??= this.#create();
  }

  /** Disposes of the resource if it was created (and forgets it). */
  async dispose(): Promise<void> {
    const value = this.#value;
    this.#value = null;
    if (value === null) return;
    let created: T;
    try {
      created = await value;
    } catch {
      return; // creation failed: nothing to dispose of
    }
    await this.#dispose(created);
  }
}

/**
 * The local ports of the established loopback connections to `port` (the clients' ends), as
 * `ss -tn` lists them.
 */
export function clientPorts(port: number): number[] {
  const listed = execFileSync("ss", [
    "-Htn",
    "state",
    "established",
    "dst",
    "127.0.0.1",
    "dport",
    "=",
    `:${port}`,
  ], {
    encoding: "utf8",
  });
  // Each line: Recv-Q, Send-Q, local address:port, peer address:port.
  return listed.split("\n").filter((line) => line.trim() !== "").map((line) =>
    Number(line.trim().split(/\s+/)[2].split(":").at(-1))
  );
}

/**
 * Aborts the client ends of the loopback connections to `port` from the local ports `from` (with
 * `ss -K`, as root: the client sees them reset, the server sees them reset too); returns how many
 * it aborted.
 */
export function cutConnections(port: number, from: readonly number[]): number {
  if (from.length === 0) return 0;
  const sources = from.flatMap((local, i) => [...(i === 0 ? [] : ["or"]), "sport", "=", `:${local}`]);
  const filter = ["dst", "127.0.0.1", "dport", "=", `:${port}`, "and", "(", ...sources, ")"];
  const killed = execFileSync("ss", ["-K", "-Htn", "state", "established", ...filter], { encoding: "utf8" });
  // ss lists the sockets it aborted, and only those.
  return killed.split("\n").filter((line) => line.trim() !== "").length;
}

/**
 * Why connections cannot be cut here, or `false` when they can: not root, no `ss`, or a kernel
 * whose `ss -K` aborts nothing (no SOCK_DESTROY). Tried on a loopback connection of its own.
 */
export async function cutSkipReason(): Promise<string | false> {
  if (process.getuid?.() !== 0) return "cutting a TCP connection with ss -K needs root";
  const server = createServer();
  const accepted: Socket[] = [];
  server.on("connection", (socket) => accepted.push(socket.on("error", () => {})));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port));
    });
    const client = new Socket().on("error", () => {});
    await new Promise<void>((resolve, reject) => {
      client.once("connect", resolve).once("error", reject);
      client.connect(port, "127.0.0.1");
    });
    try {
      const cut = cutConnections(port, [client.localPort!]);
      return cut === 1
        ? false
        : `ss -K aborted ${cut} connections instead of 1 (a kernel without SOCK_DESTROY?)`;
    } finally {
      client.destroy();
    }
  } catch (error) {
    return `ss -K does not work here: ${error instanceof Error ? error.message : error}`;
  } finally {
    for (const socket of accepted) socket.destroy();
    server.close();
  }
}
