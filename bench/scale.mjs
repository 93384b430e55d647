// How cost grows with connections (#23 points 3 and 4): for each count of WebSockets per server
// process, Wisp on Deno, Bun and Node against Deno's and Bun's native servers and ws, every socket
// subscribed to one topic: RSS per connection, connections/s while opening, and one publish to all
// of them (time until every subscriber has it, server CPU per delivery). Then Wisp with four
// workers on one port, as --workers runs them, holding many more sockets than one process may,
// and publishing to all of them across the workers. See bench/README.md ("Scaling").
// Usage: node bench/scale.mjs [--counts N,N,...] [--servers ids] [--rounds N] [--publishes N]
//          [--workers N] [--workers-total N] [--no-workers] [--smoke]
import { execFileSync, spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { scaleChart } from "./chart.mjs";
import {
  firstLine,
  killGroup,
  killOnExit,
  launchGroup,
  machineCpuS,
  machineLine,
  packageVersion,
  portsFrom,
  processCpuS,
  rotated,
  rssKiB,
  startRun,
  treeState,
  untilListening,
} from "./processes.mjs";
import { BUILD, BUN, DENO, GEN_CORE, LOADGEN, NODE_TS, ROOT, SERVER_CORE } from "./paths.mjs";
import { BUSY, fmt, GEN_BOUND, median, table } from "./report.mjs";

// The generator connects from 127.0.0.N on: one address for every 10,000 connections (loadgen.c).
const PER_SOURCE = 10_000;
// Connections opened and closed first, per server process, so that one-time costs (JIT, pools)
// land in the baseline rather than in the per-connection figure, as in bench/run.mjs (e).
const WARM = 500;
// Handshakes in flight at most, per generator process, as in bench/run.mjs (e).
const PENDING = 256;
// Bytes of each published message (its first four are its number).
const MESSAGE = 32;
// Deliveries measured at least per run (more publishes to fewer subscribers), so that the server's
// CPU time, counted in /proc in ticks of 10 ms, is read to about 1%.
const MIN_DELIVERIES = 50_000;

// --- options -----------------------------------------------------------------------------------

const USAGE = `usage: node bench/scale.mjs [--counts N,N,...] [--servers ids] [--rounds N] [--publishes N]
         [--workers N] [--workers-total N] [--no-workers] [--smoke]
  --counts N,...     WebSockets per server process (default 1000,5000,19000)
  --servers ids      comma-separated subset of: wisp-deno,deno,wisp-bun,bun,wisp-node,ws
  --rounds N         interleaved rounds to take medians over (default 3)
  --publishes N      measured publishes per run, after every subscriber got one (default 5; more
                     where needed for ${(50_000).toLocaleString("en-US")} deliveries)
  --workers N        the Wisp workers of the multi-process part (default 4)
  --workers-total N  WebSockets over all of them (default 19,000 per worker)
  --no-workers       leave out the multi-process part
  --smoke            2,000 connections on Wisp/Deno (or --servers), one publish: only checks that
                     all connect and all receive it; no results file, exit code 1 on failure`;

function parseArgs(argv) {
  const o = {
    counts: [1000, 5000, 19000],
    servers: null,
    rounds: 3,
    publishes: 5,
    workers: 4,
    workersTotal: null,
    workersPart: true,
    smoke: false,
  };
  const whole = (i) => {
    const x = Number(argv[i]);
    if (!Number.isInteger(x) || x < 1) {
      throw new Error(`${argv[i - 1]} needs a whole number from 1\n${USAGE}`);
    }
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--counts") {
      o.counts = (argv[++i] ?? "").split(",").map((x) => Number(x));
      if (!o.counts.every((n) => Number.isInteger(n) && n >= 1)) throw new Error(`bad --counts\n${USAGE}`);
    } else if (a === "--servers") o.servers = (argv[++i] ?? "").split(",");
    else if (a === "--rounds") o.rounds = whole(++i);
    else if (a === "--publishes") o.publishes = whole(++i);
    else if (a === "--workers") o.workers = whole(++i);
    else if (a === "--workers-total") o.workersTotal = whole(++i);
    else if (a === "--no-workers") o.workersPart = false;
    else if (a === "--smoke") o.smoke = true;
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  if (o.smoke) Object.assign(o, { counts: [2000], rounds: 1, publishes: 1, workersPart: false });
  o.servers ??= o.smoke ? ["wisp-deno"] : SERVERS.map((s) => s.id);
  const unknown = o.servers.filter((id) => !SERVERS.some((s) => s.id === id));
  if (unknown.length) throw new Error(`unknown server ${unknown.join(", ")}\n${USAGE}`);
  o.workersTotal ??= 19_000 * o.workers;
  return o;
}

// --- servers -----------------------------------------------------------------------------------

// Each server's fan-out program (see bench/README.md): clients of /fanout subscribe to one topic
// when they open, and a message sent on /publish goes to all of them.
const fanout = (runtime, file) => (port) => [...runtime, path.join("bench/servers", file), String(port)];
const SERVERS = [
  { id: "wisp-deno", label: "Wisp/Deno", argv: fanout([DENO, "run", "-A"], "wisp_fanout.ts") },
  { id: "deno", label: "Deno native", argv: fanout([DENO, "run", "-A"], "deno_native.ts") },
  { id: "wisp-bun", label: "Wisp/Bun", argv: fanout([BUN, "run"], "wisp_fanout.ts") },
  { id: "bun", label: "Bun native", argv: fanout([BUN, "run"], "bun_native.ts") },
  {
    id: "wisp-node",
    label: "Wisp/Node",
    argv: fanout([process.execPath, "--import", NODE_TS], "wisp_fanout.ts"),
  },
  { id: "ws", label: "ws/Node", argv: fanout([process.execPath], "ws_node.mjs") },
];
// Wisp and the server it is measured against.
const PAIRS = [["wisp-deno", "deno"], ["wisp-bun", "bun"], ["wisp-node", "ws"]];
// The multi-process part: the relay a --workers supervisor runs and its workers (Deno and Bun
// only, as Node 20 has no SO_REUSEPORT).
const WORKER_RUNTIMES = [
  { id: "wisp-deno", label: "Wisp/Deno", runtime: [DENO, "run", "-A", "--unstable-net"] },
  { id: "wisp-bun", label: "Wisp/Bun", runtime: [BUN, "run"] },
];

// --- processes ---------------------------------------------------------------------------------

const live = killOnExit();
// Away from bench/run.mjs's ports (21000 on), attack.mjs's (23000 on), fanout_redis.mjs's (25000 on).
const freePort = portsFrom(27000);
let logDir;

const pinned = (core, argv) => (core === null ? argv : ["taskset", "-c", core, ...argv]);

// Starts a server in its own process group and waits until it listens on `port`; its pid is the
// process that owns the listening socket (found in /proc, whatever launcher sits above it).
function startServer(name, argv, port, core) {
  const logFile = path.join(logDir, `${name}.log`);
  return untilListening(launchGroup(live, pinned(core, argv), { logFile, name }), port);
}

const stopServer = (proc) => killGroup(live, proc);

// Open sockets of a process: its connections (and a few of its own, the listener among them).
function socketCount(pid) {
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++;
    } catch { /* closed while we looked */ }
  }
  return n;
}

// This process's open-file limit (Node raises the soft limit to the hard one at start, and every
// child inherits it), which caps the sockets of each server and each generator process.
const FD_LIMIT = (() => {
  const value = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync("/proc/self/limits", "utf8"))[1];
  return value === "unlimited" ? Infinity : Number(value);
})();
// What one generator process holds at most: the limit less room for its own descriptors.
const PER_GENERATOR = Math.min(1_000_000, Math.floor((FD_LIMIT - 200) / 1000) * 1000);

// --- load generator ------------------------------------------------------------------------------

// One loadgen process in scale mode (see bench/loadgen.c). Its stdout lines are JSON; expect(key)
// takes the next line that has `key`, failing on an error line, on its end, or after `ms`.
class Generator {
  constructor({ port, count, publisher, source, core }) {
    const args = ["-m", "scale", "-p", port, "-c", count, "-k", PENDING, "-s", MESSAGE, "-b", source];
    if (publisher) args.push("-P");
    const [command, ...rest] = pinned(core, [LOADGEN, ...args.map(String)]);
    this.child = spawn(command, rest, { stdio: ["pipe", "pipe", "inherit"] });
    this.pid = this.child.pid; // taskset execs the generator, so this is its pid
    this.lines = [];
    this.waiting = null;
    this.ended = false;
    this.exited = new Promise((resolve) => this.child.once("exit", resolve));
    readline.createInterface({ input: this.child.stdout }).on("line", (line) => {
      this.lines.push(JSON.parse(line));
      this.waiting?.();
    }).on("close", () => {
      this.ended = true;
      this.waiting?.();
    });
  }

  send(command) {
    this.child.stdin.write(`${command}\n`);
  }

  async expect(key, ms, what = key) {
    const deadline = Date.now() + ms;
    for (;;) {
      const error = this.lines.find((l) => l.error);
      if (error) throw new Error(`load generator: ${error.error}`);
      const i = this.lines.findIndex((l) => key in l);
      if (i >= 0) return this.lines.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (this.ended) throw new Error(`load generator ended while waiting for ${what}`);
      if (left <= 0) return null;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiting = null;
    }
  }

  cpuS() {
    return processCpuS(this.pid);
  }

  // Closes stdin: the generator says how many connections are still open and exits (resetting
  // them all, so that no port lingers in TIME_WAIT).
  async finish() {
    this.child.stdin.end();
    const last = await this.expect("still_open", 30_000, "the count of connections still open");
    await this.exited;
    return last?.still_open;
  }

  kill() {
    this.child.kill("SIGKILL");
  }
}

// Generators for `total` subscribers (one more, the publisher, on the first): as many processes
// as the open-file limit asks for, each from source addresses of its own.
function generators(port, total, core) {
  const count = Math.ceil(total / PER_GENERATOR);
  const sources = Math.ceil((PER_GENERATOR + 1) / PER_SOURCE);
  return Array.from({ length: count }, (_, i) =>
    new Generator({
      port,
      count: Math.floor(total / count) + (i < total % count ? 1 : 0),
      publisher: i === 0,
      source: 2 + i * sources,
      core,
    }));
}

// Opens and closes WARM connections per server process before anything is measured.
async function warmUp(port, processes, core) {
  const gen = new Generator({ port, count: WARM * processes, publisher: false, source: 2, core });
  try {
    if (!await gen.expect("mode", 120_000)) throw new Error("the warm-up connections did not open in 120 s");
    await gen.finish();
  } finally {
    gen.kill();
  }
  await sleep(500);
}

// --- one run -------------------------------------------------------------------------------------

// Publishes message k and waits until every generator has it at all of its subscribers. Returns
// the time from the publisher's write until the last (and the first) subscriber had it, or, when
// some did not within `ms`, how many lacked it.
async function publishToAll(gens, k, ms) {
  // Every generator watches for k before it goes out, so none can see it early.
  for (const gen of gens) gen.send(`watch ${k}`);
  for (const gen of gens) {
    if (!await gen.expect("watching", 10_000)) throw new Error("a generator did not take a watch command");
  }
  const deadline = Date.now() + ms;
  gens[0].send(`publish ${k}`);
  const sent = await gens[0].expect("published", 10_000);
  if (!sent) throw new Error("the publisher did not send");
  const done = await Promise.all(gens.map((gen) => gen.expect("seq", Math.max(1, deadline - Date.now()))));
  const lost = done.reduce((sum, d) => sum + (d?.lost ?? 0), 0);
  if (lost) throw new Error(`${lost} connections were lost while held`);
  if (done.includes(null)) {
    let missing = 0;
    for (const [i, gen] of gens.entries()) {
      if (done[i]) continue;
      gen.send("status");
      const status = await gen.expect("seq", 10_000, "its status");
      missing += status ? status.subscribers - status.reached : NaN;
    }
    return { missing: `message ${k} did not reach ${missing} subscriber(s) within ${ms / 1000} s` };
  }
  const last = Math.max(...done.map((d) => d.t)), first = Math.min(...done.map((d) => d.t_first));
  return { ms: (last - sent.t) * 1000, firstMs: (first - sent.t) * 1000 };
}

// One run on a running system: `servers` are its processes (CPU and RSS summed over them), `total`
// the subscribers over all of them.
async function measure(servers, port, total, core) {
  const cpu = () => servers.reduce((sum, s) => sum + processCpuS(s.pid), 0);
  const rss = () => servers.reduce((sum, s) => sum + rssKiB(s.pid), 0);
  await warmUp(port, servers.filter((s) => s.listens).length, core);
  const rss0 = rss();
  const t0 = Date.now(), machine0 = machineCpuS(), server0 = cpu();
  const gens = generators(port, total, core);
  try {
    const opened = [];
    for (const gen of gens) {
      const line = await gen.expect("mode", 60_000 + total, "the connections to open");
      if (!line) throw new Error(`the connections did not open within ${(60_000 + total) / 1000} s`);
      opened.push(line);
    }
    const connections = opened.reduce((sum, o) => sum + o.conns, 0);
    const openS = Math.max(...opened.map((o) => o.t1)) - Math.min(...opened.map((o) => o.t0));
    // the generators' share of one core while opening (they share one when pinned)
    const genOpen = opened.reduce((sum, o) => sum + o.cpu, 0);
    // A server may register a subscriber a little after its 101: publish until one message
    // reaches every subscriber (the first, mostly), then measure.
    const wait = 2000 + total / 5; // ms
    let k = 0, synced;
    do synced = await publishToAll(gens, ++k, wait); while (synced.missing && k < 10);
    if (synced.missing) throw new Error(`${synced.missing}, the last of ${k} tries`);
    await sleep(1000); // as bench/run.mjs (e): let the server settle the last connections
    const rss1 = rss();
    const sockets = servers.filter((s) => s.listens).map((s) => socketCount(s.pid));
    const server1 = cpu(), gen1 = gens.reduce((sum, g) => sum + g.cpuS(), 0);
    const times = [], firsts = [];
    const publishes = opts.smoke
      ? opts.publishes
      : Math.max(opts.publishes, Math.ceil(MIN_DELIVERIES / total));
    for (let p = 0; p < publishes; p++) {
      const r = await publishToAll(gens, ++k, 30_000 + total);
      if (r.missing) throw new Error(r.missing);
      times.push(r.ms);
      firsts.push(r.firstMs);
    }
    const genAll = gens.reduce((sum, g) => sum + g.cpuS(), 0);
    const serverCpuS = cpu() - server1, genCpuS = genAll - gen1;
    const publishMs = median(times);
    const stillOpen = await Promise.all(gens.map((g) => g.finish()));
    const dropped = connections - stillOpen.reduce((sum, n) => sum + (n ?? 0), 0);
    if (dropped) throw new Error(`the server dropped ${dropped} of ${connections} connections`);
    const seconds = (Date.now() - t0) / 1000;
    return {
      connections,
      open_s: openS,
      conn_per_s: connections / openS,
      gen_open_cpu: genOpen,
      rss_mib: rss1 / 1024,
      rss_kib_per_conn: (rss1 - rss0) / connections,
      publish_ms: publishMs,
      publish_ms_all: times,
      first_ms: median(firsts),
      us_per_sub: publishMs * 1000 / total,
      publishes,
      cpu_us_per_delivery: serverCpuS * 1e6 / (publishes * total),
      // the generators' share of one core while the measured publishes went (all on one core)
      gen_publish_cpu: genCpuS / (times.reduce((a, b) => a + b, 0) / 1000),
      sockets,
      others: (machineCpuS() - machine0 - (cpu() - server0) - genAll) / seconds,
    };
  } finally {
    for (const gen of gens) gen.kill();
  }
}

async function runSingle(server, count, round) {
  const port = await freePort();
  let proc;
  try {
    proc = await startServer(`${round}-${count}-${server.id}`, server.argv(port), port, SERVER_CORE);
    proc.listens = true;
    return await measure([proc], port, count, GEN_CORE);
  } catch (error) {
    return { error: `${error.message}${proc ? ` (log: ${path.relative(ROOT, proc.logFile)})` : ""}` };
  } finally {
    if (proc) stopServer(proc);
  }
}

// The multi-process part, as --workers runs it: the relay hub of the supervisor, and `workers`
// processes on one port (reusePort), each on the relay as worker 1, 2, ...; no pinning, as there
// are more processes than cores.
async function runWorkers(rt, round) {
  const procs = [];
  try {
    const relayPort = await freePort(), token = crypto.randomBytes(16).toString("hex");
    const relay = await startServer(
      `${round}-workers-${rt.id}-relay`,
      [...rt.runtime, "bench/servers/wisp_relay.ts", String(relayPort), token],
      relayPort,
      null,
    );
    procs.push(relay);
    const port = await freePort();
    for (let id = 1; id <= opts.workers; id++) {
      const argv = [
        ...rt.runtime,
        "bench/servers/wisp_backplane.ts",
        String(port),
        `relay:${relayPort}:${token}:${id}`,
      ];
      const worker = await startServer(`${round}-workers-${rt.id}-${id}`, argv, port, null);
      worker.listens = true;
      procs.push(worker);
    }
    return await measure(procs, port, opts.workersTotal, null);
  } catch (error) {
    const logs = procs.length ? ` (logs: ${path.relative(ROOT, path.dirname(procs[0].logFile))})` : "";
    return { error: `${error.message}${logs}` };
  } finally {
    for (const proc of procs) stopServer(proc);
  }
}

// --- report --------------------------------------------------------------------------------------

const METRICS = [
  { key: "rss_kib_per_conn", label: "RSS per connection, KiB", better: "lower" },
  { key: "conn_per_s", label: "connections/s while opening", better: "higher" },
  { key: "publish_ms", label: "one publish to all, ms (median)", better: "lower" },
  { key: "us_per_sub", label: "publish time per subscriber, µs", better: "lower" },
  { key: "cpu_us_per_delivery", label: "server CPU per delivery, µs", better: "lower" },
];

// The median over the rounds that succeeded, with † when the generators were the limit and ‡
// when other processes were busy in one of them.
function cell(runs, key) {
  const ok = runs.filter((r) => !r.error);
  if (!ok.length) return runs.length ? "fail" : "–";
  let text = fmt(median(ok.map((r) => r[key])));
  const genBusy = key === "conn_per_s" || key === "open_s" ? "gen_open_cpu" : "gen_publish_cpu";
  if (key !== "rss_kib_per_conn" && ok.some((r) => r[genBusy] > GEN_BOUND)) text += " †";
  if (ok.some((r) => r.others > BUSY)) text += " ‡";
  if (ok.length < runs.length) text += ` (${ok.length}/${runs.length} ok)`;
  return text;
}

function medianOf(runs, key) {
  const ok = runs.filter((r) => !r.error);
  return ok.length ? median(ok.map((r) => r[key])) : null;
}

const n = (x) => x.toLocaleString("en-US");

function report(data) {
  const { meta, counts, servers, single, workers } = data;
  const runsOf = (id, count) => single.filter((r) => r.server === id && r.count === count);
  const label = (id) => SERVERS.find((s) => s.id === id).label;
  const sections = METRICS.map((m) =>
    `### ${m.label} (${m.better} is better)\n\n${
      table(
        ["server", ...counts.map((c) => `${n(c)} conns`)],
        servers.map((id) => [label(id), ...counts.map((c) => cell(runsOf(id, c), m.key))]),
      )
    }`
  );
  const pairs = PAIRS.filter(([w, b]) => servers.includes(w) && servers.includes(b));
  const ratios = pairs.length
    ? table(
      ["metric", ...pairs.flatMap(([w, b]) => counts.map((c) => `${label(w)} ÷ ${label(b)}, ${n(c)}`))],
      METRICS.map((m) => [
        m.label,
        ...pairs.flatMap(([w, b]) =>
          counts.map((c) => {
            const x = medianOf(runsOf(w, c), m.key), y = medianOf(runsOf(b, c), m.key);
            return x === null || y === null || y === 0 ? "–" : `${(x / y).toFixed(2)}×`;
          })
        ),
      ]),
    )
    : "(needs Wisp and its native server in the run)";
  const goals = goalLines(data, runsOf);
  const workerPart = workers.length
    ? `## ${opts.workers} workers on one port, ${n(opts.workersTotal)} WebSockets

As \`--workers ${opts.workers}\` runs them: the supervisor's relay (\`bench/servers/wisp_relay.ts\`) and
${opts.workers} processes of \`bench/servers/wisp_backplane.ts\` on one port (\`reusePort\`), each on the relay
as a worker; the generators' publisher lands on one of them and the relay carries each message to the others.
Nothing is pinned (more processes than cores). RSS and CPU are summed over the workers and the relay;
"sockets per worker" is each worker's open sockets (its connections, the listener, the relay link).

${
      table(
        [
          "runtime",
          "sockets per worker",
          "open s",
          "conn/s",
          "RSS per conn, KiB",
          "publish to all, ms",
          "per subscriber, µs",
          "CPU per delivery, µs",
        ],
        WORKER_RUNTIMES.filter((rt) => workers.some((r) => r.server === rt.id)).map((rt) => {
          const runs = workers.filter((r) => r.server === rt.id);
          const ok = runs.filter((r) => !r.error);
          const sockets = ok.length ? ok[ok.length - 1].sockets.map(n).join(" / ") : "–";
          return [
            rt.label,
            sockets,
            cell(runs, "open_s"),
            cell(runs, "conn_per_s"),
            cell(runs, "rss_kib_per_conn"),
            cell(runs, "publish_ms"),
            cell(runs, "us_per_sub"),
            cell(runs, "cpu_us_per_delivery"),
          ];
        }),
      )
    }
`
    : "";
  const everyRound = table(
    ["server", "conns", ...METRICS.map((m) => m.label)],
    [
      ...counts.flatMap((c) => servers.map((id) => [label(id), n(c), runsOf(id, c)])),
      ...WORKER_RUNTIMES.map((rt) => [
        `${rt.label}, ${opts.workers} workers`,
        n(opts.workersTotal),
        workers.filter((r) => r.server === rt.id),
      ]),
    ]
      .filter(([, , runs]) => runs.length)
      .map(([who, c, runs]) => [
        who,
        c,
        ...METRICS.map((m) => runs.map((r) => (r.error ? "fail" : fmt(r[m.key]))).join(" / ")),
      ]),
  );
  const failures = [...single, ...workers].filter((r) => r.error)
    .map((r) =>
      `- ${label(r.server)}${r.count ? `, ${n(r.count)}` : ", workers"}, round ${r.round}: ${r.error}`
    );
  return `# Wisp scaling benchmark, ${meta.started}

Command: \`${meta.command}\`

- Machine: ${meta.machine}
- Runtimes: ${meta.versions}
- Wisp: ${meta.tree}
- Each server process pinned to core ${SERVER_CORE}, the load generator to core ${GEN_CORE}; every server
  started afresh for each count and round; ${meta.rounds} round(s), interleaved; ${meta.publishes}
  measured publishes per run, or as many as make ${n(MIN_DELIVERIES)} deliveries. Took ${meta.took}.

Every socket subscribes to one topic when it opens (\`/fanout\` of each server in \`bench/servers/\`); one
more connection sends the messages to publish (\`/publish\`). RSS per connection is the server's RSS once
all are open and subscribed, less its RSS before (after ${WARM} connections opened and closed), over the
connections. Connections/s is while opening them with up to ${PENDING} handshakes in flight per generator
process. A publish is timed by the generator from its write of the ${MESSAGE}-byte message until the last
subscriber has it; the server's CPU per delivery is its CPU time over the measured publishes (from
/proc/PID/stat) over the messages delivered. † = the generators used more than ${
    GEN_BOUND * 100
  }% of their core (so the figure is
partly theirs); ‡ = other processes used more than ${BUSY * 100}% of a core during the run (a busy machine).

## Medians

${sections.join("\n\n")}

## Wisp relative to its runtime's native server (on Node: ws; ratio of medians)

${ratios}

## Goals (#23)

${goals.join("\n")}

${workerPart}
## Every round (in order)

${everyRound}
${failures.length ? `\n## Failures\n\n${failures.join("\n")}\n` : ""}`;
}

function goalLines(data, runsOf) {
  const { counts } = data;
  const largest = Math.max(...counts), smallest = Math.min(...counts);
  const lines = [];
  const ratio = (w, b, bound) => {
    const x = medianOf(runsOf(w, largest), "rss_kib_per_conn"),
      y = medianOf(runsOf(b, largest), "rss_kib_per_conn");
    if (x === null || y === null) return;
    const r = x / y;
    lines.push(
      `- RSS per connection at ${n(largest)}: ${fmt(x)} KiB ÷ ${fmt(y)} KiB = ${r.toFixed(2)}× ` +
        `(goal ≤ ${bound}×: ${r <= bound ? "met" : "not met"}) — ${w} ÷ ${b}`,
    );
  };
  ratio("wisp-bun", "bun", 1);
  ratio("wisp-deno", "deno", 0.7);
  if (largest > smallest) {
    for (const id of data.servers) {
      const a = medianOf(runsOf(id, smallest), "us_per_sub"), b = medianOf(runsOf(id, largest), "us_per_sub");
      if (a === null || b === null) continue;
      const wisp = id.startsWith("wisp") ? " (goal ≤ 1.5×)" : "";
      lines.push(
        `- ${SERVERS.find((s) => s.id === id).label}: publish time per subscriber ${fmt(a)} µs at ${
          n(smallest)
        }, ` +
          `${fmt(b)} µs at ${n(largest)}: ${(b / a).toFixed(2)}×${wisp}`,
      );
    }
  }
  return lines.length ? lines : ["(needs the pairs and more than one count)"];
}

// --- main ----------------------------------------------------------------------------------------

function machineInfo() {
  return {
    machine: `${machineLine()}, open-file limit ${FD_LIMIT}`,
    versions: [
      firstLine(DENO, ["--version"]),
      `bun ${firstLine(BUN, ["--version"])}`,
      `node ${process.version} (ws ${packageVersion(ROOT, "ws")})`,
    ].join("; "),
  };
}

// The generator is compiled here, as bench/run.sh does (it links zlib, for its other modes).
function buildGenerator() {
  fs.mkdirSync(BUILD, { recursive: true });
  try {
    execFileSync("cc", ["-O2", "-Wall", "-o", LOADGEN, path.join(ROOT, "bench/loadgen.c"), "-lz"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  } catch (error) {
    throw new Error(
      `cannot compile bench/loadgen.c (needs cc and zlib's headers: apt-get install -y zlib1g-dev):\n${error.stderr}`,
    );
  }
}

const opts = parseArgs(process.argv.slice(2));

async function main() {
  if (os.availableParallelism() < 2) {
    throw new Error("needs 2 cores: one for the servers, one for the generator");
  }
  // Each server process holds every connection of a count (and a few descriptors of its own).
  const most = Math.max(...opts.counts);
  if (most + 100 > FD_LIMIT) {
    throw new Error(
      `${n(most)} connections per server process need ${n(most + 100)} open files, and the limit is ` +
        `${FD_LIMIT} (ulimit -Hn): give smaller --counts`,
    );
  }
  if (opts.workersPart && opts.workersTotal / opts.workers + 400 > FD_LIMIT) {
    throw new Error(
      `${n(opts.workersTotal)} connections over ${opts.workers} workers are more than each may hold ` +
        `(open-file limit ${FD_LIMIT}): give a smaller --workers-total or more --workers`,
    );
  }
  buildGenerator();
  const start = new Date();
  const run = startRun("scale-logs");
  const { started, stamp } = run;
  logDir = run.logDir;
  const tree = treeState(ROOT);
  const servers = SERVERS.filter((s) => opts.servers.includes(s.id));
  const single = [], workers = [];
  for (let round = 1; round <= opts.rounds; round++) {
    // Rotate the order each round so that none always runs first.
    const order = rotated(servers, round);
    for (const count of opts.counts) {
      for (const server of order) {
        const r = { server: server.id, count, round, ...await runSingle(server, count, round) };
        single.push(r);
        console.error(`[round ${round}/${opts.rounds}] ${server.label}, ${n(count)}: ${progress(r)}`);
      }
    }
    if (!opts.workersPart) continue;
    for (const rt of WORKER_RUNTIMES.filter((w) => opts.servers.includes(w.id))) {
      const r = { server: rt.id, round, ...await runWorkers(rt, round) };
      workers.push(r);
      console.error(`[round ${round}/${opts.rounds}] ${rt.label}, ${opts.workers} workers: ${progress(r)}`);
    }
  }
  if (opts.smoke) return smokeVerdict(single);
  const data = {
    meta: {
      started,
      command: `node bench/scale.mjs ${process.argv.slice(2).join(" ")}`.trim(),
      took: `${((Date.now() - start) / 60_000).toFixed(1)} min`,
      tree,
      rounds: opts.rounds,
      publishes: opts.publishes,
      workers: opts.workers,
      workersTotal: opts.workersTotal,
      ...machineInfo(),
    },
    counts: opts.counts,
    servers: servers.map((s) => s.id),
    labels: Object.fromEntries(SERVERS.map((s) => [s.id, s.label])),
    single,
    workers,
  };
  const base = path.join(ROOT, "bench/results", `scale-${stamp}`);
  fs.mkdirSync(path.dirname(base), { recursive: true });
  const text = report(data);
  fs.writeFileSync(`${base}.md`, text);
  fs.writeFileSync(`${base}.json`, JSON.stringify(data, null, 1) + "\n");
  fs.writeFileSync(`${base}.svg`, scaleChart(data));
  console.log(text);
  console.log(
    `Saved to ${path.relative(ROOT, base)}.{md,json,svg}; server logs in ${path.relative(ROOT, logDir)}/`,
  );
}

function progress(r) {
  if (r.error) return `FAILED: ${r.error}`;
  return `${n(r.connections)} open in ${r.open_s.toFixed(2)} s (${fmt(r.conn_per_s)}/s), ` +
    `${fmt(r.rss_kib_per_conn)} KiB/conn, publish ${fmt(r.publish_ms)} ms (${fmt(r.us_per_sub)} µs/sub), ` +
    `${fmt(r.cpu_us_per_delivery)} µs CPU/delivery; generators ${(r.gen_publish_cpu * 100).toFixed(0)}% ` +
    `of a core while publishing, others ${(r.others * 100).toFixed(0)}% of a core`;
}

// --smoke: what CI may run. Nothing timed is judged: every connection opened (the generator fails
// otherwise), every subscriber got the publish, none was dropped.
function smokeVerdict(single) {
  const failed = single.filter((r) => r.error);
  for (const r of single) {
    const label = SERVERS.find((s) => s.id === r.server).label;
    console.log(
      r.error
        ? `smoke: ${label}, ${n(r.count)} connections: FAILED: ${r.error}`
        : `smoke: ${label}, ${n(r.count)} connections: all open, all got the publish`,
    );
  }
  process.exitCode = failed.length ? 1 : 0;
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
