/**
 * What the command line needs of the process beyond the `process` global that Deno, Bun and
 * Node all have: reading a file, the core count, and starting the program again as a worker.
 * The server core never needs these.
 * @module
 */

// deno-lint-ignore no-explicit-any
const runtime = globalThis as any;
const onDeno = runtime.Deno !== undefined && runtime.Bun === undefined;

/** The text of the file at `path` (through `node:fs/promises`, which all three runtimes have). */
export function readTextFile(path: string): Promise<string> {
  return runtime.process.getBuiltinModule("node:fs/promises").readFile(path, "utf8");
}

/** How many cores the machine has (1 when the runtime does not say). */
export function coreCount(): number {
  return runtime.navigator?.hardwareConcurrency ?? 1;
}

/** A worker process started with {@linkcode spawnSelf}. */
export interface ChildProcess {
  /** Its process id. */
  readonly pid: number;
  /** Resolves with its exit code (null when a signal ended it) once it has exited. */
  readonly exited: Promise<number | null>;
  /** Sends it `signal` (nothing happens when it is gone). */
  kill(signal: "SIGTERM" | "SIGKILL"): void;
}

/**
 * Starts the running program again with `args` and extra `env`, on the same runtime, sharing
 * this process's standard output and error. On Deno it runs with `-A --unstable-net` (workers
 * listen with `reusePort`, which Deno keeps behind that flag). Its standard input is a pipe this
 * process holds and never writes to: the kernel closes it when this process ends, however it
 * ends (SIGKILL included), which is how the child learns of it ({@linkcode whenParentGone}).
 */
export function spawnSelf(args: string[], env: Record<string, string>): ChildProcess {
  if (runtime.Bun !== undefined) {
    const child = runtime.Bun.spawn([runtime.process.execPath, runtime.Bun.main, ...args], {
      env: { ...runtime.process.env, ...env },
      stdio: ["pipe", "inherit", "inherit"],
    });
    return {
      pid: child.pid,
      exited: child.exited.then(() => child.signalCode === null ? child.exitCode : null),
      kill: (signal) => child.kill(signal),
    };
  }
  if (onDeno) {
    const Deno = runtime.Deno;
    const main = decodeURIComponent(new URL(Deno.mainModule).pathname);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-net", main, ...args],
      env,
      stdin: "piped",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    return {
      pid: child.pid,
      exited: child.status.then((status: { code: number; signal: string | null }) =>
        status.signal === null ? status.code : null
      ),
      kill: (signal) => {
        try {
          child.kill(signal);
        } catch {
          // Already gone.
        }
      },
    };
  }
  throw new Error("--workers needs Deno or Bun to start worker processes");
}

/**
 * Resolves once standard input ends: for a process {@linkcode spawnSelf} started, when the process
 * that started it has gone (so that a worker does not outlive a supervisor that was killed).
 */
export function whenParentGone(): Promise<void> {
  return new Promise((resolve) => {
    const stdin = runtime.process.stdin;
    for (const event of ["end", "close", "error"]) stdin.once(event, () => resolve());
    stdin.resume(); // reads (and drops) whatever comes, so that the end is seen
  });
}
