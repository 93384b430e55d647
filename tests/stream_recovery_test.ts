/**
 * Recovery across processes: with the `history` option and a Redis backplane in streams mode,
 * each topic's stream is its history, so a client whose connection to one process dropped comes
 * back to another and gets exactly what it missed, in order and once, then the live messages.
 * Two servers on one real `redis-server` (each with a backplane of its own, as two processes
 * have), raw TCP clients; and the catching up itself against a scripted stream, which answers
 * its reads only when the test lets it, so that messages come while it reads.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { frame, RawClient, TEXT, upgradeRequest } from "./helpers/raw_client.ts";
import { RedisServer, redisSkipReason } from "./helpers/redis.ts";
import { until } from "./helpers/server.ts";
import { redisBackplane, serve, type Server } from "../mod.ts";
import type { HistoryPage } from "../src/pubsub/backplane.ts";
import { compareOffsets } from "../src/pubsub/offset.ts";
import { CatchUps, type StreamHistory } from "../src/pubsub/stream_recovery.ts";

const WAIT = 5000;
const decoder = new TextDecoder();

describe("recovery from a Redis stream", { skip: redisSkipReason }, () => {
  let redis: RedisServer;
  let a: Server, b: Server;
  before(async () => {
    redis = await RedisServer.start();
    const start = () =>
      serve({
        port: 0,
        history: { envelope: (data, at) => `${at.epoch} ${at.offset} ${data}` },
        backplane: redisBackplane({ url: redis.url, mode: "streams", maxLen: 20, onEvent() {} }),
        websocket: {
          async open(ws) {
            const query = new URL(ws.url).searchParams;
            const epoch = query.get("epoch"), offset = query.get("offset");
            const recovery = await ws.recover(
              "room",
              epoch === null || offset === null ? null : { epoch, offset },
            );
            ws.send(
              `recovered=${recovery.recovered} replayed=${recovery.replayed} ${recovery.reason ?? ""}`.trim(),
            );
          },
          message(ws, data) {
            ws.publish("room", String(data));
          },
        },
      });
    a = start();
    b = start();
  });
  after(async () => {
    await a.close();
    await b.close();
    await redis.stop();
  });

  async function join(server: Server, query = ""): Promise<RawClient> {
    const client = await RawClient.connect(server.port);
    client.write(upgradeRequest(`/${query}`));
    assert.equal((await client.readResponse(WAIT)).status, 101);
    return client;
  }

  const text = async (client: RawClient) => decoder.decode((await client.readFrame(WAIT)).payload);
  /** A message as the envelope writes it: epoch, offset, text. */
  const parts = (message: string) => message.split(" ") as [string, string, string];

  it("gives a client that comes back to another process what it missed, once and in order, then live messages", async () => {
    const publisher = await join(b);
    const leaver = await join(a);
    const watcher = await join(a);
    for (const client of [publisher, leaver, watcher]) {
      assert.equal(await text(client), "recovered=true replayed=0");
    }
    await until(() => a.subscriberCount("room") === 2 && b.subscriberCount("room") === 1, "all subscribed");

    publisher.write(frame(TEXT, "one"));
    const [epoch, first, said] = parts(await text(leaver));
    assert.equal(said, "one");
    leaver.destroy(); // its connection to A drops; B's publisher goes on
    publisher.write(frame(TEXT, "two"));
    publisher.write(frame(TEXT, "three"));
    // Both are in the stream once a subscriber of A has had them.
    assert.deepEqual(
      [await text(watcher), await text(watcher), await text(watcher)].map((m) => parts(m)[2]),
      [
        "one",
        "two",
        "three",
      ],
    );
    watcher.destroy();

    const back = await join(b, `?epoch=${epoch}&offset=${first}`);
    try {
      const missed = [await text(back), await text(back)].map(parts);
      assert.deepEqual(missed.map((message) => message[2]), ["two", "three"]);
      assert.ok(missed.every((message) => message[0] === epoch));
      assert.equal(await text(back), "recovered=true replayed=2");
      const other = await join(a);
      await text(other);
      await until(() => a.subscriberCount("room") === 1, "A's new subscriber");
      other.write(frame(TEXT, "four"));
      assert.equal(parts(await text(back))[2], "four", "then the live messages, nothing twice");
      other.destroy();
    } finally {
      back.destroy();
      publisher.destroy();
    }
  });

  it("says why a position cannot be recovered from, and subscribes the client all the same", async () => {
    const { epoch, offset: old } = await a.position("room");
    // Past maxLen (20, trimmed a node of 100 entries at a time): the old position is no longer kept.
    for (let i = 0; i < 250; i++) a.publish("room", `filler ${i}`);
    await until(async () => (await a.position("room")).offset !== old, "the fillers", WAIT);
    for (
      const [query, reason] of [
        [`?epoch=${epoch}&offset=abc`, "malformed"],
        ["?epoch=another&offset=1-0", "epoch"],
        [`?epoch=${epoch}&offset=99999999999999-0`, "future"],
        [`?epoch=${epoch}&offset=${old}`, "too old"],
      ]
    ) {
      const client = await join(a, query);
      try {
        assert.equal(await text(client), `recovered=false replayed=0 ${reason}`, query);
      } finally {
        client.destroy();
      }
    }
  });
});

describe("catching up while messages keep coming", () => {
  /** A stream's history that answers reads only when the test lets it, to publish in between. */
  function scriptedHistory(entries: { offset: string; data: string }[]) {
    const reads: (() => void)[] = [];
    const history = {
      read(_topic: string, since: { offset: string }, limit: number) {
        return new Promise<HistoryPage>((resolve) =>
          reads.push(() => {
            const after = entries.filter((entry) => compareOffsets(entry.offset, since.offset) > 0).slice(
              0,
              limit,
            );
            resolve({ epoch: "e", last: entries.at(-1)!.offset, status: "ok", entries: after });
          })
        );
      },
      position: () => Promise.resolve({ epoch: "e", offset: entries.at(-1)!.offset }),
    };
    return { history: history as unknown as StreamHistory, reads };
  }

  it("sends the missed messages, then the live ones after the last missed, each once, in order", async () => {
    const stream = Array.from({ length: 150 }, (_, i) => ({ offset: `${i + 1}-0`, data: `m${i + 1}` }));
    const { history, reads } = scriptedHistory(stream);
    const sent: string[] = [];
    const subscriber = { readyState: 1, send: (data: unknown) => (sent.push(String(data)), "sent" as const) };
    const catchUps = new CatchUps<typeof subscriber>();
    const recovery = catchUps.recover(
      history,
      "t",
      { epoch: "e", offset: "10-0" },
      subscriber,
      (data) => data,
    );
    // Live messages while the first page is read: one the stream has too (140), and new ones.
    for (const offset of ["140-0", "151-0", "152-0"]) {
      assert.equal(catchUps.hold(subscriber, "t", offset, `live ${offset}`), true, "held while catching up");
    }
    while (reads.length > 0 || sent.length < 140) {
      await until(() => reads.length > 0, "a read");
      reads.shift()!();
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (sent.length >= 140) break;
    }
    const result = await recovery;
    assert.deepEqual(sent, [
      ...stream.slice(10).map((entry) => entry.data),
      "live 151-0",
      "live 152-0",
    ]);
    assert.deepEqual(result, { recovered: true, replayed: 140, position: { epoch: "e", offset: "152-0" } });
    assert.equal(catchUps.hold(subscriber, "t", "153-0", "later"), false, "caught up: live again");
  });
});
