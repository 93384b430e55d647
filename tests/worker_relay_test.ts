/**
 * The worker relay (what `--workers` runs so that topics span its workers without Redis): two
 * servers on relay backplanes, a relay over real loopback TCP, and hand-built relay frames. Exactly
 * once, the sender skipped, in order, text as text and bytes as bytes; a worker gets only the
 * topics it has subscribers of; the relay stopped and started again on its port; buffers bounded
 * on both sides; a wrong token, a silent connection or garbage dropped with a clear event.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, Socket } from "node:net";
import { BINARY, frame, RawClient, TEXT } from "./helpers/raw_client.ts";
import { freePort, until } from "./helpers/server.ts";
import { serve, type Server } from "../mod.ts";
import type { Backplane, BackplaneEvent } from "../src/pubsub/backplane.ts";
import {
  FrameKind,
  frameKind,
  FrameReader,
  helloFrame,
  parsePublish,
  publishFrame,
  tokenBytes,
  topicFrame,
  WELCOME_FRAME,
} from "../src/pubsub/relay_frame.ts";
import { type RelayHub, startRelayHub } from "../src/pubsub/relay_hub.ts";
import { workerRelayBackplane, type WorkerRelayOptions } from "../src/pubsub/worker_relay.ts";

const decoder = new TextDecoder();

/**
 * A server on a relay backplane, like the backplane fixture: a client of `/?topic=T` subscribes
 * to T, and what it sends is published to T with `ws.publish` (everyone else, everywhere).
 */
function relayedServer(options: WorkerRelayOptions): { server: Server; backplane: Backplane } {
  const backplane = workerRelayBackplane({ onEvent: () => {}, ...options });
  const server = serve<{ topic: string }>({
    port: 0,
    backplane,
    upgrade: (request) => ({ data: { topic: new URL(request.url).searchParams.get("topic") ?? "t" } }),
    websocket: {
      open: (ws) => ws.subscribe(ws.data.topic),
      message: (ws, data) => void ws.publish(ws.data.topic, data),
    },
  });
  return { server, backplane };
}

/** Reads frames of `client` until one carries `last` as text, returning the payloads before it as text. */
async function textsUntil(client: RawClient, last: string): Promise<string[]> {
  const texts: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const received = await client.readFrame();
    const text = decoder.decode(received.payload);
    if (text === last) return texts;
    texts.push(text);
  }
  throw new Error(`no "${last}" among 1000 frames`);
}

/**
 * A hand-made relay peer over node:net: writes frames, collects the frames it is sent (a
 * worker, or with `asRelay` a relay, as the other side sees it).
 */
class RelayPeer {
  readonly socket: Socket;
  readonly frames: Uint8Array[] = [];
  readonly #reader = new FrameReader(false);
  ended = false;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Uint8Array) => this.frames.push(...this.#reader.push(new Uint8Array(chunk))));
    socket.on("close", () => (this.ended = true));
    socket.on("error", () => (this.ended = true));
  }

  static connect(port: number): Promise<RelayPeer> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      socket.once("error", reject);
      socket.connect(port, "127.0.0.1", () => resolve(new RelayPeer(socket)));
    });
  }

  /** Connects to `hub` as worker `worker` and waits for its WELCOME. */
  static async join(hub: RelayHub, worker: number): Promise<RelayPeer> {
    const peer = await RelayPeer.connect(hub.port);
    peer.write(helloFrame(tokenBytes(hub.token, "test"), worker));
    await until(() => peer.frames.length > 0, "WELCOME");
    assert.equal(frameKind(peer.frames.shift()!), FrameKind.WELCOME);
    return peer;
  }

  write(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve) => this.socket.write(bytes, () => resolve()));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

describe("worker relay: two servers on one relay", () => {
  let hub: RelayHub;
  let a: { server: Server; backplane: Backplane };
  let b: { server: Server; backplane: Backplane };
  const hubEvents: BackplaneEvent[] = [];
  before(async () => {
    hub = startRelayHub({ onEvent: (event) => hubEvents.push(event) });
    a = relayedServer({ port: hub.port, token: hub.token, worker: 1 });
    b = relayedServer({ port: hub.port, token: hub.token, worker: 2 });
    await until(
      () => a.backplane.stats().state === "connected" && b.backplane.stats().state === "connected",
      "both backplanes welcomed",
    );
  });
  after(async () => {
    await Promise.all([a?.server.close(), b?.server.close()]);
    hub?.close();
  });

  /** Opens a client on each server of `topic` and waits until the relay routes it to both. */
  async function pair(topic: string): Promise<[RawClient, RawClient]> {
    const clients = await Promise.all([
      RawClient.open(a.server.port, `/?topic=${topic}`),
      RawClient.open(b.server.port, `/?topic=${topic}`),
    ]);
    // The relay takes each SUBSCRIBE on its own connection: probe both ways until it carries one.
    for (const [from, to] of [[clients[0], clients[1]], [clients[1], clients[0]]]) {
      for (let i = 0;; i++) {
        assert.ok(i < 200, `the relay carried no probe on "${topic}"`);
        from.write(frame(TEXT, "probe"));
        try {
          if (decoder.decode((await to.readFrame(50)).payload) === "probe") break;
        } catch {
          // Not routed yet.
        }
      }
    }
    // Probes still on their way arrive before these markers, which each side then reads up to.
    clients[0].write(frame(TEXT, "probes done"));
    clients[1].write(frame(TEXT, "probes done"));
    await textsUntil(clients[1], "probes done");
    await textsUntil(clients[0], "probes done");
    return clients;
  }

  it("reaches every other subscriber exactly once, in order, and not the sender", async () => {
    const [sender, far] = await pair("room");
    const near = await RawClient.open(a.server.port, "/?topic=room");
    try {
      const sent = Array.from({ length: 50 }, (_, i) => `message ${i}`);
      for (const text of sent) sender.write(frame(TEXT, text));
      sender.write(frame(TEXT, "end"));
      // One publisher's messages keep their order: a second copy of any would come before "end".
      assert.deepEqual(await textsUntil(far, "end"), sent);
      assert.deepEqual(await textsUntil(near, "end"), sent);
      // And the sender's own copy would come before the next message someone else sends it.
      far.write(frame(TEXT, "from far"));
      assert.equal(decoder.decode((await sender.readFrame()).payload), "from far");
    } finally {
      for (const client of [sender, near, far]) client.destroy();
    }
  });

  it("keeps text text and bytes bytes", async () => {
    const [sender, far] = await pair("kinds");
    try {
      const bytes = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7) & 0xff);
      sender.write(frame(BINARY, bytes));
      sender.write(frame(TEXT, "\uFEFFhé ✓"));
      const first = await far.readFrame();
      assert.equal(first.opcode, BINARY);
      assert.deepEqual(first.payload, bytes);
      const second = await far.readFrame();
      assert.equal(second.opcode, TEXT);
      assert.equal(new TextDecoder("utf-8", { ignoreBOM: true }).decode(second.payload), "\uFEFFhé ✓");
    } finally {
      sender.destroy();
      far.destroy();
    }
  });

  it("sends a worker only the topics it has subscribers of, and stops when its last one leaves", async () => {
    const [sender, far] = await pair("wanted");
    const lonely = await RawClient.open(a.server.port, "/?topic=only-here");
    const forwarded = () => hub.stats().forwarded;
    /** Sends `text` from `client` of server a, and waits until a has sent it on to the relay. */
    const publishOnA = async (client: RawClient, text: string) => {
      const published = a.backplane.stats().published;
      client.write(frame(TEXT, text));
      await until(() => a.backplane.stats().published === published + 1, `a to publish "${text}"`);
    };
    try {
      const before = forwarded();
      await publishOnA(lonely, "not for b"); // a topic b has no subscriber of
      await publishOnA(sender, "for b"); // after it, on the same link to the relay
      assert.equal(decoder.decode((await far.readFrame()).payload), "for b");
      assert.equal(forwarded() - before, 1, "the relay passed on only the topic b subscribes to");

      far.destroy();
      await until(() => b.server.subscriberCount("wanted") === 0, "b to lose its subscriber");
      // b's UNSUBSCRIBE went to the relay before its SUBSCRIBE to "kept"; once a message a sends on
      // "kept" arrives, one a sent before it on "wanted" would have been passed on too.
      const [keptA, keptB] = await pair("kept");
      const count = forwarded();
      await publishOnA(sender, "after b left");
      await publishOnA(keptA, "marker");
      assert.equal(decoder.decode((await keptB.readFrame()).payload), "marker");
      assert.equal(forwarded() - count, 1, "only the marker was passed on");
      keptA.destroy();
      keptB.destroy();
    } finally {
      for (const client of [sender, far, lonely]) client.destroy();
    }
  });
});

describe("worker relay: the relay goes away and comes back", () => {
  it("goes on delivering locally, and carries topics again once a relay is back on the port", async () => {
    const events: string[] = [];
    let hub = startRelayHub();
    const { port, token } = hub;
    const a = relayedServer({ port, token, worker: 1, onEvent: (event) => events.push(event.type) });
    const b = relayedServer({ port, token, worker: 2 });
    const clients: RawClient[] = [];
    const connected = () =>
      a.backplane.stats().state === "connected" && b.backplane.stats().state === "connected";
    try {
      await until(connected, "both backplanes welcomed");
      const [sender, near] = await Promise.all([
        RawClient.open(a.server.port, "/?topic=room"),
        RawClient.open(a.server.port, "/?topic=room"),
      ]);
      clients.push(sender, near);

      hub.close();
      await until(
        () => a.backplane.stats().state === "connecting" && b.backplane.stats().state === "connecting",
        "both backplanes to see the relay gone",
      );
      sender.write(frame(TEXT, "while away"));
      assert.equal(decoder.decode((await near.readFrame()).payload), "while away");

      hub = startRelayHub({ port, token });
      await until(connected, "both backplanes back");
      const far = await RawClient.open(b.server.port, "/?topic=room");
      clients.push(far);
      for (let i = 0;; i++) {
        assert.ok(i < 200, "the new relay carried no message");
        sender.write(frame(TEXT, "probe"));
        try {
          if (decoder.decode((await far.readFrame(50)).payload) === "probe") break;
        } catch {
          // b's SUBSCRIBE is not at the relay yet.
        }
      }
      assert.equal(a.backplane.stats().reconnects, 1);
      assert.deepEqual(events.slice(0, 3), ["connected", "disconnected", "connected"]);
    } finally {
      for (const client of clients) client.destroy();
      await Promise.all([a.server.close(), b.server.close()]);
      hub.close();
    }
  });

  it("buffers publishes within maxBufferedBytes while away, then subscribes and sends them, in order", async () => {
    const port = await freePort();
    const token = "00112233445566778899aabbccddeeff";
    const a = relayedServer({ port, token, worker: 7, maxBufferedBytes: 2_000 });
    const sender = await RawClient.open(a.server.port, "/?topic=room");
    const relay = createServer();
    try {
      await until(() => a.backplane.stats().errors > 0, "a to find no relay");
      // The first frame always fits; then as many as 2,000 bytes hold; "end" is short enough again.
      const sent = Array.from({ length: 40 }, (_, i) => `away ${i} `.padEnd(100, "."));
      for (const text of sent) sender.write(frame(TEXT, text));
      sender.write(frame(TEXT, "end"));
      const size = publishFrame("room", sent[0])!.length;
      const fit = Math.floor(2_000 / size);
      await until(() => a.backplane.stats().dropped === sent.length - fit, "a to drop what does not fit");

      const peers: RelayPeer[] = [];
      relay.on("connection", (socket) => peers.push(new RelayPeer(socket)));
      await new Promise<void>((resolve) => relay.listen(port, "127.0.0.1", resolve));
      await until(() => peers[0]?.frames.length === 1, "a's HELLO", 10_000);
      assert.deepEqual(peers[0].frames.shift(), helloFrame(tokenBytes(token, "test"), 7));
      await peers[0].write(WELCOME_FRAME);
      await until(() => peers[0].frames.length === fit + 2, "a's SUBSCRIBE and what waited");
      assert.deepEqual(peers[0].frames.shift(), topicFrame(FrameKind.SUBSCRIBE, "room"));
      assert.deepEqual(
        peers[0].frames.map((bytes) => parsePublish(bytes).data),
        [...sent.slice(0, fit), "end"],
      );
      assert.equal(a.backplane.stats().state, "connected");
      assert.equal(a.backplane.stats().published, fit + 1);

      // A publish from the relay on a topic a has no subscriber of is not taken; one on "room" is.
      await peers[0].write(publishFrame("elsewhere", "not here")!);
      await peers[0].write(publishFrame("room", Uint8Array.of(1, 2, 3))!);
      assert.deepEqual((await sender.readFrame()).payload, Uint8Array.of(1, 2, 3));
      assert.equal(a.backplane.stats().received, 1);
      // Garbage from the relay makes a reconnect, not crash.
      await peers[0].write(Uint8Array.of(0, 0, 0, 1, 99));
      await until(() => peers.length === 2 && peers[1].frames.length === 1, "a's next HELLO", 10_000);
      assert.match(a.backplane.stats().lastError, /malformed relay frame: a frame of unknown kind 99/);
      assert.equal(a.server.connections, 1, "the client stayed");
    } finally {
      sender.destroy();
      relay.close();
      await a.server.close();
    }
  });
});

describe("worker relay: what the relay lets in", () => {
  let hub: RelayHub;
  const events: BackplaneEvent[] = [];
  before(() => {
    hub = startRelayHub({
      helloTimeout: 300,
      maxBufferedBytes: 64 * 1024,
      onEvent: (event) => events.push(event),
    });
  });
  after(() => hub?.close());

  /** Waits for `peer` to be dropped and for an error event matching `pattern`. */
  async function droppedFor(peer: RelayPeer, pattern: RegExp): Promise<void> {
    await until(() => peer.ended, "the relay to drop the connection");
    await until(
      () => events.some((event) => event.type === "error" && pattern.test(event.message)),
      `${pattern}`,
    );
    assert.equal(peer.frames.length, 0, "no WELCOME");
  }

  it("drops a connection with a wrong token, or whose first frame is no HELLO, without a WELCOME", async () => {
    const wrong = await RelayPeer.connect(hub.port);
    await wrong.write(helloFrame(new Uint8Array(16), 1));
    await droppedFor(wrong, /^relay: a connection: malformed relay frame: a wrong token; dropping it$/);

    const early = await RelayPeer.connect(hub.port);
    await early.write(topicFrame(FrameKind.SUBSCRIBE, "x"));
    await droppedFor(early, /a frame of kind 3 before HELLO/);
  });

  it("reads no more than a HELLO's length from a connection it does not know yet", async () => {
    const peer = await RelayPeer.connect(hub.port);
    // Announces 1 MiB and sends a first byte of it: refused at the header, nothing buffered.
    await peer.write(Uint8Array.of(0, 0x10, 0, 0, FrameKind.HELLO));
    await droppedFor(peer, /a frame of 1048576 bytes \(at most 21\)/);
  });

  it("drops a connection that gives no token within helloTimeout", async () => {
    const peer = await RelayPeer.connect(hub.port);
    await droppedFor(peer, /a connection gave no token within 300 ms/);
  });

  it("drops a worker that sends garbage, and forgets its topics", async () => {
    const topics = hub.stats().topics;
    const worker = await RelayPeer.join(hub, 5);
    await worker.write(topicFrame(FrameKind.SUBSCRIBE, "t"));
    await until(() => hub.stats().topics === topics + 1, "the relay to take the SUBSCRIBE");
    await worker.write(Uint8Array.of(0, 0, 0, 1, FrameKind.WELCOME));
    await until(() => worker.ended, "the relay to drop the worker");
    assert.ok(
      events.some((event) => /^relay: worker 5: .* a frame of kind 2 from a worker/.test(event.message)),
    );
    assert.ok(
      events.some((event) => event.type === "disconnected" && event.message === "worker 5 left the relay"),
    );
    assert.equal(hub.stats().topics, topics);

    // A publish to "t" now reaches no one: a marker sent after it, to a topic that has a subscriber,
    // is the first thing passed on.
    const [other, mark] = await Promise.all([RelayPeer.join(hub, 6), RelayPeer.join(hub, 8)]);
    await mark.write(topicFrame(FrameKind.SUBSCRIBE, "m"));
    await until(() => hub.stats().topics === topics + 1, "the relay to take the SUBSCRIBE");
    const before = hub.stats().forwarded;
    await other.write(publishFrame("t", "to no one")!);
    await other.write(publishFrame("m", "marker")!);
    await until(() => mark.frames.length === 1, "the marker");
    assert.equal(parsePublish(mark.frames[0]).data, "marker");
    assert.equal(hub.stats().forwarded - before, 1);
    other.destroy();
    mark.destroy();
  });

  it(
    "drops publishes to a worker behind by maxBufferedBytes, counts them, and sends again once it caught up",
    {
      timeout: 30_000,
    },
    async () => {
      const [slow, fast] = await Promise.all([RelayPeer.join(hub, 3), RelayPeer.join(hub, 4)]);
      const topics = hub.stats().topics;
      await slow.write(topicFrame(FrameKind.SUBSCRIBE, "flood"));
      await until(() => hub.stats().topics === topics + 1, "the relay to take the SUBSCRIBE");
      slow.socket.pause();
      const { forwarded, dropped } = hub.stats();
      const flood = publishFrame("flood", new Uint8Array(64 * 1024))!;
      // The kernel's buffers fill first (a few MiB), then 64 KiB wait in the relay, then it drops.
      let sent = 0;
      while (hub.stats().dropped === dropped) {
        assert.ok(sent < 2000, "the relay never dropped");
        await fast.write(flood);
        sent++;
      }
      const passed = () => hub.stats().forwarded - forwarded;
      const lost = () => hub.stats().dropped - dropped;
      await until(() => passed() + lost() === sent, "the relay to take every frame sent");
      assert.ok(
        events.some((event) => /^worker 3 is \d+ bytes behind: dropping its messages/.test(event.message)),
      );
      slow.socket.resume();
      await until(
        () => slow.frames.length === passed(),
        "the slow worker to read what was passed on",
        20_000,
      );
      const read = slow.frames.length;
      await fast.write(publishFrame("flood", "after")!);
      await until(() => slow.frames.length === read + 1, "the next message");
      assert.equal(parsePublish(slow.frames.at(-1)!).data, "after");
      // Each time a message gets through again, the relay tells how many it dropped before it.
      const told = events.reduce(
        (sum, event) => sum + Number(/^worker 3 caught up; (\d+) messages/.exec(event.message)?.[1] ?? 0),
        0,
      );
      assert.equal(told, lost());
      slow.destroy();
      fast.destroy();
    },
  );
});
