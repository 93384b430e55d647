/**
 * Topic history and `ws.recover`: a client whose connection dropped comes back with the position
 * of the last message it got and receives exactly what it missed, in order, once, before later
 * messages; or is told why the gap cannot be filled. The history's bounds unit by unit (with the
 * clock given), recovery end to end over raw TCP.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { frame, RawClient, TEXT, upgradeRequest } from "./helpers/raw_client.ts";
import { until } from "./helpers/server.ts";
import { Histories } from "../src/pubsub/history.ts";
import { resolveTable } from "../src/option_table.ts";
import { HISTORY_OPTIONS } from "../src/options.ts";
import { prometheusText, type Recovery, serve, type Server } from "../mod.ts";

const WAIT = 3000;
const decoder = new TextDecoder();

function histories(bounds: Record<string, number> = {}) {
  return new Histories(resolveTable(HISTORY_OPTIONS, bounds, (name) => name, "test"));
}

/** Publishes `data` to `topic` as the server does: the next position, then kept. */
function publish(history: Histories, topic: string, data: string, now = 0) {
  const position = history.next(topic);
  history.keep(topic, position, data, data.length, now);
  return position;
}

describe("Histories", () => {
  it("numbers each topic's messages from 1 within an epoch, and gives what came after a position", () => {
    const history = histories();
    const start = history.position("t");
    assert.equal(start.offset, "0");
    assert.match(start.epoch, /^[0-9a-f]{16}$/);
    for (const data of ["a", "b", "c"]) publish(history, "t", data);
    assert.deepEqual(history.position("t"), { epoch: start.epoch, offset: "3" });
    const found = history.since("t", { epoch: start.epoch, offset: "1" }, 0);
    assert.ok("entries" in found);
    assert.deepEqual(found.entries.map((entry) => [entry.offset, entry.data]), [[2, "b"], [3, "c"]]);
    assert.deepEqual(history.since("t", { epoch: start.epoch, offset: "3" }, 0), { entries: [] });
    assert.notEqual(history.position("other").epoch, start.epoch, "each topic has an epoch of its own");
  });

  it("refuses positions that are malformed, of another epoch, from the future or too old", () => {
    const history = histories({ maxMessages: 2 });
    const { epoch } = history.position("t");
    for (const data of ["a", "b", "c", "d"]) publish(history, "t", data);
    for (
      const [since, gap] of [
        [{ epoch, offset: "x1" }, "malformed"],
        [{ epoch, offset: "-1" }, "malformed"],
        [{ epoch, offset: "01" }, "malformed"],
        [{ epoch, offset: "1".repeat(16) }, "malformed"],
        [{ epoch: 7, offset: "1" }, "malformed"],
        [null, "malformed"],
        [{ epoch: "0123456789abcdef", offset: "3" }, "epoch"],
        [{ epoch, offset: "5" }, "future"],
        [{ epoch, offset: "1" }, "too old"],
      ] as const
    ) {
      assert.deepEqual(history.since("t", since as never, 0), { gap }, JSON.stringify(since));
    }
    assert.ok("entries" in history.since("t", { epoch, offset: "2" }, 0), "offset 2: 3 and 4 are kept");
  });

  it("keeps each topic within its messages, bytes and age, and all topics within the total", () => {
    const byBytes = histories({ maxBytes: 3 * (10 + 64) });
    for (let i = 0; i < 5; i++) publish(byBytes, "t", "0123456789");
    assert.deepEqual(byBytes.stats(), { topics: 1, messages: 3, bytes: 3 * 74 });

    const byAge = histories({ maxAge: 1000 });
    publish(byAge, "t", "old", 0);
    publish(byAge, "t", "new", 900);
    const { epoch } = byAge.position("t");
    assert.deepEqual(byAge.since("t", { epoch, offset: "0" }, 1500), { gap: "too old" });
    assert.equal(byAge.stats().messages, 1);

    const total = histories({ maxTotalBytes: 4 * 65 });
    for (const topic of ["a", "b", "a", "c", "d"]) publish(total, topic, "x");
    // The least recently published topic ("b") gave way first, and was forgotten once empty.
    assert.deepEqual(total.stats(), { topics: 3, messages: 4, bytes: 4 * 65 });
    assert.deepEqual(total.since("b", { epoch: "0000000000000000", offset: "0" }, 0), { gap: "epoch" });
  });

  it("forgets the history of a topic that keeps nothing once it has no subscriber, so its epoch changes", () => {
    const history = histories();
    const first = history.position("t");
    history.idle("t");
    assert.notEqual(history.position("t").epoch, first.epoch);
    publish(history, "t", "kept");
    const kept = history.position("t");
    history.idle("t");
    assert.deepEqual(history.position("t"), kept, "a history that keeps messages stays");
  });
});

describe("ws.recover", () => {
  let server: Server;
  const recoveries: Recovery[] = [];
  before(() => {
    server = serve({
      port: 0,
      history: { maxMessages: 3, envelope: (data, at) => `${at.epoch}/${at.offset} ${data}` },
      websocket: {
        async open(ws) {
          const url = new URL(ws.url);
          const epoch = url.searchParams.get("epoch");
          const offset = url.searchParams.get("offset");
          const recovery = await ws.recover(
            "room",
            epoch === null || offset === null ? null : { epoch, offset },
          );
          recoveries.push(recovery);
          ws.send(`recovered=${recovery.recovered} replayed=${recovery.replayed} ${recovery.reason ?? ""}`);
        },
        message(_ws, data) {
          server.publish("room", String(data));
        },
      },
    });
  });
  after(() => server.close());

  async function join(query = ""): Promise<RawClient> {
    const client = await RawClient.connect(server.port);
    client.write(upgradeRequest(`/${query}`));
    assert.equal((await client.readResponse(WAIT)).status, 101);
    return client;
  }

  async function text(client: RawClient): Promise<string> {
    return decoder.decode((await client.readFrame(WAIT)).payload);
  }

  it("sends what a client missed while away, in order and once, then what comes later", async () => {
    const stayer = await join();
    assert.equal(await text(stayer), "recovered=true replayed=0 ");
    const { epoch } = recoveries[0].position;
    const leaver = await join();
    await text(leaver);
    stayer.write(frame(TEXT, "one"));
    assert.equal(await text(leaver), `${epoch}/1 one`);
    assert.equal(await text(stayer), `${epoch}/1 one`);
    leaver.destroy(); // its connection drops; two messages are published meanwhile
    await until(() => server.connections === 1, "the server to see the drop");
    stayer.write(frame(TEXT, "two"));
    stayer.write(frame(TEXT, "three"));
    assert.equal(await text(stayer), `${epoch}/2 two`);
    assert.equal(await text(stayer), `${epoch}/3 three`);

    const back = await join(`?epoch=${epoch}&offset=1`);
    try {
      assert.equal(await text(back), `${epoch}/2 two`);
      assert.equal(await text(back), `${epoch}/3 three`);
      assert.equal(await text(back), "recovered=true replayed=2 ");
      assert.deepEqual(recoveries.at(-1)!.position, { epoch, offset: "3" });
      stayer.write(frame(TEXT, "four"));
      assert.equal(await text(back), `${epoch}/4 four`, "nothing twice, then the live messages");
    } finally {
      back.destroy();
      stayer.destroy();
    }
  });

  it("tells a client whose position cannot be recovered from why, and subscribes it anyway", async () => {
    const { epoch } = recoveries[0].position;
    const stayer = await join();
    await text(stayer);
    for (
      const [query, reason] of [
        [`?epoch=${epoch}&offset=abc`, "malformed"],
        ["?epoch=0000000000000000&offset=1", "epoch"],
        [`?epoch=${epoch}&offset=999`, "future"],
        [`?epoch=${epoch}&offset=0`, "too old"],
      ]
    ) {
      const client = await join(query);
      try {
        assert.equal(await text(client), `recovered=false replayed=0 ${reason}`, query);
        stayer.write(frame(TEXT, reason));
        assert.match(await text(client), new RegExp(`/\\d+ ${reason}$`), "subscribed all the same");
        await text(stayer);
      } finally {
        client.destroy();
      }
    }
    stayer.destroy();
  });

  it("tells the latest position of a topic: eight messages published above", async () => {
    assert.deepEqual(await server.position("room"), { epoch: recoveries[0].position.epoch, offset: "8" });
  });

  it("counts what the history keeps in stats() and the metrics", () => {
    const { history } = server.stats();
    assert.deepEqual(history, { topics: 1, messages: 3, bytes: history!.bytes });
    assert.match(prometheusText(server.stats()), /^wisp_history_messages 3$/m);
  });

  it("rejects recover() on a server without the history option, with a TypeError saying so", async () => {
    const errors: unknown[] = [];
    const plain = serve({
      port: 0,
      websocket: {
        open: (ws) => void ws.recover("room", null).catch((error) => errors.push(error)),
      },
    });
    const client = await RawClient.open(plain.port);
    try {
      await until(() => errors.length === 1, "the rejection");
      assert.ok(errors[0] instanceof TypeError);
      assert.match(String(errors[0]), /needs the "history" option/);
      await assert.rejects(plain.position("room"), {
        name: "TypeError",
        message: /needs the "history" option/,
      });
    } finally {
      client.destroy();
      await plain.close();
    }
  });
});
