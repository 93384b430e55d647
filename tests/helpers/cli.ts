/**
 * Wisp's command line run as a child process, exactly as a user starts it (`deno run -A mod.ts`,
 * `bun run mod.ts` or `node --import ./scripts/node_ts.mjs mod.ts`, whichever runtime runs the tests).
 */

import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** A Wisp server running as a child process. */
export interface CliServer {
  /** The port it listens on. */
  port: number;
  /** The URL it printed. */
  url: string;
  /** Everything it printed so far (stdout and stderr), for failure messages. */
  output(): string;
  /** Kills it with SIGKILL and waits for it to exit. */
  stop(): Promise<void>;
}

const MOD_TS = fileURLToPath(new URL("../../mod.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** What Node 20 needs to run TypeScript (see the script). */
const NODE_TS = new URL("../../scripts/node_ts.mjs", import.meta.url).href;
const running = new Set<ChildProcess>();

// A test run that dies leaves no server behind.
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** The command line that starts `mod.ts` with `args` on the runtime running the tests, as the README says. */
function modCommand(args: string[]): [string, string[]] {
  if ("Bun" in globalThis) return [process.execPath, ["run", MOD_TS, ...args]];
  if ("Deno" in globalThis) return [Deno.execPath(), ["run", "-A", MOD_TS, ...args]];
  return [process.execPath, ["--import", NODE_TS, MOD_TS, ...args]];
}

/** A child process, the command that started it, and everything it printed so far. */
interface Spawned {
  child: ChildProcess;
  command: string;
  output: () => string;
}

/** Runs `file` with `argv`, collecting its output; the process is killed if the test run exits first. */
function spawnCommand(file: string, argv: string[]): Spawned {
  const child = spawn(file, argv, {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  child.once("close", () => running.delete(child));
  let output = "";
  const collect = (chunk: Uint8Array) => (output += new TextDecoder().decode(chunk));
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
  return { child, command: `${file} ${argv.join(" ")}`, output: () => output };
}

/**
 * Runs `mod.ts` with `args` on the runtime running the tests (see {@linkcode spawnCommand}),
 * under an open-file limit (`ulimit -n`) when one is given.
 */
function spawnMod(args: string[], openFileLimit?: number): Spawned {
  const [file, argv] = modCommand(args);
  if (openFileLimit === undefined) return spawnCommand(file, argv);
  return spawnCommand("bash", ["-c", `ulimit -n ${openFileLimit} && exec "$0" "$@"`, file, ...argv]);
}

/**
 * Starts `mod.ts` with `args` (under an open-file limit when one is given) and waits for its
 * "listening on URL" line (at most `ms`). Pass `--port 0` to get a free port.
 */
export function startCli(args: string[], ms = 20_000, openFileLimit?: number): Promise<CliServer> {
  return untilListening(spawnMod(args, openFileLimit), ms);
}

/**
 * Starts `file` with `argv` (a runtime and a script of its own that prints "listening on URL")
 * and waits for that line (at most `ms`).
 */
export function startListening(file: string, argv: string[], ms = 20_000): Promise<CliServer> {
  return untilListening(spawnCommand(file, argv), ms);
}

/** Resolves once `spawned` prints "listening on URL"; kills it and rejects if it exits or `ms` pass first. */
function untilListening({ child, command, output }: Spawned, ms: number): Promise<CliServer> {
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  };
  return new Promise<CliServer>((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      stop().then(() => reject(new Error(`${why}: ${command}\n--- output ---\n${output()}`)));
    };
    const timer = setTimeout(() => fail(`no "listening" line within ${ms} ms`), ms);
    child.stdout!.on("data", () => {
      const match = /listening on (\S+)\r?\n/.exec(output());
      if (match === null) return;
      clearTimeout(timer);
      const url = match[1];
      resolve({ port: Number(new URL(url).port), url, output, stop });
    });
    child.once("error", (error) => fail(`could not start: ${error.message}`));
    child.once("exit", (code, signal) => fail(`exited early (code ${code}, signal ${signal})`));
  });
}

/** How a command-line run ended. */
export interface CliExit {
  /** The exit code (null when a signal ended it). */
  code: number | null;
  /** stdout and stderr together. */
  output: string;
}

/** Runs `mod.ts` with `args` to completion (killed after `ms`), for flags that exit on their own. */
export function runCli(args: string[], ms = 20_000): Promise<CliExit> {
  const { child, output } = spawnMod(args);
  const timer = setTimeout(() => child.kill("SIGKILL"), ms);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output: output() });
    });
  });
}
