/**
 * Counters, the Prometheus exposition and events for operators: `server.stats()` moving with
 * traffic over raw TCP, a scrape of the `metrics` path checked by `promtool check metrics`
 * (Debian's `prometheus` package; skipped without it), `onEvent` for hook failures, refusals and
 * the backplane, and the chat demo's `--metrics` flag.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  type Backplane,
  type BackplaneEvent,
  formatEvent,
  metricsResponse,
  prometheusText,
  redisBackplane,
  serve,
  type ServeOptions,
  type Server,
  type ServerEvent,
  type ServerStats,
} from "../mod.ts";
import {
  CLOSE,
  closePayload,
  frame,
  RawClient,
  TEXT,
  upgradeRequest,
  withClient,
} from "./helpers/raw_client.ts";
import { compressAlone, inflateAlone } from "./helpers/deflate.ts";
import { Inbox } from "./helpers/events.ts";
import { echoServer, freePort, until } from "./helpers/server.ts";
import { startCli } from "./helpers/cli.ts";
import { Counters } from "../src/metrics.ts";

/** Why `promtool` cannot check scrapes here, or `false` when it can (a test's `skip`). */
const promtoolSkipReason: string | false = (() => {
  try {
    execFileSync("promtool", ["--version"], { stdio: "ignore" });
    return false;
  } catch {
    return "promtool is not installed (apt-get install prometheus)";
  }
})();

/** `promtool check metrics` on `text`: fails the test with promtool's complaints, if any. */
function assertPromtoolAccepts(text: string): void {
  const result = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  assert.equal(
    result.status,
    0,
    `promtool check metrics:\n${result.stdout}${result.stderr}\n--- scrape ---\n${text}`,
  );
}

/** GETs `path` over raw TCP (a fresh connection, closed after), returning status, headers and body. */
function get(port: number, path: string, method = "GET") {
  return withClient(port, (client) => {
    client.write(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    return client.readResponse(5000, method === "HEAD");
  });
}

/** The samples of a scrape: `name{labels}` → value. */
function samples(text: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    found.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return found;
}

/** Scrapes the server's metrics path. */
async function scrape(port: number, path = "/metrics"): Promise<Map<string, number>> {
  const response = await get(port, path);
  assert.equal(response.status, 200, response.body);
  return samples(response.body);
}

/** Opens a WebSocket over raw TCP on `path`, sends `texts` and reads their echoes. */
async function chatter(port: number, path: string, texts: string[]): Promise<RawClient> {
  const client = await RawClient.open(port, path);
  for (const text of texts) client.write(frame(TEXT, text));
  for (const text of texts) assert.equal(new TextDecoder().decode((await client.readFrame()).payload), text);
  return client;
}

/** Sends an upgrade request with `headers` changed and returns the status of the answer. */
function refusedWith(port: number, path: string, headers: Record<string, string | null> = {}) {
  return withClient(port, async (client) => {
    client.write(upgradeRequest(path, headers));
    return (await client.readResponse()).status;
  });
}

describe("prometheusText", () => {
  const stats = new Counters().snapshot({ open: 0, http: 0, httpBytes: 0 }, null, null);

  it("writes HELP and TYPE for every family, wisp_ names, counters ending in _total", () => {
    const text = prometheusText(stats);
    const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)];
    const helps = [...text.matchAll(/^# HELP (\S+) .+$/gm)].map((match) => match[1]);
    assert.deepEqual(helps, types.map((match) => match[1]));
    for (const [, name, type] of types) {
      assert.match(name, /^wisp_[a-z_]+$/);
      assert.equal(name.endsWith("_total"), type === "counter", `${name} is a ${type}`);
    }
    for (const name of samples(text).keys()) {
      assert.ok(types.some((match) => name.replace(/\{.*/, "") === match[1]), `${name} has a family`);
    }
    assert.match(text, /^wisp_handshakes_total\{status="101"\} 0$/m);
    assert.match(text, /^wisp_dropped_connections_total\{reason="rate_limit"\} 0$/m);
    assert.match(text, /^wisp_sent_close_frames_total\{code="1000"\} 0$/m);
    assert.doesNotMatch(text, /wisp_backplane/, "no backplane, no backplane metrics");
    assert.ok(text.endsWith("\n"));
  });

  it("passes promtool check metrics", { skip: promtoolSkipReason }, () => {
    assertPromtoolAccepts(prometheusText(stats));
  });

  it("adds the backplane's metrics when there is one", () => {
    const text = prometheusText({
      ...stats,
      backplane: {
        state: "connected",
        published: 3,
        received: 2,
        dropped: 1,
        reconnects: 0,
        errors: 4,
        lastError: "x",
      },
    });
    const found = samples(text);
    assert.equal(found.get("wisp_backplane_up"), 1);
    assert.equal(found.get("wisp_backplane_published_messages_total"), 3);
    assert.equal(found.get("wisp_backplane_errors_total"), 4);
    if (!promtoolSkipReason) assertPromtoolAccepts(text);
  });
});

describe("server.stats() and the metrics path", () => {
  it("counts connections, handshakes by status, messages and bytes, close codes; the scrape moves with them", async () => {
    const server = echoServer({ path: "/ws", metrics: "/metrics" });
    const clients: RawClient[] = [];
    try {
      const before = await scrape(server.port);
      assert.equal(before.get("wisp_websocket_connections"), 0);
      assert.equal(before.get('wisp_handshakes_total{status="101"}'), 0);

      clients.push(await chatter(server.port, "/ws", ["one", "two", "three"]));
      clients.push(await chatter(server.port, "/ws", ["héllo"]));
      assert.equal(await refusedWith(server.port, "/elsewhere"), 404);
      assert.equal(await refusedWith(server.port, "/ws", { "Sec-WebSocket-Version": "8" }), 426);
      assert.equal(await refusedWith(server.port, "/ws", { "Sec-WebSocket-Key": null }), 400);
      const ws = clients[1];
      ws.write(frame(CLOSE, closePayload(1000)));
      assert.equal((await ws.readClose()).code, 1000);
      await until(() => server.connections === 1, "the closed socket to go");

      const response = await get(server.port, "/metrics");
      assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      if (!promtoolSkipReason) assertPromtoolAccepts(response.body);
      const after = samples(response.body);
      assert.equal(after.get("wisp_websocket_connections"), 1);
      assert.equal(after.get('wisp_handshakes_total{status="101"}'), 2);
      assert.equal(after.get('wisp_handshakes_total{status="404"}'), 1);
      assert.equal(after.get('wisp_handshakes_total{status="426"}'), 1);
      assert.equal(after.get('wisp_handshakes_total{status="400"}'), 1);
      // The two sockets, three refusals, the first scrape and this one.
      assert.equal(after.get("wisp_connections_accepted_total"), 7);
      assert.equal(after.get("wisp_received_messages_total"), 4);
      assert.equal(after.get("wisp_sent_messages_total"), 4);
      const payload = "onetwothreehéllo".length + 1; // é is two bytes
      assert.equal(after.get("wisp_received_payload_bytes_total"), payload);
      assert.equal(after.get("wisp_sent_payload_bytes_total"), payload);
      // Client frames: 6 bytes of header and mask each, the close frame 8; the server's: 2 each.
      assert.equal(after.get("wisp_received_wire_bytes_total"), payload + 4 * 6 + 8);
      assert.equal(after.get("wisp_sent_wire_bytes_total"), payload + 4 * 2 + 4);
      assert.equal(after.get('wisp_received_close_frames_total{code="1000"}'), 1);
      assert.equal(after.get('wisp_sent_close_frames_total{code="1000"}'), 1);
      assert.equal(after.get("wisp_http_requests_total"), 0, "scrapes are not fetch requests");

      const stats = server.stats();
      assert.deepEqual(stats.messages, { received: 4, sent: 4, dropped: 0 });
      assert.deepEqual(stats.bytes.received, { payload, wire: payload + 32 });
      assert.equal(stats.connections.open, 1);
      assert.equal(stats.backplane, null);
    } finally {
      for (const client of clients) client.destroy();
      await server.close();
    }
  });

  it("answers HEAD without a body, leaves other methods and paths to fetch, and metricsResponse serves the same", async () => {
    const server: Server = serve({
      port: 0,
      metrics: "/metrics",
      fetch: (request) =>
        new URL(request.url).pathname === "/mine"
          ? metricsResponse(server)
          : new Response(`fetch ${request.method}`),
    });
    try {
      const head = await get(server.port, "/metrics?x=1", "HEAD");
      assert.equal(head.status, 200);
      assert.equal(head.body, "");
      assert.equal((await get(server.port, "/metrics", "POST")).body, "fetch POST");
      assert.equal((await get(server.port, "/other")).body, "fetch GET");
      const mine = await scrape(server.port, "/mine");
      assert.equal(mine.get("wisp_http_requests_total"), 3, "the POST, /other and this request");
    } finally {
      await server.close();
    }
  });

  it("counts compressed bytes on the wire and the payload inflated, so that the ratio can be read off", async () => {
    const server = echoServer({ perMessageDeflate: true });
    try {
      const client = await RawClient.open(server.port, "/", {
        "Sec-WebSocket-Extensions": "permessage-deflate",
      });
      const text = '{"user":"ada","text":"hello"},'.repeat(200);
      const message = new TextEncoder().encode(text);
      const compressed = compressAlone(message);
      client.write(frame(TEXT, compressed, { rsv: 0x40 }));
      const echo = await client.readFrame();
      assert.equal(echo.rsv, 0x40, "the echo comes compressed");
      assert.equal(new TextDecoder().decode(inflateAlone(echo.payload)), text);
      const { bytes } = server.stats();
      assert.equal(bytes.received.payload, message.length);
      assert.equal(bytes.received.wire, frame(TEXT, compressed).length);
      assert.equal(bytes.sent.payload, message.length);
      assert.equal(bytes.sent.wire, echo.payload.length + 2);
      assert.ok(bytes.sent.wire / bytes.sent.payload < 0.1, "the ratio is there to read");
      client.destroy();
    } finally {
      await server.close();
    }
  });

  it("counts publishes and their deliveries", async () => {
    const server = serve({
      port: 0,
      websocket: {
        open: (ws) => ws.subscribe("t"),
        message: (ws, data) => void ws.publish("t", data),
      },
    });
    const clients = await Promise.all([1, 2, 3].map(() => RawClient.open(server.port)));
    try {
      await until(() => server.subscriberCount("t") === 3, "three subscribers");
      clients[0].write(frame(TEXT, "to the others"));
      for (const client of clients.slice(1)) await client.readFrame();
      assert.equal(server.publish("t", "to all"), 3);
      const { pubsub, messages, bytes } = server.stats();
      assert.deepEqual(pubsub, { publishes: 2, deliveries: 5 });
      assert.equal(messages.sent, 5);
      assert.equal(bytes.sent.payload, 2 * "to the others".length + 3 * "to all".length);
    } finally {
      for (const client of clients) client.destroy();
      await server.close();
    }
  });
});

describe("drops by reason", () => {
  it("counts the backlog limit, idle sockets, the rate limit and close timeouts", async () => {
    const server = serve({
      port: 0,
      maxBufferedAmount: 1024,
      maxMessagesPerSecond: 1,
      maxMessageBurst: 1,
      idleTimeout: 200,
      sendPings: false,
      closeTimeout: 100,
      websocket: {
        message(ws, data) {
          if (data === "big") ws.send("x".repeat(2048));
          if (data === "bye") ws.close(1000);
        },
      },
    });
    try {
      const big = await RawClient.open(server.port);
      big.write(frame(TEXT, "big"));
      await big.waitForEnd();
      const fast = await RawClient.open(server.port);
      fast.write(frame(TEXT, "a"));
      fast.write(frame(TEXT, "b"));
      assert.equal((await fast.readClose()).code, 1008);
      const quiet = await RawClient.open(server.port);
      const stubborn = await RawClient.open(server.port);
      stubborn.write(frame(TEXT, "bye"));
      assert.equal((await stubborn.readClose()).code, 1000); // and it never answers
      await quiet.waitForEnd(2000);
      await until(() => server.connections === 0, "every socket to go", 3000);
      const { drops, closeCodes } = server.stats();
      assert.equal(drops.backlog, 1);
      assert.equal(drops.rateLimit, 1);
      assert.equal(drops.idle, 1);
      assert.ok(drops.closeTimeout >= 1, "the stubborn one, and the rate-limited one if it did not answer");
      assert.equal(closeCodes.sent[1008], 1);
      for (const client of [big, fast, quiet, stubborn]) client.destroy();
    } finally {
      await server.close();
    }
  });

  it("counts handshake timeouts, silent or not", async () => {
    const server = serve({ port: 0, handshakeTimeout: 100 });
    try {
      const silent = await RawClient.connect(server.port);
      await silent.waitForEnd(2000);
      const partial = await RawClient.connect(server.port);
      partial.write("GET / HTTP/1.1\r\n");
      assert.equal((await partial.readResponse(2000)).status, 408);
      const { drops, handshakes } = server.stats();
      assert.equal(drops.handshakeTimeout, 2);
      assert.equal(handshakes[408], 1);
      for (const client of [silent, partial]) client.destroy();
    } finally {
      await server.close();
    }
  });

  it("counts evictions", async () => {
    const server = serve({ port: 0, maxPendingHandshakes: 1 });
    try {
      const waiting = await RawClient.connect(server.port);
      waiting.write("GET / HTTP/1.1\r\n");
      await until(() => server.stats().connections.http === 1, "the first to wait");
      const newcomer = await RawClient.connect(server.port);
      assert.equal((await waiting.readResponse(2000)).status, 503);
      const { drops, handshakes, connections } = server.stats();
      assert.equal(drops.eviction, 1);
      assert.equal(handshakes[503], 1);
      assert.equal(connections.http, 1, "the newcomer");
      for (const client of [waiting, newcomer]) client.destroy();
    } finally {
      await server.close();
    }
  });
});

describe("onEvent", () => {
  /** A server whose events go to an inbox. */
  function eventServer(options: ServeOptions = {}) {
    const events = new Inbox<ServerEvent>();
    const server = serve({ port: 0, onEvent: (event) => events.push(event), ...options });
    return { server, events };
  }

  it("gets a fetch handler's failure, and an upgrade hook's, with the client's address", async () => {
    const { server, events } = eventServer({
      fetch() {
        throw new Error("boom");
      },
      upgrade: () => Promise.reject(new TypeError("no database")),
    });
    try {
      assert.equal((await get(server.port, "/")).status, 500);
      const failed = await events.take();
      assert.deepEqual({ ...failed, error: undefined }, {
        level: "error",
        kind: "handler",
        message: "the fetch handler failed: Error: boom",
        remoteAddress: "127.0.0.1",
        error: undefined,
      });
      assert.equal((failed.error as Error).message, "boom");
      assert.equal(await refusedWith(server.port, "/"), 500);
      assert.equal((await events.take()).message, "the upgrade failed: TypeError: no database");
      assert.equal(events.items.length, 0, "refusals are not reported unless asked for");
    } finally {
      await server.close();
    }
  });

  it("gets every refusal with reportRefusals, and WebSocket handler failures when there is no error handler", async () => {
    const { server, events } = eventServer({
      path: "/ws",
      reportRefusals: true,
      websocket: {
        message() {
          throw new RangeError("bad input");
        },
      },
    });
    try {
      assert.equal(await refusedWith(server.port, "/nope"), 404);
      const refused = await events.take();
      assert.deepEqual(refused, {
        level: "info",
        kind: "refused",
        status: 404,
        remoteAddress: "127.0.0.1",
        message: "no WebSocket endpoint at this path",
      });
      const client = await RawClient.open(server.port, "/ws");
      client.write(frame(TEXT, "hi"));
      assert.equal((await client.readClose()).code, 1011);
      const failed = await events.take();
      assert.equal(failed.kind, "websocket");
      assert.equal(failed.message, "a WebSocket handler failed: RangeError: bad input");
      client.destroy();
    } finally {
      await server.close();
    }
  });

  it("by default writes one line per event on stderr, as formatEvent does", async () => {
    const lines: string[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void lines.push(args.join(" "));
    const server = serve({
      port: 0,
      fetch() {
        throw new Error('say "hi"\nbye');
      },
    });
    try {
      await get(server.port, "/");
      await until(() => lines.length > 0, "a line");
    } finally {
      console.error = original;
      await server.close();
    }
    assert.deepEqual(lines, [
      'wisp: error kind=handler address=127.0.0.1 message="the fetch handler failed: Error: say \\"hi\\"\\nbye"',
    ]);
    assert.equal(
      formatEvent({ level: "info", kind: "refused", status: 429, remoteAddress: "::1", message: "too many" }),
      'wisp: info kind=refused status=429 address=::1 message="too many"',
    );
  });

  it("gets the backplane's events, and the backplane's stats are in server.stats()", async () => {
    const attached: { report?: (event: BackplaneEvent) => void } = {};
    const backplaneStats = {
      state: "connecting" as const,
      published: 0,
      received: 0,
      dropped: 2,
      reconnects: 1,
      errors: 1,
      lastError: "refused",
    };
    const backplane: Backplane = {
      attach: (_deliver, report) => void (attached.report = report),
      subscribe() {},
      unsubscribe() {},
      publish() {},
      stats: () => backplaneStats,
      close: () => Promise.resolve(),
    };
    const { server, events } = eventServer({ backplane });
    try {
      attached.report!({
        type: "disconnected",
        message: "publisher: connection lost; reconnecting with backoff",
      });
      attached.report!({ type: "error", message: "Redis refused a publish: NOAUTH" });
      assert.deepEqual(await events.take(), {
        level: "warn",
        kind: "backplane",
        message: "publisher: connection lost; reconnecting with backoff",
      });
      assert.deepEqual(await events.take(), {
        level: "error",
        kind: "backplane",
        message: "Redis refused a publish: NOAUTH",
      });
      const stats: ServerStats = server.stats();
      assert.deepEqual(stats.backplane, backplaneStats);
      assert.match(prometheusText(stats), /^wisp_backplane_up 0$/m);
    } finally {
      await server.close();
    }
  });

  it("gets a Redis backplane's events unless it has an onEvent of its own", async () => {
    const url = `redis://127.0.0.1:${await freePort()}`; // nothing listens there
    const { server, events } = eventServer({ backplane: redisBackplane({ url }) });
    const own: BackplaneEvent[] = [];
    const other = serve({ port: 0, backplane: redisBackplane({ url, onEvent: (event) => own.push(event) }) });
    try {
      const lost = await events.take((event) => event.kind === "backplane");
      assert.equal(lost.level, "warn");
      assert.match(lost.message, /cannot connect to 127\.0\.0\.1:\d+/);
      await until(() => own.length > 0, "the backplane's own onEvent");
      assert.equal(own[0].type, "disconnected");
    } finally {
      await Promise.all([server.close(), other.close()]);
    }
  });

  it("is checked like every option", () => {
    assert.throws(() => serve({ onEvent: 5 as never }), {
      name: "TypeError",
      message: /option "onEvent" must be a function/,
    });
    assert.throws(() => serve({ metrics: "metrics" }), {
      name: "TypeError",
      message: /option "metrics" must be a string starting with "\/"/,
    });
  });
});

describe("the chat demo's --metrics", () => {
  it(
    "serves the metrics on /metrics of the chat's port, counting its sockets",
    { timeout: 30_000 },
    async () => {
      const cli = await startCli(["--port", "0", "--metrics"]);
      try {
        const client = await RawClient.open(cli.port, "/chat", { "Sec-WebSocket-Protocol": "chat" });
        assert.equal(await refusedWith(cli.port, "/chat"), 400, "no chat subprotocol offered");
        const response = await get(cli.port, "/metrics");
        assert.equal(response.status, 200);
        if (!promtoolSkipReason) assertPromtoolAccepts(response.body);
        const found = samples(response.body);
        assert.equal(found.get("wisp_websocket_connections"), 1);
        assert.equal(found.get('wisp_handshakes_total{status="101"}'), 1);
        assert.equal(found.get('wisp_handshakes_total{status="400"}'), 1);
        assert.equal((await get(cli.port, "/")).status, 200, "the page is still there");
        client.destroy();
      } finally {
        await cli.stop();
      }
    },
  );
});
