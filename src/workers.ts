/**
 * `--workers N`: one supervisor process starts N worker processes of the same program, which all
 * serve the same port (SO_REUSEPORT: the kernel spreads new connections across them), restarts
 * a worker that dies (with backoff), and on SIGINT/SIGTERM stops them all gracefully.
 * @module
 */

import type { ChildProcess } from "./process.ts";

/** How the supervisor starts a worker and tells what happens (the process module, in the CLI). */
export interface WorkerHost {
  /** Starts worker `id` (1 to N). */
  spawn(id: number): ChildProcess;
  /** One line about the pool, for the operator. */
  log(line: string): void;
}

/** First wait before restarting a worker that died, and the longest (doubling in between). */
const FIRST_RESTART_MS = 250;
const LAST_RESTART_MS = 10_000;
/** A worker that ran this long before dying is restarted after the first wait again. */
const HEALTHY_MS = 10_000;
/** How long a graceful stop may take (each worker waits up to `closeTimeout` for its clients) before SIGKILL. */
const STOP_DEADLINE_MS = 15_000;

/** A running pool of workers. */
export class WorkerPool {
  readonly #host: WorkerHost;
  readonly #workers = new Map<number, ChildProcess>();
  readonly #restartMs = new Map<number, number>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #stopping: Promise<void> | null = null;

  /** Starts `count` workers through `host`. */
  constructor(count: number, host: WorkerHost) {
    this.#host = host;
    for (let id = 1; id <= count; id++) this.#start(id);
  }

  #start(id: number): void {
    const child = this.#host.spawn(id);
    const startedAt = Date.now();
    this.#workers.set(id, child);
    child.exited.then((code) => {
      if (this.#workers.get(id) === child) this.#workers.delete(id);
      if (this.#stopping !== null) return;
      const ranFor = Date.now() - startedAt;
      const wait = ranFor >= HEALTHY_MS ? FIRST_RESTART_MS : (this.#restartMs.get(id) ?? FIRST_RESTART_MS);
      this.#restartMs.set(id, Math.min(LAST_RESTART_MS, wait * 2));
      this.#host.log(
        `worker ${id} (pid ${child.pid}) exited with ${code ?? "a signal"}; restarting in ${wait} ms`,
      );
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        if (this.#stopping === null) this.#start(id);
      }, wait);
      this.#timers.add(timer);
    });
  }

  /**
   * Stops every worker with SIGTERM (each closes its clients with 1001 after what was already sent)
   * and resolves once all have exited; a worker still running after the deadline is killed.
   */
  stop(): Promise<void> {
    if (this.#stopping !== null) return this.#stopping;
    for (const timer of this.#timers) clearTimeout(timer);
    const children = [...this.#workers.values()];
    for (const child of children) child.kill("SIGTERM");
    const deadline = setTimeout(() => {
      for (const child of children) child.kill("SIGKILL");
    }, STOP_DEADLINE_MS);
    this.#stopping = Promise.all(children.map((child) => child.exited)).then(() => clearTimeout(deadline));
    return this.#stopping;
  }
}
