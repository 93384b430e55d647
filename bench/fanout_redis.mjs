// Cross-process fan-out benchmark ("Scale out", point 5): Wisp's Redis backplane on Deno and on
// Bun, in classic mode (pub/sub) and streams mode, against Socket.IO on Node with
// @socket.io/redis-adapter and with @socket.io/redis-streams-adapter, each as two server
// processes A and B on one redis-server; plus one-process references, and the echo server with
// --workers 1 and 2. See bench/README.md ("Cross-process fan-out").
// Usage: node bench/fanout_redis.mjs [--seconds N] [--subscribers N] [--rounds N]
//          [--publishers N] [--inflight N] [--systems ids] [--no-workers]
import { execFileSync, spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { io as socketIo } from "socket.io-client";
import {
  firstLine,
  HZ,
  killGroup,
  killOnExit,
  launchGroup,
  logTail,
  machineCpuS,
  packageVersion,
  portsFrom,
  rotated,
  startRun,
} from "./processes.mjs";
import { BUILD, BUN, DENO, GEN_CORE, LOADGEN, ROOT, SERVER_CORE } from "./paths.mjs";
import { BUSY, fmt, GEN_BOUND, median as medianOfAll, table } from "./report.mjs";

// --- options -----------------------------------------------------------------------------------

const USAGE = `usage: node bench/fanout_redis.mjs [--seconds N] [--subscribers N] [--rounds N]
         [--publishers N] [--inflight N] [--systems ids] [--no-workers]
  --seconds N      counted seconds per run, after --warmup (default 5; warm-up 2)
  --subscribers N  subscribers per run, half on A and half on B (default 200)
  --rounds N       interleaved rounds to take medians over (default 3)
  --publishers N   publishing connections, all on A (default 4)
  --inflight N     messages in flight at most, over all publishers (default 64)
  --systems ids    comma-separated subset of: wisp-deno,wisp-bun,wisp-deno-relay,wisp-bun-relay,sio,
                   wisp-deno-streams,wisp-bun-streams,sio-streams,wisp-deno-1,wisp-bun-1,sio-1
  --retries N      runs again (up to N times) a run during which other processes took more than
                   15% of a core, keeping the quietest try (default 1)
  --no-workers     leave out the echo --workers 1 vs 2 part`;

function parseArgs(argv) {
  const o = {
    seconds: 5,
    warmup: 2,
    subscribers: 200,
    rounds: 3,
    publishers: 4,
    inflight: 64,
    systems: null,
    workers: true,
    retries: 1,
  };
  const number = (i) => {
    const x = Number(argv[i]);
    if (!(x > 0) || !Number.isFinite(x)) throw new Error(`${argv[i - 1]} needs a positive number\n${USAGE}`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--seconds") o.seconds = number(++i);
    else if (a === "--warmup") o.warmup = number(++i);
    else if (a === "--subscribers") o.subscribers = Math.max(2, Math.round(number(++i)));
    else if (a === "--rounds") o.rounds = Math.round(number(++i));
    else if (a === "--publishers") o.publishers = Math.round(number(++i));
    else if (a === "--inflight") o.inflight = Math.min(4096, Math.round(number(++i)));
    else if (a === "--systems") o.systems = (argv[++i] ?? "").split(",");
    else if (a === "--no-workers") o.workers = false;
    else if (a === "--retries") o.retries = Math.max(0, Math.round(Number(argv[++i]) || 0));
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  return o;
}

// --- processes ---------------------------------------------------------------------------------

const haveTaskset = (() => {
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
    return os.availableParallelism() >= 2;
  } catch {
    return false;
  }
})();
const pinned = (cores, argv) => (haveTaskset && cores ? ["taskset", "-c", cores, ...argv] : argv);

// Every child (servers and redis-server) is killed with its process group when this process exits,
// however it exits; Redis's temporary directory goes with it.
let redisDir = null;
const live = killOnExit(() => {
  if (redisDir) fs.rmSync(redisDir, { recursive: true, force: true });
});

let logDir;

function launch(name, argv, cores) {
  return launchGroup(live, pinned(cores, argv), { logFile: path.join(logDir, `${name}.log`), name });
}

const stop = (proc) => killGroup(live, proc);

const logText = (proc) => (fs.existsSync(proc.logFile) ? fs.readFileSync(proc.logFile, "utf8") : "");

// Away from bench/run.mjs's ports (21000 on) and bench/attack.mjs's (23000 on).
const freePort = portsFrom(25000);

// CPU seconds (user + system, all threads) of every process in these process groups.
function groupCpuS(pgids) {
  const by = cpuByGroup(pgids);
  return pgids.reduce((sum, g) => sum + by.get(g), 0);
}
function cpuByGroup(pgids) {
  const ticks = new Map(pgids.map((g) => [g, 0]));
  for (const pid of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const g = Number(f[2]);
      if (ticks.has(g)) ticks.set(g, ticks.get(g) + (Number(f[11]) + Number(f[12])) / HZ);
    } catch { /* it ended while we looked */ }
  }
  return ticks;
}

function getJson(port, pathname = "/stats") {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: "127.0.0.1", port, path: pathname, agent: false, timeout: 2000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (body += chunk));
        res.on("end", () => {
          try {
            resolve(JSON.parse(body));
          } catch (error) {
            reject(error);
          }
        });
      },
    );
    request.on("timeout", () => request.destroy(new Error("timed out")));
    request.on("error", reject);
  });
}

// Polls until `ready()` is true, failing early when the process died and after `ms`.
async function until(proc, what, ready, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (proc?.exited) throw new Error(`${proc.name} exited (${proc.exit}) before ${what}: ${logTail(proc)}`);
    try {
      if (await ready()) return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${ms / 1000} s${proc ? `: ${logTail(proc)}` : ""}`);
    }
    await sleep(100);
  }
}

// One command to Redis in the inline protocol, answered with a bulk string or a status line.
function redisCommand(port, command) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let data = Buffer.alloc(0);
    socket.setTimeout(2000, () => socket.destroy(new Error("redis timed out")));
    socket.on("error", reject);
    socket.on("data", (chunk) => {
      data = Buffer.concat([data, chunk]);
      const eol = data.indexOf("\r\n");
      if (eol < 0) return;
      if (data[0] !== 0x24) { // "$": anything else fits on its first line
        socket.destroy();
        return resolve(data.subarray(0, eol).toString());
      }
      const length = Number(data.subarray(1, eol).toString());
      if (data.length < eol + 2 + length) return;
      socket.destroy();
      resolve(data.subarray(eol + 2, eol + 2 + length).toString());
    });
    socket.write(`${command}\r\n`);
  });
}

async function startRedis() {
  redisDir = fs.mkdtempSync(path.join(os.tmpdir(), "wisp-fanout-redis-"));
  const port = await freePort();
  const proc = launch("redis", [
    "redis-server",
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    redisDir,
    "--save",
    "",
    "--appendonly",
    "no",
  ], SERVER_CORE);
  await until(
    proc,
    "redis-server answers PING",
    async () => (await redisCommand(port, "PING")) === "+PONG",
    10_000,
  );
  return { proc, port, url: `redis://127.0.0.1:${port}` };
}

async function redisInfo(port) {
  const info = await redisCommand(port, "INFO");
  const field = (name) => Number(new RegExp(`^${name}:(\\d+)`, "m").exec(info)?.[1] ?? NaN);
  // The INFO connection itself is one of the connections received.
  return {
    connections: field("total_connections_received"),
    maxOutput: field("client_recent_max_output_buffer"),
  };
}

// --- clients ---------------------------------------------------------------------------------

// Reads by all raw clients: deliveries per read tell how many frames the server put in each write.
let socketReads = 0;

// A minimal WebSocket client on node:net for Wisp: the generator's own cost per message must stay
// far below the servers', and `ws` allocates a Buffer and emits an event per message. It reads
// unmasked, unfragmented server frames (Wisp sends 32 B publishes whole) and answers pings.
function wsOpen(port, pathname, onMessage, onClose) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.setNoDelay(true);
    const mask = crypto.randomBytes(4);
    let head = Buffer.alloc(0);
    let open = false;
    let rest = null;
    const timer = setTimeout(
      () => socket.destroy(new Error(`handshake to :${port}${pathname} timed out`)),
      10_000,
    );
    const client = {
      send(opcode, payload) {
        // Payloads here are under 126 bytes: a 2-byte header, the mask key, the masked bytes.
        const frame = Buffer.allocUnsafe(6 + payload.length);
        frame[0] = 0x80 | opcode;
        frame[1] = 0x80 | payload.length;
        mask.copy(frame, 2);
        for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ mask[i & 3];
        socket.write(frame);
      },
      close: () => socket.destroy(),
    };
    const frames = (chunk) => {
      // Every frame of one read arrived at the same moment: one clock reading for all of them.
      const now = performance.now();
      socketReads++;
      if (rest !== null) {
        chunk = Buffer.concat([rest, chunk]);
        rest = null;
      }
      const n = chunk.length;
      let off = 0;
      while (n - off >= 2) {
        const b0 = chunk[off], b1 = chunk[off + 1];
        let length = b1 & 127, header = 2;
        if (length === 126) {
          if (n - off < 4) break;
          length = chunk.readUInt16BE(off + 2);
          header = 4;
        } else if (length === 127) {
          if (n - off < 10) break;
          length = Number(chunk.readBigUInt64BE(off + 2));
          header = 10;
        }
        if (n - off < header + length) break;
        if ((b0 & 0x80) === 0 || (b1 & 0x80) !== 0) {
          socket.destroy(new Error("fragmented or masked frame from the server"));
          return;
        }
        const start = off + header, opcode = b0 & 15;
        off = start + length;
        if (opcode === 1 || opcode === 2) onMessage?.(chunk, start, now);
        else if (opcode === 9) client.send(10, chunk.subarray(start, off));
        else if (opcode === 8) socket.destroy();
      }
      // Keep a copy of the partial frame only, so the chunk itself can be collected.
      if (off < n) rest = Buffer.from(chunk.subarray(off));
    };
    socket.on("data", (chunk) => {
      if (open) return frames(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      clearTimeout(timer);
      if (!head.subarray(0, 12).toString().startsWith("HTTP/1.1 101")) {
        socket.destroy();
        return reject(new Error(`:${port}${pathname} answered ${head.subarray(0, head.indexOf("\r\n"))}`));
      }
      open = true;
      resolve(client);
      if (head.length > end + 4) frames(head.subarray(end + 4));
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      if (!open) reject(error);
    });
    socket.on("close", () => open && onClose?.());
    socket.write(
      `GET ${pathname} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${
          crypto.randomBytes(16).toString("base64")
        }\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
}

// Socket.IO's own client, WebSocket transport only; forceNew, or every client to one URL would
// share (multiplex) a single connection.
function sioOpen(port, role, onMessage, onClose) {
  return new Promise((resolve, reject) => {
    const socket = socketIo(`http://127.0.0.1:${port}`, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      timeout: 10_000,
      query: { role },
    });
    socket.once("connect", () => {
      socket.on("disconnect", () => onClose?.());
      resolve({ send: (text) => socket.emit("p", text), close: () => socket.disconnect() });
    });
    socket.once("connect_error", (error) => reject(error));
    if (onMessage) socket.on("m", onMessage);
  });
}

// --- one fan-out run ---------------------------------------------------------------------------

const PROBE = 0xffff; // publisher id of the messages that check every subscriber is reachable
const RING = 1 << 16; // slots for messages in flight, by id
const LOST_MS = 5_000; // a message not at every subscriber by then is counted lost
const BUCKET_MS = 0.01, BUCKETS = 200_000; // latency histogram: 10 µs buckets up to 2 s

// Message ids, delivery counts, order checks and the latency histogram. A message is done when
// every subscriber has it; only then does the next one go out, so at most `inflight` are on
// their way and the latency is that of a loaded but not overrun system.
class Fanout {
  constructor(subscribers, publishers, inflight, send) {
    Object.assign(this, { subscribers, publishers, inflight, send });
    this.count = new Int32Array(RING);
    this.slot = new Float64Array(RING).fill(-1);
    this.sentAt = new Float64Array(RING);
    this.expect = new Uint32Array(subscribers * publishers); // next per-publisher seq, per subscriber
    this.pubSeq = new Uint32Array(publishers);
    this.probed = new Uint8Array(subscribers);
    this.histogram = new Uint32Array(BUCKETS);
    Object.assign(this, { nextId: 0, inFlight: 0, sending: false, measuring: false, failure: null });
    Object.assign(this, { sent: 0, completed: 0, delivered: 0, lost: 0, missing: 0 });
    Object.assign(this, { gaps: 0, behind: 0, stray: 0, maxLatency: 0 });
  }

  deliver(sub, id, pub, seq, stamp, now) {
    if (pub === PROBE) return void (this.probed[sub] = 1);
    this.delivered++;
    if (this.measuring) {
      const ms = now - stamp;
      this.histogram[Math.min(BUCKETS - 1, Math.floor(ms / BUCKET_MS))]++;
      if (ms > this.maxLatency) this.maxLatency = ms;
    }
    // Each publisher's messages must reach each subscriber in the order sent, each once.
    const k = sub * this.publishers + pub, expected = this.expect[k];
    if (seq !== expected) {
      if (seq > expected) this.gaps += seq - expected;
      else this.behind++;
    }
    if (seq >= expected) this.expect[k] = seq + 1;
    const s = id & (RING - 1);
    if (this.slot[s] !== id) return void this.stray++; // already counted lost, or a duplicate
    if (++this.count[s] === this.subscribers) {
      this.slot[s] = -1;
      this.inFlight--;
      this.completed++;
      this.pump();
    }
  }

  pump() {
    while (this.sending && this.inFlight < this.inflight) {
      const pub = this.sent % this.publishers, id = this.nextId++, seq = this.pubSeq[pub]++;
      const s = id & (RING - 1);
      if (this.slot[s] !== -1) this.#lose(s);
      this.slot[s] = id;
      this.count[s] = 0;
      this.sentAt[s] = performance.now();
      this.inFlight++;
      this.sent++;
      this.send(pub, id, seq, this.sentAt[s]);
    }
  }

  // Messages still short of some subscriber after LOST_MS are given up, so a drop shows as a
  // number instead of a stalled window.
  reap() {
    const old = performance.now() - LOST_MS;
    for (let s = 0; s < RING; s++) if (this.slot[s] !== -1 && this.sentAt[s] < old) this.#lose(s);
    this.pump();
  }

  #lose(s) {
    this.lost++;
    this.missing += this.subscribers - this.count[s];
    this.slot[s] = -1;
    this.inFlight--;
  }

  percentile(p) {
    const total = this.histogram.reduce((a, b) => a + b, 0);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.histogram[i];
      if (seen >= total * p) return i === BUCKETS - 1 ? this.maxLatency : (i + 0.5) * BUCKET_MS;
    }
    return NaN;
  }
}

// Wisp's payload: 32 bytes, binary (the client reads numbers in place, no text to parse).
function wispPayload(id, pub, seq, stamp) {
  const b = Buffer.alloc(32);
  b.writeUInt32LE(id, 0);
  b.writeUInt16LE(pub, 4);
  b.writeUInt32LE(seq, 8);
  b.writeDoubleLE(stamp, 12);
  return b;
}
// Socket.IO's: 32 characters of text (binary would make Socket.IO send two frames a message).
const sioPayload = (id, pub, seq, stamp) => `${id},${pub},${seq},${stamp.toFixed(3)},`.padEnd(32, "x");

// `base`: the Socket.IO system a Wisp row is compared with; `classic`: the Wisp system in classic
// mode that a streams row is compared with too. `streams`: Redis Streams (Wisp's streams mode,
// Socket.IO's redis-streams-adapter) instead of pub/sub.
const SYSTEMS = [
  {
    id: "wisp-deno",
    label: "Wisp/Deno + Redis backplane",
    wisp: true,
    runtime: "deno",
    redis: true,
    base: "sio",
  },
  {
    id: "wisp-bun",
    label: "Wisp/Bun + Redis backplane",
    wisp: true,
    runtime: "bun",
    redis: true,
    base: "sio",
  },
  {
    id: "wisp-deno-relay",
    label: "Wisp/Deno + worker relay",
    wisp: true,
    runtime: "deno",
    relay: true,
    base: "sio",
  },
  {
    id: "wisp-bun-relay",
    label: "Wisp/Bun + worker relay",
    wisp: true,
    runtime: "bun",
    relay: true,
    base: "sio",
  },
  { id: "sio", label: "Socket.IO/Node + redis-adapter", wisp: false, runtime: "node", redis: true },
  {
    id: "wisp-deno-streams",
    label: "Wisp/Deno + Redis backplane, streams mode",
    wisp: true,
    runtime: "deno",
    redis: true,
    streams: true,
    base: "sio-streams",
    classic: "wisp-deno",
  },
  {
    id: "wisp-bun-streams",
    label: "Wisp/Bun + Redis backplane, streams mode",
    wisp: true,
    runtime: "bun",
    redis: true,
    streams: true,
    base: "sio-streams",
    classic: "wisp-bun",
  },
  {
    id: "sio-streams",
    label: "Socket.IO/Node + redis-streams-adapter",
    wisp: false,
    runtime: "node",
    redis: true,
    streams: true,
  },
  {
    id: "wisp-deno-1",
    label: "Wisp/Deno, one process",
    wisp: true,
    runtime: "deno",
    redis: false,
    base: "sio-1",
  },
  {
    id: "wisp-bun-1",
    label: "Wisp/Bun, one process",
    wisp: true,
    runtime: "bun",
    redis: false,
    base: "sio-1",
  },
  { id: "sio-1", label: "Socket.IO/Node, one process", wisp: false, runtime: "node", redis: false },
];

// Two processes A and B: on one Redis, or on one worker relay (as two workers of a supervisor).
const twoProcesses = (system) => system.redis || system.relay;

function serverArgv(system, port, redisUrl, relayTarget) {
  const extra = system.redis
    ? [redisUrl, ...(system.streams ? ["streams"] : [])]
    : system.relay
    ? [relayTarget]
    : [];
  if (!system.wisp) return [process.execPath, "bench/servers/socketio_redis.mjs", String(port), ...extra];
  const script = ["bench/servers/wisp_backplane.ts", String(port), ...extra];
  return system.runtime === "deno" ? [DENO, "run", "-A", ...script] : [BUN, "run", ...script];
}

async function inBatches(count, size, open) {
  const out = [];
  for (let i = 0; i < count; i += size) {
    out.push(...await Promise.all(Array.from({ length: Math.min(size, count - i) }, (_, j) => open(i + j))));
  }
  return out;
}

// The relay --workers runs in its supervisor, alone in a process of the system's runtime, on core 0.
async function startRelay(system, round) {
  const port = await freePort();
  const token = crypto.randomBytes(16).toString("hex");
  const script = ["bench/servers/wisp_relay.ts", String(port), token];
  const argv = system.runtime === "deno" ? [DENO, "run", "-A", ...script] : [BUN, "run", ...script];
  const proc = launch(`r${round}-${system.id}-relay`, argv, SERVER_CORE);
  await until(proc, "the relay listening", () => /listening on/.test(logText(proc)));
  return { proc, target: `relay:${port}:${token}` };
}

async function fanoutRun(system, round, opts, redis) {
  const names = twoProcesses(system) ? ["A", "B"] : ["A"];
  const servers = [];
  const clients = [];
  const result = { system: system.id, round };
  let relay = null;
  try {
    if (system.relay) relay = await startRelay(system, round);
    for (const name of names) {
      const port = await freePort();
      const argv = serverArgv(system, port, redis.url, relay?.target);
      const proc = launch(`r${round}-${system.id}-${name}`, argv, SERVER_CORE);
      servers.push({ name, port, proc });
    }
    // Up, and (Wisp) with both Redis connections made.
    for (const s of servers) {
      await until(s.proc, `${s.proc.name} serving /stats`, async () => {
        const stats = await getJson(s.port);
        return !stats.backplane || stats.backplane.state === "connected";
      });
    }
    const info0 = system.redis ? await redisInfo(redis.port) : null;

    let fan;
    const closed = (what) => () => fan && (fan.failure ??= `${what} lost its connection`);
    const subPort = (i) => servers[i % servers.length].port;
    let subscribers, publishers;
    if (system.wisp) {
      const onMessage = (i) => (b, at, now) =>
        fan.deliver(
          i,
          b.readUInt32LE(at),
          b.readUInt16LE(at + 4),
          b.readUInt32LE(at + 8),
          b.readDoubleLE(at + 12),
          now,
        );
      subscribers = await inBatches(
        opts.subscribers,
        25,
        (i) => wsOpen(subPort(i), "/fanout", onMessage(i), closed(`subscriber ${i}`)),
      );
      clients.push(...subscribers);
      publishers = await inBatches(
        opts.publishers,
        25,
        (i) => wsOpen(servers[0].port, "/publish", null, closed(`publisher ${i}`)),
      );
      clients.push(...publishers);
      fan = new Fanout(
        opts.subscribers,
        opts.publishers,
        opts.inflight,
        (pub, id, seq, stamp) => publishers[pub].send(2, wispPayload(id, pub, seq, stamp)),
      );
    } else {
      const onMessage = (i) => (text) => {
        const f = text.split(",", 4);
        fan.deliver(i, Number(f[0]), Number(f[1]), Number(f[2]), Number(f[3]), performance.now());
      };
      subscribers = await inBatches(
        opts.subscribers,
        25,
        (i) => sioOpen(subPort(i), "sub", onMessage(i), closed(`subscriber ${i}`)),
      );
      clients.push(...subscribers);
      publishers = await inBatches(
        opts.publishers,
        25,
        (i) => sioOpen(servers[0].port, "pub", null, closed(`publisher ${i}`)),
      );
      clients.push(...publishers);
      fan = new Fanout(
        opts.subscribers,
        opts.publishers,
        opts.inflight,
        (pub, id, seq, stamp) => publishers[pub].send(sioPayload(id, pub, seq, stamp)),
      );
    }
    const sendProbe = system.wisp
      ? () => publishers[0].send(2, wispPayload(0, PROBE, 0, 0))
      : () => publishers[0].send(sioPayload(0, PROBE, 0, 0));

    // Every subscriber counted by its server, then reached by a probe through the backplane:
    // a subscription that Redis has not taken yet would otherwise show as drops.
    await until(null, "servers counting every subscriber", async () => {
      const counts = await Promise.all(servers.map((s) => getJson(s.port)));
      return counts.reduce((sum, c) => sum + c.subscribers, 0) === opts.subscribers;
    }, 10_000);
    // More than one probe means the first went out before some subscription took effect.
    result.probes = 0;
    await until(null, "a probe reaching every subscriber", () => {
      if (fan.probed.every((x) => x === 1)) return true;
      sendProbe();
      result.probes++;
      return false;
    }, 10_000);
    await sleep(200);

    const reaper = setInterval(() => fan.reap(), 250);
    const groups = [
      ...servers.map((s) => s.proc.pgid),
      ...(system.redis ? [redis.proc.pgid] : []),
      ...(relay ? [relay.proc.pgid] : []),
    ];
    try {
      fan.sending = true;
      fan.pump();
      await sleep(opts.warmup * 1000);
      const r0 = socketReads,
        t0 = performance.now(),
        d0 = fan.delivered,
        c0 = process.cpuUsage(),
        s0 = cpuByGroup(groups);
      const m0 = machineCpuS();
      const lost0 = fan.lost;
      fan.measuring = true;
      await sleep(opts.seconds * 1000);
      fan.measuring = false;
      const dt = (performance.now() - t0) / 1000, c1 = process.cpuUsage(c0), s1 = cpuByGroup(groups);
      const gen = (c1.user + c1.system) / 1e6, machine = machineCpuS() - m0;
      const used = groups.map((g) => (s1.get(g) - s0.get(g)) / dt), server = used.reduce((a, b) => a + b, 0);
      // Redis's output buffers at the end of the window: a subscriber connection falling behind.
      if (system.redis) result.redisMaxOutput = (await redisInfo(redis.port)).maxOutput;
      Object.assign(result, {
        deliveries_per_s: (fan.delivered - d0) / dt,
        per_read: system.wisp ? (fan.delivered - d0) / (socketReads - r0) : NaN,
        p50_ms: fan.percentile(0.5),
        p99_ms: fan.percentile(0.99),
        max_ms: fan.maxLatency,
        gen_cpu: gen / dt,
        server_cpu: server,
        split_cpu: used,
        others_cpu: Math.max(0, machine / dt - gen / dt - server),
        lost_in_window: fan.lost - lost0,
      });
      // Stop publishing, let what is in flight arrive (or be counted lost).
      fan.sending = false;
      const drainUntil = Date.now() + LOST_MS + 1000;
      while (fan.inFlight > 0 && Date.now() < drainUntil) await sleep(50);
    } finally {
      clearInterval(reaper);
    }
    await sleep(200); // stragglers after the window, counted as stray if lost meanwhile
    if (fan.failure) throw new Error(fan.failure);
    const stats = await Promise.all(servers.map((s) => getJson(s.port)));
    Object.assign(result, {
      sent: fan.sent,
      completed: fan.completed,
      lost: fan.lost,
      missing: fan.missing,
      gaps: fan.gaps,
      behind: fan.behind,
      stray: fan.stray,
      stats: Object.fromEntries(servers.map((s, i) => [s.name, stats[i]])),
    });
    if (system.redis) {
      const info1 = await redisInfo(redis.port);
      result.redisReconnects = info1.connections - info0.connections - 2; // our two INFO connections
    }
    const errors = servers.flatMap((s) =>
      logText(s.proc).split("\n").filter((l) => /error|disconnected|refused/i.test(l))
    );
    if (errors.length) result.logErrors = errors.slice(0, 3);
    for (const s of servers) if (s.proc.exited) throw new Error(`${s.proc.name} exited during the run`);
    return result;
  } catch (error) {
    return { ...result, error: error.message };
  } finally {
    for (const c of clients) c.close();
    for (const s of servers) await stop(s.proc);
    if (relay) await stop(relay.proc);
  }
}

// --- echo with --workers 1 and 2 ------------------------------------------------------------------

function ensureLoadgen() {
  if (fs.existsSync(LOADGEN)) return true;
  try {
    fs.mkdirSync(BUILD, { recursive: true });
    execFileSync("cc", ["-O2", "-Wall", "-o", LOADGEN, path.join(ROOT, "bench/loadgen.c"), "-lz"], {
      stdio: "inherit",
    });
    return true;
  } catch {
    return false;
  }
}

function runLoadgen(args, timeoutS) {
  return new Promise((resolve, reject) => {
    const [command, ...rest] = pinned(GEN_CORE, [LOADGEN, ...args.map(String)]);
    const child = spawn(command, rest, { stdio: ["ignore", "pipe", "inherit"] });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutS * 1000);
    let line = null;
    readline.createInterface({ input: child.stdout }).on("line", (l) => (line ??= l));
    child.once("exit", () => {
      clearTimeout(timer);
      try {
        const r = JSON.parse(line);
        if (r.error || r.errors) reject(new Error(`loadgen: ${r.error ?? `${r.errors} connections lost`}`));
        else resolve(r);
      } catch {
        reject(new Error("loadgen gave no result (timed out?)"));
      }
    });
  });
}

// The supervisor and its workers may use both cores (the generator has core 1 too): that is the
// box a user of --workers on two cores has.
async function workersRun(runtime, workers, round, opts) {
  const port = await freePort();
  const cli = ["mod.ts", "--echo", "--workers", String(workers), "--port", String(port)];
  const argv = runtime === "deno" ? [DENO, "run", "-A", ...cli] : [BUN, "run", ...cli];
  const proc = launch(`r${round}-echo-${runtime}-w${workers}`, argv, "0,1");
  const result = { runtime, workers, round };
  try {
    await until(
      proc,
      `${workers} workers listening`,
      () => (logText(proc).match(/listening on/g) ?? []).length >= workers,
    );
    const t0 = Date.now(), s0 = groupCpuS([proc.pgid]), m0 = machineCpuS();
    const r = await runLoadgen(
      ["-m", "throughput", "-c", 64, "-f", 16, "-s", 32, "-p", port, "-d", opts.seconds, "-w", 1],
      opts.seconds + 60,
    );
    if (proc.exited) throw new Error("the server exited during the run");
    const dt = (Date.now() - t0) / 1000, server = groupCpuS([proc.pgid]) - s0, machine = machineCpuS() - m0;
    return {
      ...result,
      msg_per_s: r.msg_per_s,
      gen_cpu: r.cpu,
      server_cpu: server / dt,
      others_cpu: Math.max(0, machine - server - r.cpu_s) / dt,
    };
  } catch (error) {
    return { ...result, error: error.message };
  } finally {
    await stop(proc);
  }
}

// --- report ------------------------------------------------------------------------------------------

// Runs that failed to measure something leave it out of the median.
const median = (xs) => medianOfAll(xs.filter((x) => Number.isFinite(x)));
const pct = (x) => (Number.isFinite(x) ? `${Math.round(x * 100)}%` : "–");
const marks = (rs) =>
  (rs.some((r) => r.gen_cpu > GEN_BOUND) ? " †" : "") + (rs.some((r) => r.others_cpu > BUSY) ? " ‡" : "");
function fanoutReport(systems, runs) {
  const ok = (id) => runs.filter((r) => r.system === id && !r.error);
  const med = (id, key) => median(ok(id).map((r) => r[key]));
  // The same medians over the runs that other processes left alone (others ≤ BUSY).
  const quiet = (id) => {
    const rs = ok(id).filter((r) => r.others_cpu <= BUSY);
    if (!rs.length) return "none";
    const m = (key) => median(rs.map((r) => r[key]));
    return `${fmt(m("deliveries_per_s"))}, ${fmt(m("p99_ms"))} (${rs.length})`;
  };
  const has = (id) => systems.some((s) => s.id === id);
  const medians = table(
    [
      "system",
      "processes",
      "deliveries/s",
      "p50 ms",
      "p99 ms",
      "generator CPU",
      "servers CPU (core 0)",
      "others CPU",
      "quiet runs only: deliveries/s, p99 ms (runs)",
      "Wisp ÷ Socket.IO deliveries/s",
      "Wisp ÷ Socket.IO p99",
      "goal ≥ 3× at ≤ p99",
      "streams ÷ classic mode: deliveries/s, p99",
    ],
    systems.map((s) => {
      const base = s.base;
      const rate = med(s.id, "deliveries_per_s"), p99 = med(s.id, "p99_ms");
      const compare = s.wisp && has(base);
      const ratio = compare ? rate / med(base, "deliveries_per_s") : NaN;
      const p99Ratio = compare ? p99 / med(base, "p99_ms") : NaN;
      const classic = s.classic !== undefined && has(s.classic)
        ? `${(rate / med(s.classic, "deliveries_per_s")).toFixed(2)}×, ${
          (p99 / med(s.classic, "p99_ms")).toFixed(2)
        }×`
        : "";
      const n = ok(s.id).length, all = runs.filter((r) => r.system === s.id).length;
      return [
        s.label + (n < all ? ` (${n}/${all} ok)` : ""),
        s.redis ? "A + B + redis-server" : s.relay ? "A + B + relay" : "A",
        fmt(rate) + marks(ok(s.id)),
        fmt(med(s.id, "p50_ms")),
        fmt(p99),
        pct(med(s.id, "gen_cpu")),
        pct(med(s.id, "server_cpu")),
        pct(med(s.id, "others_cpu")),
        quiet(s.id),
        compare ? `${ratio.toFixed(2)}×` : "",
        compare ? `${p99Ratio.toFixed(2)}×` : "",
        compare && s.redis ? (ratio >= 3 && p99Ratio <= 1 ? "yes" : "no") : "",
        classic,
      ];
    }),
  );
  const rounds = Math.max(...runs.map((r) => r.round));
  const each = table(
    [
      "system",
      ...Array.from(
        { length: rounds },
        (_, i) => `round ${i + 1}: deliveries/s, p50/p99 ms, CPU gen/servers/others`,
      ),
    ],
    systems.map((s) => [
      s.label,
      ...Array.from({ length: rounds }, (_, i) => {
        const r = runs.find((x) => x.system === s.id && x.round === i + 1);
        if (!r) return "";
        if (r.error) return "fail";
        return `${fmt(r.deliveries_per_s)}${marks([r])}, ${fmt(r.p50_ms)}/${fmt(r.p99_ms)}, ` +
          `${pct(r.gen_cpu)}/${pct(r.server_cpu)}/${pct(r.others_cpu)}`;
      }),
    ]),
  );
  const checks = table(
    [
      "system",
      "round",
      "sent",
      "lost msgs",
      "missing deliveries",
      "order gaps",
      "behind",
      "stray",
      "max ms",
      "probes",
      "frames per read",
      "CPU A / B / redis or relay",
      "server counters",
      "Redis: new connections / largest output buffer",
    ],
    runs.filter((r) => !r.error).map((r) => [
      systems.find((s) => s.id === r.system).label,
      r.round,
      fmt(r.sent),
      r.lost,
      r.missing,
      r.gaps,
      r.behind,
      r.stray,
      fmt(r.max_ms),
      r.probes,
      fmt(r.per_read),
      r.split_cpu.map(pct).join(" / "),
      Object.entries(r.stats).map(([name, st]) =>
        st.backplane
          ? `${name}: pub ${st.backplane.published} rcv ${st.backplane.received} drop ${st.backplane.dropped} err ${st.backplane.errors} reconn ${st.backplane.reconnects}`
          : st.redisErrors !== undefined
          ? `${name}: redis errors ${st.redisErrors}`
          : `${name}: –`
      ).join("; "),
      r.redisReconnects === undefined ? "" : `${r.redisReconnects} / ${r.redisMaxOutput} B`,
    ]),
  );
  const failures = runs.filter((r) => r.error).map((r) => `- ${r.system}, round ${r.round}: ${r.error}`);
  const logLines = runs.filter((r) => r.logErrors).map((r) =>
    `- ${r.system}, round ${r.round}: ${r.logErrors.join(" / ")}`
  );
  return { medians, each, checks, failures, logLines };
}

function workersReport(runs) {
  const ok = (rt, w) => runs.filter((r) => r.runtime === rt && r.workers === w && !r.error);
  const rows = [];
  for (const rt of ["deno", "bun"]) {
    const one = median(ok(rt, 1).map((r) => r.msg_per_s));
    for (const w of [1, 2]) {
      const rs = ok(rt, w);
      const rate = median(rs.map((r) => r.msg_per_s));
      rows.push([
        `Wisp/${rt === "deno" ? "Deno" : "Bun"} --echo --workers ${w}`,
        fmt(rate) + marks(rs),
        rs.map((r) => fmt(r.msg_per_s)).join(" / "),
        pct(median(rs.map((r) => r.gen_cpu))),
        median(rs.map((r) => r.server_cpu)).toFixed(2),
        pct(median(rs.map((r) => r.others_cpu))),
        w === 1 ? "1×" : `${(rate / one).toFixed(2)}×`,
      ]);
    }
  }
  return table([
    "server",
    "msg/s (median)",
    "each round",
    "generator CPU",
    "server CPU (cores)",
    "others CPU",
    "÷ --workers 1",
  ], rows);
}

const version = (pkg) => packageVersion(ROOT, pkg);

// The machine may be shared: a run that other processes disturbed is done again, a bounded
// number of times, and the try they disturbed least is kept (its row still says ‡ if over BUSY).
async function quietest(run, retries) {
  let best = await run();
  for (let i = 0; i < retries && !best.error && best.others_cpu > BUSY; i++) {
    console.error(`  others took ${pct(best.others_cpu)} of a core: running it again`);
    const r = await run();
    if (!r.error && r.others_cpu < best.others_cpu) best = r;
  }
  return best;
}

// --- main ----------------------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const systems = SYSTEMS.filter((s) => !opts.systems || opts.systems.includes(s.id));
  if (!systems.length) throw new Error(`no such systems\n${USAGE}`);
  const run = startRun("fanout-logs");
  const { started, stamp } = run;
  logDir = run.logDir;
  // The generator (this process, every thread) on core 1; servers and Redis go to core 0.
  if (haveTaskset) execFileSync("taskset", ["-a", "-pc", GEN_CORE, String(process.pid)], { stdio: "ignore" });
  const t0 = Date.now();

  const redis = await startRedis();
  const runs = [];
  const echo = [];
  const echoConfigs = opts.workers && ensureLoadgen()
    ? [["deno", 1], ["deno", 2], ["bun", 1], ["bun", 2]]
    : [];
  for (let round = 1; round <= opts.rounds; round++) {
    // Rotate the order each round so none always goes first (or right after a heavy one).
    for (const system of rotated(systems, round)) {
      const r = await quietest(() => fanoutRun(system, round, opts, redis), opts.retries);
      runs.push(r);
      console.error(
        `[round ${round}/${opts.rounds}] ${system.label}: ` +
          (r.error
            ? `FAILED: ${r.error}`
            : `${fmt(r.deliveries_per_s)} deliveries/s, p50 ${fmt(r.p50_ms)} ms, p99 ${
              fmt(r.p99_ms)
            } ms, generator ${pct(r.gen_cpu)}, servers ${pct(r.server_cpu)}, others ${
              pct(r.others_cpu)
            }, lost ${r.lost}, gaps ${r.gaps}`),
      );
    }
    const eshift = (round - 1) % Math.max(1, echoConfigs.length);
    for (const [rt, w] of [...echoConfigs.slice(eshift), ...echoConfigs.slice(0, eshift)]) {
      const r = await quietest(() => workersRun(rt, w, round, opts), opts.retries);
      echo.push(r);
      console.error(
        `[round ${round}/${opts.rounds}] echo ${rt} --workers ${w}: ` +
          (r.error
            ? `FAILED: ${r.error}`
            : `${fmt(r.msg_per_s)} msg/s, generator ${pct(r.gen_cpu)}, server ${
              r.server_cpu.toFixed(2)
            } cores, others ${pct(r.others_cpu)}`),
      );
    }
  }
  await stop(redis.proc);

  const f = fanoutReport(systems, runs);
  const cpu = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown CPU";
  const command = `node bench/fanout_redis.mjs ${process.argv.slice(2).join(" ")}`.trim();
  const text = `# Cross-process fan-out, ${started}

Command: \`${command}\`

- Machine: ${os.cpus().length} cores (${cpu}), Linux ${os.release()}
- Versions: ${firstLine(DENO, ["--version"])}; bun ${firstLine(BUN, ["--version"])}; node ${process.version};
  ${firstLine("redis-server", ["--version"])}; socket.io ${version("socket.io")}, @socket.io/redis-adapter
  ${version("@socket.io/redis-adapter")}, @socket.io/redis-streams-adapter ${
    version("@socket.io/redis-streams-adapter")
  }, redis ${version("redis")}, socket.io-client ${version("socket.io-client")}
- ${
    haveTaskset
      ? `Servers and redis-server pinned to core ${SERVER_CORE}, this generator (Node) to core ${GEN_CORE}`
      : "Nothing pinned (no taskset or fewer than 2 cores)"
  };
  ${opts.rounds} interleaved round(s); each run counts ${opts.seconds} s after ${opts.warmup} s of warm-up on freshly started servers;
  a run during which other processes took more than ${
    BUSY * 100
  }% of a core was run again (up to ${opts.retries} time(s)), the quietest try kept.
- ${opts.subscribers} subscribers (${
    systems.some(twoProcesses) ? "half on A, half on B; all on A in the one-process rows" : "all on A"
  }),
  ${opts.publishers} publishers on A, at most ${opts.inflight} messages in flight (a message is done when every
  subscriber has it). Messages: 32 B (Wisp: binary; Socket.IO: a 32-character string, \`42["m","…"]\` on the wire).
  Latency: publisher's send time to subscriber's receipt, both in this process.
- Took ${((Date.now() - t0) / 60_000).toFixed(1)} min.

## Fan-out, medians

${f.medians}

† = the generator used more than ${
    GEN_BOUND * 100
  }% of its core in some round: that number may be the generator's limit.
‡ = other processes used more than ${
    BUSY * 100
  }% of a core during some round (machine CPU from /proc/stat minus the
servers' and the generator's): that number is suspect; run again on a quiet machine.
Servers CPU is A, B and redis-server (or the relay) together, in shares of one core (they all sit on core 0).

## Fan-out, every round

${f.each}

## Fan-out, delivery checks (every run)

Lost = not at every subscriber within ${
    LOST_MS / 1000
  } s; order gaps = a subscriber saw a publisher's sequence number
jump (a message missing or overtaken); behind = one older than one already seen; stray = arrived after being counted
lost, or twice. Server counters are the backplane's \`stats()\` (Wisp) at the end of the run.

${f.checks}
${f.failures.length ? `\n### Failures\n\n${f.failures.join("\n")}\n` : ""}${
    f.logLines.length ? `\n### Server log lines with errors\n\n${f.logLines.join("\n")}\n` : ""
  }${
    echo.length
      ? `
## Echo, --workers 1 vs 2 (scenario (a): 64 connections × 16 in flight × 32 B)

The C load generator pinned to core ${GEN_CORE}; the supervisor and its workers free on cores 0–1, so with two workers
the servers share a core with the generator. Server CPU covers the whole generator run (connect and warm-up too).

${workersReport(echo)}
${
        echo.filter((r) => r.error).map((r) =>
          `\n- ${r.runtime} --workers ${r.workers}, round ${r.round}: ${r.error}`
        ).join("")
      }`
      : ""
  }`;
  const file = path.join(ROOT, "bench/results", `fanout-redis-${stamp}.md`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  console.log(text);
  console.log(`Saved to ${path.relative(ROOT, file)}; server logs in ${path.relative(ROOT, logDir)}/`);
  process.exit(0); // socket.io-client timers would otherwise keep the process alive
}

main().catch((error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
