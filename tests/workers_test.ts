/**
 * `--workers N`: worker processes of the runtime running the tests share one port, each names
 * itself in `X-Wisp-Worker`, a worker that dies is restarted, SIGTERM to the supervisor closes
 * every client with 1001, and the chat demo's topics span the workers through the supervisor's
 * relay (or Redis with `--redis`). Started as a user starts them (`deno run -A mod.ts` or
 * `bun run mod.ts`).
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { frame, RawClient, TEXT, upgradeRequest } from "./helpers/raw_client.ts";
import { type CliServer, startCli } from "./helpers/cli.ts";
import { RedisServer, redisSkipReason } from "./helpers/redis.ts";
import { until } from "./helpers/server.ts";

const TIMEOUT = { timeout: 90_000 };
const decoder = new TextDecoder();

/** The pid the last line of `output` naming `who` ("supervisor" or "worker N") gives. */
function pidOf(output: string, who: string): number {
  const pattern = new RegExp(`${who} \\(pid (\\d+)\\)`, "g");
  const pids = [...output.matchAll(pattern)].map((match) => Number(match[1]));
  return pids.at(-1) ?? 0;
}

/** Whether process `pid` has exited (a zombie not yet reaped counts as exited). */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** How many times `pattern` occurs in `text`. */
function count(text: string, pattern: RegExp): number {
  return text.match(new RegExp(pattern.source, "g"))?.length ?? 0;
}

/** Opens a WebSocket on `path` and returns which worker answered (its X-Wisp-Worker header). */
async function workerOf(
  port: number,
  path = "/",
  headers: Record<string, string> = {},
): Promise<{ worker: string; client: RawClient }> {
  const client = await RawClient.connect(port);
  client.write(upgradeRequest(path, headers));
  const response = await client.readResponse(5000);
  assert.equal(response.status, 101);
  return { worker: response.headers.get("x-wisp-worker") ?? "", client };
}

/**
 * Connects chat clients until one is on each of `workers` (the kernel picks the worker: at most
 * 60 tries); the others are closed. Each has joined as "w" plus its worker's id.
 */
async function chatClientsOn(port: number, workers: string[]): Promise<Map<string, RawClient>> {
  const found = new Map<string, RawClient>();
  for (let i = 0; i < 60 && found.size < workers.length; i++) {
    const { worker, client } = await workerOf(port, "/chat", { "Sec-WebSocket-Protocol": "chat" });
    if (!workers.includes(worker) || found.has(worker)) {
      client.destroy();
      continue;
    }
    client.write(frame(TEXT, JSON.stringify({ type: "join", name: `w${worker}` })));
    assert.equal((await nextChat(client)).type, "welcome");
    found.set(worker, client);
  }
  assert.deepEqual([...found.keys()].sort(), [...workers].sort(), "clients on every worker asked for");
  return found;
}

/** The next chat message `client` gets. */
async function nextChat(
  client: RawClient,
  ms = 5000,
): Promise<{ type: string; text?: string; name?: string }> {
  return JSON.parse(decoder.decode((await client.readFrame(ms)).payload));
}

function say(client: RawClient, text: string): void {
  client.write(frame(TEXT, JSON.stringify({ type: "message", text })));
}

/** The texts of the chat messages `client` gets until one says `last` (joins, leaves and probes aside). */
async function textsUntil(client: RawClient, last: string): Promise<string[]> {
  const texts: string[] = [];
  for (let i = 0; i < 200; i++) {
    const message = await nextChat(client);
    if (message.type !== "message" || message.text === "probe") continue;
    if (message.text === last) return texts;
    texts.push(message.text!);
  }
  throw new Error(`no "${last}" among 200 messages`);
}

/**
 * Has `from` say "probe" until `to`, on another worker, hears one (each worker subscribes on its
 * own link, so the first messages may go before the other's subscription has arrived).
 */
async function untilHeard(from: RawClient, to: RawClient): Promise<void> {
  for (let i = 0; i < 40; i++) {
    say(from, "probe");
    const deadline = Date.now() + 250;
    try {
      while (Date.now() < deadline) {
        const message = await nextChat(to, 250);
        if (message.type === "message" && message.text === "probe") return;
      }
    } catch {
      // Nothing yet: probe again.
    }
  }
  throw new Error("no probe crossed the workers");
}

/** Waits until `server` printed that both of its workers listen (and, for the chat, joined the relay). */
async function bothUp(server: CliServer, relay: boolean): Promise<void> {
  await until(
    () =>
      /worker 1 .*listening/.test(server.output()) && /worker 2 .*listening/.test(server.output()) &&
      (!relay ||
        (/worker 1 joined the relay/.test(server.output()) &&
          /worker 2 joined the relay/.test(server.output()))),
    "both workers",
    30_000,
  );
}

/** Workers share their port through SO_REUSEPORT, which node:net (Node 20) does not offer. */
const onNode = !("Deno" in globalThis) && !("Bun" in globalThis);

describe("--workers", { skip: onNode ? "workers need SO_REUSEPORT, which node:net lacks" : false }, () => {
  it(
    "runs two workers on one port, restarts one that dies, and stops all with 1001 on SIGTERM",
    TIMEOUT,
    async () => {
      const server = await startCli(["--echo", "--port", "0", "--workers", "2"], 30_000);
      const clients: RawClient[] = [];
      try {
        await bothUp(server, false);
        assert.doesNotMatch(server.output(), /relay/, "the echo server has no topics to relay");
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
    },
  );

  it(
    "closes the workers when their supervisor is killed with SIGKILL (no orphans on the port)",
    TIMEOUT,
    async () => {
      const server = await startCli(["--echo", "--port", "0", "--workers", "2"], 30_000);
      let workers: number[] = [];
      try {
        await bothUp(server, false);
        workers = [pidOf(server.output(), "worker 1"), pidOf(server.output(), "worker 2")];
        const client = (await workerOf(server.port)).client;
        process.kill(pidOf(server.output(), "supervisor"), "SIGKILL");
        assert.equal((await client.readClose(10_000)).code, 1001, "its client is closed as on SIGTERM");
        await until(() => workers.every(gone), "both workers to exit", 20_000);
        assert.equal(count(server.output(), /the supervisor is gone; closing/), 2);
      } finally {
        for (const pid of workers) if (!gone(pid)) process.kill(pid, "SIGKILL");
        await server.stop();
      }
    },
  );

  it(
    "serves one chat room across both workers without Redis, and a restarted worker rejoins it",
    TIMEOUT,
    async () => {
      const server = await startCli(["--port", "0", "--workers", "2"], 30_000);
      const clients: RawClient[] = [];
      try {
        await bothUp(server, true);
        assert.match(
          server.output(),
          /runs 2 workers on port \d+, relaying their topics at 127\.0\.0\.1:\d+/,
        );
        const on = await chatClientsOn(server.port, ["1", "2"]);
        const [one, two] = [on.get("1")!, on.get("2")!];
        clients.push(one, two);
        await untilHeard(one, two);
        await untilHeard(two, one);

        // Each message once, in the order sent, on the other worker and back to the sender.
        const sent = ["a", "b", "c", "d", "e"];
        for (const text of sent) say(one, text);
        say(one, "last");
        assert.deepEqual(await textsUntil(two, "last"), sent);
        assert.deepEqual(await textsUntil(one, "last"), sent);

        // Worker 2 killed: the supervisor restarts it, it joins the relay again, and its new clients chat.
        const killed = pidOf(server.output(), "worker 2");
        process.kill(killed, "SIGKILL");
        await two.waitForEnd(10_000);
        await until(
          () =>
            pidOf(server.output(), "worker 2") !== killed &&
            count(server.output(), /worker 2 joined the relay/) === 2,
          "worker 2 to rejoin the relay",
          30_000,
        );
        assert.match(server.output(), /worker 2 left the relay/);
        const again = (await chatClientsOn(server.port, ["2"])).get("2")!;
        clients.push(again);
        await untilHeard(one, again);
        await untilHeard(again, one);
        say(again, "from the new worker 2");
        say(again, "end");
        assert.deepEqual(await textsUntil(one, "end"), ["from the new worker 2"]);
      } finally {
        for (const client of clients) client.destroy();
        await server.stop();
      }
    },
  );

  it("carries the chat through Redis instead of the relay with --redis", {
    ...TIMEOUT,
    skip: redisSkipReason,
  }, async () => {
    const redis = await RedisServer.start();
    const server = await startCli(["--port", "0", "--workers", "2", "--redis", redis.url], 30_000);
    const clients: RawClient[] = [];
    try {
      await bothUp(server, false);
      const on = await chatClientsOn(server.port, ["1", "2"]);
      clients.push(...on.values());
      await untilHeard(on.get("1")!, on.get("2")!);
      await untilHeard(on.get("2")!, on.get("1")!);
      assert.doesNotMatch(server.output(), /relay/);
      assert.equal(
        count(server.output(), /kind=backplane .*connected to 127\.0\.0\.1/),
        4,
        "two links per worker",
      );
    } finally {
      for (const client of clients) client.destroy();
      await server.stop();
      await redis.stop();
    }
  });
});
