/**
 * Hono's WebSocket helper on Wisp, with the real `hono` package: the app's middleware answers an
 * upgrade request before Wisp takes it over, route parameters and cookies reach the handlers,
 * echo of text and binary (an ArrayBuffer of exactly the message), a publish through `raw`, close
 * codes both ways, failures routed to `onError`, and plain routes beside it. Hand-built requests
 * and frames over raw TCP.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type Context, type Env, Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { getCookie } from "hono/cookie";
import { ipRestriction } from "hono/ip-restriction";
import {
  BINARY,
  CLOSE,
  closePayload,
  concat,
  frame,
  RawClient,
  TEXT,
  upgradeRequest,
  withClient,
} from "./helpers/raw_client.ts";
import { until } from "./helpers/server.ts";
import { serve, type Server } from "../mod.ts";
import { getConnInfo, upgradeWebSocket, websocket, type WSContext } from "../src/integrations/hono.ts";

const WAIT = 3000;
const decoder = new TextDecoder();
const AUTH = { Authorization: "Bearer secret" };

/** Reads one frame and returns its payload as text, checking it is a text frame. */
async function readText(client: RawClient): Promise<string> {
  const received = await client.readFrame(WAIT);
  assert.equal(received.opcode, TEXT, `a text frame, got opcode ${received.opcode}`);
  return decoder.decode(received.payload);
}

/** Opens a socket on `path` with the bearer token, expecting 101. */
function open(server: Server, path: string, headers: Record<string, string> = {}): Promise<RawClient> {
  return RawClient.open(server.port, path, { ...AUTH, ...headers });
}

describe("Hono", () => {
  let server: Server;
  const closes: { code: number; reason: string; type: string; wasClean: boolean; kind: string }[] = [];
  const errors: string[] = [];

  before(() => {
    const app = new Hono();
    app.get("/api/info", (c) => c.json({ ok: true, runtime: "wisp" }));
    app.post("/api/echo", async (c) => c.json({ got: await c.req.text() }));
    app.get(
      "/ip",
      ipRestriction(getConnInfo, { allowList: ["127.0.0.1"] }),
      (c) => c.text(getConnInfo(c).remote.address),
    );
    app.get("/blocked", ipRestriction(getConnInfo, { denyList: ["127.0.0.1"] }), (c) => c.text("not here"));
    app.get(
      "/ws/:room",
      bearerAuth({ token: "secret" }),
      upgradeWebSocket((c: Context<Env, "/ws/:room">) => {
        const room = c.req.param("room");
        const session = getCookie(c, "session") ?? "none";
        return {
          onOpen(_event, ws) {
            ws.raw.subscribe(room);
            ws.send(`joined ${room} (session ${session}, ${ws.url.pathname}, readyState ${ws.readyState})`);
          },
          async onMessage(event, ws) {
            const data = event.data;
            if (data instanceof ArrayBuffer) {
              ws.send(`binary ${data.byteLength}`);
              ws.send(data);
              return;
            }
            const text = String(data);
            if (text.startsWith("publish:")) ws.raw.publish(room, text.slice("publish:".length));
            else if (text === "close") ws.close(4002, "bye");
            else if (text === "throw") throw new Error("thrown");
            else if (text === "reject") await Promise.reject(new Error("rejected"));
            else ws.send(`echo:${text}`);
          },
          onClose(event, ws) {
            closes.push({
              code: event.code,
              reason: event.reason,
              type: event.type,
              wasClean: event.wasClean,
              kind: `${room} ${ws.readyState}`,
            });
          },
          onError(event, ws) {
            const error = (event as Event & { error: Error }).error;
            errors.push(`${event.type}: ${error.message}`);
            ws.send(`onError saw ${error.message}`);
          },
        };
      }),
    );
    app.get("/bare", upgradeWebSocket(() => ({ onMessage: () => Promise.reject(new Error("no onError")) })));
    app.get(
      "/blob",
      upgradeWebSocket(() => ({
        onOpen: (_event, ws: WSContext) => void (ws.binaryType = "blob"),
        onMessage: async (event, ws) => {
          const blob = event.data as Blob;
          ws.send(`blob ${blob instanceof Blob} ${await blob.text()}`);
        },
      })),
    );
    app.get("/direct", (c) => upgradeWebSocket(c, { onOpen: (_event, ws) => ws.send("direct") }));
    server = serve({ port: 0, fetch: app.fetch, websocket, onEvent() {} });
  });
  after(() => server.close());

  it("lets Hono's middleware answer an upgrade request: 401 without the token", async () => {
    await withClient(server.port, async (client) => {
      client.write(upgradeRequest("/ws/lobby"));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 401);
      assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer/);
    });
  });

  it("upgrades with the token; route parameters and cookies reach the handlers", async () => {
    const client = await open(server, "/ws/lobby", { Cookie: "session=abc" });
    try {
      assert.equal(await readText(client), "joined lobby (session abc, /ws/lobby, readyState 1)");
      client.write(frame(TEXT, "hello"));
      assert.equal(await readText(client), "echo:hello");
    } finally {
      client.destroy();
    }
  });

  it("hands binary messages over as an ArrayBuffer of exactly their bytes, and echoes them", async () => {
    const client = await open(server, "/ws/bytes");
    try {
      await readText(client);
      // Messages in one write are views into the read that carried them (Deno copies those from
      // 128 bytes up out of its read buffer, Bun those below 128 bytes).
      const sizes = [5, 200, 3];
      const messages = sizes.map((size) => Uint8Array.from({ length: size }, (_, i) => (size + i) & 0xff));
      client.write(concat(...messages.map((message) => frame(BINARY, message))));
      for (const sent of messages) {
        assert.equal(await readText(client), `binary ${sent.length}`);
        const echoed = await client.readFrame(WAIT);
        assert.equal(echoed.opcode, BINARY);
        assert.deepEqual(echoed.payload, sent);
      }
    } finally {
      client.destroy();
    }
  });

  it("gives a Blob when the handler sets binaryType to blob", async () => {
    const client = await RawClient.open(server.port, "/blob");
    try {
      client.write(frame(BINARY, "as a blob"));
      assert.equal(await readText(client), "blob true as a blob");
    } finally {
      client.destroy();
    }
  });

  it("publishes through raw to the other subscribers of the room, not to the sender", async () => {
    const a = await open(server, "/ws/room1");
    const b = await open(server, "/ws/room1");
    const elsewhere = await open(server, "/ws/room2");
    try {
      for (const client of [a, b, elsewhere]) await readText(client);
      a.write(frame(TEXT, "publish:news"));
      a.write(frame(TEXT, "after"));
      assert.equal(await readText(b), "news");
      assert.equal(await readText(a), "echo:after", "the publisher gets no copy");
      elsewhere.write(frame(TEXT, "probe"));
      assert.equal(await readText(elsewhere), "echo:probe", "another room gets nothing");
    } finally {
      for (const client of [a, b, elsewhere]) client.destroy();
    }
  });

  it("tells onClose the client's close code and reason (4001)", async () => {
    const client = await open(server, "/ws/closing");
    await readText(client);
    client.write(frame(CLOSE, closePayload(4001, "done")));
    assert.equal((await client.readClose(WAIT)).code, 4001, "Wisp echoes the code");
    await until(() => closes.some((close) => close.kind.startsWith("closing")), "onClose");
    assert.deepEqual(closes.find((close) => close.kind.startsWith("closing")), {
      code: 4001,
      reason: "done",
      type: "close",
      wasClean: true,
      kind: "closing 3",
    });
    client.destroy();
  });

  it("closes with the code the server gives (4002)", async () => {
    const client = await open(server, "/ws/leaving");
    await readText(client);
    client.write(frame(TEXT, "close"));
    const received = await client.readClose(WAIT);
    assert.deepEqual([received.code, received.reason], [4002, "bye"]);
    client.write(frame(CLOSE, closePayload(4002, "bye")));
    await client.waitForEnd(WAIT);
    await until(() => closes.some((close) => close.kind.startsWith("leaving")), "onClose");
    assert.equal(closes.find((close) => close.kind.startsWith("leaving"))!.code, 4002);
  });

  it("routes a throw and a rejection of onMessage to onError, and the socket stays open", async () => {
    const client = await open(server, "/ws/failing");
    try {
      await readText(client);
      client.write(frame(TEXT, "throw"));
      assert.equal(await readText(client), "onError saw thrown");
      client.write(frame(TEXT, "reject"));
      assert.equal(await readText(client), "onError saw rejected");
      client.write(frame(TEXT, "still open"));
      assert.equal(await readText(client), "echo:still open");
      assert.deepEqual(errors, ["error: thrown", "error: rejected"]);
    } finally {
      client.destroy();
    }
  });

  it("closes with 1011 when a handler fails and the route has no onError", async () => {
    const client = await RawClient.open(server.port, "/bare");
    client.write(frame(TEXT, "anything"));
    assert.equal((await client.readClose(WAIT)).code, 1011);
    client.destroy();
  });

  it("upgrades from inside a handler with upgradeWebSocket(c, events)", async () => {
    const client = await RawClient.open(server.port, "/direct");
    try {
      assert.equal(await readText(client), "direct");
    } finally {
      client.destroy();
    }
  });

  it("passes a request that is no upgrade on to Hono (404 when no route answers it)", async () => {
    await withClient(server.port, async (client) => {
      client.write("GET /ws/lobby HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer secret\r\n\r\n");
      assert.equal((await client.readResponse(WAIT)).status, 404);
    });
  });

  it("serves Hono's plain routes beside it: JSON, a POST body, getConnInfo for ipRestriction", async () => {
    await withClient(server.port, async (client) => {
      client.write("GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      const info = await client.readResponse(WAIT);
      assert.equal(info.status, 200);
      assert.match(info.headers.get("content-type") ?? "", /^application\/json/);
      assert.deepEqual(JSON.parse(info.body), { ok: true, runtime: "wisp" });
      client.write("POST /api/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello there");
      assert.deepEqual(JSON.parse((await client.readResponse(WAIT)).body), { got: "hello there" });
      client.write("GET /ip HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      assert.deepEqual([(await client.readResponse(WAIT)).body], ["127.0.0.1"]);
      client.write("GET /blocked HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      assert.equal((await client.readResponse(WAIT)).status, 403);
    });
  });
});

describe("Hono beside the server's own handlers", () => {
  it("keeps a server-wide websocket of the app's own for its other sockets", async () => {
    const app = new Hono();
    app.get("/hono", upgradeWebSocket(() => ({ onOpen: (_event, ws) => ws.send("hono") })));
    const server = serve({
      port: 0,
      fetch: (request, info) => {
        if (new URL(request.url).pathname !== "/own") return app.fetch(request, info);
        if (!info.upgrade(request)) return new Response("not a WebSocket", { status: 400 });
      },
      websocket: { open: (ws) => void ws.send("own") },
    });
    try {
      for (const path of ["/hono", "/own"]) {
        const client = await RawClient.open(server.port, path);
        assert.equal(await readText(client), path.slice(1));
        client.destroy();
      }
    } finally {
      await server.close();
    }
  });
});

describe("Hono without Wisp's fetch info", () => {
  it("answers 500 and names the mistake when fetch does not pass its info on", async () => {
    const app = new Hono();
    let failure = "";
    app.onError((error, c) => {
      failure = error.message;
      return c.text("failed", 500);
    });
    app.get("/ws", upgradeWebSocket(() => ({})));
    const server = serve({ port: 0, fetch: (request) => app.fetch(request), websocket });
    try {
      await withClient(server.port, async (client) => {
        client.write(upgradeRequest("/ws"));
        assert.equal((await client.readResponse(WAIT)).status, 500);
      });
      assert.match(failure, /c\.env is not Wisp's fetch info/);
    } finally {
      await server.close();
    }
  });
});
