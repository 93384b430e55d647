// Benchmark driver, started by bench/run.sh (which builds the C tools and raises
// the descriptor limit first).  Each round runs every scenario against every
// server, each on a fresh server process pinned to core 0, with the load
// generator pinned to core 1; then it prints and saves the median tables.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import {
  exportRevision,
  firstLine,
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

const IDLE_CONNS = 10_000;

// --- options -----------------------------------------------------------------

const USAGE =
  `usage: bash bench/run.sh [--rounds N] [--quick] [--servers ids] [--scenarios ids] [--baseline REV]
  --rounds N       rounds to take medians over (default 3; --quick: 1)
  --quick          1 round with shorter runs, for a smoke test
  --servers ids    comma-separated subset of: raw,wisp-deno,deno,wisp-bun,bun,bun-floor,wisp-node,ws,
                   and wisp-bun-transient (run only when named)
  --scenarios ids  comma-separated subset of: a,b,c,d,e,f,g
  --baseline REV   also run each Wisp server as of git revision REV, interleaved with the
                   work tree's, and add a table of work tree ÷ REV (before and after a change)`;

function parseArgs(argv) {
  const o = { rounds: undefined, quick: false, servers: null, scenarios: null, baseline: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--quick") o.quick = true;
    else if (a === "--rounds") o.rounds = Number(argv[++i]);
    else if (a === "--servers") o.servers = argv[++i].split(",");
    else if (a === "--scenarios") o.scenarios = argv[++i].split(",");
    else if (a === "--baseline") {
      if (!argv[i + 1]) throw new Error(`--baseline needs a git revision\n${USAGE}`);
      o.baseline = argv[++i];
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  o.rounds ??= o.quick ? 1 : 3;
  if (!(o.rounds >= 1)) throw new Error(USAGE);
  // Warm-up lets the JITs settle before counting; the run is counted after it.
  o.warmup = o.quick ? 0.5 : 1;
  o.seconds = o.quick ? 1.5 : 3;
  o.roundTrips = o.quick ? 5_000 : 20_000;
  return o;
}

const opts = parseArgs(process.argv.slice(2));

// --- servers and scenarios -----------------------------------------------------

const wispEcho = (runtime) => (port) => [...runtime, "mod.ts", "--echo", "--port", String(port)];
const script =
  (runtime, file, ...extra) => (port) => [...runtime, `bench/servers/${file}`, String(port), ...extra];
// `deflate`: the echo server that agrees to permessage-deflate, which scenario
// (g) runs with and without compression; servers without one get n/a there.
// Wisp's `--echo` always agrees to it, so it serves every echo scenario.
const SERVERS = [
  {
    id: "raw",
    label: "raw C echo",
    echo: (port) => [path.join(BUILD, "rawecho"), String(port)],
  },
  {
    id: "wisp-deno",
    label: "Wisp/Deno",
    wisp: true,
    echo: wispEcho([DENO, "run", "-A"]),
    deflate: wispEcho([DENO, "run", "-A"]),
    fanout: script([DENO, "run", "-A"], "wisp_fanout.ts"),
  },
  {
    id: "deno",
    label: "Deno native",
    echo: script([DENO, "run", "-A"], "deno_native.ts"),
    fanout: script([DENO, "run", "-A"], "deno_native.ts"),
  },
  {
    id: "wisp-bun",
    label: "Wisp/Bun",
    wisp: true,
    echo: wispEcho([BUN, "run"]),
    deflate: wispEcho([BUN, "run"]),
    fanout: script([BUN, "run"], "wisp_fanout.ts"),
  },
  {
    // The echo with transientMessages: true, whose 1 MiB echo issue #23 compares with Bun native.
    id: "wisp-bun-transient",
    label: "Wisp/Bun transient",
    wisp: true,
    optIn: true,
    echo: script([BUN, "run"], "wisp_transient.ts"),
  },
  {
    id: "bun",
    label: "Bun native",
    echo: script([BUN, "run"], "bun_native.ts"),
    deflate: script([BUN, "run"], "bun_native.ts", "deflate"),
    fanout: script([BUN, "run"], "bun_native.ts"),
  },
  {
    // `connect` only: scenario (e) against a server that does nothing but answer 101.
    id: "bun-floor",
    label: "Bun.listen floor",
    connect: script([BUN, "run"], "bun_listen_floor.ts"),
  },
  {
    id: "wisp-node",
    label: "Wisp/Node",
    wisp: true,
    echo: wispEcho([process.execPath, "--import", NODE_TS]),
    deflate: wispEcho([process.execPath, "--import", NODE_TS]),
    fanout: script([process.execPath, "--import", NODE_TS], "wisp_fanout.ts"),
  },
  {
    id: "ws",
    label: "ws/Node",
    echo: script([process.execPath], "ws_node.mjs"),
    deflate: script([process.execPath], "ws_node.mjs", "deflate"),
    fanout: script([process.execPath], "ws_node.mjs"),
  },
];

const throughput = (c, f, s) => ["-m", "throughput", "-c", c, "-f", f, "-s", s];
const SCENARIOS = [
  { id: "a", gen: throughput(64, 16, 32), rows: ["msg_per_s", "mb_per_s"] },
  { id: "b", gen: throughput(64, 4, 4096), rows: ["msg_per_s", "mb_per_s"] },
  { id: "c", gen: throughput(8, 2, 1 << 20), rows: ["mb_per_s"] },
  { id: "d", gen: ["-m", "latency", "-s", 32, "-n", opts.roundTrips], rows: ["p50_us", "p99_us"] },
  { id: "e", connect: true, rows: ["open_s", "conn_per_s", "rss_mib", "rss_kib_per_conn"] },
  {
    id: "f",
    fanout: true,
    gen: ["-m", "fanout", "-c", 1000, "-f", 16, "-s", 32],
    rows: ["pub_per_s", "delivered_per_s"],
  },
  {
    // Each server runs twice, each time started afresh: once as a client that
    // offers no extension, once with permessage-deflate offered and agreed.
    id: "g",
    deflate: true,
    gen: [...throughput(64, 4, 4096), "-j"],
    rows: ["off_msg_per_s", "on_msg_per_s", "on_off", "server_ratio"],
  },
];

// Row labels, and the rows where a smaller number is better.
const ROWS = {
  a: { msg_per_s: "(a) echo 64 conns × 16 in flight × 32 B, msg/s", mb_per_s: "(a) same, MB/s" },
  b: { msg_per_s: "(b) echo 64 × 4 × 4 KiB, msg/s", mb_per_s: "(b) same, MB/s" },
  c: { mb_per_s: "(c) echo 8 × 2 × 1 MiB, MB/s" },
  d: { p50_us: "(d) latency 1 × 1 × 32 B, p50 µs", p99_us: "(d) latency, p99 µs" },
  e: {
    open_s: "(e) open 10,000 idle conns, s",
    conn_per_s: "(e) connections/s",
    rss_mib: "(e) server RSS with 10,000 conns, MiB",
    rss_kib_per_conn: "(e) RSS per idle conn, KiB",
  },
  f: { pub_per_s: "(f) fan-out to 1,000 subs, published msg/s", delivered_per_s: "(f) delivered msg/s" },
  g: {
    off_msg_per_s: "(g) 4 KiB JSON echo, deflate off, msg/s",
    on_msg_per_s: "(g) same, deflate on, msg/s",
    on_off: "(g) deflate on ÷ off",
    server_ratio: "(g) server's compression ratio",
  },
};
const LOWER = new Set([
  "p50_us",
  "p99_us",
  "open_s",
  "rss_mib",
  "rss_kib_per_conn",
  "server_ratio",
  "server_us_per_msg",
]);
// Rows left out of the Wisp ÷ native table: a ratio of two ratios says little.
const NO_RATIO = new Set(["on_off", "server_ratio"]);

const haveWisp = fs.existsSync(path.join(ROOT, "mod.ts"));
// A server marked `optIn` runs only when --servers names it.
const chosen = SERVERS.filter((s) =>
  (opts.servers ? opts.servers.includes(s.id) : !s.optIn) && (haveWisp || !s.wisp)
);

// --baseline: the tracked files of that revision (exported once into bench/.build), and each Wisp
// server again, run from there next to the work tree's.
const baseline = opts.baseline === null ? null : exportRevision(ROOT, opts.baseline);
// Servers that run back to back in every round: a Wisp server and its baseline stay together.
const groups = chosen.map((s) =>
  baseline && s.wisp
    ? [s, {
      ...s,
      id: `${s.id}@${baseline.commit}`,
      label: `${s.label} @${baseline.commit}`,
      cwd: baseline.dir,
      before: s.id,
    }]
    : [s]
);
const servers = groups.flat();
const scenarios = SCENARIOS.filter((s) => !opts.scenarios || opts.scenarios.includes(s.id));

// --- server processes ------------------------------------------------------------

// Every server runs in its own process group; run.sh's trap reads this file to
// kill what is left if this driver itself dies.
const PGID_FILE = path.join(BUILD, "servers.pgids");
const live = killOnExit(saveLive);
function saveLive() {
  fs.writeFileSync(PGID_FILE, [...live].map((g) => `${g}\n`).join(""));
}

// Away from bench/attack.mjs's ports (23000 on) and fanout_redis.mjs's (25000 on).
const freePort = portsFrom(21000);

function startServer(argv, port, logFile, cwd) {
  const server = launchGroup(live, ["taskset", "-c", SERVER_CORE, ...argv], { logFile, cwd, name: "server" });
  saveLive();
  return untilListening(server, port);
}

async function stopServer(server) {
  const signal = (name) => {
    try {
      process.kill(-server.pgid, name);
    } catch { /* the whole group is gone */ }
  };
  if (!server.exited) {
    const exited = new Promise((resolve) => server.child.once("exit", resolve));
    signal("SIGTERM");
    await Promise.race([exited, sleep(3000)]);
  }
  signal("SIGKILL"); // anything of the group that lingers
  live.delete(server.pgid);
  saveLive();
}

// --- load generator ----------------------------------------------------------------

// Starts the load generator; next() yields its JSON lines, release() closes its
// stdin (which ends a hold), finish() also waits for it to exit.
function generator(args, { timeoutS, hold = false }) {
  const child = spawn("taskset", ["-c", GEN_CORE, LOADGEN, ...args.map(String)], {
    stdio: [hold ? "pipe" : "ignore", "pipe", "inherit"],
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutS * 1000);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    async next() {
      const { value, done } = await lines.next();
      if (done) throw new Error("load generator ended without a result (timed out?)");
      const result = JSON.parse(value);
      if (result.error) throw new Error(`load generator: ${result.error}`);
      if (result.errors) throw new Error(`load generator: ${result.errors} connections lost`);
      return result;
    },
    release() {
      child.stdin?.end();
    },
    async finish() {
      child.stdin?.end();
      await exited;
      clearTimeout(timer);
    },
  };
}

async function runGenerator(args, timeoutS) {
  const gen = generator(args, { timeoutS });
  try {
    return await gen.next();
  } finally {
    await gen.finish();
  }
}

// Scenario (e): a first small batch of connections warms the server's upgrade
// path, so one-time costs (JIT, pools) land in the baseline rather than in the
// per-connection figure; then 10,000 are opened and held while RSS is read.
async function measureIdle(port, server) {
  const warm = await runGenerator(["-m", "connect", "-p", port, "-c", 500], 60);
  await sleep(500);
  const before = rssKiB(server.pid);
  const gen = generator(["-m", "connect", "-p", port, "-c", IDLE_CONNS, "-k", 256], {
    timeoutS: 120,
    hold: true,
  });
  try {
    const result = await gen.next();
    await sleep(1000); // let the server finish settling the last connections
    const after = rssKiB(server.pid);
    gen.release();
    const { still_open } = await gen.next();
    if (still_open !== IDLE_CONNS) {
      throw new Error(`server dropped ${IDLE_CONNS - still_open} idle connections`);
    }
    return {
      ...result,
      cpu_s: warm.cpu_s + result.cpu_s,
      rss_mib: after / 1024,
      rss_kib_per_conn: (after - before) / IDLE_CONNS,
    };
  } finally {
    await gen.finish();
  }
}

async function runOne(server, scenario, round, logDir) {
  if (scenario.deflate) return await runDeflate(server, scenario, round, logDir);
  const make = scenario.connect
    ? server.connect ?? server.echo
    : scenario.fanout
    ? server.fanout
    : server.echo;
  if (!make) return { skipped: true };
  return await measure(make, server, scenario, path.join(logDir, `${round}-${scenario.id}-${server.id}.log`));
}

// Scenario (g): the same server program twice, each time started afresh,
// first without the extension offered, then with it; a server that cannot
// compress (no `deflate`) runs its plain echo for the "off" row only.
async function runDeflate(server, scenario, round, logDir) {
  const make = server.deflate ?? server.echo;
  if (!make) return { skipped: true };
  const log = (mode) => path.join(logDir, `${round}-${scenario.id}-${mode}-${server.id}.log`);
  const off = await measure(make, server, scenario, log("off"));
  const on = server.deflate ? await measure(make, server, scenario, log("on"), ["-z"]) : { skipped: true };
  // Each row comes from one run or both: n/a or fail when one of them is.
  const r = { off, on, na: [], failed: [], cpuOf: {}, othersOf: {} };
  const row = (key, runs, value) => {
    if (runs.some((run) => run.skipped)) r.na.push(key);
    else if (runs.some((run) => run.error)) r.failed.push(key);
    else {
      r[key] = value();
      r.cpuOf[key] = Math.max(...runs.map((run) => run.cpu));
      r.othersOf[key] = Math.max(...runs.map((run) => run.others));
    }
  };
  row("off_msg_per_s", [off], () => off.msg_per_s);
  row("on_msg_per_s", [on], () => on.msg_per_s);
  row("on_off", [off, on], () => on.msg_per_s / off.msg_per_s);
  row("server_ratio", [on], () => on.server_ratio);
  const errors = [["off", off], ["on", on]].filter(([, run]) => run.error);
  if (errors.length) r.partError = errors.map(([mode, run]) => `deflate ${mode}: ${run.error}`).join("; ");
  return r;
}

// One run on a freshly started `server`: `make` gives its command line.
async function measure(make, server, scenario, logFile, extraGen = []) {
  const port = await freePort();
  let srv;
  try {
    srv = await startServer(make(port), port, logFile, server.cwd ?? ROOT);
    const t0 = Date.now(), machine0 = machineCpuS(), server0 = processCpuS(srv.pid);
    const result = scenario.connect ? await measureIdle(port, srv) : await runGenerator(
      [...scenario.gen, ...extraGen, "-p", port, "-d", opts.seconds, "-w", opts.warmup],
      opts.warmup + opts.seconds + 60,
    );
    if (srv.exited) throw new Error("server exited during the run");
    const serverCpuS = processCpuS(srv.pid) - server0;
    const others = (machineCpuS() - machine0 - serverCpuS - result.cpu_s) / ((Date.now() - t0) / 1000);
    // The server's CPU time per echoed message (warm-up included in both counts: the generator
    // counts echoes from its start): steadier than throughput on a machine that drifts.
    const perMessage = result.messages_total
      ? { server_us_per_msg: serverCpuS * 1e6 / result.messages_total }
      : {};
    return { ...result, ...perMessage, others };
  } catch (err) {
    // The log's first error line usually says why; the whole log is kept.
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").split("\n") : [];
    const hint = log.find((l) => /error/i.test(l)) ?? log.findLast((l) => l.trim());
    return {
      error: `${err.message}${hint ? ` (server log: ${hint.trim()})` : ""}; ${path.relative(ROOT, logFile)}`,
    };
  } finally {
    if (srv) await stopServer(srv);
  }
}

// --- report ------------------------------------------------------------------------

// One round's value of one row.  A scenario (g) result holds rows of two runs,
// so n/a, failure and the CPU figures can differ from row to row.
function entry(r, key) {
  if (r.skipped || r.na?.includes(key)) return { na: true };
  if (r.error || r.failed?.includes(key)) return { failed: true };
  return { value: r[key], cpu: r.cpuOf?.[key] ?? r.cpu, others: r.othersOf?.[key] ?? r.others };
}

function cell(runs, key) {
  const counted = runs.map((r) => entry(r, key)).filter((e) => !e.na);
  if (!counted.length) return "n/a";
  const ok = counted.filter((e) => !e.failed);
  if (!ok.length) return "fail";
  let text = fmt(median(ok.map((e) => e.value)));
  if (ok.some((e) => e.cpu > GEN_BOUND)) text += " †";
  if (ok.some((e) => e.others > BUSY)) text += " ‡";
  if (ok.length < counted.length) text += ` (${ok.length}/${counted.length} ok)`;
  return text;
}

function medianOf(runs, key) {
  const ok = runs.map((r) => entry(r, key)).filter((e) => !e.na && !e.failed);
  return ok.length ? median(ok.map((e) => e.value)) : null;
}

function report(results, meta) {
  // The server's CPU time per message where the generator counts messages: what a server costs
  // even where the generator, not the server, set the pace.
  const cpuRows = scenarios
    .filter((sc) => servers.some((s) => results[sc.id][s.id].some((r) => r.server_us_per_msg !== undefined)))
    .map((sc) => ({ sc, key: "server_us_per_msg" }));
  const rows = [...scenarios.flatMap((sc) => sc.rows.map((key) => ({ sc, key }))), ...cpuRows];
  const label = ({ sc, key }) =>
    key === "server_us_per_msg"
      ? `(${sc.id}) server CPU µs per ${sc.fanout ? "delivery" : "message"}`
      : ROWS[sc.id][key];
  const better = (key) => (LOWER.has(key) ? "lower" : "higher");
  const medians = table(
    ["metric", "better", ...servers.map((s) => s.label)],
    rows.map((row) => [
      label(row),
      better(row.key),
      ...servers.map((s) => cell(results[row.sc.id][s.id], row.key)),
    ]),
  );
  // Ratios of medians, first ÷ second server of each pair.
  const ratioTable = (title, ratioRows, pairs) =>
    table(
      [title, "better", ...pairs.map(([a, b]) => `${a.label} ÷ ${b.label}`)],
      ratioRows.map(({ sc, key }) => [
        label({ sc, key }),
        better(key),
        ...pairs.map(([a, b]) => {
          const x = medianOf(results[sc.id][a.id], key), y = medianOf(results[sc.id][b.id], key);
          return x === null || y === null || y === 0 ? "–" : `${(x / y).toFixed(2)}×`;
        }),
      ]),
    );
  const ratioRows = rows.filter(({ key }) => !NO_RATIO.has(key));
  const pairs = [["wisp-deno", "deno"], ["wisp-bun", "bun"], ["wisp-bun-transient", "bun"], [
    "wisp-node",
    "ws",
  ]]
    .map(([w, n]) => [servers.find((s) => s.id === w), servers.find((s) => s.id === n)])
    .filter(([w, n]) => w && n);
  const ratios = pairs.length
    ? ratioTable("metric (Wisp ÷ native)", ratioRows, pairs)
    : "(needs Wisp and its native baseline in the run)";
  // With --baseline: each Wisp server ÷ itself at the baseline revision.
  const versus = baseline === null ? "" : `
## Work tree relative to ${baseline.commit} (${opts.baseline}; ratio of medians)

${
    ratioTable(
      "metric (work tree ÷ baseline)",
      ratioRows,
      servers.filter((s) => s.before).map((s) => [servers.find((t) => t.id === s.before), s]),
    )
  }
`;
  const everyRound = table(
    ["metric", ...servers.map((s) => s.label)],
    rows.map(({ sc, key }) => [
      label({ sc, key }),
      ...servers.map((s) =>
        results[sc.id][s.id].map((r) => {
          const e = entry(r, key);
          return e.na ? "n/a" : e.failed ? "fail" : fmt(e.value);
        }).join(" / ")
      ),
    ]),
  );
  const failures = scenarios.flatMap((sc) =>
    servers.flatMap((s) =>
      results[sc.id][s.id].flatMap((r, i) => {
        const error = r.error ?? r.partError;
        return error ? [`- (${sc.id}) ${s.label}, round ${i + 1}: ${error}`] : [];
      })
    )
  );
  return `# Wisp benchmark, ${meta.started}

Command: \`${meta.command}\`

- Machine: ${meta.machine}
- Runtimes: ${meta.versions}
- Wisp: ${meta.tree}
- Servers pinned to core ${SERVER_CORE}, load generator to core ${GEN_CORE}; every server is started
  afresh for each scenario and round. ${opts.rounds} round(s); throughput runs count ${opts.seconds} s after
  ${opts.warmup} s of warm-up; latency takes ${opts.roundTrips.toLocaleString("en-US")} round trips after a
  warm-up tenth. Took ${meta.took}.${haveWisp ? "" : "\n- Wisp rows are missing: mod.ts does not exist yet."}

## Medians

${medians}

MB/s is echoed payload (10⁶ bytes) per second one way. † = the load generator used more than
${GEN_BOUND * 100}% of its core in at least one round, so that number is the generator's limit, not the
server's. ‡ = other processes used more than ${BUSY * 100}% of a core during at least one round,
so that number is suspect. n/a = the server has no such mode; fail = every round failed (see below).
${scenarios.filter((sc) => sc.deflate).map((sc) => `\n${deflateNotes(sc, results)}\n`).join("")}
## Wisp relative to its runtime's native server (on Node: ws; ratio of medians)

Above 1× means Wisp's number is bigger: good where better is "higher" (throughput, conn/s),
bad where better is "lower" (latency, open time, RSS).

${ratios}
${versus}
## Every round (in order)

${everyRound}
${failures.length ? `\n## Failures\n\n${failures.join("\n")}\n` : ""}`;
}

// Scenario (g): the message, the generator's own compression, and what each
// server agreed to in its 101.
function deflateNotes(sc, results) {
  const size = Number(sc.gen[sc.gen.indexOf("-s") + 1]).toLocaleString("en-US");
  const onRuns = (s) => results.g[s.id].map((r) => r.on).filter((on) => on && !on.error && !on.skipped);
  const lines = servers.filter((s) => s.echo).map((s) => {
    if (!s.deflate) return `- ${s.label}: has no permessage-deflate, so its "on" row is n/a`;
    const ons = onRuns(s);
    if (!ons.length) return `- ${s.label}: no run with compression succeeded`;
    const agreed = [...new Set(ons.map((on) => `\`${on.extensions}\``))].join(" or ");
    const share = median(ons.map((on) => on.compressed_share));
    const bytes = median(ons.map((on) => on.reply_bytes_per_msg));
    return `- ${s.label}: ${agreed}; ${(share * 100).toFixed(0)}% of replies compressed, ` +
      `${fmt(bytes)} B of payload per reply`;
  });
  const client = servers.flatMap(onRuns)[0];
  const own = client
    ? ` (${client.client_frame_bytes.toLocaleString("en-US")} B, ratio ${client.client_ratio.toFixed(2)})`
    : "";
  return [
    `(g): the message is ${size} B of JSON text (an array of user records, the same in every run). With`,
    "deflate on, the generator offers `permessage-deflate; client_no_context_takeover; server_no_context_takeover`",
    `and sends one frame deflated once${own}; with deflate off, it offers no extension. The first reply`,
    'on every connection is inflated if compressed and compared with the message. "Deflate on ÷ off" is the',
    `median of each round's ratio; the server's compression ratio is its replies' payload bytes ÷ ${size} B.`,
    "What each server's 101 agreed to (`Sec-WebSocket-Extensions`):",
    "",
    ...lines,
  ].join("\n");
}

// --- main ----------------------------------------------------------------------------

const cpuNote = (r) =>
  `generator ${(r.cpu * 100).toFixed(0)}% of its core, others ${(r.others * 100).toFixed(0)}% of a core`;

// One run's line on stderr while the rounds go.
function progress(sc, r) {
  if (r.error) return `FAILED: ${r.error}`;
  if (!sc.deflate) return `${sc.rows.map((k) => `${k} ${fmt(r[k])}`).join(", ")}; ${cpuNote(r)}`;
  const run = (mode, x, extra) =>
    x.skipped
      ? `deflate ${mode} n/a`
      : x.error
      ? `deflate ${mode} FAILED: ${x.error}`
      : `deflate ${mode} ${fmt(x.msg_per_s)} msg/s${extra(x)} (${cpuNote(x)})`;
  return `${run("off", r.off, () => "")}; ${run("on", r.on, (x) => `, ratio ${x.server_ratio.toFixed(2)}`)}`;
}

function machineInfo() {
  return {
    machine: `${machineLine()}, fd limit ${firstLine("sh", ["-c", "ulimit -n"])}`,
    versions: [
      firstLine(DENO, ["--version"]),
      `bun ${firstLine(BUN, ["--version"])}`,
      `node ${process.version} (ws ${packageVersion(ROOT, "ws")})`,
      firstLine("cc", ["--version"]),
    ].join("; "),
  };
}

async function main() {
  if (os.availableParallelism() < 2) {
    throw new Error("needs 2 cores: one for the servers, one for the generator");
  }
  const start = new Date();
  const tree = treeState(ROOT);
  const { started, stamp, logDir } = startRun("logs");
  const results = Object.fromEntries(
    scenarios.map((sc) => [sc.id, Object.fromEntries(servers.map((s) => [s.id, []]))]),
  );
  for (let round = 1; round <= opts.rounds; round++) {
    // Rotate the order each round so none always runs first; a Wisp server and its baseline take
    // turns at going first.
    const order = rotated(groups, round)
      .flatMap((group) => round % 2 === 0 ? [...group].reverse() : group);
    for (const sc of scenarios) {
      for (const server of order) {
        const r = await runOne(server, sc, round, logDir);
        results[sc.id][server.id].push(r);
        if (r.skipped) continue;
        console.error(`[round ${round}/${opts.rounds}] (${sc.id}) ${server.label}: ${progress(sc, r)}`);
      }
    }
  }
  const took = `${((Date.now() - start) / 60_000).toFixed(1)} min`;
  const text = report(results, {
    started,
    command: process.env.BENCH_CMD ?? `node bench/run.mjs ${process.argv.slice(2).join(" ")}`,
    took,
    tree,
    ...machineInfo(),
  });
  const file = path.join(ROOT, "bench/results", `${stamp}.md`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  console.log(text);
  console.log(`Saved to ${path.relative(ROOT, file)}; server logs in ${path.relative(ROOT, logDir)}/`);
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
