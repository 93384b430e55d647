/**
 * Upgrading from inside `fetch`, as `Bun.serve` does: without an `upgrade` hook, upgrade requests
 * reach `fetch`, and `info.upgrade(request, options)` (or `server.upgrade`) takes one over with
 * the guards of Wisp's own upgrades; per-route handlers; and the `Date` header on every response.
 * Hand-built requests and frames over raw TCP.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { frame, RawClient, TEXT, upgradeRequest, withClient } from "./helpers/raw_client.ts";
import { until } from "./helpers/server.ts";
import { serve, type Server, type ServerEvent, type WebSocketHandler } from "../mod.ts";

const WAIT = 3000;
const decoder = new TextDecoder();

/** Reads one text frame's payload. */
async function readText(client: RawClient): Promise<string> {
  return decoder.decode((await client.readFrame(WAIT)).payload);
}

describe("upgrade from fetch", () => {
  let server: Server<{ user: string }>;
  const events: ServerEvent[] = [];
  const upper: WebSocketHandler<{ user: string }> = {
    message: (ws, data) => void ws.send(String(data).toUpperCase()),
  };
  let secondUpgrade: boolean | null = null;
  before(() => {
    server = serve<{ user: string }>({
      port: 0,
      handshakeTimeout: 300,
      protocols: ["chat", "other"],
      onEvent: (event) => void events.push(event),
      websocket: {
        open: (ws) => void ws.send(`hello ${ws.data.user} on ${new URL(ws.url).pathname} (${ws.protocol})`),
        message: (ws, data) => void ws.send(data),
      },
      async fetch(request, info) {
        const url = new URL(request.url);
        if (url.pathname === "/slow") return new Promise(() => {}); // never answers
        // Middleware first: no token, no WebSocket.
        const user = url.searchParams.get("token");
        if (user === null) return new Response("who are you?", { status: 401 });
        await Promise.resolve(); // anything fetch awaits before upgrading
        if (url.pathname === "/upper") {
          if (server.upgrade(request, { data: { user }, websocket: upper })) return;
        } else if (url.pathname === "/picked") {
          if (
            info.upgrade(request, { data: { user }, protocol: "other", headers: { "X-Route": "picked" } })
          ) return;
        } else if (url.pathname === "/twice") {
          const first = info.upgrade(request, { data: { user } });
          secondUpgrade = info.upgrade(request, { data: { user } });
          if (first) return new Response("ignored");
        } else if (url.pathname === "/throws") {
          if (info.upgrade(request, { data: { user } })) throw new Error("after the upgrade");
        } else if (info.upgrade(request, { data: { user } })) {
          return;
        }
        return new Response(`not a WebSocket: ${request.method} ${url.pathname}`, { status: 400 });
      },
    });
  });
  after(() => server.close());

  it("lets the app's middleware answer an upgrade request (401 without a token)", async () => {
    await withClient(server.port, async (client) => {
      client.write(upgradeRequest("/chat"));
      const response = await client.readResponse(WAIT);
      assert.deepEqual([response.status, response.body], [401, "who are you?"]);
      await client.waitForEnd(WAIT); // an upgrade request answered otherwise ends its connection
    });
  });

  it("takes an upgrade request over after awaits in fetch, with its data, and echoes", async () => {
    const client = await RawClient.connect(server.port);
    try {
      client.write(upgradeRequest("/chat?token=ann", { "Sec-WebSocket-Protocol": "other, chat" }));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 101);
      assert.equal(response.headers.get("sec-websocket-protocol"), "chat", "the protocols option chose");
      assert.equal(await readText(client), "hello ann on /chat (chat)");
      client.write(frame(TEXT, "echo me"));
      assert.equal(await readText(client), "echo me");
    } finally {
      client.destroy();
    }
  });

  it("takes the subprotocol and headers the app passes, and the route's own handlers", async () => {
    const picked = await RawClient.connect(server.port);
    const routed = await RawClient.connect(server.port);
    try {
      picked.write(upgradeRequest("/picked?token=bo", { "Sec-WebSocket-Protocol": "chat, other" }));
      const response = await picked.readResponse(WAIT);
      assert.equal(response.headers.get("sec-websocket-protocol"), "other");
      assert.equal(response.headers.get("x-route"), "picked");
      routed.write(upgradeRequest("/upper?token=cy"));
      assert.equal((await routed.readResponse(WAIT)).status, 101);
      routed.write(frame(TEXT, "shout"));
      assert.equal(await readText(routed), "SHOUT", "the route's message handler, no open handler");
    } finally {
      picked.destroy();
      routed.destroy();
    }
  });

  it("returns false for a request that is no valid upgrade, so the app answers it", async () => {
    await withClient(server.port, async (client) => {
      client.write("GET /plain?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      assert.deepEqual(
        [(await client.readResponse(WAIT)).body],
        ["not a WebSocket: GET /plain"],
      );
      client.write(upgradeRequest("/bad?token=x", { "Sec-WebSocket-Key": "short" }));
      const response = await client.readResponse(WAIT);
      assert.deepEqual([response.status, response.body], [400, "not a WebSocket: GET /bad"]);
    });
  });

  it("answers a foreign Origin itself with 403 (the guard applies), upgrade() returning true", async () => {
    await withClient(server.port, async (client) => {
      client.write(upgradeRequest("/chat?token=x", { Origin: "https://evil.example" }));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 403);
      assert.match(response.body, /origin https:\/\/evil\.example may not open WebSockets here/);
    });
  });

  it("takes a request over once: a second upgrade() is false, and fetch's response is ignored", async () => {
    const client = await RawClient.connect(server.port);
    try {
      client.write(upgradeRequest("/twice?token=dee"));
      assert.equal((await client.readResponse(WAIT)).status, 101);
      assert.equal(await readText(client), "hello dee on /twice ()");
      assert.equal(secondUpgrade, false);
    } finally {
      client.destroy();
    }
  });

  it("keeps a socket whose fetch threw after upgrading it, and reports the throw", async () => {
    const client = await RawClient.connect(server.port);
    try {
      client.write(upgradeRequest("/throws?token=eve"));
      assert.equal((await client.readResponse(WAIT)).status, 101);
      assert.equal(await readText(client), "hello eve on /throws ()");
      await until(() => events.some((event) => /after the upgrade/.test(String(event.error))), "the event");
      client.write(frame(TEXT, "still here"));
      assert.equal(await readText(client), "still here");
    } finally {
      client.destroy();
    }
  });

  it("gives an upgrade request that fetch does not settle handshakeTimeout (408)", async () => {
    await withClient(server.port, async (client) => {
      client.write(upgradeRequest("/slow"));
      assert.equal((await client.readResponse(WAIT)).status, 408);
    });
  });

  it("refuses upgrade options it does not know with a TypeError, and a request it never saw with false", () => {
    const request = new Request("http://127.0.0.1/", { headers: { Upgrade: "websocket" } });
    assert.equal(server.upgrade(request), false);
    assert.throws(
      () => server.upgrade(request, { dat: 1 } as never),
      { name: "TypeError", message: 'unknown upgrade() option "dat"' },
    );
    assert.throws(
      () => server.upgrade(request, { websocket: { mesage() {} } } as never),
      { name: "TypeError", message: /unknown handler "websocket.mesage"/ },
    );
  });

  it("counts the upgrades from fetch as 101s and the requests handed to fetch", () => {
    const stats = server.stats();
    assert.ok(stats.handshakes[101] >= 5, `${stats.handshakes[101]}`);
    assert.ok(stats.requests >= 9, `${stats.requests}`);
  });
});

describe("Date header", () => {
  let server: Server;
  before(() => {
    server = serve({
      port: 0,
      upgrade: (request) =>
        new URL(request.url).pathname === "/no" ? new Response("no", { status: 403 }) : undefined,
      fetch: (request) =>
        new URL(request.url).pathname === "/dated"
          ? new Response("old", { headers: { Date: "Thu, 01 Jan 1970 00:00:00 GMT" } })
          : new Response("now"),
    });
  });
  after(() => server.close());

  /** An IMF-fixdate (RFC 9110 §5.6.7) within two seconds of now. */
  function assertNow(value: string | null): void {
    assert.match(
      value ?? "",
      /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/,
    );
    assert.ok(Math.abs(Date.parse(value!) - Date.now()) < 2000, value!);
  }

  it("is on responses of fetch, on error answers, on 101 and on the upgrade hook's responses", async () => {
    for (
      const [bytes, status] of [
        ["GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 200],
        ["GET / HTTP/1.1\r\n\r\n", 400],
        [upgradeRequest("/"), 101],
        [upgradeRequest("/no"), 403],
      ] as const
    ) {
      await withClient(server.port, async (client) => {
        client.write(bytes);
        const response = await client.readResponse(WAIT);
        assert.equal(response.status, status);
        assertNow(response.headers.get("date"));
      });
    }
  });

  it("keeps a Date the response has of its own, once", async () => {
    await withClient(server.port, async (client) => {
      client.write("GET /dated HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      const response = await client.readResponse(WAIT);
      assert.equal(response.headers.get("date"), "Thu, 01 Jan 1970 00:00:00 GMT");
    });
  });
});
