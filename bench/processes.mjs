// What the bench drivers (run.mjs, attack.mjs, fanout_redis.mjs, scale.mjs, http.mjs) share: server
// processes (started in groups of their own, waited for until they listen, killed as a group) and
// their ports, what /proc tells about a process (CPU time, memory), the machine and versions a
// report names, and Wisp as of another git revision.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { BUILD, ROOT } from "./paths.mjs";

/**
 * Makes every process group put in the returned set die with this process, however it ends: at
 * its end, on an uncaught error, or on SIGINT, SIGTERM or SIGHUP (which exit with 130). Children
 * run in their own groups (`detached`) so that a launcher's helpers (taskset, a supervisor's
 * workers) die with them. Call it once per script.
 * @param {() => void} [afterKill] runs after the groups are killed, e.g. to record or clean up
 * @returns {Set<number>} the pgids to kill; add each child's when it starts, delete it once stopped
 */
export function killOnExit(afterKill) {
  const live = new Set();
  process.on("exit", () => {
    for (const pgid of live) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch { /* already gone */ }
    }
    live.clear();
    afterKill?.();
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => {
      console.error(`\n${signal}: stopping servers`);
      process.exit(130); // which runs the "exit" handler above
    });
  }
  return live;
}

/** The environment servers run with: no colours, update checks or telemetry in their logs. */
export const SERVER_ENV = { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", DO_NOT_TRACK: "1" };

/**
 * Starts `argv` in a process group of its own, put in `live` (see {@linkcode killOnExit}), with its
 * output in `logFile`. `exited` and `exit` (a signal's name, "code N" or the spawn error) say when
 * and how its first process ended.
 * @param {Set<number>} live
 * @param {string[]} argv
 * @param {{ logFile: string, cwd?: string, name?: string }} options
 */
export function launchGroup(live, argv, { logFile, cwd = ROOT, name = path.basename(argv[0]) }) {
  const fd = fs.openSync(logFile, "w");
  const child = spawn(argv[0], argv.slice(1), {
    cwd,
    env: SERVER_ENV,
    detached: true,
    stdio: ["ignore", fd, fd],
  });
  fs.closeSync(fd);
  const proc = { name, child, pgid: child.pid, pid: null, logFile, exited: false, exit: null };
  live.add(proc.pgid);
  const ended = (how) => Object.assign(proc, { exited: true, exit: proc.exit ?? how });
  child.on("exit", (code, signal) => ended(signal ?? `code ${code}`));
  child.on("error", (error) => ended(error.message));
  return proc;
}

/** The last three lines `proc` logged, on one line. */
export function logTail(proc) {
  return fs.existsSync(proc.logFile)
    ? fs.readFileSync(proc.logFile, "utf8").trim().split("\n").slice(-3).join(" | ")
    : "";
}

/**
 * Waits (up to 30 s) until a process of `proc`'s group listens on `port`, and sets `proc.pid` to
 * it; throws, with the end of its log, when the group's first process ends before.
 */
export async function untilListening(proc, port) {
  const deadline = Date.now() + 30_000;
  while (!(proc.pid = listenerPid(proc.pgid, port))) {
    if (proc.exited) throw new Error(`${proc.name} exited (${proc.exit}) before listening: ${logTail(proc)}`);
    if (Date.now() > deadline) throw new Error(`${proc.name} did not listen on ${port} within 30 s`);
    await sleep(50);
  }
  return proc;
}

/**
 * Kills `proc`'s whole group outright (nothing here needs a graceful shutdown, and a hung server
 * must not stall a run), waits up to 3 s for its first process, and takes it out of `live`.
 */
export async function killGroup(live, proc) {
  try {
    process.kill(-proc.pgid, "SIGKILL");
  } catch { /* the whole group is gone */ }
  if (!proc.exited) {
    await Promise.race([new Promise((resolve) => proc.child.once("exit", resolve)), sleep(3000)]);
  }
  live.delete(proc.pgid);
}

/**
 * A run begun now: its local start time as the reports print it ("2025-01-31 12:34:56"), that
 * time as a file-name stamp, and a new directory for its server logs, `bench/.build/LOGS/STAMP`.
 * @param {string} logs
 */
export function startRun(logs) {
  const started = new Date().toLocaleString("sv-SE");
  const stamp = started.replace(" ", "-").replaceAll(":", "");
  const logDir = path.join(BUILD, logs, stamp);
  fs.mkdirSync(logDir, { recursive: true });
  return { started, stamp, logDir };
}

/** `items` rotated by `round - 1` places, so that in interleaved rounds none always goes first. */
export function rotated(items, round) {
  const shift = (round - 1) % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

/**
 * Returns a `freePort()` that resolves to a port free on 127.0.0.1, probing upward from `start`
 * and never giving the same port twice. Start below the kernel's ephemeral range (32768 on), so
 * that none of this process's client sockets can take the port before the server binds it, and
 * give each script its own range, so that two scripts running at once do not race for one port.
 * Each call tries at most 1000 ports, then rejects.
 * @param {number} start the first port to try
 * @returns {() => Promise<number>}
 */
export function portsFrom(start) {
  let next = start;
  return async function freePort() {
    for (let tries = 0; tries < 1000; tries++) {
      const port = next++;
      const free = await new Promise((resolve) => {
        const probe = net.createServer().once("error", () => resolve(false));
        probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
      });
      if (free) return port;
    }
    throw new Error(`no free port in ${next - 1000}–${next - 1}`);
  };
}

/** Clock ticks per second, the unit of CPU times in /proc. */
export const HZ = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }));

/**
 * The process of group `pgid` that owns a socket listening on `port`: the real server,
 * whatever launcher or wrapper sits above it. Found through the listening sockets' inodes in
 * /proc, which needs no connection to the server; with SO_REUSEPORT several processes listen on
 * one port, each in its own group, and each is found in its own.
 * @param {number} pgid
 * @param {number} port
 * @returns {number | null} its pid, or null when none listens (yet)
 */
function listenerPid(pgid, port) {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const inodes = new Set();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of fs.readFileSync(file, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(hexPort) && f[3] === "0A") inodes.add(`socket:[${f[9]}]`);
    }
  }
  if (!inodes.size) return null;
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) !== pgid) continue;
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        if (inodes.has(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))) return Number(pid);
      }
    } catch { /* the process ended while we looked */ }
  }
  return null;
}

/**
 * CPU seconds the whole machine spent: user, nice, system, irq and softirq (a process's own
 * time includes the softirq work of loopback TCP done inside its system calls). What the
 * measured processes did not use of it was other work on the machine.
 * @returns {number}
 */
export function machineCpuS() {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/);
  return [1, 2, 3, 6, 7].reduce((sum, i) => sum + Number(f[i]), 0) / HZ;
}

/**
 * A process's CPU seconds so far, user and system, all its threads.
 * @param {number} pid
 * @returns {number}
 */
export function processCpuS(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / HZ; // utime, stime
}

/**
 * A process's resident memory (`VmRSS`), in KiB.
 * @param {number} pid
 * @returns {number}
 */
export function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)[1]);
}

/**
 * The tracked files of git revision `rev` of the tree at `root`, exported once into
 * `root/bench/.build/baseline/<commit>/` (sharing the tree's `node_modules`): Wisp as of then,
 * to run next to the work tree's (the drivers' `--baseline`).
 * @param {string} root the work tree
 * @param {string} rev any git revision
 * @returns {{ commit: string, dir: string }} the short commit and the directory
 */
export function exportRevision(root, rev) {
  const git = (...args) => execFileSync("git", ["-C", root, ...args], { encoding: "utf8" }).trim();
  const commit = git("rev-parse", "--short", `${rev}^{commit}`);
  const dir = path.join(root, "bench/.build/baseline", commit);
  if (!fs.existsSync(dir)) {
    // Unpacked beside it and renamed when complete, so that a failed export is never taken for one.
    const part = `${dir}.part`;
    fs.rmSync(part, { recursive: true, force: true });
    fs.mkdirSync(part, { recursive: true });
    execFileSync("git", ["-C", root, "archive", "-o", `${part}.tar`, commit]);
    execFileSync("tar", ["-x", "-f", `${part}.tar`, "-C", part]);
    fs.rmSync(`${part}.tar`);
    fs.symlinkSync(path.join(root, "node_modules"), path.join(part, "node_modules"));
    fs.renameSync(part, dir);
  }
  return { commit, dir };
}

/**
 * Which Wisp the work tree's servers ran: its commit, and whether it had changes of its own.
 * @param {string} root the work tree
 * @returns {string}
 */
export function treeState(root) {
  const git = (...args) => execFileSync("git", ["-C", root, ...args], { encoding: "utf8" }).trim();
  try {
    const dirty = git("status", "--porcelain", "--untracked-files=no") !== "";
    return `the work tree at ${git("rev-parse", "--short", "HEAD")}${
      dirty ? " with uncommitted changes" : ""
    }`;
  } catch {
    return "not in a git checkout";
  }
}

/** The first line `cmd` prints (on stdout, else stderr) when run with `args`, or "<cmd>: not found". */
export function firstLine(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return r.error ? `${path.basename(cmd)}: not found` : `${r.stdout}${r.stderr}`.split("\n")[0].trim();
}

/** The machine as every report names it: "N cores (CPU model), M GiB, Linux release". */
export function machineLine() {
  const cpu = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown CPU";
  return `${os.availableParallelism()} cores (${cpu}), ${
    (os.totalmem() / 2 ** 30).toFixed(0)
  } GiB, Linux ${os.release()}`;
}

/** The version of npm package `name` installed under `root`, or "?" when it is not. */
export function packageVersion(root, name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, "node_modules", name, "package.json"), "utf8")).version;
  } catch {
    return "?";
  }
}
