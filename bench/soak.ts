/**
 * Soak run: one Wisp server (bench/servers/wisp_soak.ts, as a child process) under minutes of
 * mixed load on loopback, its resident memory sampled throughout, to show whether memory keeps
 * growing once warmed up. The load, in loops that each stop by themselves (at the deadline, or
 * after a fixed number of rounds):
 *
 * - churn: connect, handshake, a few messages, a clean close;
 * - a pool of long-lived sockets echoing messages of 1 B to 256 KiB, now and then a ping;
 * - a publisher whose messages reach every socket (all subscribe to one topic);
 * - abrupt ends: sockets dropped before, during and after the handshake, mid-frame and with
 *   replies unread, plus protocol errors and corrupt compressed data.
 *
 * Half the sockets agree to permessage-deflate and send some messages compressed. It prints a
 * table of time against the server's RSS (VmRSS from /proc), then the RSS after warm-up (the first
 * 20% of the run), the final RSS under load, the growth between them, and whether the server's
 * sockets and subscribers went back to zero once every client had left. It exits with 1 when a
 * check failed (an echo that differs, a loop error, sockets left over, the server gone).
 *
 * Usage: deno run -A bench/soak.ts [--minutes N] [--runtime deno|bun]
 *        bun bench/soak.ts [--minutes N] [--runtime deno|bun]
 * `--runtime` is the server's (by default the one running this script); the clients use node:net,
 * which both runtimes have. Linux only (/proc).
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { constants, inflateRawSync } from "node:zlib";
import { compressAlone, TAIL } from "../tests/helpers/deflate.ts";
import { Random } from "../tests/helpers/random.ts";
import {
  BINARY,
  CLOSE,
  closePayload,
  concat,
  frame,
  PING,
  PONG,
  RawClient,
  TEXT,
  upgradeRequest,
} from "../tests/helpers/raw_client.ts";

const USAGE = "usage: soak.ts [--minutes N] [--runtime deno|bun]";
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SERVER_SCRIPT = fileURLToPath(new URL("servers/wisp_soak.ts", import.meta.url));
const POOL_SIZE = 32;
const CHURN_WORKERS = 4;
const ABRUPT_WORKERS = 2;
/** Upper bound on the rounds of any one loop, whatever the deadline. */
const MAX_ROUNDS = 10_000_000;
/** How long any one step (a connect, a reply) may take before it counts as an error. */
const STEP_MS = 10_000;
const DEFLATE_OFFER = { "Sec-WebSocket-Extensions": "permessage-deflate" };
const RSV1 = 0x40;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const THIS_RUNTIME = "Bun" in globalThis ? "bun" : "deno";

/** Parses the flags; exits with 2 and the usage on anything else. */
function parseArgs(args: string[]): { minutes: number; runtime: "deno" | "bun" } {
  const options: { minutes: number; runtime: "deno" | "bun" } = { minutes: 3, runtime: THIS_RUNTIME };
  for (let i = 0; i < args.length; i++) {
    const value = args[i + 1];
    if (args[i] === "--minutes" && Number(value) > 0) options.minutes = Number(value);
    else if (args[i] === "--runtime" && (value === "deno" || value === "bun")) options.runtime = value;
    else {
      console.error(USAGE);
      process.exit(2);
    }
    i++;
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));
const durationMs = options.minutes * 60_000;

/** Load counters, shown in the table. */
const counts = { churned: 0, echoes: 0, published: 0, delivered: 0, aborted: 0, errors: 0 };
/** First error messages, printed at the end (the rest are only counted). */
const errorLog: string[] = [];

function recordError(loop: string, error: unknown): void {
  counts.errors++;
  if (errorLog.length < 10) errorLog.push(`${loop}: ${(error as Error).message ?? error}`);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Rejects after `ms` unless `promise` settles first. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// --- the server --------------------------------------------------------------------------------

/** The server's runtime binary: the one running this script when it is the same, else the pinned one. */
function runtimeBinary(runtime: "deno" | "bun"): string {
  if (runtime === THIS_RUNTIME) return process.execPath;
  const pinned = `${ROOT}node_modules/.bin/${runtime}`;
  return existsSync(pinned) ? pinned : runtime;
}

interface ServerProcess {
  child: ChildProcess;
  port: number;
  /** The server's latest report of its open sockets and the topic's subscribers. */
  stats: { connections: number; subscribers: number };
  command: string;
}

/** Starts the soak server on a free port and waits (at most 20 s) for its "listening" line. */
function startServer(runtime: "deno" | "bun"): Promise<ServerProcess> {
  const binary = runtimeBinary(runtime);
  const args = runtime === "deno" ? ["run", "-A", SERVER_SCRIPT, "0"] : ["run", SERVER_SCRIPT, "0"];
  const child = spawn(binary, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  // The server dies with this script, however it ends.
  process.on("exit", () => child.kill("SIGKILL"));
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));
  const server: ServerProcess = {
    child,
    port: 0,
    stats: { connections: -1, subscribers: -1 },
    command: `${binary} ${args.join(" ")}`,
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "listening" line in 20 s from ${server.command}`)),
      20_000,
    );
    let pending = "";
    child.stdout!.on("data", (chunk: Uint8Array) => {
      pending += decoder.decode(chunk);
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        const listening = /listening on ws:\/\/[^:]+:(\d+)/.exec(line);
        if (listening !== null) {
          server.port = Number(listening[1]);
          clearTimeout(timer);
          resolve(server);
        } else if (line.startsWith("{")) {
          server.stats = JSON.parse(line);
        }
      }
    });
    child.once("exit", (code, signal) => reject(new Error(`server exited (code ${code}, signal ${signal})`)));
  });
}

/** The server's resident set size in MiB, from /proc; NaN once it is gone. */
function rssMiB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match === null ? NaN : Number(match[1]) / 1024;
  } catch {
    return NaN;
  }
}

// --- clients -----------------------------------------------------------------------------------

/** A handshaken socket and whether it agreed to permessage-deflate. */
interface Peer {
  client: RawClient;
  deflate: boolean;
}

/** Connects within `STEP_MS`; a connection that only lands later is closed at once. */
async function connectClient(port: number): Promise<RawClient> {
  const connecting = RawClient.connect(port);
  try {
    return await within(connecting, STEP_MS, "connect");
  } catch (error) {
    connecting.then((late) => late.destroy(), () => {});
    throw error;
  }
}

/** Connects and completes a handshake, offering permessage-deflate when `deflate` is set. */
async function openPeer(port: number, path: string, deflate: boolean): Promise<Peer> {
  const client = await connectClient(port);
  client.write(upgradeRequest(path, deflate ? DEFLATE_OFFER : {}));
  const response = await client.readResponse(STEP_MS).catch((error) => {
    client.destroy();
    throw error;
  });
  if (response.status !== 101) {
    client.destroy();
    throw new Error(`handshake answered ${response.status}`);
  }
  return { client, deflate: response.headers.get("sec-websocket-extensions") !== null };
}

/** A client frame for `data`, compressed (RSV1) when the peer agreed to deflate and `compress` is set. */
function messageFrame(peer: Peer, opcode: number, data: Uint8Array, compress: boolean): Uint8Array {
  if (peer.deflate && compress) return frame(opcode, compressAlone(data), { rsv: RSV1 });
  return frame(opcode, data);
}

/** A server message's payload, inflated when its frame has RSV1 (the server takes no context over). */
function payloadOf(received: { rsv: number; payload: Uint8Array }): Uint8Array {
  if ((received.rsv & RSV1) === 0) return received.payload;
  return inflateRawSync(concat(received.payload, TAIL), { finishFlush: constants.Z_SYNC_FLUSH });
}

const PUBLISH_PREFIX = encoder.encode("publish ");

function isPublish(opcode: number, payload: Uint8Array): boolean {
  return opcode === TEXT && PUBLISH_PREFIX.every((byte, i) => payload[i] === byte);
}

/**
 * The next frame other than a publish (every socket gets those; they are counted and skipped),
 * its payload inflated when compressed.
 */
async function nextFrame(peer: Peer): Promise<{ opcode: number; payload: Uint8Array }> {
  while (true) {
    const received = await peer.client.readFrame(STEP_MS);
    const payload = payloadOf(received);
    if (!isPublish(received.opcode, payload)) return { opcode: received.opcode, payload };
    counts.delivered++;
  }
}

/** Sends `data` and fails unless the next non-publish frame echoes it exactly. */
async function echo(peer: Peer, opcode: number, data: Uint8Array, compress: boolean): Promise<void> {
  peer.client.write(messageFrame(peer, opcode, data, compress));
  const reply = await nextFrame(peer);
  if (
    reply.opcode !== opcode || reply.payload.length !== data.length ||
    reply.payload.some((b, i) => b !== data[i])
  ) {
    throw new Error(
      `echo of ${data.length} bytes (opcode ${opcode}) came back as ${reply.payload.length} (opcode ${reply.opcode})`,
    );
  }
  counts.echoes++;
}

/** The closing handshake from the client's side: close frame, the server's close, its FIN. */
async function closeCleanly(peer: Peer): Promise<void> {
  peer.client.write(frame(CLOSE, closePayload(1000)));
  try {
    const { code } = await peer.client.readClose(STEP_MS);
    if (code !== 1000) throw new Error(`close answered with ${code}`);
    await peer.client.waitForEnd(STEP_MS);
  } finally {
    peer.client.destroy();
  }
}

const MAX_MESSAGE = 256 * 1024;
/** Messages are cut from these, so that the clients spend their time on I/O, not on making bytes. */
const NOISE = new Random(7).bytes(MAX_MESSAGE);
const ASCII = NOISE.map((byte) => 0x30 + (byte % 0x4b)); // "0" to "z": valid UTF-8, never "publish "

/** Message contents: text or bytes, sized 1 B to `max` (a view of a shared buffer). */
function randomMessage(random: Random, max: number): { opcode: number; data: Uint8Array } {
  // Mostly small messages, a few large: sizes spread evenly over powers of two.
  const size = Math.min(max, Math.floor(2 ** (random.next() * Math.log2(max))));
  const at = random.int(0, MAX_MESSAGE - size);
  const binary = random.next() < 0.5;
  return { opcode: binary ? BINARY : TEXT, data: (binary ? NOISE : ASCII).subarray(at, at + size) };
}

// --- the loops -----------------------------------------------------------------------------------

/** Runs `round` until the deadline or `MAX_ROUNDS`, counting errors instead of stopping on them. */
async function loop(name: string, deadline: number, round: (index: number) => Promise<void>): Promise<void> {
  for (let index = 0; index < MAX_ROUNDS && Date.now() < deadline; index++) {
    try {
      await round(index);
    } catch (error) {
      recordError(name, error);
      await sleep(100); // a failing server is not hammered
    }
  }
}

/** Connect, handshake, three messages, clean close, again and again. */
function churn(port: number, deadline: number, seed: number): Promise<void> {
  const random = new Random(seed);
  return loop("churn", deadline, async (index) => {
    const peer = await openPeer(port, "/churn", index % 2 === 0);
    try {
      for (let i = 0; i < 3; i++) {
        const { opcode, data } = randomMessage(random, 4096);
        await echo(peer, opcode, data, random.next() < 0.5);
      }
    } catch (error) {
      peer.client.destroy();
      throw error;
    }
    await closeCleanly(peer);
    counts.churned++;
  });
}

/** One long-lived socket echoing until the deadline (a ping now and then), then closing cleanly. */
async function poolSocket(port: number, deadline: number, seed: number): Promise<void> {
  const random = new Random(seed);
  let peer: Peer | null = null;
  await loop("pool", deadline, async (index) => {
    peer ??= await openPeer(port, "/pool", seed % 2 === 0);
    try {
      if (index % 50 === 49) {
        const token = random.bytes(8);
        peer.client.write(frame(PING, token));
        const pong = await nextFrame(peer);
        if (pong.opcode !== PONG || pong.payload.some((byte, i) => byte !== token[i])) {
          throw new Error(`ping answered with opcode ${pong.opcode}, ${pong.payload.length} bytes`);
        }
      } else {
        const { opcode, data } = randomMessage(random, MAX_MESSAGE);
        await echo(peer, opcode, data, random.next() < 0.5);
      }
    } catch (error) {
      peer.client.destroy();
      peer = null; // the next round opens a new one
      throw error;
    }
    await sleep(2); // leave some of the machine to the other loops
  });
  if (peer !== null) await closeCleanly(peer).catch((error) => recordError("pool close", error));
}

/** Publishes every 20 ms to every socket and waits for its own copy (it is subscribed too). */
async function publisher(port: number, deadline: number, seed: number): Promise<void> {
  const random = new Random(seed);
  let peer: Peer | null = null;
  await loop("publish", deadline, async (index) => {
    peer ??= await openPeer(port, "/publish", true);
    const text = `publish ${index} ${"x".repeat(random.int(0, 2048))}`;
    try {
      peer.client.write(messageFrame(peer, TEXT, encoder.encode(text), random.next() < 0.5));
      // Its own copy comes back as a publish; wait for it so that publishes never pile up unread.
      while (true) {
        if (decoder.decode(payloadOf(await peer.client.readFrame(STEP_MS))) === text) break;
      }
    } catch (error) {
      peer.client.destroy();
      peer = null;
      throw error;
    }
    counts.published++;
    await sleep(20);
  });
  if (peer !== null) await closeCleanly(peer).catch((error) => recordError("publish close", error));
}

/**
 * Ways of leaving abruptly, or of breaking the protocol, taken in turn. Each resolves once this
 * side is done; the server must clean up after all of them.
 */
const ABRUPT_ENDS: ((port: number, random: Random) => Promise<void>)[] = [
  // Connect and vanish before sending anything.
  async (port) => (await connectClient(port)).destroy(),
  // Half a request head, then gone.
  async (port) => {
    const client = await connectClient(port);
    const head = upgradeRequest("/abrupt");
    client.write(head.slice(0, head.length >> 1));
    await sleep(5);
    client.destroy();
  },
  // Gone in the middle of a frame's payload.
  async (port, random) => {
    const peer = await openPeer(port, "/abrupt", false);
    const whole = frame(BINARY, random.bytes(16 * 1024));
    peer.client.write(whole.subarray(0, whole.length >> 1));
    await sleep(5);
    peer.client.destroy();
  },
  // A large message sent, the reply never read.
  async (port, random) => {
    const peer = await openPeer(port, "/abrupt", true);
    peer.client.write(messageFrame(peer, BINARY, random.bytes(64 * 1024), random.next() < 0.5));
    peer.client.destroy();
  },
  // FIN without a close frame: the server must drop the socket.
  async (port) => {
    const peer = await openPeer(port, "/abrupt", false);
    peer.client.end();
    await peer.client.waitForEnd(STEP_MS).finally(() => peer.client.destroy());
  },
  // Noise instead of a request head: 400, then the server closes.
  async (port, random) => {
    const client = await connectClient(port);
    client.write(random.bytes(300).map((byte) => (byte === 13 || byte === 10 ? 32 : byte)));
    client.write("\r\n\r\n");
    try {
      const { status } = await client.readResponse(STEP_MS);
      if (status !== 400) throw new Error(`noise answered with ${status}`);
    } finally {
      client.destroy();
    }
  },
  // An unmasked frame: the server closes with 1002.
  async (port) => {
    const peer = await openPeer(port, "/abrupt", false);
    peer.client.write(frame(TEXT, "unmasked", { mask: false }));
    try {
      const { code } = await peer.client.readClose(STEP_MS);
      if (code !== 1002) throw new Error(`unmasked frame closed with ${code}`);
    } finally {
      peer.client.destroy();
    }
  },
  // Corrupt compressed data: the server closes with 1007.
  async (port) => {
    const peer = await openPeer(port, "/abrupt", true);
    if (!peer.deflate) throw new Error("the server did not agree to permessage-deflate");
    peer.client.write(frame(BINARY, Uint8Array.of(0xff, 0xff, 0xff, 0xff), { rsv: RSV1 }));
    try {
      const { code } = await peer.client.readClose(STEP_MS);
      if (code !== 1007) throw new Error(`corrupt data closed with ${code}`);
    } finally {
      peer.client.destroy();
    }
  },
];

function abrupt(port: number, deadline: number, seed: number): Promise<void> {
  const random = new Random(seed);
  return loop("abrupt", deadline, async (index) => {
    await ABRUPT_ENDS[index % ABRUPT_ENDS.length](port, random);
    counts.aborted++;
    await sleep(2);
  });
}

// --- the run -------------------------------------------------------------------------------------

const mib = (value: number) => `${value.toFixed(1)} MiB`;
const signed = (value: number, digits: number) => `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;
const growth = (from: number, to: number) =>
  `${signed(to - from, 1)} MiB (${signed((100 * (to - from)) / from, 1)}%)`;

function median(samples: { rss: number }[]): number {
  const sorted = samples.map((s) => s.rss).sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : (sorted[(sorted.length - 1) >> 1] + sorted[sorted.length >> 1]) / 2;
}

function formatRow(cells: (string | number)[]): string {
  return cells.map((cell, i) => String(cell).padStart(i === 0 ? 7 : 10)).join(" ");
}

async function main(): Promise<void> {
  const server = await startServer(options.runtime);
  const pid = server.child.pid!;
  let serverGone = false;
  server.child.once("exit", () => (serverGone = true));
  console.log(`soak: ${options.minutes} min against ${server.command} (pid ${pid}, port ${server.port})`);
  console.log(
    `load: ${POOL_SIZE} pooled sockets, ${CHURN_WORKERS} churn loops, 1 publisher, ${ABRUPT_WORKERS} abrupt loops\n`,
  );
  console.log(
    formatRow([
      "t (s)",
      "RSS (MiB)",
      "sockets",
      "churned",
      "echoes",
      "published",
      "delivered",
      "aborted",
      "errors",
    ]),
  );

  const start = Date.now();
  const deadline = start + durationMs;
  const samples: { t: number; rss: number }[] = [];
  const sample = () => {
    const t = (Date.now() - start) / 1000;
    const rss = rssMiB(pid);
    samples.push({ t, rss });
    const sockets = server.stats.connections < 0 ? "-" : server.stats.connections; // "-": no report yet
    console.log(formatRow([t.toFixed(0), rss.toFixed(1), sockets, ...Object.values(counts)]));
  };
  sample();
  // About 36 rows whatever the length, at most every 5 s; the last one at the deadline, while the
  // load is still on (the loops stop and close their sockets after it).
  const sampler = setInterval(sample, Math.min(5000, Math.max(1000, durationMs / 36)));
  const lastSample = new Promise<void>((resolve) =>
    setTimeout(() => {
      clearInterval(sampler);
      sample();
      resolve();
    }, deadline - Date.now())
  );

  const loops: Promise<void>[] = [publisher(server.port, deadline, 1)];
  for (let i = 0; i < POOL_SIZE; i++) loops.push(poolSocket(server.port, deadline, 100 + i));
  for (let i = 0; i < CHURN_WORKERS; i++) loops.push(churn(server.port, deadline, 200 + i));
  for (let i = 0; i < ABRUPT_WORKERS; i++) loops.push(abrupt(server.port, deadline, 300 + i));
  await Promise.all([...loops, lastSample]);

  // Every client is gone: the server's sockets and subscribers must drain to zero (a dropped
  // socket may take up to its close timeout, 5 s, plus a report).
  const settled = Date.now() + 8000;
  while (Date.now() < settled && (server.stats.connections !== 0 || server.stats.subscribers !== 0)) {
    await sleep(250);
  }
  await sleep(1200); // one more report, and a moment for memory to settle
  const idle = rssMiB(pid);

  const seconds = durationMs / 1000;
  const warm = samples.find((s) => s.t >= 0.2 * seconds) ?? samples[0];
  const final = samples[samples.length - 1];
  const peak = Math.max(...samples.filter((s) => s.t >= warm.t).map((s) => s.rss));
  console.log(
    `\nRSS after warm-up (t=${warm.t.toFixed(0)} s) ${mib(warm.rss)}, final (t=${final.t.toFixed(0)} s) ` +
      `${mib(final.rss)}, growth after warm-up ${growth(warm.rss, final.rss)}`,
  );
  console.log(`peak after warm-up ${mib(peak)}`);
  // Single samples catch the garbage collector anywhere in its cycle; medians of a stretch do not.
  const early = median(samples.filter((s) => s.t >= 0.2 * seconds && s.t < 0.4 * seconds));
  const late = median(samples.filter((s) => s.t >= 0.8 * seconds));
  console.log(
    `median RSS 20-40% of the run ${mib(early)}, last 20% ${mib(late)}: growth ${growth(early, late)}`,
  );
  console.log(
    `after every client left: RSS ${mib(idle)}, server sockets ${server.stats.connections}, ` +
      `subscribers ${server.stats.subscribers}`,
  );
  const { churned, echoes, published, delivered, aborted, errors } = counts;
  console.log(
    `totals: ${churned} churned, ${echoes} echoes, ${published} publishes (${delivered} deliveries to other ` +
      `sockets), ${aborted} abrupt ends, ${errors} errors`,
  );
  for (const line of errorLog) console.log(`  error: ${line}`);

  const leftOver = server.stats.connections !== 0 || server.stats.subscribers !== 0;
  if (serverGone) console.log("FAILED: the server exited during the run");
  if (leftOver) console.log("FAILED: sockets or subscribers left on the server after every client left");
  server.child.kill("SIGKILL");
  process.exit(serverGone || leftOver || errors > 0 ? 1 : 0);
}

await main();
