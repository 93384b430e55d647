/**
 * `attach` on a `node:http` (and `node:https`) server the app made, and `handleUpgrade` from the
 * app's own `upgrade` listener (noServer): two attachments on one port, the app's own listener
 * and keep-alive connections left alone, early frames, every refusal with its status and reason,
 * wss:, close(). Hand-built requests and frames over raw TCP, on Deno, Bun and Node alike.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { Duplex } from "node:stream";
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
import { closeHttpServer, getOn, listenOnFreePort, readText } from "./helpers/attached.ts";
import { until } from "./helpers/server.ts";
import { testCertificate, tlsSkipReason } from "./helpers/tls.ts";
import {
  attach,
  type AttachedServer,
  type AttachOptions,
  type ServerWebSocket,
  type WebSocketHandler,
} from "../mod.ts";

const WAIT = 3000;
const encoder = new TextEncoder();

/** The app's plain requests: its own pages, which Wisp never answers. */
function appPages(request: IncomingMessage, response: ServerResponse): void {
  response.setHeader("Content-Type", "text/plain");
  response.end(`app page ${request.url}`);
}

/** Opens a WebSocket at `path` with one raw connection, expecting 101. */
const open = (port: number, path: string) => RawClient.open(port, path);

/** A server's open, refused and accepted counts, to show which attachment served what. */
function counts(wisp: AttachedServer<unknown>) {
  const stats = wisp.stats();
  return { accepted: stats.connections.accepted, ...stats.handshakes };
}

describe("attach: two attachments and the app's own upgrade listener on one http.Server", () => {
  let http: HttpServer;
  let port: number;
  let chat: AttachedServer;
  let shout: AttachedServer;
  /** Upgrade requests the app's own listener answered, by target. */
  const appUpgrades: string[] = [];
  /** Every upgrade request's socket by target, as a listener the app added after Wisp's sees it. */
  const seen = new Map<string, Duplex>();
  before(async () => {
    http = createServer(appPages);
    // The app's own listener serves /tunnel itself (it was there before Wisp).
    http.on("upgrade", (request: IncomingMessage, socket: Duplex) => {
      if (request.url !== "/tunnel") return;
      appUpgrades.push(request.url);
      socket.end("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 11\r\nConnection: close\r\n\r\napp answers");
    });
    chat = attach(http, { path: "/chat", websocket: { message: (ws, data) => void ws.send(data) } });
    shout = attach(http, {
      path: "/shout",
      websocket: { message: (ws, data) => void ws.send(String(data).toUpperCase()) },
    });
    http.on(
      "upgrade",
      (request: IncomingMessage, socket: Duplex) => void seen.set(request.url ?? "", socket),
    );
    port = await listenOnFreePort(http);
  });
  after(async () => {
    await Promise.all([chat.close(), shout.close()]);
    await closeHttpServer(http);
  });

  it("serves each attachment on its path with its own handlers and stats", async () => {
    const before = [counts(chat), counts(shout)];
    const [a, b] = await Promise.all([open(port, "/chat?room=1"), open(port, "/shout")]);
    try {
      a.write(frame(TEXT, "hello"));
      b.write(frame(TEXT, "hello"));
      assert.equal(await readText(a), "hello");
      assert.equal(await readText(b), "HELLO");
      assert.equal(chat.connections, 1);
      assert.equal(shout.connections, 1);
      assert.equal(counts(chat).accepted - before[0].accepted, 1);
      assert.equal(counts(shout).accepted - before[1].accepted, 1);
      assert.equal(chat.stats().messages.received, 1);
      assert.equal(shout.stats().messages.received, 1);
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it("leaves the app's own listener its path: the app answers, Wisp neither answers nor counts it", async () => {
    const before = [counts(chat), counts(shout)];
    await withClient(port, async (client) => {
      client.write(upgradeRequest("/tunnel"));
      const response = await client.readResponse(WAIT);
      assert.deepEqual([response.status, response.body], [418, "app answers"]);
      await client.waitForEnd(WAIT);
    });
    assert.deepEqual(appUpgrades, ["/tunnel"]);
    assert.deepEqual([counts(chat), counts(shout)], before);
  });

  it("leaves an upgrade of no attachment's path to the app's listeners when it has some", async () => {
    // No listener of the app's answers /elsewhere: theirs to decide, not Wisp's.
    const before = [counts(chat), counts(shout)];
    await withClient(port, async (client) => {
      client.write(upgradeRequest("/elsewhere"));
      // The last listener has seen it, so Wisp's have too (an event calls them all, in order).
      await until(() => seen.has("/elsewhere"), "the app's last listener to see the request");
      assert.deepEqual([counts(chat), counts(shout)], before);
      assert.equal(client.ended, false);
      seen.get("/elsewhere")!.destroy(); // the app's decision
    });
  });

  it("takes an upgrade on a connection that served the app's plain requests first", async () => {
    await withClient(port, async (client) => {
      assert.deepEqual(await getOn(client, "/first"), [200, "app page /first"]);
      client.write(concat(encoder.encode(upgradeRequest("/shout")), frame(TEXT, "after a page")));
      assert.equal((await client.readResponse(WAIT)).status, 101);
      assert.equal(await readText(client), "AFTER A PAGE");
    });
  });

  it("keeps serving the app's plain requests, kept alive, between and after upgrades", async () => {
    await withClient(port, async (client) => {
      assert.deepEqual(await getOn(client, "/"), [200, "app page /"]);
      assert.deepEqual(await getOn(client, "/chat"), [200, "app page /chat"]); // no Upgrade: the app's
    });
  });
});

describe("attach: only Wisp listening for upgrades", () => {
  let http: HttpServer;
  let port: number;
  let first: AttachedServer;
  let second: AttachedServer;
  before(async () => {
    http = createServer(appPages);
    first = attach(http, { path: "/one", websocket: { message: (ws, data) => void ws.send(data) } });
    second = attach(http, { path: "/two", websocket: { message: (ws, data) => void ws.send(data) } });
    port = await listenOnFreePort(http);
  });
  after(async () => {
    await Promise.all([first.close(), second.close()]);
    await closeHttpServer(http);
  });

  it("answers a WebSocket upgrade of no attachment's path 404 (once), as serve does", async () => {
    await withClient(port, async (client) => {
      client.write(upgradeRequest("/three"));
      const response = await client.readResponse(WAIT);
      assert.deepEqual([response.status, response.body], [404, "no WebSocket endpoint at this path\n"]);
      await client.waitForEnd(WAIT);
    });
    assert.equal((first.stats().handshakes[404] ?? 0) + (second.stats().handshakes[404] ?? 0), 1);
  });

  it("answers an upgrade to another protocol 501, which Node no longer hands to the app's routes", async () => {
    await withClient(port, async (client) => {
      client.write(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n",
      );
      client.write("HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
      const response = await client.readResponse(WAIT);
      assert.deepEqual([response.status, response.body], [501, "this server upgrades only to WebSocket\n"]);
      await client.waitForEnd(WAIT);
    });
  });

  it("refuses an upgrade with a body (400), whose bytes would otherwise be read as frames", async () => {
    const smuggled = frame(TEXT, "smuggled");
    const bodies: Record<string, string>[] = [
      { "Content-Length": String(smuggled.length) },
      { "Transfer-Encoding": "chunked" },
    ];
    for (const headers of bodies) {
      await withClient(port, async (client) => {
        client.write(concat(encoder.encode(upgradeRequest("/one", headers)), smuggled));
        const response = await client.readResponse(WAIT);
        assert.deepEqual(
          [response.status, response.body],
          [400, "a WebSocket upgrade request may not have a body\n"],
          JSON.stringify(headers),
        );
        await client.waitForEnd(WAIT);
      });
    }
    assert.equal(first.stats().messages.received, 0);
  });

  it("refuses a second Host (400), which Node's parser lets through", async () => {
    await withClient(port, async (client) => {
      client.write(upgradeRequest("/one", { Host: "127.0.0.1\r\nHost: elsewhere.example" }));
      const response = await client.readResponse(WAIT);
      assert.deepEqual([response.status, response.body], [400, "more than one Host header\n"]);
    });
  });
});

describe("attach: early frames and close()", () => {
  let http: HttpServer;
  let port: number;
  let wisp: AttachedServer;
  const received: unknown[] = [];
  const closes: [number, string][] = [];
  before(async () => {
    http = createServer(appPages);
    wisp = attach(http, {
      path: "/ws",
      websocket: {
        open: (ws) => void ws.send(`open at ${ws.url}`),
        message(ws, data) {
          received.push(data);
          ws.send(data);
        },
        close: (_ws, code, reason) => void closes.push([code, reason]),
      },
    });
    port = await listenOnFreePort(http);
  });
  after(async () => {
    await wisp.close();
    await closeHttpServer(http);
  });

  it("handles frames that came in the packet of the request head, binary ones as plain Uint8Array", async () => {
    const client = await RawClient.connect(port);
    try {
      const bytes = Uint8Array.of(1, 2, 3);
      client.write(concat(
        encoder.encode(upgradeRequest("/ws?early=1")),
        frame(TEXT, "early"),
        frame(BINARY, bytes),
      ));
      assert.equal((await client.readResponse(WAIT)).status, 101);
      assert.equal(await readText(client), "open at ws://127.0.0.1/ws?early=1");
      assert.equal(await readText(client), "early");
      assert.deepEqual((await client.readFrame(WAIT)).payload, bytes);
      const binary = received[1] as Uint8Array;
      assert.equal(Object.getPrototypeOf(binary), Uint8Array.prototype, "not Node's Buffer");
      assert.deepEqual(binary, bytes);
    } finally {
      client.destroy();
    }
  });

  it("close() sends 1001 to its sockets, and the server goes on serving its pages and kept-alive connections", async () => {
    const socket = await open(port, "/ws");
    const keptAlive = await RawClient.connect(port);
    try {
      assert.match(await readText(socket), /^open at /);
      assert.deepEqual(await getOn(keptAlive, "/before"), [200, "app page /before"]);
      const listeners = http.listenerCount("upgrade");
      const closed = wisp.close();
      const { code, reason } = await socket.readClose(WAIT);
      assert.deepEqual([code, reason], [1001, "server shutting down"]);
      socket.write(frame(CLOSE, closePayload(1001, "client going too")));
      await closed;
      await socket.waitForEnd(WAIT);
      assert.deepEqual(
        closes.at(-1),
        [1001, "client going too"],
        "the close handler hears the client's reply",
      );
      assert.equal(http.listenerCount("upgrade"), listeners - 1, "its upgrade listener is gone");
      assert.equal(http.listening, true);
      assert.deepEqual(await getOn(keptAlive, "/after"), [200, "app page /after"]);
      await withClient(
        port,
        async (client) => assert.deepEqual(await getOn(client, "/new"), [200, "app page /new"]),
      );
    } finally {
      socket.destroy();
      keptAlive.destroy();
    }
  });
});

describe("attach: flow control on the sockets taken from the server", () => {
  let http: HttpServer;
  let port: number;
  let wisp: AttachedServer;
  /** The socket that asked to be paused. */
  let paused: ServerWebSocket | null = null;
  /** How many MiB went out before send() said "queued"; -1 before it did. */
  let queuedAfter = -1;
  let binaries = 0;
  before(async () => {
    http = createServer(appPages);
    wisp = attach(http, {
      websocket: {
        async message(ws, data) {
          if (data === "pause") {
            ws.pause();
            paused = ws;
            ws.send("paused");
          } else if (data === "flood") {
            // One MiB a turn (a turn's sends go out in one write), up to 64, until send() says "queued".
            for (let sent = 1; sent <= 64; sent++) {
              if (ws.send(new Uint8Array(1 << 20)) === "queued") return void (queuedAfter = sent);
              await new Promise((resolve) => setTimeout(resolve, 1));
            }
          } else binaries++;
        },
        drain: (ws) => void ws.send("drained"),
      },
    });
    port = await listenOnFreePort(http);
  });
  after(async () => {
    await wisp.close();
    await closeHttpServer(http);
  });

  it("backs send() up behind a client that does not read ('queued'), then drains", async () => {
    const client = await open(port, "/");
    try {
      client.pause();
      client.write(frame(TEXT, "flood"));
      await until(() => queuedAfter > 0, 'send() to say "queued"');
      client.resume();
      const { skipped, text } = await readUntilText(client);
      assert.deepEqual(
        [skipped, text],
        [queuedAfter, "drained"],
        "every MiB sent arrives, then the drain's message",
      );
    } finally {
      client.destroy();
    }
  });

  it("pause() stops reading the socket, so the client's writes wait in TCP, and resume() reads them", async () => {
    const client = await open(port, "/");
    try {
      client.write(frame(TEXT, "pause"));
      assert.equal(await readText(client), "paused");
      const mebibyte = frame(BINARY, new Uint8Array(1 << 20));
      for (let i = 0; i < 32; i++) client.write(mebibyte);
      await until(() => client.unsent > 8 << 20, "the client's writes to back up");
      assert.equal(binaries, 0);
      paused!.resume();
      await until(() => binaries === 32, "every message once resumed");
    } finally {
      client.destroy();
    }
  });
});

/** Reads binary frames until a text one: how many came before it, and its text. */
async function readUntilText(client: RawClient): Promise<{ skipped: number; text: string }> {
  for (let skipped = 0; skipped <= 64; skipped++) {
    const next = await client.readFrame(WAIT);
    if (next.opcode === TEXT) return { skipped, text: new TextDecoder().decode(next.payload) };
  }
  throw new Error("no text frame after 64 binary ones");
}

describe("attach: options", () => {
  it("refuses the options of listening and plain HTTP, naming them (TypeError)", () => {
    const given = {
      port: 0,
      hostname: "127.0.0.1",
      reusePort: true,
      tls: {},
      fetch: () => {},
      metrics: "/m",
    };
    for (const [name, value] of Object.entries(given)) {
      assert.throws(
        () => attach(null, { [name]: value } as AttachOptions),
        (error: Error) => error instanceof TypeError && error.message.includes(`"${name}"`),
        name,
      );
    }
  });

  it("checks the other options as serve does (RangeError naming one)", () => {
    assert.throws(
      () => attach(null, { maxPayloadLength: -1 }),
      (error: Error) => error instanceof RangeError && error.message.includes("maxPayloadLength"),
    );
  });
});

describe("handleUpgrade from the app's own upgrade listener (noServer)", () => {
  let http: HttpServer;
  let port: number;
  /** Releases the upgrades that the `/slow` hook holds. */
  let release: () => void = () => {};
  let held = new Promise<void>((resolve) => (release = resolve));
  const hook: AttachOptions<{ user: string }>["upgrade"] = async (request: Request) => {
    const url = new URL(request.url);
    if (url.pathname.endsWith("/denied")) {
      return new Response("who are you?", { status: 401, headers: { "WWW-Authenticate": "Bearer" } });
    }
    if (url.pathname.endsWith("/slow")) await held;
    return { data: { user: url.searchParams.get("user") ?? "nobody" } };
  };
  const websocket: WebSocketHandler<{ user: string }> = {
    open: (ws) => void ws.send(`hi ${ws.data.user}`),
    message: (ws, data) => void ws.send(data),
  };
  const wisp = attach<{ user: string }>(null, { origins: ["https://app.example"], upgrade: hook, websocket });
  const total = attach<{ user: string }>(null, { maxPendingHandshakes: 1, upgrade: hook, websocket });
  const perIp = attach<{ user: string }>(null, { maxPendingHandshakesPerIp: 1, upgrade: hook, websocket });
  const oneEach = attach<{ user: string }>(null, { maxConnectionsPerIp: 1, upgrade: hook, websocket });
  const quick = attach<{ user: string }>(null, { handshakeTimeout: 200, upgrade: hook, websocket });
  before(async () => {
    http = createServer(appPages);
    // The app routes upgrades itself: /total/… to one server, /ip/… to another, the rest to `wisp`.
    http.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Uint8Array) => {
      const [, first] = (request.url ?? "").split("/");
      const target = { total, ip: perIp, each: oneEach, quick }[first] ?? wisp;
      target.handleUpgrade(request, socket, head);
    });
    port = await listenOnFreePort(http);
  });
  after(async () => {
    release();
    await Promise.all([wisp, total, perIp, oneEach, quick].map((server) => server.close()));
    await closeHttpServer(http);
  });

  it("has no port of its own", () => {
    assert.equal(wisp.port, 0);
  });

  it("takes the request over, with the frames that came in its packet", async () => {
    const client = await RawClient.connect(port);
    try {
      client.write(concat(encoder.encode(upgradeRequest("/chat?user=ann")), frame(TEXT, "early")));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 101);
      assert.equal(response.headers.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
      assert.equal(await readText(client), "hi ann");
      assert.equal(await readText(client), "early");
    } finally {
      client.destroy();
    }
  });

  /** Sends an upgrade request and reads the refusal, which ends the connection. */
  async function refusal(path: string, headers: Record<string, string | null> = {}) {
    return await withClient(port, async (client) => {
      client.write(upgradeRequest(path, headers));
      const response = await client.readResponse(WAIT);
      await client.waitForEnd(WAIT);
      return response;
    });
  }

  it("answers a bad key 400, another version 426 naming 13, a foreign origin 403, each with its reason", async () => {
    const badKey = await refusal("/chat", { "Sec-WebSocket-Key": "c2hvcnQ=" });
    assert.deepEqual([badKey.status, badKey.body], [
      400,
      "Sec-WebSocket-Key must be the base64 of 16 bytes\n",
    ]);
    const version = await refusal("/chat", { "Sec-WebSocket-Version": "8" });
    assert.deepEqual([version.status, version.body], [426, "only WebSocket version 13 is supported\n"]);
    assert.equal(version.headers.get("sec-websocket-version"), "13");
    const foreign = await refusal("/chat", { Origin: "https://evil.example" });
    assert.equal(foreign.status, 403);
    assert.match(foreign.body, /origins/);
    const trusted = await RawClient.open(port, "/chat", { Origin: "https://app.example" });
    trusted.destroy();
  });

  it("sends the upgrade hook's own Response as it is", async () => {
    const denied = await refusal("/denied");
    assert.deepEqual([denied.status, denied.body], [401, "who are you?"]);
    assert.equal(denied.headers.get("www-authenticate"), "Bearer");
    assert.equal(wisp.stats().handshakes[401], 1);
  });

  it("holds maxPendingHandshakes and maxPendingHandshakesPerIp while the hook decides (503, 429)", async () => {
    const waiting = await Promise.all(["/total/slow", "/ip/slow"].map(async (path) => {
      const client = await RawClient.connect(port);
      client.write(upgradeRequest(path));
      return client;
    }));
    try {
      await until(
        () => total.stats().connections.http === 1 && perIp.stats().connections.http === 1,
        "both hooks to be deciding",
      );
      const full = await refusal("/total/slow");
      assert.deepEqual([full.status, full.body], [503, "too many requests are in progress; try again\n"]);
      const sameIp = await refusal("/ip/slow");
      assert.deepEqual([sameIp.status, sameIp.body], [
        429,
        "too many requests from this address are in progress\n",
      ]);
      release();
      for (const client of waiting) assert.equal((await client.readResponse(WAIT)).status, 101);
    } finally {
      for (const client of waiting) client.destroy();
      held = new Promise<void>((resolve) => (release = resolve));
    }
  });

  it("answers 408 when the upgrade hook does not decide within handshakeTimeout", async () => {
    const late = await refusal("/quick/slow");
    assert.deepEqual([late.status, late.body], [408, "the request took too long\n"]);
    assert.equal(quick.stats().drops.handshakeTimeout, 1);
  });

  it("holds maxConnectionsPerIp (429 naming it)", async () => {
    const first = await RawClient.open(port, "/each/chat");
    try {
      const second = await refusal("/each/chat");
      assert.deepEqual(
        [second.status, second.body],
        [429, "too many connections from 127.0.0.1 (maxConnectionsPerIp is 1)\n"],
      );
    } finally {
      first.destroy();
    }
  });
});

describe("attach to an https.Server", { skip: tlsSkipReason }, () => {
  let https: HttpsServer;
  let port: number;
  let wisp: AttachedServer;
  let ca: string;
  before(async () => {
    const certificate = testCertificate();
    ca = certificate.ca;
    https = createHttpsServer({ cert: certificate.cert, key: certificate.key }, appPages);
    wisp = attach(https, {
      websocket: { open: (ws) => void ws.send(ws.url), message: (ws, data) => void ws.send(data) },
    });
    port = await listenOnFreePort(https);
  });
  after(async () => {
    await wisp.close();
    await closeHttpServer(https);
  });

  it("says https: and wss:, and serves the app's pages and WebSockets over TLS, early frames too", async () => {
    assert.equal(wisp.url, `https://127.0.0.1:${port}/`);
    const page = await RawClient.connectTls(port, ca);
    const socket = await RawClient.connectTls(port, ca);
    try {
      assert.deepEqual(await getOn(page, "/"), [200, "app page /"]);
      socket.write(
        concat(encoder.encode(upgradeRequest("/secure", { Host: `localhost:${port}` })), frame(TEXT, "tls")),
      );
      assert.equal((await socket.readResponse(WAIT)).status, 101);
      assert.equal(await readText(socket), `wss://localhost:${port}/secure`);
      assert.equal(await readText(socket), "tls");
    } finally {
      page.destroy();
      socket.destroy();
    }
  });
});
