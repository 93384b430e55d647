/**
 * One connection to Redis that comes back by itself, driven by a fake clock: the backoff between
 * attempts exactly (100 ms doubling to 5 s, jitter between half and all of it), kept growing by a
 * Redis that takes connections and refuses them, started again once a connection served; and a
 * connection that hears nothing for a ping interval dropped, without waiting for real time.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "node:net";
import { RedisServer, redisSkipReason } from "./helpers/redis.ts";
import { freePort, until } from "./helpers/server.ts";
import type { BackplaneEvent } from "../mod.ts";
import type { Clock } from "../src/pubsub/backoff.ts";
import { type LinkOwner, RedisLink } from "../src/pubsub/redis_link.ts";
import { encodeCommand, type RespValue } from "../src/pubsub/resp.ts";

const skip = redisSkipReason;
const WAIT = 5000;

/** A clock whose timers run only when the test says, with a fixed "random" number. */
class FakeClock implements Clock {
  readonly timers = new Set<{ ms: number; run: () => void }>();
  constructor(readonly randomValue: number) {}

  setTimeout(run: () => void, ms: number): unknown {
    const timer = { ms, run };
    this.timers.add(timer);
    return timer;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as { ms: number; run: () => void });
  }

  random(): number {
    return this.randomValue;
  }

  /** Waits until a timer is set, then runs it; returns its delay. */
  async fire(): Promise<number> {
    await until(() => this.timers.size > 0, "a timer", WAIT);
    const [timer] = this.timers;
    this.timers.delete(timer);
    timer.run();
    return timer.ms;
  }
}

/** A link to `port` on `clock`, and what it told its owner. */
function link(port: number, clock: Clock, pingInterval = 0) {
  const told = { ready: 0, down: 0, failed: [] as string[], events: [] as BackplaneEvent[] };
  const owner: LinkOwner = {
    ready: () => void told.ready++,
    down: () => void told.down++,
    report: (event) => told.events.push(event),
    failed: (why) => told.failed.push(why),
  };
  const made = new RedisLink(
    { username: "", password: "", pingInterval, clock },
    {
      role: "test",
      target: () => ({ hostname: "127.0.0.1", port }),
      pushes: false,
      limits: { maxBulkLength: 1 << 20, maxElements: 1024, maxDepth: 4 },
      servesWhileLoading: false,
    },
    owner,
  );
  return { link: made, told };
}

/** The reply to `command` on `link`. */
function ask(link: RedisLink, command: string[]): Promise<RespValue> {
  return new Promise((resolve) => assert.ok(link.write(encodeCommand(command), resolve)));
}

describe("Redis link: backoff and liveness on a fake clock", { skip }, () => {
  it("waits 100 ms doubling to 5 s between attempts while nothing listens, jitter between half and all", async () => {
    const port = await freePort();
    for (const [random, factor] of [[0, 0.5], [0.5, 0.75]]) {
      const clock = new FakeClock(random);
      const { link: made, told } = link(port, clock);
      void made.open();
      const waits = [];
      for (let i = 0; i < 9; i++) waits.push(await clock.fire());
      made.shutdown();
      assert.deepEqual(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000].map((ms) => ms * factor));
      assert.equal(told.failed.length, 9);
      assert.match(told.failed[0], /test: cannot connect to 127\.0\.0\.1:\d+/);
      assert.equal(
        told.events.filter((event) => event.type === "disconnected").length,
        1,
        "one loss, told once",
      );
    }
  });

  it("keeps the backoff growing while Redis takes connections and refuses them; one that serves starts it again", async () => {
    const redis = await RedisServer.start(["--maxclients", "1"]);
    let occupant = new Socket();
    try {
      // The one client Redis takes (once it has seen the start-up probe go, it answers PONG).
      await until(
        async () => {
          occupant.destroy();
          occupant = new Socket();
          const answer = await new Promise<string>((resolve) => {
            occupant.once("data", (chunk) => resolve(String(chunk)));
            occupant.once("error", () => resolve(""));
            occupant.connect(redis.port, "127.0.0.1", () => occupant.write("PING\r\n"));
          });
          return answer === "+PONG\r\n";
        },
        "the occupant to get in",
        WAIT,
      );
      const clock = new FakeClock(1);
      const { link: made, told } = link(redis.port, clock);
      void made.open();
      const refused = [];
      for (let i = 0; i < 4; i++) refused.push(await clock.fire());
      assert.deepEqual(refused, [100, 200, 400, 800]);
      assert.ok(
        told.events.some((event) =>
          /refused the connection: ERR max number of clients reached/.test(event.message)
        ),
      );
      assert.equal(told.ready, 0);
      // Redis has room again: an attempt gets in once Redis has seen the previous connection go.
      let wait = 800;
      const connect = async () => {
        const ready = told.ready;
        while (told.ready === ready) {
          await until(() => told.ready > ready || clock.timers.size > 0, "an answer", WAIT);
          if (told.ready === ready) wait = await clock.fire();
        }
      };
      occupant.destroy();
      await connect();
      assert.equal(made.reconnects, 0);
      // Lost before it served: the next wait goes on growing.
      made.drop("dropped by the test");
      const grown = Math.min(5000, wait * 2);
      assert.equal(wait = await clock.fire(), grown);
      await connect();
      assert.equal(told.down, 1);
      // This one serves (a reply that is no error): the wait after its loss is the first again.
      assert.deepEqual(await ask(made, ["PING"]), new TextEncoder().encode("PONG"));
      made.drop("dropped by the test");
      assert.equal(await clock.fire(), 100);
      made.shutdown();
    } finally {
      occupant.destroy();
      await redis.stop();
    }
  });

  it("drops a connection that hears nothing from Redis for a ping interval (frozen), and comes back", async () => {
    const redis = await RedisServer.start();
    const clock = new FakeClock(0);
    const { link: made, told } = link(redis.port, clock, 1000);
    try {
      void made.open();
      await until(() => told.ready === 1, "the connection", WAIT);
      redis.freeze();
      assert.equal(await clock.fire(), 1000); // heard the greeting since the start: pings
      assert.equal(await clock.fire(), 1000); // the ping unanswered: dropped
      await until(() => told.down === 1, "the drop", WAIT);
      assert.ok(
        told.events.some((event) => event.message === "test: no answer from Redis in 1000 ms; reconnecting"),
      );
      redis.thaw();
      await clock.fire(); // the backoff
      await until(() => told.ready === 2, "the connection again", WAIT);
      assert.equal(made.reconnects, 1);
    } finally {
      made.shutdown();
      redis.thaw();
      await redis.stop();
    }
  });
});
