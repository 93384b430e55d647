/**
 * The Redis backplane on a real Redis Cluster (three primaries started by the test): key slots as
 * Redis computes them, the slot map from CLUSTER SHARDS and CLUSTER SLOTS, sharded pub/sub and
 * streams whose topics live on different nodes, a node SIGKILLed and restarted on its data, and
 * a slot migrated from node to node (ASK, then MOVED) while messages flow.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  clusterSkipReason,
  fixtureStats,
  received,
  RedisCluster,
  redisCommand,
  type RedisServer,
  replyText,
  startWisp,
  twoProcesses,
} from "./helpers/redis.ts";
import { frame, RawClient, TEXT } from "./helpers/raw_client.ts";
import { until } from "./helpers/server.ts";
import { redisBackplane } from "../mod.ts";
import { keySlot } from "../src/pubsub/crc16.ts";
import { parseClusterShards, parseClusterSlots, type SlotRange } from "../src/pubsub/cluster.ts";
import { topicKeys } from "../src/pubsub/stream_script.ts";
import type { RespValue } from "../src/pubsub/resp.ts";

const skip = clusterSkipReason;
const WAIT = 5000;
/** Tests that start processes and restart Redis take longer than a runner's default timeout. */
const SLOW = { timeout: 30_000 };
const encoder = new TextEncoder();
const PREFIX = encoder.encode("wisp:");

/** The slot of a topic's channel (classic) or stream (streams). */
const channelSlot = (topic: string) => keySlot(encoder.encode(`wisp:${topic}`));
const streamSlot = (topic: string) => topicKeys(PREFIX, 16, topic).slot;

/** The ranges of the cluster as `CLUSTER SHARDS` tells them, sorted. */
async function shards(cluster: RedisCluster): Promise<SlotRange[]> {
  const reply = await redisCommand(cluster.nodes[0].port, ["CLUSTER", "SHARDS"]);
  return parseClusterShards(reply, "127.0.0.1")!.sort((a, b) => a.start - b.start);
}

/** For each node, in order, a topic whose key (as `slotOf` says) lives on that node. */
async function topicsOnEachNode(cluster: RedisCluster, slotOf: (topic: string) => number): Promise<string[]> {
  const ranges = await shards(cluster);
  const portOf = (slot: number) =>
    ranges.find((range) => range.start <= slot && slot <= range.end)!.node.port;
  return cluster.nodes.map((node) => {
    for (let i = 0;; i++) if (portOf(slotOf(`topic ${i}`)) === node.port) return `topic ${i}`;
  });
}

describe("Redis Cluster: slots and the slot map", { skip }, () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await RedisCluster.start();
  });
  after(async () => {
    await cluster?.stop();
  });

  it("computes every key's slot as Redis does, hash tags included", async () => {
    const keys = [
      "",
      "a",
      "123456789",
      "{user1000}.following",
      "{user1000}.followers",
      "foo{}{bar}",
      "foo{{bar}}zap",
      "foo{bar}{zap}",
      "{}",
      "{",
      "}{",
      "a{b",
      "café {ünï} 𝄞",
      ...Array.from({ length: 200 }, (_, i) => `wisp:{${i % 16}}s:room ${i}`),
    ].map((key) => encoder.encode(key));
    keys.push(Uint8Array.of(0, 255, 123, 0, 125, 13, 10), Uint8Array.of(123, 255, 254, 125, 1));
    for (const key of keys) {
      assert.equal(
        keySlot(key),
        await redisCommand(cluster.nodes[0].port, ["CLUSTER", "KEYSLOT", key]),
        String(key),
      );
    }
  });

  it("reads the same map from CLUSTER SHARDS and CLUSTER SLOTS, every slot owned by one of the three", async () => {
    const fromShards = await shards(cluster);
    const slots = await redisCommand(cluster.nodes[1].port, ["CLUSTER", "SLOTS"]);
    const fromSlots = parseClusterSlots(slots, "127.0.0.1")!.sort((a, b) => a.start - b.start);
    assert.deepEqual(fromSlots, fromShards);
    assert.equal(fromShards[0].start, 0);
    assert.equal(fromShards.at(-1)!.end, 16383);
    for (let i = 1; i < fromShards.length; i++) assert.equal(fromShards[i].start, fromShards[i - 1].end + 1);
    assert.deepEqual(
      [...new Set(fromShards.map((range) => range.node.port))].sort(),
      cluster.nodes.map((node) => node.port).sort(),
    );
    assert.equal(parseClusterShards([[encoder.encode("slots")]], "h"), null, "a malformed map is no map");
    assert.equal(
      parseClusterSlots([[1, 0, [encoder.encode("h"), 1]]], "h"),
      null,
      "nor a range that ends first",
    );
  });
});

describe("Redis Cluster: topics on every node, a node restarted, a slot migrated", { skip }, () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await RedisCluster.start();
  });
  after(async () => {
    await cluster?.stop();
  });

  for (const mode of ["sharded", "streams"] as const) {
    it(
      `${mode}: topics whose keys live on different nodes all deliver between Deno and Bun`,
      SLOW,
      async () => {
        const topics = await topicsOnEachNode(cluster, mode === "sharded" ? channelSlot : streamSlot);
        for (const node of cluster.nodes) await redisCommand(node.port, ["CONFIG", "RESETSTAT"]);
        const processes = await Promise.all([
          startWisp("deno", cluster.urls, mode),
          startWisp("bun", cluster.urls, mode),
        ]);
        const clients: RawClient[] = [];
        try {
          for (const topic of topics) {
            const query = `/?topic=${encodeURIComponent(topic)}`;
            clients.push(
              await RawClient.open(processes[0].port, query),
              await RawClient.open(processes[1].port, query),
            );
          }
          const texts = clients.map(received);
          // Each topic: the Deno client publishes until the Bun client has it.
          for (const [t, topic] of topics.entries()) {
            await until(
              () => {
                if (texts[2 * t + 1].includes(`to ${topic}`)) return true;
                clients[2 * t].write(frame(TEXT, `to ${topic}`));
                return false;
              },
              `a message on ${topic}`,
              WAIT,
            );
          }
          if (mode === "sharded") {
            for (const [t, topic] of topics.entries()) {
              const channels = await redisCommand(cluster.nodes[t].port, [
                "PUBSUB",
                "SHARDCHANNELS",
              ]) as RespValue[];
              assert.ok(channels.map(replyText).includes(`wisp:${topic}`), `${topic}'s channel on its node`);
            }
          }
          assert.deepEqual((await Promise.all(processes.map(fixtureStats))).map((s) => s.state), [
            "connected",
            "connected",
          ]);
          // Every command went to the node that owns its keys: no node had to redirect one.
          for (const node of cluster.nodes) {
            const errors = replyText(await redisCommand(node.port, ["INFO", "errorstats"]));
            assert.doesNotMatch(errors, /errorstat_(MOVED|ASK)/, `node ${node.port}: ${errors}`);
          }
        } finally {
          for (const client of clients) client.destroy();
          await Promise.all(processes.map((wisp) => wisp.stop()));
        }
      },
    );
  }

  it(
    "streams: a node SIGKILLed mid-stream and restarted on its data: every message arrives once, in order",
    SLOW,
    async () => {
      const node = await cluster.owner(streamSlot("outage"));
      await twoProcesses(cluster.urls, async (send, processes, subscribers) => {
        await send(0, 30);
        node.freeze();
        await send(30, 50, 0);
        await until(
          () => subscribers[0].includes("deno 49") && subscribers[1].includes("bun 49"),
          "local delivery of the last one",
          WAIT,
        );
        await node.kill();
        await until(
          async () => (await Promise.all(processes.map(fixtureStats))).every((s) => s.state !== "connected"),
          "both processes to notice",
          WAIT,
        );
        await send(50, 100);
        await node.restart();
        await cluster.ready();
        await send(100, 140);
      });
    },
  );

  for (const mode of ["sharded", "streams"] as const) {
    it(
      `${mode}: a topic's slot migrated to another node (ASK, then MOVED) keeps delivering`,
      SLOW,
      async () => {
        const topic = `moving ${mode}`;
        const slot = mode === "sharded" ? channelSlot(topic) : streamSlot(topic);
        const options = mode === "sharded"
          ? { url: cluster.urls, sharded: true }
          : { url: cluster.urls, mode: "streams" as const };
        const a = redisBackplane({ ...options, onEvent: () => {} });
        const b = redisBackplane({ ...options, onEvent: () => {} });
        const got: string[] = [];
        a.attach(() => {}, () => {});
        b.attach((_, data) => got.push(data as string), () => {});
        b.subscribe(topic);
        try {
          await until(
            () => {
              if (got.includes("probe")) return true;
              a.publish(topic, "probe");
              return false;
            },
            "b to listen",
            WAIT,
          );
          let sent = 0;
          const publishing = (async () => {
            for (; sent < 150; sent++) {
              a.publish(topic, `m${sent}`);
              await new Promise((resolve) => setTimeout(resolve, 2));
            }
          })();
          await until(() => sent >= 30, "some messages before the migration", WAIT);
          const from = await cluster.owner(slot);
          const to = cluster.nodes.find((node) => node !== from)!;
          await migrate(cluster, slot, to);
          await publishing;
          const last = `m${sent - 1}`;
          await until(() => got.includes(last), "the last message", 10_000);
          const messages = got.filter((text) => text !== "probe");
          if (mode === "streams") {
            assert.deepEqual(
              messages,
              Array.from({ length: sent }, (_, i) => `m${i}`),
              "every one, once, in order",
            );
          } else {
            // Pub/sub keeps nothing: what was published while b moved its subscription is lost, but
            // what arrives is in order, once.
            const numbers = messages.map((text) => Number(text.slice(1)));
            assert.ok(numbers.every((n, i) => i === 0 || n > numbers[i - 1]), numbers.join());
          }
          assert.equal((await cluster.owner(slot)).port, to.port);
          if (mode === "streams") {
            assert.equal(await redisCommand(to.port, ["EXISTS", topicKeys(PREFIX, 16, topic).stream]), 1);
          }
        } finally {
          await Promise.all([a.close(), b.close()]);
        }
      },
    );
  }
});

/**
 * Moves `slot` to `to` as `redis-cli --cluster reshard` would: the target imports, the source
 * migrates (commands for keys already moved get ASK), the keys go with MIGRATE, then every node
 * is told the slot's new owner (commands to the old one get MOVED).
 */
async function migrate(cluster: RedisCluster, slot: number, to: RedisServer): Promise<void> {
  const from = await cluster.owner(slot);
  const id = async (node: RedisServer) => replyText(await redisCommand(node.port, ["CLUSTER", "MYID"]));
  const [fromId, toId] = [await id(from), await id(to)];
  const ok = async (port: number, parts: string[]) => {
    const reply = await redisCommand(port, parts);
    assert.ok(
      replyText(reply) === "OK" || replyText(reply) === "NOKEY",
      `${parts.join(" ")}: ${replyText(reply)}`,
    );
  };
  await ok(to.port, ["CLUSTER", "SETSLOT", String(slot), "IMPORTING", fromId]);
  await ok(from.port, ["CLUSTER", "SETSLOT", String(slot), "MIGRATING", toId]);
  const keys = await redisCommand(from.port, [
    "CLUSTER",
    "GETKEYSINSLOT",
    String(slot),
    "1000",
  ]) as Uint8Array[];
  if (keys.length > 0) {
    await ok(from.port, [
      "MIGRATE",
      "127.0.0.1",
      String(to.port),
      "",
      "0",
      "5000",
      "KEYS",
      ...keys.map((key) => replyText(key)),
    ]);
  }
  for (const node of [to, from, ...cluster.nodes.filter((node) => node !== to && node !== from)]) {
    await ok(node.port, ["CLUSTER", "SETSLOT", String(slot), "NODE", toId]);
  }
  await cluster.ready();
}
