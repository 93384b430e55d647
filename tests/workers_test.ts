/**
 * `--workers N`: worker processes of the runtime running the tests share one port, a worker that
 * dies is restarted, and SIGTERM to the supervisor closes every client with 1001. Started as a
 * user starts them (`deno run -A mod.ts` or `bun run mod.ts`).
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { RawClient, upgradeRequest } from "./helpers/raw_client.ts";
import { runCli, startCli } from "./helpers/cli.ts";
import { until } from "./helpers/server.ts";

/** The pid the last line of `output` naming `who` ("supervisor" or "worker N") gives. */
function pidOf(output: string, who: string): number {
  const pattern = new RegExp(`${who} \\(pid (\\d+)\\)`, "g");
  const pids = [...output.matchAll(pattern)].map((match) => Number(match[1]));
  return pids.at(-1) ?? 0;
}

/** Opens a WebSocket and returns which worker answered (its X-Wisp-Worker header). */
async function workerOf(port: number): Promise<{ worker: string; client: RawClient }> {
  const client = await RawClient.connect(port);
  client.write(upgradeRequest("/"));
  const response = await client.readResponse(5000);
  assert.equal(response.status, 101);
  return { worker: response.headers.get("x-wisp-worker") ?? "", client };
}

/** Workers share their port through SO_REUSEPORT, which node:net (Node 20) does not offer. */
const onNode = !("Deno" in globalThis) && !("Bun" in globalThis);

describe("--workers", { skip: onNode ? "workers need SO_REUSEPORT, which node:net lacks" : false }, () => {
  it("runs two workers on one port, restarts one that dies, and stops all with 1001 on SIGTERM", async () => {
    const server = await startCli(["--echo", "--port", "0", "--workers", "2"], 30_000);
    const clients: RawClient[] = [];
    try {
      await until(
        () => /worker 2 .*listening/.test(server.output()) && /worker 1 .*listening/.test(server.output()),
        "both workers",
        20_000,
      );
      const seen = new Set<string>();
      for (let i = 0; i < 60 && seen.size < 2; i++) {
        const { worker, client } = await workerOf(server.port);
        seen.add(worker);
        client.destroy();
      }
      assert.deepEqual([...seen].sort(), ["1", "2"], "the kernel spread connections over both workers");

      const first = pidOf(server.output(), "worker 1");
      process.kill(first, "SIGKILL");
      await until(
        () => pidOf(server.output(), "worker 1") !== first && /worker 1 .*restarting/.test(server.output()),
        "worker 1 to come back",
        20_000,
      );

      for (let i = 0; i < 4; i++) clients.push((await workerOf(server.port)).client);
      process.kill(pidOf(server.output(), "supervisor"), "SIGTERM");
      for (const client of clients) assert.equal((await client.readClose(10_000)).code, 1001);
    } finally {
      for (const client of clients) client.destroy();
      await server.stop();
    }
  });

  it("refuses to run the chat demo on several workers without --redis, saying why", async () => {
    const { code, output } = await runCli(["--workers", "2"]);
    assert.equal(code, 2);
    assert.match(output, /add --redis/);
  });
});
