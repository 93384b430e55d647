// Black-box attack probe: starts each server afresh for each attack on a free
// 127.0.0.1 port, attacks it from this process, samples the server's RSS, and
// prints one markdown table per attack (see bench/README.md, "Attack probe").
// Usage: node bench/attack.mjs [--servers wisp-deno,wisp-bun,deno,bun,ws]
//                              [--attacks idle,trickle,pings,bodies,smuggle]
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { killGroup, killOnExit, launchGroup, portsFrom, rssKiB, untilListening } from "./processes.mjs";
import { BUN, DENO, ROOT } from "./paths.mjs";

const HOST = "127.0.0.1";
// Every attacker connects from HOST; a normal client also tries from here, so
// that a server's per-address limits show apart from its global ones.
const OTHER_ADDRESS = "127.0.0.2";

const HELD = 1_100; // idle/trickle: attacker sockets kept open
const HOLD_S = 25;
const PROBE_EVERY_MS = 2_000;
const PROBE_TIMEOUT_MS = 2_000;
const MAX_REOPENS = 200_000; // bounds the reconnect loop against a server that closes at once
const PINGS = 1_000_000;
// 1M empty pongs are 2 MB, which the kernel's socket buffers absorb; 125-byte
// ones (the control-frame maximum) are 127 MB, so the server has to decide.
const PING_PAYLOAD = 125;
const PING_BATCH = 1_000; // pings per write
const PING_LIMIT_MS = 15_000;
const PING_TAIL_MS = 5_000; // after writing: time for the server to read what the kernel holds
const BODIES = 1_000;
const BODY_SIZE = 1 << 20;
const BODY_LIMIT_MS = 40_000;
const SMUGGLE_WAIT_MS = 2_000;
const SAMPLE_MS = 200;

const SERVERS = [
  { id: "wisp-deno", label: "Wisp/Deno", argv: (p) => [DENO, "run", "-A", "mod.ts", "--echo", "--port", p] },
  { id: "wisp-bun", label: "Wisp/Bun", argv: (p) => [BUN, "run", "mod.ts", "--echo", "--port", p] },
  { id: "deno", label: "Deno native", argv: (p) => [DENO, "run", "-A", "bench/servers/deno_native.ts", p] },
  { id: "bun", label: "Bun native", argv: (p) => [BUN, "run", "bench/servers/bun_native.ts", p] },
  { id: "ws", label: "ws/Node", argv: (p) => [process.execPath, "bench/servers/ws_node.mjs", p] },
];

const USAGE = `usage: node bench/attack.mjs [--servers ids] [--attacks ids]
  --servers ids   comma-separated subset of: ${SERVERS.map((s) => s.id).join(",")}
  --attacks ids   comma-separated subset of: idle,trickle,pings,bodies,smuggle
                  ("idle" includes its trickle variant; "trickle" alone runs only that)`;

// --- servers ------------------------------------------------------------------

// Each server runs in its own process group, killed as a whole on any exit.
const live = killOnExit();
// Away from bench/run.mjs's ports (21000 on) and fanout_redis.mjs's (25000 on).
const freePort = portsFrom(23000);

function startServer(server, port, logFile) {
  return untilListening(launchGroup(live, server.argv(String(port)), { logFile, name: "server" }), port);
}

const stopServer = (srv) => killGroup(live, srv);

function rssOrNull(pid) {
  try {
    return rssKiB(pid);
  } catch {
    return null; // the server is gone
  }
}

// Peak RSS from here on, sampled until stop().
function rssSampler(pid) {
  const s = { before: rssOrNull(pid), peak: 0 };
  s.peak = s.before;
  const timer = setInterval(() => s.peak = Math.max(s.peak, rssOrNull(pid) ?? 0), SAMPLE_MS);
  s.stop = () => clearInterval(timer);
  return s;
}

// --- raw client pieces -------------------------------------------------------------

const upgradeHead = (port, extra = "", eol = "\r\n") =>
  [
    "GET /attack HTTP/1.1",
    `Host: ${HOST}:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...extra.split("\r\n").filter(Boolean),
    "",
    "",
  ].join(eol);

// Sends `bytes` in one write (from local address `from`) and collects what
// comes back for up to `waitMs` (less when `enough` says the answer is
// complete). `socket` is returned still open when `keep` is set.
function exchange(port, bytes, waitMs, { enough = () => false, keep = false, from = HOST } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const socket = net.connect({ port, host: HOST, localAddress: from });
    let got = Buffer.alloc(0), ended = null, done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeAllListeners("data");
      if (keep) socket.pause(); // from here on nothing reads it
      else socket.destroy();
      resolve({ got, ended, ms: Date.now() - t0, socket });
    };
    const timer = setTimeout(finish, waitMs);
    socket.on("connect", () => socket.write(bytes));
    socket.on("data", (chunk) => {
      got = Buffer.concat([got, chunk]);
      if (enough(got)) finish();
    });
    socket.on("error", (err) => ended ??= err.code);
    socket.on("close", () => {
      ended ??= "closed";
      finish();
    });
  });
}

const statusOf = (got) => /^HTTP\/1\.[01] (\d{3})/.exec(got.toString("latin1"))?.[1] ?? null;
const headEnd = (got) => got.indexOf("\r\n\r\n");

// A normal client: a complete upgrade request in one write; ok on a 101 in time.
async function normalClient(port, timeoutMs, from = HOST) {
  const r = await exchange(port, upgradeHead(port), timeoutMs, { enough: (g) => g.includes("\r\n"), from });
  const status = statusOf(r.got);
  const ok = status === "101";
  return { ok, ms: r.ms, why: ok ? "101" : status ?? (r.ended ?? "timeout") };
}

// "503 ×10, timeout ×2": how often each reason came up.
function tally(reasons) {
  const counts = new Map();
  for (const r of reasons) counts.set(r, (counts.get(r) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ×${n}`).join(", ") || "–";
}

// Our connection from localPort to port as /proc/net/tcp shows it: its state
// ("01" established; null once reset or gone) and the bytes we wrote that the
// server has not read yet (our send queue plus its receive queue). Lets a
// client that never reads see the server's FIN or reset, and whether the
// server keeps reading.
function tcpView(localPort, port) {
  const hex = (p) => `0100007F:${p.toString(16).toUpperCase().padStart(4, "0")}`;
  const entries = fs.readFileSync("/proc/net/tcp", "utf8").split("\n").map((l) => l.trim().split(/\s+/));
  const ours = entries.find((f) => f[1] === hex(localPort) && f[2] === hex(port) && f[3] !== "06");
  const theirs = entries.find((f) => f[1] === hex(port) && f[2] === hex(localPort) && f[3] !== "06");
  const queues = (f) => f ? f[4].split(":").map((q) => parseInt(q, 16)) : [0, 0];
  return { state: ours?.[3] ?? null, unread: queues(ours)[0] + queues(theirs)[1] };
}

// --- attacks ----------------------------------------------------------------------------

// idle / trickle: HELD sockets that never finish a request head, each reopened
// as soon as the server closes it, while a normal client tries every 2 s.
async function hold(port, trickle) {
  const sockets = new Set();
  let running = true, reopened = 0;
  const partial = "GET /attack HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: ";
  const open = () => {
    const s = net.connect(port, HOST);
    if (trickle) s.on("connect", () => s.write(partial));
    s.on("data", () => {}); // whatever the server answers, read so that its FIN is seen
    s.on("error", () => {});
    s.on("close", () => {
      sockets.delete(s);
      if (running && reopened < MAX_REOPENS) {
        reopened++;
        open();
      }
    });
    sockets.add(s);
  };
  for (let i = 0; i < HELD; i++) open();
  const connected = () => [...sockets].filter((s) => s.readyState === "open").length;
  for (let t = 0; t < 50 && connected() < HELD; t++) await sleep(100); // at most 5 s to connect
  reopened = 0; // count only what the server closes during the measured 25 s
  const trickler = trickle &&
    setInterval(() => {
      for (const s of sockets) if (s.readyState === "open") s.write("a");
    }, 1000);
  const probes = { [HOST]: [], [OTHER_ADDRESS]: [] }, held = [];
  const t0 = Date.now();
  for (let i = 0; i * PROBE_EVERY_MS < HOLD_S * 1000; i++) {
    await sleep(Math.max(0, t0 + i * PROBE_EVERY_MS - Date.now()));
    held.push(connected());
    for (const from in probes) probes[from].push(normalClient(port, PROBE_TIMEOUT_MS, from));
  }
  const [same, other] = await Promise.all([HOST, OTHER_ADDRESS].map((from) => Promise.all(probes[from])));
  await sleep(Math.max(0, t0 + HOLD_S * 1000 - Date.now()));
  running = false;
  clearInterval(trickler);
  for (const s of sockets) s.destroy();
  return {
    same: summary(same),
    other: summary(other),
    held: held.sort((a, b) => a - b)[held.length >> 1],
    reopened: reopened >= MAX_REOPENS ? `≥ ${reopened}` : reopened,
  };
}

// Normal-client attempts as "9/13 (slowest 101: 0.31 s)" and their failures.
function summary(results) {
  const ok = results.filter((r) => r.ok);
  const slowest = ok.length
    ? ` (slowest 101: ${(Math.max(...ok.map((r) => r.ms)) / 1000).toFixed(2)} s)`
    : "";
  return {
    through: `${ok.length}/${results.length}${slowest}`,
    failures: tally(results.filter((r) => !r.ok).map((r) => r.why)),
  };
}

// Resolves on 'drain', on close, or at the deadline, whichever comes first.
function drained(socket, deadline) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      socket.off("drain", done).off("close", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
    socket.on("drain", done).on("close", done);
  });
}

// pings: one WebSocket that writes masked pings as fast as the socket takes
// them and never reads the pongs.
async function pings(port) {
  const hs = await exchange(port, upgradeHead(port), 4000, { enough: (g) => headEnd(g) >= 0, keep: true });
  const socket = hs.socket;
  if (statusOf(hs.got) !== "101") {
    socket.destroy();
    throw new Error(`no 101 for the ping connection (${statusOf(hs.got) ?? hs.ended ?? "timeout"})`);
  }
  // FIN + ping, masked with a fixed key; the payload is zeros, so masked it is the key repeated.
  const frame = Buffer.alloc(6 + PING_PAYLOAD);
  frame.set([0x89, 0x80 | PING_PAYLOAD, 0x12, 0x34, 0x56, 0x78]);
  for (let i = 6; i < frame.length; i++) frame[i] = frame[2 + ((i - 6) & 3)];
  const batch = Buffer.concat(Array(PING_BATCH).fill(frame));
  const t0 = Date.now();
  const localPort = socket.localPort, deadline = t0 + PING_LIMIT_MS;
  let written = 0, dropped = null, view = tcpView(localPort, port);
  const drop = () => dropped ??= { pings: written, s: (Date.now() - t0) / 1000 };
  const watch = setInterval(() => {
    view = tcpView(localPort, port);
    if (view.state !== "01") drop();
  }, SAMPLE_MS);
  socket.on("close", drop);
  let queued = 0;
  while (queued < PINGS && !dropped && Date.now() < deadline) {
    queued += PING_BATCH;
    const more = socket.write(batch, (err) => {
      if (!err) written += PING_BATCH;
    });
    if (!more) await drained(socket, deadline);
  }
  // Write callbacks can trail the drain events: wait for the last one.
  while (!dropped && written < queued && Date.now() < deadline) await sleep(10);
  const writeS = (Date.now() - t0) / 1000;
  const tailEnd = Date.now() + PING_TAIL_MS;
  for (; !dropped && Date.now() < tailEnd; await sleep(SAMPLE_MS)) {
    view = tcpView(localPort, port);
    if (view.unread === 0 && socket.writableLength === 0) break;
  }
  const readS = (Date.now() - t0) / 1000;
  const unread = view.unread + socket.writableLength;
  clearInterval(watch);
  socket.destroy();
  return {
    written: written.toLocaleString("en-US"),
    writeS,
    read: dropped
      ? "–"
      : unread > 0
      ? `no: ${(unread / 1024).toFixed(0)} KiB unread (stopped reading)`
      : `yes, after ${readS.toFixed(1)} s`,
    dropped: dropped
      ? `yes, after ${dropped.pings.toLocaleString("en-US")} (${dropped.s.toFixed(1)} s)`
      : "no",
  };
}

// bodies: BODIES POSTs of a 1 MiB body each, all at once, answers left unread
// until every body is written; a normal client tries its upgrade meanwhile.
async function bodies(port) {
  const head =
    `POST /attack HTTP/1.1\r\nHost: ${HOST}:${port}\r\nContent-Type: application/octet-stream\r\n` +
    `Content-Length: ${BODY_SIZE}\r\n\r\n`;
  const body = Buffer.alloc(BODY_SIZE, 0x61); // one buffer shared by every write
  const t0 = Date.now();
  const conns = [];
  for (let i = 0; i < BODIES; i++) {
    const c = {
      socket: net.connect(port, HOST),
      written: false,
      error: null,
      got: Buffer.alloc(0),
      ended: false,
    };
    c.socket.pause();
    c.socket.on("error", (err) => c.error ??= err.code);
    c.socket.on("close", () => c.ended = true);
    c.socket.write(head);
    c.socket.write(body, (err) => c.written = !err);
    conns.push(c);
  }
  await sleep(500);
  const probes = Promise.all([HOST, OTHER_ADDRESS].map((from) => normalClient(port, 4000, from)));
  const settled = () => conns.every((c) => c.written || c.ended);
  while (!settled() && Date.now() < t0 + BODY_LIMIT_MS) await sleep(50);
  const floodS = (Date.now() - t0) / 1000;
  // Now read the answers: whatever the server sent is waiting in the socket.
  for (const c of conns) {
    if (c.ended) continue;
    c.socket.on("data", (chunk) => c.got = Buffer.concat([c.got, chunk]));
    c.socket.resume();
  }
  const answered = () => conns.every((c) => c.ended || headEnd(c.got) >= 0);
  for (let t = 0; t < 100 && !answered(); t++) await sleep(50);
  for (const c of conns) c.socket.destroy();
  const verdict = (p) => p.ok ? `yes (${(p.ms / 1000).toFixed(2)} s)` : `no (${p.why})`;
  const [same, other] = (await probes).map(verdict);
  return {
    written: `${conns.filter((c) => c.written).length}/${BODIES}`,
    floodS,
    answers: tally(
      conns.map((c) =>
        statusOf(c.got) ?? (c.error ? `reset (${c.error})` : c.ended ? "closed, no answer" : "no answer")
      ),
    ),
    same,
    other,
  };
}

// smuggle: byte-exact requests with ambiguous or invalid framing, one per connection.
const SMUGGLES = [
  ["upgrade + `Content-Length: 5` + 5 bytes", (p) => upgradeHead(p, "Content-Length: 5") + "hello"],
  [
    "upgrade + `Transfer-Encoding: chunked`",
    (p) => upgradeHead(p, "Transfer-Encoding: chunked") + "5\r\nhello\r\n0\r\n\r\n",
  ],
  [
    "GET + `Content-Length: abc`",
    (p) => `GET / HTTP/1.1\r\nHost: ${HOST}:${p}\r\nContent-Length: abc\r\n\r\n`,
  ],
  [
    "GET + `Content-Length: 5` and `6`",
    (p) => `GET / HTTP/1.1\r\nHost: ${HOST}:${p}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
  ],
  [
    "GET + `Content-Length: 5` + `Transfer-Encoding: chunked`",
    (p) =>
      `GET / HTTP/1.1\r\nHost: ${HOST}:${p}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  ],
  ["upgrade with bare-LF line ends", (p) => upgradeHead(p, "", "\n")],
];

// One row of the smuggle table: the status; for a 101, what became of the
// connection (a close frame's code, a drop, or nothing); "+N" when more
// responses followed the first.
function smuggleOutcome(r) {
  const status = statusOf(r.got);
  if (!status) {
    return r.ended === null ? `no answer within ${SMUGGLE_WAIT_MS / 1000} s` : `${r.ended}, no answer`;
  }
  const text = r.got.toString("latin1");
  const more = (text.match(/(^|\r\n)HTTP\/1\.[01] \d{3}/g) ?? []).length - 1;
  if (status !== "101") return status + (more > 0 ? ` (+${more} more responses)` : "");
  const frame = r.got.subarray(headEnd(r.got) + 4);
  if (frame.length >= 2 && (frame[0] & 0x0f) === 0x8) {
    return `101, then close ${
      (frame[1] & 0x7f) >= 2 && frame.length >= 4 ? frame.readUInt16BE(2) : "(no code)"
    }`;
  }
  if (frame.length > 0) return `101, then a frame (opcode ${frame[0] & 0x0f})`;
  return r.ended ? `101, then ${r.ended}` : "101, stays open";
}

// --- the run ---------------------------------------------------------------------------------

const mib = (kib) => Number.isFinite(kib) ? (kib / 1024).toFixed(1) : "–";
const rssRows = [
  ["RSS before, MiB", (r) => mib(r.rssBefore)],
  ["RSS peak, MiB", (r) => mib(r.rssPeak)],
  ["RSS growth, MiB", (r) => mib(r.rssPeak - r.rssBefore)],
];
const holdRows = (what) => [
  [`normal client from ${HOST} (the attacker's address) got through (101 within 2 s)`, (r) => r.same.through],
  ["its failures", (r) => r.same.failures],
  [`normal client from ${OTHER_ADDRESS} got through`, (r) => r.other.through],
  ["its failures", (r) => r.other.failures],
  [`attacker sockets connected (median of probe times, of ${HELD.toLocaleString("en-US")})`, (r) => r.held],
  [`server closed ${what} sockets (reopened), in ${HOLD_S} s`, (r) => r.reopened],
  ...rssRows,
];
const ATTACKS = [
  {
    id: "idle",
    title: `idle: ${HELD.toLocaleString("en-US")} sockets that send nothing, ${HOLD_S} s`,
    run: (port) => hold(port, false),
    rows: holdRows("idle"),
  },
  {
    id: "trickle",
    title: `trickle: ${HELD.toLocaleString("en-US")} partial heads, 1 byte/s each, ${HOLD_S} s`,
    run: (port) => hold(port, true),
    rows: holdRows("trickling"),
  },
  {
    id: "pings",
    title: `pings: ${
      PINGS.toLocaleString("en-US")
    } masked ${PING_PAYLOAD}-byte pings on one socket that never reads`,
    run: pings,
    rows: [
      [`pings written to the socket (in at most ${PING_LIMIT_MS / 1000} s)`, (r) => r.written],
      ["writing took, s", (r) => r.writeS.toFixed(1)],
      [`server read all of it (within ${PING_TAIL_MS / 1000} s after writing)`, (r) => r.read],
      ["server dropped the connection (after pings written)", (r) => r.dropped],
      ...rssRows,
    ],
  },
  {
    id: "bodies",
    title: `bodies: ${
      BODIES.toLocaleString("en-US")
    } POSTs with a 1 MiB body each, answers unread until the end`,
    run: bodies,
    rows: [
      ["bodies handed to the kernel in full", (r) => r.written],
      ["that took, s", (r) => r.floodS.toFixed(1)],
      ["answers", (r) => r.answers],
      [`normal client from ${HOST} got its 101 within 4 s`, (r) => r.same],
      [`normal client from ${OTHER_ADDRESS} got its 101 within 4 s`, (r) => r.other],
      ...rssRows,
    ],
  },
  {
    id: "smuggle",
    title: "smuggle: ambiguous or invalid request framing (status, or what happened)",
    // One fresh server per request: a server that crashes on one must not spoil the next.
    cases: SMUGGLES.map(([label, make]) => [
      label,
      async (port) => ({ outcome: smuggleOutcome(await exchange(port, make(port), SMUGGLE_WAIT_MS)) }),
    ]),
  },
];

function parseArgs(argv) {
  const o = { servers: SERVERS.map((s) => s.id), attacks: ATTACKS.map((a) => a.id) };
  for (let i = 0; i < argv.length; i++) {
    const list = () => (argv[++i] ?? "").split(",");
    if (argv[i] === "--servers") o.servers = list();
    else if (argv[i] === "--attacks") o.attacks = list();
    else throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
  }
  // "idle" names the attack with its trickle variant; "trickle" alone runs just that.
  if (o.attacks.includes("idle") && !o.attacks.includes("trickle")) o.attacks.push("trickle");
  const bad = [
    ...o.servers.filter((id) => !SERVERS.some((s) => s.id === id)),
    ...o.attacks.filter((id) => !ATTACKS.some((a) => a.id === id)),
  ];
  if (bad.length) throw new Error(`unknown server or attack: ${bad.join(", ")}\n${USAGE}`);
  return o;
}

// One attack on a freshly started server; `settle` lets it finish starting up
// before the RSS baseline is taken.
async function runOne(server, run, logFile, settle) {
  const port = await freePort();
  let srv;
  try {
    srv = await startServer(server, port, logFile);
    const warm = await normalClient(port, 4000); // the server works before we attack it
    if (!warm.ok) throw new Error(`warm-up handshake failed (${warm.why})`);
    if (settle) await sleep(500);
    const rss = rssSampler(srv.pid);
    const result = await run(port);
    await sleep(250); // a server that just crashed takes a moment to be reaped
    rss.stop();
    return { ...result, rssBefore: rss.before, rssPeak: rss.peak, exit: srv.exit };
  } catch (err) {
    return { error: `${err.message}${srv?.exit ? ` (server exited: ${srv.exit})` : ""}` };
  } finally {
    if (srv) await stopServer(srv);
  }
}

const exited = (r) => `**server exited (${r.exit})**`;

// Rows of [label, (server) => cell]: an attack's measurements, then whether the
// server survived; for an attack made of cases, one row per case.
function table(attack, servers, results) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  const cell = (key, get) => (s) => {
    const r = results.get(`${key}/${s.id}`);
    return r.error ? `failed: ${r.error}` : get(r);
  };
  const rows = attack.cases
    ? attack.cases.map(([label], i) => [
      label,
      cell(`${attack.id}/${i}`, (r) => r.exit ? `${r.outcome}; ${exited(r)}` : r.outcome),
    ])
    : [
      ...attack.rows.map(([label, get]) => [label, cell(attack.id, (r) => String(get(r)))]),
      ["server still running afterwards", cell(attack.id, (r) => r.exit ? `no: ${exited(r)}` : "yes")],
    ];
  return [
    `### ${attack.title}`,
    "",
    line(["", ...servers.map((s) => s.label)]),
    line(["---", ...servers.map(() => "---")]),
    ...rows.map(([label, get]) => line([label, ...servers.map(get)])),
  ].join("\n");
}

function output(cmd, args) {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 26 });
  } catch {
    return `${path.basename(cmd)}: unavailable`;
  }
}
const firstLine = (cmd, args) => output(cmd, args).split("\n")[0].trim();

// Wisp's commit and uncommitted diff: servers start afresh for every attack,
// so sources edited during a run would mix versions in one table.
const wispVersion = () => ({
  head: firstLine("git", ["rev-parse", "--short", "HEAD"]),
  diff: output("git", ["diff", "HEAD", "--", "mod.ts", "src"]),
});

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  // Node raises its soft open-file limit to the hard one, and the servers inherit it.
  const limit = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync("/proc/self/limits", "utf8"))[1];
  if (limit !== "unlimited" && Number(limit) < HELD + 200) {
    throw new Error(`open-file limit ${limit} is below ${HELD + 200}: raise the hard limit (ulimit -Hn)`);
  }
  const servers = SERVERS.filter((s) => opts.servers.includes(s.id));
  const attacks = ATTACKS.filter((a) => opts.attacks.includes(a.id));
  const started = new Date(), version = wispVersion();
  const logDir = path.join(ROOT, "bench/.build/attack-logs", started.toISOString().replaceAll(":", ""));
  fs.mkdirSync(logDir, { recursive: true });
  const results = new Map();
  for (const attack of attacks) {
    const runs = attack.cases
      ? attack.cases.map(([, run], i) => ({ key: `${attack.id}/${i}`, run, settle: false }))
      : [{ key: attack.id, run: attack.run, settle: true }];
    for (const { key, run, settle } of runs) {
      for (const server of servers) {
        const logFile = path.join(logDir, `${key.replace("/", "-")}-${server.id}.log`);
        const r = await runOne(server, run, logFile, settle);
        results.set(`${key}/${server.id}`, r);
        console.error(
          `${key} ${server.label}: ${r.error ? `FAILED: ${r.error}` : r.exit ? "server exited" : "done"}`,
        );
      }
    }
  }
  const end = wispVersion();
  const changed = end.head !== version.head || end.diff !== version.diff
    ? "; **its sources changed during the run, so rows may come from different versions**"
    : "";
  console.log(`# Wisp attack probe, ${started.toLocaleString("sv-SE")}

Command: \`node bench/attack.mjs ${process.argv.slice(2).join(" ")}\`

- Wisp at ${version.head}${version.diff ? " with uncommitted changes to src/" : ""}${changed}; ${
    firstLine(DENO, ["--version"])
  }; bun ${firstLine(BUN, ["--version"])}; node ${process.version}; open-file limit ${limit}
- Every server is started afresh for each attack; RSS is the server process's VmRSS, sampled every ${SAMPLE_MS} ms.
  Took ${((Date.now() - started) / 60_000).toFixed(1)} min; server logs in ${path.relative(ROOT, logDir)}/

${attacks.map((a) => table(a, servers, results)).join("\n\n")}`);
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
