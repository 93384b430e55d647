import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  concat,
  frame,
  RawClient,
  type ResponseHead,
  upgradeRequest,
  withClient,
} from "./helpers/raw_client.ts";
import { delay, echoServer } from "./helpers/server.ts";
import { serve, type ServeOptions, type Server, type UpgradeInfo } from "../mod.ts";

/** RFC 6455 §1.3's sample key and the accept value it must produce. */
const SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/** How long a test waits for any one answer. */
const WAIT = 2000;
/**
 * The servers' closeTimeout, longer than WAIT: a refused connection must be closed right after its
 * answer, not merely dropped once closeTimeout runs out. (Every test destroys its clients, so
 * closing a server never waits this long.)
 */
const CLOSE_TIMEOUT = 4000;

const decoder = new TextDecoder();

/** Sends `request` and expects `status`, a `Connection: close` answer, and the server closing TCP. */
function refused(port: number, request: string | Uint8Array, status: number): Promise<ResponseHead> {
  return withClient(port, async (client) => {
    client.write(request);
    const response = await client.readResponse(WAIT);
    assert.equal(response.status, status, `status (body: ${JSON.stringify(response.body)})`);
    assert.equal(response.headers.get("connection"), "close");
    await client.waitForEnd(WAIT);
    assert.ok(client.ended, "the server should close the connection");
    return response;
  });
}

/** Sends `request` and expects a 101 with the sample key's accept value; returns the response. */
function switched(port: number, request: string): Promise<ResponseHead> {
  return withClient(port, async (client) => {
    client.write(request);
    const response = await client.readResponse(WAIT);
    assert.equal(response.status, 101, `status (body: ${JSON.stringify(response.body)})`);
    assert.equal(response.headers.get("sec-websocket-accept"), SAMPLE_ACCEPT);
    return response;
  });
}

/** Replaces the request line of an upgrade request for "/". */
function withRequestLine(line: string, headers: Record<string, string | null> = {}): string {
  return upgradeRequest("/", headers).replace("GET / HTTP/1.1", line);
}

/** Calls `fn` with console.error silenced (for answers that log a failure), restoring it after. */
async function quietly<R>(fn: () => Promise<R>): Promise<R> {
  const original = console.error;
  console.error = () => {};
  try {
    return await fn();
  } finally {
    console.error = original;
  }
}

describe("handshake: accepting", () => {
  let server: Server;
  before(() => {
    server = echoServer({ closeTimeout: CLOSE_TIMEOUT });
  });
  after(() => server.close());

  it("answers RFC 6455's sample key with its accept value, then speaks WebSocket", async () => {
    await withClient(server.port, async (client) => {
      client.write(upgradeRequest("/", { "Sec-WebSocket-Key": SAMPLE_KEY }));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 101);
      assert.equal(response.headers.get("upgrade"), "websocket");
      assert.equal(response.headers.get("connection"), "Upgrade");
      assert.equal(response.headers.get("sec-websocket-accept"), SAMPLE_ACCEPT);
      assert.equal(response.headers.get("sec-websocket-protocol"), null);
      assert.equal(response.headers.get("sec-websocket-extensions"), null);
      assert.equal(response.body, "");
      client.write(frame(0x1, "ping?"));
      const echoed = await client.readFrame(WAIT);
      assert.equal(echoed.opcode, 0x1);
      assert.equal(decoder.decode(echoed.payload), "ping?");
      assert.equal(client.ended, false);
    });
  });

  it("computes the accept value from the key actually sent", async () => {
    await withClient(server.port, async (client) => {
      client.write(upgradeRequest("/", { "Sec-WebSocket-Key": "AQIDBAUGBwgJCgsMDQ4PEA==" }));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 101);
      // base64(SHA-1("AQIDBAUGBwgJCgsMDQ4PEA==" + GUID))
      const digest = await crypto.subtle.digest(
        "SHA-1",
        new TextEncoder().encode("AQIDBAUGBwgJCgsMDQ4PEA==258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
      );
      const expected = btoa(String.fromCharCode(...new Uint8Array(digest)));
      assert.notEqual(expected, SAMPLE_ACCEPT);
      assert.equal(response.headers.get("sec-websocket-accept"), expected);
    });
  });

  it("answers handshakes that arrive together each with its own key's accept value", async () => {
    // Every key's bytes differ (index in bytes 0–1), and all requests reach the server in one turn.
    const keys = Array.from(
      { length: 40 },
      (_, i) => btoa(String.fromCharCode(i >> 8, i & 255, ...new Array(14).fill(7))),
    );
    const clients = await Promise.all(keys.map(() => RawClient.connect(server.port)));
    try {
      clients.forEach((client, i) => client.write(upgradeRequest("/", { "Sec-WebSocket-Key": keys[i] })));
      const responses = await Promise.all(clients.map((client) => client.readResponse(WAIT)));
      for (const [i, response] of responses.entries()) {
        const digest = await crypto.subtle.digest(
          "SHA-1",
          new TextEncoder().encode(keys[i] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
        );
        assert.equal(response.status, 101);
        assert.equal(
          response.headers.get("sec-websocket-accept"),
          btoa(String.fromCharCode(...new Uint8Array(digest))),
        );
      }
    } finally {
      for (const client of clients) client.destroy();
    }
  });

  for (
    const connection of ["keep-alive, Upgrade", "upgrade", "UPGRADE", "Upgrade,keep-alive", "  Upgrade  "]
  ) {
    it(`accepts Connection: ${JSON.stringify(connection)}`, async () => {
      await switched(server.port, upgradeRequest("/", { Connection: connection }));
    });
  }

  for (const upgrade of ["WebSocket", "WEBSOCKET", "websocket"]) {
    it(`accepts Upgrade: ${upgrade}`, async () => {
      await switched(server.port, upgradeRequest("/", { Upgrade: upgrade }));
    });
  }

  it("accepts header names in any case", async () => {
    const request = upgradeRequest("/", {
      Host: null,
      Upgrade: null,
      Connection: null,
      "Sec-WebSocket-Key": null,
      "Sec-WebSocket-Version": null,
      host: "127.0.0.1",
      UPGRADE: "websocket",
      connection: "upgrade",
      "sec-websocket-key": SAMPLE_KEY,
      "SEC-WEBSOCKET-VERSION": "13",
    });
    await switched(server.port, request);
  });

  it("processes frames sent in the same write as the request head", async () => {
    await withClient(server.port, async (client) => {
      client.write(concat(
        new TextEncoder().encode(upgradeRequest("/")),
        frame(0x1, "early"),
        frame(0x2, Uint8Array.of(1, 2, 3)),
        frame(0x8, Uint8Array.of(0x03, 0xe8)),
      ));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 101);
      const text = await client.readFrame(WAIT);
      assert.equal(text.opcode, 0x1);
      assert.equal(decoder.decode(text.payload), "early");
      const binary = await client.readFrame(WAIT);
      assert.equal(binary.opcode, 0x2);
      assert.deepEqual([...binary.payload], [1, 2, 3]);
      const close = await client.readClose(WAIT);
      assert.equal(close.code, 1000);
      await client.waitForEnd(WAIT);
    });
  });
});

describe("handshake: refusing", () => {
  let server: Server;
  before(() => {
    server = echoServer({ closeTimeout: CLOSE_TIMEOUT, maxHeadSize: 1024 });
  });
  after(() => server.close());

  it("refuses a non-GET upgrade with 400", async () => {
    await refused(server.port, withRequestLine("POST / HTTP/1.1", { "Content-Length": "0" }), 400);
  });

  it("refuses an HTTP/1.0 upgrade with 400", async () => {
    await refused(server.port, withRequestLine("GET / HTTP/1.0"), 400);
  });

  it("refuses an upgrade without Host with 400", async () => {
    await refused(server.port, upgradeRequest("/", { Host: null }), 400);
  });

  for (const connection of ["keep-alive", "Upgraded", "close", null]) {
    it(`refuses Connection: ${JSON.stringify(connection)} (no upgrade token) with 400`, async () => {
      await refused(server.port, upgradeRequest("/", { Connection: connection }), 400);
    });
  }

  it("refuses an upgrade without Sec-WebSocket-Key with 400", async () => {
    await refused(server.port, upgradeRequest("/", { "Sec-WebSocket-Key": null }), 400);
  });

  const badKeys: [string, string][] = [
    ["base64 of 15 bytes", btoa("a".repeat(15))],
    ["base64 of 17 bytes", btoa("a".repeat(17))],
    ["not base64", "!!!!!!!!!!!!!!!!!!!!!!=="],
    ["16 bytes without padding", btoa("a".repeat(16)).replace(/=+$/, "")],
    ["empty", ""],
  ];
  for (const [name, key] of badKeys) {
    it(`refuses a Sec-WebSocket-Key that is ${name} with 400`, async () => {
      await refused(server.port, upgradeRequest("/", { "Sec-WebSocket-Key": key }), 400);
    });
  }

  it("answers Sec-WebSocket-Version: 8 with 426 naming version 13", async () => {
    const response = await refused(server.port, upgradeRequest("/", { "Sec-WebSocket-Version": "8" }), 426);
    assert.equal(response.headers.get("sec-websocket-version"), "13");
  });

  for (
    const line of [
      "GET /",
      "GET / HTTP/1.1 extra",
      "GET  / HTTP/1.1",
      "HELLO",
      "GET / HTTP/1",
      "GET / FTP/1.1",
    ]
  ) {
    it(`refuses the malformed request line ${JSON.stringify(line)} with 400`, async () => {
      await refused(server.port, withRequestLine(line), 400);
    });
  }

  it("refuses a malformed header field with 400", async () => {
    await refused(server.port, upgradeRequest("/").replace("\r\n\r\n", "\r\nno colon here\r\n\r\n"), 400);
    await refused(server.port, upgradeRequest("/").replace("\r\n\r\n", "\r\nBad Name: x\r\n\r\n"), 400);
  });

  it("answers HTTP/2.0 with 505", async () => {
    await refused(server.port, withRequestLine("GET / HTTP/2.0"), 505);
    await refused(server.port, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
  });

  /** An upgrade request whose head is exactly `size` bytes, padded with an extra header. */
  function headOfSize(size: number): string {
    const base = upgradeRequest("/", { "X-Pad": "" });
    const head = upgradeRequest("/", { "X-Pad": "p".repeat(size - base.length) });
    assert.equal(head.length, size);
    return head;
  }

  it("accepts a head of exactly maxHeadSize bytes", async () => {
    await switched(server.port, headOfSize(1024));
  });

  it("answers a head larger than maxHeadSize, sent in one write, with 431", async () => {
    await refused(server.port, headOfSize(1025), 431);
    await refused(server.port, headOfSize(5000), 431);
  });

  it("answers a head larger than maxHeadSize, sent slowly, with 431 before it ends", async () => {
    await withClient(server.port, async (client) => {
      const head = new TextEncoder().encode(headOfSize(4000));
      let sent = 0;
      while (sent < head.length && client.unread === 0 && !client.ended) {
        client.write(head.subarray(sent, sent + 50));
        sent += 50;
        await delay(3);
      }
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 431);
      await client.waitForEnd(WAIT);
      assert.ok(sent < head.length, `the answer came only after ${sent} of ${head.length} bytes`);
    });
  });

  it("treats a request without Upgrade as plain HTTP: the default answer is 426", async () => {
    const response = await refused(server.port, "GET /page HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 426);
    assert.equal(response.headers.get("upgrade"), "websocket");
    assert.equal(response.body, "This is a WebSocket server.\n");
  });
});

describe("handshake: maxHeaderCount", () => {
  let server: Server;
  before(() => {
    server = echoServer({ closeTimeout: CLOSE_TIMEOUT, maxHeaderCount: 6 });
  });
  after(() => server.close());

  it("accepts exactly maxHeaderCount header fields", async () => {
    // upgradeRequest sends 5 fields.
    await switched(server.port, upgradeRequest("/", { "X-One": "1" }));
  });

  it("answers more than maxHeaderCount header fields with 431", async () => {
    await refused(server.port, upgradeRequest("/", { "X-One": "1", "X-Two": "2" }), 431);
  });
});

describe("handshake: path and origins", () => {
  let server: Server;
  before(() => {
    server = echoServer({
      closeTimeout: CLOSE_TIMEOUT,
      path: "/chat",
      origins: ["https://good.example", "http://localhost:8080"],
    });
  });
  after(() => server.close());

  it("accepts the configured path, with or without a query", async () => {
    await switched(server.port, upgradeRequest("/chat"));
    await switched(server.port, upgradeRequest("/chat?room=1"));
  });

  for (const path of ["/", "/other", "/chat/", "/chatroom"]) {
    it(`answers ${path} with 404`, async () => {
      await refused(server.port, upgradeRequest(path), 404);
    });
  }

  it("answers a foreign Origin with 403", async () => {
    await refused(server.port, upgradeRequest("/chat", { Origin: "https://evil.example" }), 403);
    await refused(server.port, upgradeRequest("/chat", { Origin: "null" }), 403);
    await refused(server.port, upgradeRequest("/chat", { Origin: "https://good.example:444" }), 403);
  });

  it("accepts a listed Origin and a request without Origin", async () => {
    await switched(server.port, upgradeRequest("/chat", { Origin: "https://good.example" }));
    await switched(server.port, upgradeRequest("/chat", { Origin: "http://localhost:8080" }));
    await switched(server.port, upgradeRequest("/chat"));
  });
});

describe("handshake: same origin by default", () => {
  let server: Server;
  let open: Server;
  before(() => {
    server = echoServer({ closeTimeout: CLOSE_TIMEOUT });
    open = echoServer({ closeTimeout: CLOSE_TIMEOUT, origins: "*" });
  });
  after(() => Promise.all([server.close(), open.close()]));

  it("accepts an Origin whose host is the Host the request went to, in any case and scheme", async () => {
    const host = `127.0.0.1:${server.port}`;
    await switched(server.port, upgradeRequest("/", { Host: host, Origin: `http://${host}` }));
    await switched(server.port, upgradeRequest("/", { Host: host, Origin: `https://${host}` }));
    await switched(server.port, upgradeRequest("/", { Host: "Example.COM", Origin: "http://example.com" }));
    await switched(
      server.port,
      upgradeRequest("/", { Host: "example.com:80", Origin: "http://example.com" }),
    );
    await switched(
      server.port,
      upgradeRequest("/", { Host: "example.com:443", Origin: "https://example.com" }),
    );
  });

  it("answers another origin with 403 and a body that names the option", async () => {
    const host = `127.0.0.1:${server.port}`;
    for (
      const origin of ["https://evil.example", "http://127.0.0.1:1", "null", "http://127.0.0.1.evil.example"]
    ) {
      const response = await refused(server.port, upgradeRequest("/", { Host: host, Origin: origin }), 403);
      assert.match(response.body, /"origins" option/);
      assert.ok(response.body.includes(origin), response.body);
    }
  });

  it('lets requests without Origin pass, and any Origin with origins: "*"', async () => {
    await switched(server.port, upgradeRequest("/"));
    await switched(open.port, upgradeRequest("/", { Origin: "https://evil.example" }));
  });

  it('rejects an origins value that is neither "*" nor a list', () => {
    assert.throws(() => serve({ origins: "any" as unknown as "*" }), TypeError);
  });
});

describe("handshake: upgrade hook", () => {
  type Data = { tag: string } | undefined;
  let server: Server;
  let inspected: { url: string; method: string; token: string | null; info: UpgradeInfo } | null = null;

  before(() => {
    server = serve<Data>({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      protocols: ["chat"],
      upgrade(request, info) {
        switch (new URL(request.url).pathname) {
          case "/refuse":
            return false;
          case "/response":
            return new Response("log in first", {
              status: 401,
              headers: { "WWW-Authenticate": "Bearer", "X-Reason": "no token" },
            });
          case "/headers":
            return { headers: { "X-Custom": "yes", "Set-Cookie": "session=abc" } };
          case "/data":
            return { data: { tag: "from the hook" } };
          case "/async":
            return delay(30).then(() => ({ data: { tag: "async" } }));
          case "/async-refuse":
            return delay(30).then(() => false);
          case "/throw":
            throw new Error("hook failed");
          case "/reject":
            return Promise.reject(new Error("hook rejected"));
          case "/inspect":
            inspected = {
              url: request.url,
              method: request.method,
              token: request.headers.get("x-token"),
              info,
            };
            return true;
          case "/protocol":
            return { protocol: "b" };
          case "/unoffered":
            return { protocol: "nope" };
          default:
            return undefined;
        }
      },
      websocket: {
        open(ws) {
          ws.send(JSON.stringify({ data: ws.data ?? null, protocol: ws.protocol, url: ws.url }));
        },
        message(ws, data) {
          ws.send(data);
        },
      },
    });
  });
  after(() => server.close());

  /** Opens `path`, checks the 101, and returns it with what `open` reported. */
  function open(
    path: string,
    headers: Record<string, string | null> = {},
  ): Promise<{ response: ResponseHead; opened: { data: Data | null; protocol: string; url: string } }> {
    return withClient(server.port, async (client) => {
      client.write(upgradeRequest(path, headers));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 101, `status (body: ${JSON.stringify(response.body)})`);
      const first = await client.readFrame(WAIT);
      return { response, opened: JSON.parse(decoder.decode(first.payload)) };
    });
  }

  it("returning undefined accepts", async () => {
    const { opened } = await open("/anything");
    assert.equal(opened.data, null);
  });

  it("ws.url in open is the requested URL with the ws: scheme, as ServerWebSocket.url documents", async () => {
    const { opened } = await open("/anything?room=1", { Host: "example.test:8080" });
    assert.equal(opened.url, "ws://example.test:8080/anything?room=1");
  });

  it("ws.url is ws: for an absolute-form request target too; other schemes are refused with 400", async () => {
    const { opened } = await open("http://example.test/anything?room=2");
    assert.equal(opened.url, "ws://example.test/anything?room=2");
    assert.equal((await open("ws://example.test/x")).opened.url, "ws://example.test/x");
    await refused(server.port, upgradeRequest("mailto:someone@example.test"), 400);
  });

  it("returning false refuses with 403", async () => {
    await refused(server.port, upgradeRequest("/refuse"), 403);
  });

  it("a returned Response is sent as it is, then the connection closes", async () => {
    const response = await withClient(server.port, async (client) => {
      client.write(upgradeRequest("/response"));
      const response = await client.readResponse(WAIT);
      await client.waitForEnd(WAIT);
      return response;
    });
    assert.equal(response.status, 401);
    assert.equal(response.body, "log in first");
    assert.equal(response.headers.get("x-reason"), "no token");
    assert.equal(response.headers.get("www-authenticate"), "Bearer");
    assert.equal(response.headers.get("content-length"), String("log in first".length));
    assert.equal(response.headers.get("sec-websocket-accept"), null);
  });

  it("headers it returns are added to the 101", async () => {
    const { response } = await open("/headers");
    assert.equal(response.headers.get("x-custom"), "yes");
    assert.equal(response.headers.get("set-cookie"), "session=abc");
    assert.equal(response.headers.get("upgrade"), "websocket");
    assert.equal(response.headers.get("sec-websocket-accept"), SAMPLE_ACCEPT);
  });

  it("data it returns reaches ws.data in open", async () => {
    const { opened } = await open("/data");
    assert.deepEqual(opened.data, { tag: "from the hook" });
  });

  it("may be async, to accept or to refuse", async () => {
    const { opened } = await open("/async");
    assert.deepEqual(opened.data, { tag: "async" });
    await refused(server.port, upgradeRequest("/async-refuse"), 403);
  });

  it("frames sent with the head while an async hook decides are processed after open", async () => {
    await withClient(server.port, async (client) => {
      client.write(concat(new TextEncoder().encode(upgradeRequest("/async")), frame(0x1, "early")));
      assert.equal((await client.readResponse(WAIT)).status, 101);
      const opened = JSON.parse(decoder.decode((await client.readFrame(WAIT)).payload));
      assert.deepEqual(opened.data, { tag: "async" });
      assert.equal(decoder.decode((await client.readFrame(WAIT)).payload), "early");
    });
  });

  it("a hook that throws or rejects gives 500", async () => {
    await quietly(async () => {
      await refused(server.port, upgradeRequest("/throw"), 500);
      await refused(server.port, upgradeRequest("/reject"), 500);
    });
  });

  it("sees the request's URL, method and headers, and the client's address and offered protocols", async () => {
    inspected = null;
    await withClient(server.port, async (client) => {
      client.write(upgradeRequest("/inspect?x=1", {
        Host: "example.test:8080",
        "X-Token": "secret",
        "Sec-WebSocket-Protocol": "a, b",
      }));
      assert.equal((await client.readResponse(WAIT)).status, 101);
      assert.ok(inspected !== null);
      assert.equal(inspected.url, "http://example.test:8080/inspect?x=1");
      assert.equal(inspected.method, "GET");
      assert.equal(inspected.token, "secret");
      assert.equal(inspected.info.remoteAddress, "127.0.0.1");
      assert.equal(inspected.info.remotePort, client.localPort);
      assert.deepEqual(inspected.info.protocols, ["a", "b"]);
    });
  });

  it("a protocol it picks wins over the protocols option", async () => {
    const { response, opened } = await open("/protocol", { "Sec-WebSocket-Protocol": "a, b, chat" });
    assert.equal(response.headers.get("sec-websocket-protocol"), "b");
    assert.equal(opened.protocol, "b");
  });

  it("without a pick, the protocols option still applies", async () => {
    const { response, opened } = await open("/other", { "Sec-WebSocket-Protocol": "a, chat" });
    assert.equal(response.headers.get("sec-websocket-protocol"), "chat");
    assert.equal(opened.protocol, "chat");
  });

  it("picking a protocol the client did not offer gives 500", async () => {
    await quietly(() =>
      refused(server.port, upgradeRequest("/unoffered", { "Sec-WebSocket-Protocol": "a" }), 500)
    );
  });
});

describe("handshake: subprotocols", () => {
  let listServer: Server;
  let selectorServer: Server;
  let selected: { offered: string[]; url: string } | null = null;
  const websocket: ServeOptions["websocket"] = {
    open(ws) {
      ws.send(ws.protocol);
    },
  };

  before(() => {
    listServer = serve({ port: 0, closeTimeout: CLOSE_TIMEOUT, protocols: ["chat", "superchat"], websocket });
    selectorServer = serve({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      protocols(offered, request) {
        selected = { offered, url: request.url };
        return offered.includes("v2") ? "v2" : null;
      },
      websocket,
    });
  });
  after(() => Promise.all([listServer.close(), selectorServer.close()]));

  /** Upgrades offering `offer` (or nothing); returns the header in the 101 and `ws.protocol`. */
  function negotiate(port: number, offer: string | null): Promise<[string | null, string]> {
    return withClient(port, async (client) => {
      client.write(upgradeRequest("/", offer === null ? {} : { "Sec-WebSocket-Protocol": offer }));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 101);
      const opened = await client.readFrame(WAIT);
      return [response.headers.get("sec-websocket-protocol"), decoder.decode(opened.payload)];
    });
  }

  it("a list picks the server's first preference that the client offered", async () => {
    assert.deepEqual(await negotiate(listServer.port, "superchat, chat"), ["chat", "chat"]);
    assert.deepEqual(await negotiate(listServer.port, "other,superchat"), ["superchat", "superchat"]);
  });

  it("sends no Sec-WebSocket-Protocol when the client offered none", async () => {
    assert.deepEqual(await negotiate(listServer.port, null), [null, ""]);
  });

  it("sends no Sec-WebSocket-Protocol when nothing matched, and still accepts", async () => {
    assert.deepEqual(await negotiate(listServer.port, "mqtt, stomp"), [null, ""]);
  });

  it("refuses a Sec-WebSocket-Protocol entry that is not a token with 400", async () => {
    await refused(listServer.port, upgradeRequest("/", { "Sec-WebSocket-Protocol": "chat, bad name" }), 400);
  });

  it("a selector function chooses from the offer, seeing the offer and the request", async () => {
    selected = null;
    assert.deepEqual(await negotiate(selectorServer.port, "v1, v2"), ["v2", "v2"]);
    assert.deepEqual(selected, { offered: ["v1", "v2"], url: "http://127.0.0.1/" });
  });

  it("a selector returning null agrees on none", async () => {
    assert.deepEqual(await negotiate(selectorServer.port, "v1"), [null, ""]);
  });

  it("a selector is not asked when the client offers nothing", async () => {
    selected = null;
    assert.deepEqual(await negotiate(selectorServer.port, null), [null, ""]);
    assert.equal(selected, null);
  });
});

describe("plain HTTP", () => {
  let server: Server;
  before(() => {
    server = serve({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      maxBodySize: 10,
      async fetch(request, info) {
        if (request.method === "POST") {
          const body = new Uint8Array(await request.arrayBuffer());
          return new Response(body, { status: 201, headers: { "X-Length": String(body.length) } });
        }
        const url = new URL(request.url);
        return new Response(`hello ${url.pathname}${url.search} from ${info.remoteAddress}`, {
          headers: { "Content-Type": "text/plain", "X-Handler": "fetch" },
        });
      },
    });
  });
  after(() => server.close());

  it("a fetch handler answers GET with its body and headers; Connection: close is honoured", async () => {
    const response = await refused(
      server.port,
      "GET /page?q=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
      200,
    );
    assert.equal(response.body, "hello /page?q=1 from 127.0.0.1");
    assert.equal(response.headers.get("x-handler"), "fetch");
    assert.equal(response.headers.get("content-type"), "text/plain");
    assert.equal(response.headers.get("content-length"), String(response.body.length));
  });

  it("a POST body of Content-Length bytes reaches the handler", async () => {
    const response = await refused(
      server.port,
      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
      201,
    );
    assert.equal(response.body, "0123456789");
    assert.equal(response.headers.get("x-length"), "10");
  });

  it("waits for a body that arrives after the head", async () => {
    await withClient(server.port, async (client) => {
      client.write("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nab");
      await delay(50);
      assert.equal(client.unread, 0, "answered before the body was complete");
      client.write("cde");
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 201);
      assert.equal(response.body, "abcde");
    });
  });

  it("answers a body over maxBodySize with 413", async () => {
    await refused(
      server.port,
      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\n0123456789a",
      413,
    );
  });

  it("answers a transfer coding other than chunked with 501", async () => {
    await refused(
      server.port,
      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      501,
    );
  });
});

describe("handshakeTimeout", () => {
  let server: Server;
  before(() => {
    server = echoServer({ closeTimeout: CLOSE_TIMEOUT, handshakeTimeout: 200 });
  });
  after(() => server.close());

  it("answers a client that sends half a head with 408 and closes", async () => {
    await withClient(server.port, async (client) => {
      const started = Date.now();
      client.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: web");
      const response = await client.readResponse(WAIT);
      const elapsed = Date.now() - started;
      assert.equal(response.status, 408);
      assert.ok(elapsed >= 150, `answered after ${elapsed} ms, before the timeout`);
      await client.waitForEnd(WAIT);
    });
  });

  it("leaves a connection that completed its handshake alone after the timeout", async () => {
    await withClient(server.port, async (client) => {
      client.write(upgradeRequest("/"));
      assert.equal((await client.readResponse(WAIT)).status, 101);
      await delay(350);
      assert.equal(client.ended, false);
      assert.equal(client.unread, 0, "the server sent something after the 101");
      client.write(frame(0x1, "still here"));
      assert.equal(decoder.decode((await client.readFrame(WAIT)).payload), "still here");
    });
  });
});

describe("maxPendingHandshakes", () => {
  let server: Server;
  before(() => {
    server = echoServer({ closeTimeout: CLOSE_TIMEOUT, maxPendingHandshakes: 2, handshakeTimeout: 3000 });
  });
  after(() => server.close());

  it("makes room for a newcomer by answering the one that waited longest for its head with 503", async () => {
    const partial = upgradeRequest("/").slice(0, 30);
    const first = await RawClient.connect(server.port);
    await delay(20);
    const second = await RawClient.connect(server.port);
    const clients = [first, second];
    try {
      first.write(partial);
      second.write(partial);
      await delay(50);
      // A third, complete request gets through; the oldest partial one is the one let go.
      await switched(server.port, upgradeRequest("/"));
      const evicted = await first.readResponse(WAIT);
      assert.equal(evicted.status, 503);
      assert.match(evicted.body, /waited longest/);
      await first.waitForEnd(WAIT);

      // The younger pending one was left alone and can still finish.
      assert.equal(second.unread, 0);
      second.write(upgradeRequest("/").slice(30));
      assert.equal((await second.readResponse(WAIT)).status, 101);
    } finally {
      for (const client of clients) client.destroy();
    }
  });

  it("refuses the newcomer with 503 when every pending connection has sent its whole request", async () => {
    const hooked = serve({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      maxPendingHandshakes: 1,
      upgrade: () => new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 300)),
    });
    const waiting = await RawClient.connect(hooked.port);
    try {
      waiting.write(upgradeRequest("/"));
      await delay(50);
      const response = await refused(hooked.port, upgradeRequest("/"), 503);
      assert.match(response.body, /try again/);
      assert.equal((await waiting.readResponse(WAIT)).status, 101);
    } finally {
      waiting.destroy();
      await hooked.close();
    }
  });
});

describe("serve options", () => {
  /** Expects `serve(options)` to throw exactly `type`, with a message naming `name` in quotes. */
  function rejects(options: unknown, type: typeof TypeError | typeof RangeError, name: string): void {
    let server: Server | undefined;
    try {
      server = serve(options as ServeOptions);
    } catch (error) {
      assert.equal((error as Error).constructor, type, `expected ${type.name}, got ${error}`);
      const message = (error as Error).message;
      assert.ok(message.includes(`"${name}"`), `message ${JSON.stringify(message)} should name "${name}"`);
      return;
    }
    server.close();
    assert.fail(`serve(${JSON.stringify(options)}) did not throw`);
  }

  it("an unknown option is a TypeError naming it", () => {
    rejects({ port: 0, prot: 1 }, TypeError, "prot");
    rejects({ port: 0, maxPayload: 10 }, TypeError, "maxPayload");
  });

  it("an unknown handler name is a TypeError naming it", () => {
    rejects({ port: 0, websocket: { mesage() {} } }, TypeError, "websocket.mesage");
    rejects({ port: 0, websocket: { onopen() {} } }, TypeError, "websocket.onopen");
  });

  it("a handler that is not a function is a TypeError naming it", () => {
    rejects({ port: 0, websocket: { message: "echo" } }, TypeError, "websocket.message");
  });

  it("a port that is not an integer is a TypeError naming port", () => {
    rejects({ port: 1.5 }, TypeError, "port");
    rejects({ port: "8080" }, TypeError, "port");
    rejects({ port: NaN }, TypeError, "port");
  });

  it("a port out of range is a RangeError naming port", () => {
    rejects({ port: 70000 }, RangeError, "port");
    rejects({ port: 65536 }, RangeError, "port");
    rejects({ port: -1 }, RangeError, "port");
  });

  it("a negative maxPayloadLength is a RangeError naming it", () => {
    rejects({ port: 0, maxPayloadLength: -1 }, RangeError, "maxPayloadLength");
  });

  it("an upgrade hook that is not a function is a TypeError naming upgrade", () => {
    rejects({ port: 0, upgrade: "yes" }, TypeError, "upgrade");
    rejects({ port: 0, upgrade: {} }, TypeError, "upgrade");
  });

  it("a port already in use is an Error saying so", async () => {
    const first = serve({ port: 0 });
    try {
      let second: Server | undefined;
      try {
        second = serve({ port: first.port });
      } catch (error) {
        assert.ok(error instanceof Error);
        assert.match(error.message, /already in use/);
        assert.ok(error.message.includes(String(first.port)), error.message);
        return;
      }
      await second.close();
      assert.fail("binding a port in use did not throw");
    } finally {
      await first.close();
    }
  });
});
