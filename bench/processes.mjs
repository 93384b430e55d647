// Child-process bookkeeping shared by the bench drivers (run.mjs, attack.mjs, fanout_redis.mjs).
import net from "node:net";

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
