// Plain-HTTP benchmark (issue #21): Wisp's `fetch` path on Deno, Bun and Node against Deno.serve,
// Bun.serve and node:http running the same handlers (bench/servers/http_*), and the floor under
// Wisp on each (its transport adapter answering with fixed bytes), loaded by wrk over keep-alive
// connections. Each round runs every handler on every server, each time on a freshly
// started server pinned to core 0, with wrk pinned to core 1; then it prints and saves the median
// tables to bench/results/http-<date>-<time>.md. See bench/README.md ("Plain HTTP").
// Usage: node bench/http.mjs [--rounds N] [--quick] [--servers ids] [--handlers ids]
//          [--seconds S] [--warmup S] [--connections N] [--retries N] [--baseline REV|DIR]...
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import {
  exportRevision,
  firstLine,
  HZ,
  killGroup,
  killOnExit,
  launchGroup,
  machineCpuS,
  machineLine,
  portsFrom,
  processCpuS,
  rotated,
  startRun,
  treeState,
  untilListening,
} from "./processes.mjs";
import { reply, REQUEST_BODY } from "./servers/http_handlers.mjs";
import { BUN, DENO, GEN_CORE, NODE_TS, ROOT, SERVER_CORE } from "./paths.mjs";
import { BUSY, fmt, GEN_BOUND, median, table } from "./report.mjs";

const WRK_SCRIPT = path.join(ROOT, "bench/http.lua");

// --- options -----------------------------------------------------------------------------------

const SERVER_IDS = [
  "wisp-deno",
  "deno",
  "floor-deno",
  "wisp-bun",
  "bun",
  "floor-bun",
  "wisp-node",
  "node",
  "floor-node",
];
const USAGE = `usage: node bench/http.mjs [--rounds N] [--quick] [--servers ids] [--handlers ids]
         [--seconds S] [--warmup S] [--connections N] [--retries N] [--baseline REV|DIR]...
  --rounds N        interleaved rounds to take medians over (default 3; --quick: 1)
  --quick           1 round of 2 s after 1 s of warm-up, a smoke test
  --servers ids     comma-separated subset of: ${SERVER_IDS.join(",")}
  --handlers ids    comma-separated subset of: hello,json
  --seconds S       counted whole seconds per run (default 5), after --warmup S (default 2)
  --connections N   keep-alive connections of wrk's one thread (default 64)
  --retries N       runs again (up to N times) a run during which other processes took more than
                    15% of a core, keeping the quietest try (default 1; --quick: 0)
  --baseline X      also run each Wisp server from git revision X (exported into bench/.build) or
                    from directory X (a Wisp tree: its mod.ts), with this tree's handlers,
                    interleaved with the work tree's; repeatable`;

function parseArgs(argv) {
  const o = {
    rounds: undefined,
    quick: false,
    servers: null,
    handlers: null,
    seconds: undefined,
    warmup: undefined,
    connections: 64,
    retries: undefined,
    baselines: [],
  };
  const number = (i) => {
    const x = Number(argv[i]);
    if (!(x > 0) || !Number.isFinite(x)) throw new Error(`${argv[i - 1]} needs a positive number\n${USAGE}`);
    return x;
  };
  const list = (i, known) => {
    const ids = (argv[i] ?? "").split(",");
    const unknown = ids.filter((id) => !known.includes(id));
    if (unknown.length) throw new Error(`unknown ${argv[i - 1]} ${unknown.join(",")}\n${USAGE}`);
    return ids;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--quick") o.quick = true;
    else if (a === "--rounds") o.rounds = Math.round(number(++i));
    else if (a === "--servers") o.servers = list(++i, SERVER_IDS);
    else if (a === "--handlers") o.handlers = list(++i, HANDLERS.map((h) => h.id));
    // wrk takes whole seconds.
    else if (a === "--seconds") o.seconds = Math.ceil(number(++i));
    else if (a === "--warmup") o.warmup = Math.ceil(number(++i));
    else if (a === "--connections") o.connections = Math.round(number(++i));
    else if (a === "--retries") o.retries = Math.max(0, Math.round(Number(argv[++i]) || 0));
    else if (a === "--baseline") {
      if (!argv[i + 1]) throw new Error(`--baseline needs a git revision or a directory\n${USAGE}`);
      o.baselines.push(argv[++i]);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  o.rounds ??= o.quick ? 1 : 3;
  o.seconds ??= o.quick ? 2 : 5;
  o.warmup ??= o.quick ? 1 : 2;
  o.retries ??= o.quick ? 0 : 1;
  return o;
}

// --- handlers and servers ----------------------------------------------------------------------

const HANDLERS = [
  {
    id: "hello",
    label: '(a) hello world: `new Response("hello world")`',
    short: "(a) hello",
    method: "GET",
    body: null,
    expected: "hello world",
  },
  {
    id: "json",
    label: `(b) POST ${Buffer.byteLength(REQUEST_BODY)} B of JSON, \`await request.json()\`, ` +
      `${Buffer.byteLength(JSON.stringify(reply(JSON.parse(REQUEST_BODY))))} B of JSON back ` +
      "(`Response.json`)",
    short: "(b) json",
    method: "POST",
    body: REQUEST_BODY,
    expected: JSON.stringify(reply(JSON.parse(REQUEST_BODY))),
  },
];

const opts = parseArgs(process.argv.slice(2));

const wispScript = path.join(ROOT, "bench/servers/http_wisp.ts");
// Wisp's server as run from `tree` (its mod.ts), with this tree's handlers.
const wispArgv = (runtime, tree) => (port, handler) => {
  const mod = pathToFileURL(path.join(tree, "mod.ts")).href;
  return [...runtime, wispScript, String(port), handler, mod];
};
const script = (runtime, file) => (port, handler) => [
  ...runtime,
  path.join(ROOT, "bench/servers", file),
  String(port),
  handler,
];
const RUNTIMES = {
  deno: [DENO, "run", "-A"],
  bun: [BUN, "run"],
  node: [process.execPath, "--import", NODE_TS],
};

// Each runtime's group: Wisp (and its baselines) next to the runtime's own server, and the floor
// under Wisp there: its transport adapter answering with fixed bytes (servers/http_floor.ts).
const PAIRS = [
  {
    runtime: "Deno",
    wisp: { id: "wisp-deno", label: "Wisp/Deno", runtime: RUNTIMES.deno },
    native: { id: "deno", label: "Deno.serve", argv: script(RUNTIMES.deno, "http_deno.ts") },
    floor: { id: "floor-deno", label: "floor/Deno", argv: script(RUNTIMES.deno, "http_floor.ts") },
  },
  {
    runtime: "Bun",
    wisp: { id: "wisp-bun", label: "Wisp/Bun", runtime: RUNTIMES.bun },
    native: { id: "bun", label: "Bun.serve", argv: script(RUNTIMES.bun, "http_bun.ts") },
    floor: { id: "floor-bun", label: "floor/Bun", argv: script(RUNTIMES.bun, "http_floor.ts") },
  },
  {
    runtime: "Node",
    wisp: { id: "wisp-node", label: "Wisp/Node", runtime: RUNTIMES.node },
    native: { id: "node", label: "node:http", argv: script([process.execPath], "http_node.mjs") },
    floor: { id: "floor-node", label: "floor/Node", argv: script(RUNTIMES.node, "http_floor.ts") },
  },
];

// --baseline: a directory as it is, or a git revision exported once.
const baselines = opts.baselines.map((x) => {
  if (fs.existsSync(path.join(x, "mod.ts"))) {
    return { label: path.basename(path.resolve(x)), dir: path.resolve(x) };
  }
  const { commit, dir } = exportRevision(ROOT, x);
  return { label: commit, dir, rev: x };
});

const chosen = (id) => !opts.servers || opts.servers.includes(id);
// Servers that run back to back in every round: a runtime's Wisp servers and its own server.
const groups = PAIRS.map((pair) => {
  const { wisp, native, floor } = pair;
  const wisps = !chosen(wisp.id) ? [] : [
    { ...wisp, wisp: true, argv: wispArgv(wisp.runtime, ROOT) },
    ...baselines.map((b) => ({
      ...wisp,
      id: `${wisp.id}@${b.label}`,
      label: `${wisp.label} @${b.label}`,
      wisp: true,
      baselineOf: wisp.id,
      argv: wispArgv(wisp.runtime, b.dir),
    })),
  ];
  return { pair, servers: [...wisps, ...[native, floor].filter((s) => chosen(s.id))] };
}).filter((g) => g.servers.length > 0);
const servers = groups.flatMap((g) => g.servers);
const handlers = HANDLERS.filter((h) => !opts.handlers || opts.handlers.includes(h.id));

// --- processes ---------------------------------------------------------------------------------

const live = killOnExit();
// Away from run.mjs's ports (21000 on), attack.mjs's (23000 on) and fanout_redis.mjs's (25000 on).
const freePort = portsFrom(27000);

function startServer(argv, port, logFile) {
  return untilListening(
    launchGroup(live, ["taskset", "-c", SERVER_CORE, ...argv], { logFile, name: "server" }),
    port,
  );
}

const stopServer = (server) => killGroup(live, server);

// One request on a connection of its own: the server must answer 200 with exactly the body the
// handler makes, so that every server is seen to do the same work before it is measured.
function probe(port, handler) {
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: "127.0.0.1",
      port,
      method: handler.method,
      agent: false,
      headers: handler.body === null ? {} : { "content-type": "application/json" },
      timeout: 5000,
    }, (response) => {
      const chunks = [];
      response.on("data", (chunk) => chunks.push(chunk));
      response.on("end", () => {
        const body = Buffer.concat(chunks).toString();
        if (response.statusCode !== 200) reject(new Error(`probe: status ${response.statusCode}`));
        else if (body !== handler.expected) reject(new Error(`probe: unexpected body ${body.slice(0, 80)}`));
        else resolve();
      });
    });
    request.on("timeout", () => request.destroy(new Error("probe: no answer within 5 s")));
    request.on("error", reject);
    request.end(handler.body ?? undefined);
  });
}

// wrk for `seconds` on one thread, pinned to the generator's core; resolves to the JSON line that
// bench/http.lua prints at the end.
function wrk(port, handler, seconds) {
  const args = [
    "-c",
    GEN_CORE,
    "wrk",
    "-t1",
    `-c${opts.connections}`,
    `-d${seconds}s`,
    "--timeout",
    "10s",
    "-s",
    WRK_SCRIPT,
    `http://127.0.0.1:${port}/`,
    "--",
    handler.id,
    ...(handler.body === null ? [] : [handler.body]),
  ];
  return new Promise((resolve, reject) => {
    // A group of its own, killed with the servers if this script ends first.
    const child = spawn("taskset", args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    live.add(child.pid);
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => out += d);
    child.stderr.on("data", (d) => err += d);
    const timer = setTimeout(() => child.kill("SIGKILL"), (seconds + 30) * 1000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      live.delete(child.pid);
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (code !== 0 || !line) return reject(new Error(`wrk failed (${code}): ${(err || out).trim()}`));
      const result = JSON.parse(line);
      const errors = Object.entries(result.errors).filter(([, n]) => n > 0);
      if (errors.length) {
        return reject(new Error(`wrk: ${errors.map(([kind, n]) => `${n} ${kind} errors`).join(", ")}`));
      }
      if (result.requests === 0) return reject(new Error("wrk: no request was answered"));
      resolve(result);
    });
  });
}

// One run of `handler` on a freshly started `server`: a probe, the warm-up, then the counted run.
async function measure(server, handler, logFile) {
  const port = await freePort();
  let srv;
  try {
    srv = await startServer(server.argv(port, handler.id), port, logFile);
    await probe(port, handler);
    await wrk(port, handler, opts.warmup);
    const t0 = performance.now(), machine0 = machineCpuS(), server0 = processCpuS(srv.pid);
    const r = await wrk(port, handler, opts.seconds);
    const serverS = processCpuS(srv.pid) - server0;
    const wallS = (performance.now() - t0) / 1000;
    if (srv.exited) throw new Error("server exited during the run");
    const wrkS = r.cpu_ticks / HZ; // its whole life, the short start included
    return {
      req_per_s: r.requests / (r.duration_us / 1e6),
      p50_ms: r.p50_us / 1000,
      p99_ms: r.p99_us / 1000,
      server_us_per_req: serverS * 1e6 / r.requests,
      server_core: serverS / wallS,
      gen_core: wrkS / (r.duration_us / 1e6),
      others: (machineCpuS() - machine0 - serverS - wrkS) / wallS,
    };
  } catch (err) {
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").split("\n") : [];
    const hint = log.find((l) => /error/i.test(l)) ?? log.findLast((l) => l.trim());
    return {
      error: `${err.message}${hint ? ` (server log: ${hint.trim()})` : ""}; ${path.relative(ROOT, logFile)}`,
    };
  } finally {
    if (srv) await stopServer(srv);
  }
}

// A run, and again up to --retries times while other processes took more than BUSY of a core
// during it: the least disturbed try counts (a failed one only when every try failed).
async function quietest(run) {
  let best = await run();
  for (let i = 0; i < opts.retries && (best.error || best.others > BUSY); i++) {
    const again = await run();
    if (best.error || (!again.error && again.others < best.others)) best = again;
  }
  return best;
}

// --- report ------------------------------------------------------------------------------------

const METRICS = [
  { key: "req_per_s", label: "req/s", better: "higher" },
  { key: "p50_ms", label: "p50 latency, ms", better: "lower" },
  { key: "p99_ms", label: "p99 latency, ms", better: "lower" },
  { key: "server_us_per_req", label: "server CPU µs per request", better: "lower" },
];

// The goals of issue #21: Wisp's req/s at least this share of its runtime's own server's, and on
// Deno its p99 at most twice Deno.serve's.
const GOALS = { Deno: { ratio: 0.6, p99: 2 }, Bun: { ratio: 0.8 }, Node: { ratio: 0.8 } };

const ok = (runs) => runs.filter((r) => !r.error);
const medianOf = (runs, key) => (ok(runs).length ? median(ok(runs).map((r) => r[key])) : null);

function cell(runs, key) {
  const good = ok(runs);
  if (!good.length) return "fail";
  let text = fmt(median(good.map((r) => r[key])));
  if (good.some((r) => r.gen_core > GEN_BOUND)) text += " †";
  if (good.some((r) => r.others > BUSY)) text += " ‡";
  if (good.length < runs.length) text += ` (${good.length}/${runs.length} ok)`;
  return text;
}

const ratio = (x, y) => (x === null || y === null || y === 0 ? null : x / y);
const times = (x) => (x === null ? "–" : `${x.toFixed(2)}×`);

function report(results, meta) {
  const rows = handlers.flatMap((h) => METRICS.map((m) => ({ h, m })));
  const rowLabel = ({ h, m }) => `${h.short}: ${m.label}`;
  const medians = table(
    ["metric", "better", ...servers.map((s) => s.label)],
    rows.map((row) => [
      rowLabel(row),
      row.m.better,
      ...servers.map((s) => cell(results[row.h.id][s.id], row.m.key)),
    ]),
  );
  // Every Wisp server (baselines too) and the floor ÷ its runtime's own server.
  const nativePairs = groups.flatMap(({ pair, servers: group }) => {
    const native = group.find((s) => s.id === pair.native.id);
    return native ? group.filter((s) => s.wisp || s.id === pair.floor.id).map((s) => [s, native]) : [];
  });
  const ratioTable = (title, pairs) =>
    table(
      [title, "better", ...pairs.map(([a, b]) => `${a.label} ÷ ${b.label}`)],
      rows.map((row) => [
        rowLabel(row),
        row.m.better,
        ...pairs.map(([a, b]) =>
          times(
            ratio(medianOf(results[row.h.id][a.id], row.m.key), medianOf(results[row.h.id][b.id], row.m.key)),
          )
        ),
      ]),
    );
  const ratios = nativePairs.length
    ? ratioTable("metric (Wisp ÷ native)", nativePairs)
    : "(needs a Wisp server and its runtime's own server in the run)";
  const baselinePairs = servers.filter((s) => s.baselineOf).map((
    s,
  ) => [servers.find((t) => t.id === s.baselineOf), s]);
  const versus = baselinePairs.length
    ? `\n## Work tree relative to the baselines (ratio of medians)\n\n${
      ratioTable("metric (work tree ÷ baseline)", baselinePairs)
    }\n`
    : "";
  const wispPairs = nativePairs.filter(([w]) => w.wisp);
  const goals = wispPairs.length
    ? table(
      ["server", "handler", "req/s ÷ native", "goal", "p99 ÷ native", "met"],
      wispPairs.flatMap(([w, n]) => {
        const goal = GOALS[groups.find((g) => g.servers.includes(w)).pair.runtime];
        return handlers.map((h) => {
          const rate = ratio(
            medianOf(results[h.id][w.id], "req_per_s"),
            medianOf(results[h.id][n.id], "req_per_s"),
          );
          const p99 = ratio(medianOf(results[h.id][w.id], "p99_ms"), medianOf(results[h.id][n.id], "p99_ms"));
          const met = rate !== null && rate >= goal.ratio &&
            (goal.p99 === undefined || (p99 !== null && p99 <= goal.p99));
          return [
            `${w.label} ÷ ${n.label}`,
            h.short,
            times(rate),
            `≥ ${goal.ratio}×${goal.p99 ? `, p99 ≤ ${goal.p99}×` : ""}`,
            times(p99),
            rate === null ? "–" : met ? "yes" : "no",
          ];
        });
      }),
    )
    : "";
  const everyRound = table(
    ["metric", ...servers.map((s) => s.label)],
    [
      ...rows.map((row) => [
        rowLabel(row),
        ...servers.map((s) =>
          results[row.h.id][s.id].map((r) => (r.error ? "fail" : fmt(r[row.m.key]))).join(" / ")
        ),
      ]),
      ...handlers.flatMap((h) =>
        [["server_core", "server's core"], ["gen_core", "wrk's core"], ["others", "others, of a core"]].map((
          [key, what],
        ) => [
          `${h.short}: ${what}`,
          ...servers.map((s) =>
            results[h.id][s.id].map((r) => (r.error ? "fail" : `${Math.round(r[key] * 100)}%`)).join(" / ")
          ),
        ])
      ),
    ],
  );
  // How far the rounds of one server strayed from their median: the run's noise.
  const spreads = handlers.flatMap((h) =>
    servers.map((s) => {
      const xs = ok(results[h.id][s.id]).map((r) => r.req_per_s);
      return xs.length > 1 ? Math.max(...xs.map((x) => Math.abs(x / median(xs) - 1))) : null;
    })
  ).filter((x) => x !== null);
  const noise = spreads.length
    ? `The rounds' req/s strayed from their server's median by ${
      Math.round(median(spreads) * 100)
    }% (median over servers and handlers), at most ${Math.round(Math.max(...spreads) * 100)}%.`
    : "One round: no spread to report.";
  const failures = handlers.flatMap((h) =>
    servers.flatMap((s) =>
      results[h.id][s.id].flatMap((
        r,
        i,
      ) => (r.error ? [`- ${h.short} ${s.label}, round ${i + 1}: ${r.error}`] : []))
    )
  );
  return `# Wisp HTTP benchmark, ${meta.started}

Command: \`${meta.command}\`

- Machine: ${meta.machine}
- Runtimes: ${meta.versions}
- Wisp: ${meta.tree}${
    baselines.map((b) => `\n- Baseline @${b.label}: ${b.rev ? `git revision ${b.rev}` : b.dir}`).join("")
  }
- Handlers: ${handlers.map((h) => h.label).join("; ")}. node:http does the same work its own way
  (bench/servers/http_node.mjs).
- wrk, 1 thread, ${opts.connections} keep-alive connections, pinned to core ${GEN_CORE}; servers pinned to
  core ${SERVER_CORE}, each started afresh for each handler and round, answering one probe request (its body
  checked) before ${opts.warmup} s of warm-up and ${opts.seconds} s counted. ${opts.rounds} round(s), took
  ${meta.took}.

## Medians

${medians}

Server CPU per request: the server process's user + system time (all its threads) during the counted
run ÷ requests answered. † = wrk used more than ${GEN_BOUND * 100}% of its core in at least one round, so that
number may be wrk's limit, not the server's. ‡ = other processes used more than ${
    BUSY * 100
  }% of a core during
at least one round, so that number is suspect. ${noise}

## Wisp relative to its runtime's own server (ratio of medians)

Above 1× means Wisp's number is bigger: good for req/s, bad for latency and CPU per request. The floor
(Wisp's transport adapter answering with fixed bytes, no HTTP layer) bounds what any HTTP layer on that
transport can reach.

${ratios}
${goals ? `\n## Goals of issue #21\n\n${goals}\n` : ""}${versus}
## Every round (in order)

${everyRound}
${failures.length ? `\n## Failures\n\n${failures.join("\n")}\n` : ""}`;
}

// --- main --------------------------------------------------------------------------------------

// wrk from Debian, installed with apt-get when missing and this runs as root.
function ensureWrk() {
  if (!spawnSync("wrk", ["-v"]).error) return;
  if (process.getuid?.() === 0 && !spawnSync("apt-get", ["--version"]).error) {
    console.error("bench: installing wrk with apt-get");
    let r = spawnSync("apt-get", ["install", "-y", "wrk"], { stdio: "inherit" });
    if (r.status !== 0) {
      spawnSync("apt-get", ["update"], { stdio: "inherit" });
      r = spawnSync("apt-get", ["install", "-y", "wrk"], { stdio: "inherit" });
    }
    if (r.status === 0) return;
  }
  throw new Error("bench: wrk is required (Debian/Ubuntu: apt-get install -y wrk)");
}

async function main() {
  if (os.availableParallelism() < 2) throw new Error("needs 2 cores: one for the servers, one for wrk");
  if (spawnSync("taskset", ["-V"]).error) throw new Error("bench: taskset is required (util-linux)");
  ensureWrk();
  const start = new Date();
  const tree = treeState(ROOT);
  const { started, stamp, logDir } = startRun("http-logs");
  const results = Object.fromEntries(
    handlers.map((h) => [h.id, Object.fromEntries(servers.map((s) => [s.id, []]))]),
  );
  for (let round = 1; round <= opts.rounds; round++) {
    // Rotate the runtimes each round so none always runs first; within a runtime, its servers take
    // turns at going first.
    const order = rotated(groups, round)
      .flatMap((g) => (round % 2 === 0 ? [...g.servers].reverse() : g.servers));
    for (const h of handlers) {
      for (const s of order) {
        const r = await quietest(() => measure(s, h, path.join(logDir, `${round}-${h.id}-${s.id}.log`)));
        results[h.id][s.id].push(r);
        console.error(
          `[round ${round}/${opts.rounds}] ${h.short} ${s.label}: ${
            r.error
              ? `FAILED: ${r.error}`
              : `${fmt(r.req_per_s)} req/s, p50 ${fmt(r.p50_ms)} ms, p99 ${fmt(r.p99_ms)} ms, ${
                fmt(r.server_us_per_req)
              } µs CPU/req; server ${Math.round(r.server_core * 100)}%, wrk ${
                Math.round(r.gen_core * 100)
              }%, others ${Math.round(r.others * 100)}% of a core`
          }`,
        );
      }
    }
  }
  const text = report(results, {
    started,
    command: `node bench/http.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(" ")}` : ""}`,
    took: `${((Date.now() - start) / 60_000).toFixed(1)} min`,
    tree,
    machine: machineLine(),
    versions: [
      firstLine(DENO, ["--version"]),
      `bun ${firstLine(BUN, ["--version"])}`,
      `node ${process.version}`,
      firstLine("wrk", ["-v"]).replace(/ Copyright.*/, ""),
    ].join("; "),
  });
  const file = path.join(ROOT, "bench/results", `http-${stamp}.md`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  console.log(text);
  console.log(`Saved to ${path.relative(ROOT, file)}; server logs in ${path.relative(ROOT, logDir)}/`);
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
