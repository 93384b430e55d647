// Compression benchmark: a chat-like stream of small JSON messages (bench/compression_corpus.mjs)
// published by each server to real `ws` clients that offer permessage-deflate with context
// takeover (`permessage-deflate; client_max_window_bits`), measuring per delivered message the
// bytes the client reads off the socket (frames, compressed) and the server's CPU time
// (/proc/PID/stat), and the server's resident memory per socket (RSS over many sockets). Every
// client checks every message it decompressed against the corpus.
//
// Each round starts every server afresh (pinned to core 0; the clients run here, on core 1):
//   1. warm-up: one socket gets the stream, then leaves;
//   2. stream: --sockets sockets get --messages messages, asked for 100 at a time (a live feed,
//      without an unbounded backlog): CPU and wire bytes over these deliveries;
//   3. memory: after a collection, RSS with those sockets; then --memory-sockets more sockets
//      join and all get 300 more messages (a window's worth: every context is full); after a
//      collection, RSS again. KiB per socket = the growth ÷ the sockets added.
// Rounds rotate the order of the servers; the report gives medians and ratios to ws.
//
// Usage: node bench/compression.mjs [--rounds 3] [--quick] [--servers ids] [--sockets 50]
//                                   [--messages 2000] [--memory-sockets 400]
//   ids: wisp-deno, wisp-bun, wisp-node (add @BITS for serverMaxWindowBits, e.g. wisp-bun@12;
//   @0 is Wisp without context takeover), ws, bun-dedicated, bun-4kb (or bun-NKB)
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { chatCorpus } from "./compression_corpus.mjs";
import { killOnExit, machineCpuS, portsFrom, processCpuS, rssKiB, SERVER_ENV } from "./processes.mjs";
import { BUILD, BUN, DENO, NODE_TS, ROOT, SERVER_CORE } from "./paths.mjs";
import { median } from "./report.mjs";

const CLIENT_CORE = "1";
const BATCH = 100;
const MEMORY_MESSAGES = 300;
const CORPUS_SIZE = 5000;

const USAGE = `usage: node bench/compression.mjs [--rounds N] [--quick] [--servers ids] [--sockets N]
                                  [--messages N] [--memory-sockets N]
  --rounds N           rounds to take medians over (default 3; --quick: 1)
  --quick              1 round, 10 sockets, 500 messages, 100 memory sockets: a smoke test
  --servers ids        comma-separated, default wisp-deno,wisp-bun,wisp-node,ws,bun-dedicated,bun-4kb
                       (wisp-…@BITS: serverMaxWindowBits BITS; @0: no context takeover)
  --sockets N          sockets of the stream phase (default 50)
  --messages N         messages each of them gets (default 2000)
  --memory-sockets N   sockets added for the memory phase (default 400)`;

function parseArgs(argv) {
  const options = {
    rounds: 3,
    servers: ["wisp-deno", "wisp-bun", "wisp-node", "ws", "bun-dedicated", "bun-4kb"],
    sockets: 50,
    messages: 2000,
    memorySockets: 400,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value\n${USAGE}`);
      return argv[++i];
    };
    const count = () => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) throw new Error(`${a} takes a positive integer\n${USAGE}`);
      return n;
    };
    if (a === "--rounds") options.rounds = count();
    else if (a === "--quick") {
      Object.assign(options, { rounds: 1, sockets: 10, messages: 500, memorySockets: 100 });
    } else if (a === "--servers") options.servers = value().split(",");
    else if (a === "--sockets") options.sockets = count();
    else if (a === "--messages") options.messages = count();
    else if (a === "--memory-sockets") options.memorySockets = count();
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  for (const id of options.servers) serverCommand(id, 0, ""); // refuses unknown ids now
  return options;
}

/** The command line of server `id` on `port`, serving `corpus` (a JSON file). */
function serverCommand(id, port, corpus) {
  const [name, bits = "15"] = id.split("@");
  const wisp = ["bench/servers/compression_wisp.ts", port, corpus, bits];
  if (name === "wisp-deno") return [DENO, "run", "-A", "--v8-flags=--expose-gc", ...wisp];
  if (name === "wisp-bun") return [BUN, "run", ...wisp];
  if (name === "wisp-node") return [process.execPath, "--expose-gc", "--import", NODE_TS, ...wisp];
  if (id === "ws") return [process.execPath, "--expose-gc", "bench/servers/compression_ws.mjs", port, corpus];
  const bun = /^bun-(dedicated|\d+kb)$/i.exec(id);
  if (bun) {
    const compressor = bun[1] === "dedicated" ? "dedicated" : bun[1].toUpperCase();
    return [BUN, "run", "bench/servers/compression_bun.ts", port, corpus, compressor];
  }
  throw new Error(`unknown server ${id}\n${USAGE}`);
}

const live = killOnExit();
const freePort = portsFrom(26000);

/** Starts a server pinned to the server core; resolves once it says it listens. */
async function startServer(id, corpusFile, logFile) {
  const port = await freePort();
  const [command, ...args] = serverCommand(id, port, corpusFile);
  // taskset execs the runtime itself, so the child's pid is the server's.
  const child = spawn("taskset", ["-c", SERVER_CORE, command, ...args.map(String)], {
    cwd: ROOT,
    env: SERVER_ENV,
    detached: true,
    stdio: ["ignore", "pipe", fs.openSync(logFile, "w")],
  });
  live.add(child.pid);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const listening = new Promise((resolve) => {
    let text = "";
    child.stdout.on("data", (chunk) => {
      text += chunk;
      if (text.includes("listening")) resolve(true);
    });
  });
  const ready = await Promise.race([listening, exited.then(() => false), sleep(30_000).then(() => null)]);
  if (ready !== true) {
    throw new Error(`${id} ${ready === false ? "exited" : "did not listen within 30 s"}; see ${logFile}`);
  }
  return {
    port,
    pid: child.pid,
    async stop() {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch { /* gone */ }
      await exited;
      live.delete(child.pid);
    },
  };
}

/**
 * A `ws` client offering permessage-deflate (ws's default offer), which checks that the n-th
 * message it gets is the corpus's message `start + n`.
 */
async function openClient(port, corpus, start, tally) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: true });
  const client = { ws, extensions: "", received: 0, bytes: () => ws._socket.bytesRead };
  ws.on("upgrade", (response) => client.extensions = response.headers["sec-websocket-extensions"] ?? "");
  ws.on("message", (data, isBinary) => {
    const text = data.toString();
    if (!isBinary && text === "gc") return tally.gc?.();
    const expected = corpus[(start + client.received) % corpus.length];
    if (isBinary || text !== expected) {
      tally.fail(new Error(`message ${client.received} differs: ${JSON.stringify(text.slice(0, 80))}`));
    }
    client.received++;
    tally.delivered();
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return client;
}

/** Counts deliveries across clients, and waits for a number of them. */
function tally() {
  let count = 0;
  let waiting = null;
  const t = {
    delivered() {
      count++;
      if (waiting !== null && count >= waiting.target) waiting.resolve();
    },
    fail(error) {
      waiting?.reject(error);
      t.error ??= error;
    },
    until(target, what) {
      if (t.error) return Promise.reject(t.error);
      if (count >= target) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 120_000);
        waiting = {
          target,
          resolve: () => (clearTimeout(timer), waiting = null, resolve()),
          reject: (error) => (clearTimeout(timer), waiting = null, reject(error)),
        };
      });
    },
    get count() {
      return count;
    },
  };
  return t;
}

/** Asks the server for `messages` more messages, `BATCH` at a time, until every client has them. */
async function stream(control, clients, t, messages) {
  for (let sent = 0; sent < messages; sent += BATCH) {
    const batch = Math.min(BATCH, messages - sent);
    const target = t.count + batch * clients.length;
    control.ws.send(`next ${batch}`);
    await t.until(target, `a batch of ${batch} messages`);
  }
}

/** Collects the server's garbage, then reads its RSS. */
async function settledRss(server, control, t) {
  const answered = new Promise((resolve) => t.gc = resolve);
  control.ws.send("gc");
  await answered;
  await sleep(200);
  return rssKiB(server.pid);
}

async function runOne(id, corpus, corpusFile, options, logFile) {
  const server = await startServer(id, corpusFile, logFile);
  const clients = [];
  try {
    let position = 0;
    // 1. Warm-up: one socket, the whole stream.
    const warm = tally();
    const warmup = await openClient(server.port, corpus, position, warm);
    await stream(warmup, [warmup], warm, options.messages);
    position += options.messages;
    warmup.ws.terminate();
    // 2. The stream.
    const t = tally();
    for (let i = 0; i < options.sockets; i++) {
      clients.push(await openClient(server.port, corpus, position, t));
    }
    await sleep(200);
    const bytes0 = clients.reduce((sum, c) => sum + c.bytes(), 0);
    const cpu0 = processCpuS(server.pid);
    const machine0 = machineCpuS();
    const ours0 = process.cpuUsage();
    const started = Date.now();
    await stream(clients[0], clients, t, options.messages);
    const cpu = processCpuS(server.pid) - cpu0;
    const seconds = (Date.now() - started) / 1000;
    const oursUsage = process.cpuUsage(ours0);
    const ours = (oursUsage.user + oursUsage.system) / 1e6;
    const machine = machineCpuS() - machine0;
    const wire = clients.reduce((sum, c) => sum + c.bytes(), 0) - bytes0;
    const deliveries = options.sockets * options.messages;
    const payload = sumBytes(corpus, position, options.messages) * options.sockets;
    position += options.messages;
    // 3. Memory per socket.
    const rss0 = await settledRss(server, clients[0], t);
    const more = tally();
    const joined = [];
    for (let i = 0; i < options.memorySockets; i++) {
      joined.push(await openClient(server.port, corpus, position, more));
    }
    // The stream phase's sockets get these too; only the new ones' deliveries are counted.
    const target = MEMORY_MESSAGES * options.memorySockets;
    for (let sent = 0; sent < MEMORY_MESSAGES; sent += BATCH) {
      clients[0].ws.send(`next ${BATCH}`);
      await more.until(
        Math.min(target, (sent + BATCH) * options.memorySockets),
        "the memory phase's messages",
      );
    }
    clients.push(...joined);
    const rss1 = await settledRss(server, clients[0], t);
    return {
      wirePerMessage: wire / deliveries,
      payloadPerMessage: payload / deliveries,
      ratio: payload / wire,
      cpuUs: (cpu / deliveries) * 1e6,
      kibPerSocket: (rss1 - rss0) / options.memorySockets,
      extensions: clients[0].extensions,
      othersCpu: Math.max(0, (machine - cpu - ours) / seconds),
    };
  } finally {
    for (const client of clients) client.ws.terminate();
    await server.stop();
  }
}

function sumBytes(corpus, start, count) {
  let total = 0;
  for (let i = 0; i < count; i++) total += Buffer.byteLength(corpus[(start + i) % corpus.length]);
  return total;
}

/** The first line `command` prints. */
function execSync(command, args) {
  return execFileSync(command, args, { encoding: "utf8" }).split("\n")[0].trim();
}

function report(results, options, meta) {
  const ids = Object.keys(results);
  const med = (id, key) => median(results[id].map((r) => r[key]));
  const ws = results.ws
    ? { wire: med("ws", "wirePerMessage"), cpu: med("ws", "cpuUs"), mem: med("ws", "kibPerSocket") }
    : null;
  const fixed = (x, digits = 1) => x.toFixed(digits);
  const lines = [];
  lines.push(`# Compression: a chat-like stream to ws clients with context takeover`);
  lines.push("");
  lines.push(`${meta.date}, commit ${meta.commit}; ${meta.machine}; ${meta.versions}.`);
  lines.push(`Command: \`${meta.command}\``);
  lines.push("");
  lines.push(
    `${options.rounds} round(s), medians. Stream: ${options.sockets} sockets × ${options.messages} messages ` +
      `(${fixed(results[ids[0]][0].payloadPerMessage)} B of JSON per message on average); memory: ` +
      `${options.memorySockets} sockets added, each then sent ${MEMORY_MESSAGES} messages.`,
  );
  lines.push("");
  lines.push(
    "| server | answer to `permessage-deflate; client_max_window_bits` | wire B/msg | payload ÷ wire | server CPU µs/msg | RSS KiB/socket |" +
      (ws ? " wire ÷ ws | CPU ÷ ws | RSS ÷ ws |" : ""),
  );
  lines.push("|---|---|---|---|---|---|" + (ws ? "---|---|---|" : ""));
  for (const id of ids) {
    const wire = med(id, "wirePerMessage");
    const cpu = med(id, "cpuUs");
    const mem = med(id, "kibPerSocket");
    let row =
      `| ${id} | \`${results[id][0].extensions}\` | ${fixed(wire, 2)} | ${fixed(med(id, "ratio"), 2)}× | ` +
      `${fixed(cpu)} | ${fixed(mem)} |`;
    if (ws) row += ` ${fixed(wire / ws.wire, 3)} | ${fixed(cpu / ws.cpu, 2)} | ${fixed(mem / ws.mem, 2)} |`;
    lines.push(row);
  }
  lines.push("");
  lines.push("Per round (wire B/msg, CPU µs/msg, KiB/socket; CPU s/s other processes took meanwhile):");
  lines.push("");
  for (const id of ids) {
    lines.push(
      `- ${id}: ` +
        results[id].map((r) =>
          `${fixed(r.wirePerMessage)} B, ${fixed(r.cpuUs)} µs, ${fixed(r.kibPerSocket)} KiB (others ${
            fixed(r.othersCpu, 2)
          })`
        ).join("; "),
    );
  }
  return lines.join("\n") + "\n";
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  // The clients run on the other core.
  try {
    execFileSync("taskset", ["-cp", CLIENT_CORE, String(process.pid)], { stdio: "ignore" });
  } catch { /* not pinned */ }
  fs.mkdirSync(path.join(BUILD, "logs"), { recursive: true });
  const corpus = chatCorpus(CORPUS_SIZE);
  const corpusFile = path.join(BUILD, "compression_corpus.json");
  fs.writeFileSync(corpusFile, JSON.stringify(corpus));
  const results = Object.fromEntries(options.servers.map((id) => [id, []]));
  for (let round = 0; round < options.rounds; round++) {
    const order = options.servers.map((_, i) => options.servers[(i + round) % options.servers.length]);
    for (const id of order) {
      const logFile = path.join(BUILD, "logs", `compression-${id.replace("@", "-")}-${round}.log`);
      const result = await runOne(id, corpus, corpusFile, options, logFile);
      results[id].push(result);
      console.error(
        `round ${round + 1}/${options.rounds} ${id}: ${result.wirePerMessage.toFixed(1)} B/msg, ` +
          `${result.cpuUs.toFixed(1)} µs/msg, ${result.kibPerSocket.toFixed(1)} KiB/socket`,
      );
    }
  }
  const now = new Date();
  const meta = {
    date: now.toISOString().slice(0, 16).replace("T", " "),
    commit: execSync("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]) +
      (execFileSync("git", ["-C", ROOT, "status", "--porcelain", "--untracked-files=no"], {
          encoding: "utf8",
        }) === ""
        ? ""
        : " with uncommitted changes"),
    machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? "?"}`,
    versions: `deno ${execSync(DENO, ["--version"]).split(" ")[1]}, bun ${
      execSync(BUN, ["--version"])
    }, node ${process.versions.node}, ws ${
      JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules/ws/package.json"), "utf8")).version
    }`,
    command: `node bench/compression.mjs ${process.argv.slice(2).join(" ")}`.trim(),
  };
  const text = report(results, options, meta);
  console.log(text);
  const stamp = now.toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
  fs.mkdirSync(path.join(ROOT, "bench/results"), { recursive: true });
  fs.writeFileSync(path.join(ROOT, `bench/results/compression-${stamp}.md`), text);
}

await main();
