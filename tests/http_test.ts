/**
 * Plain HTTP on the WebSocket port: keep-alive and pipelining, request bodies streamed from the
 * socket as the handler reads them (Content-Length and chunked), streamed responses, and the
 * framing rules that keep a body from being smuggled into a WebSocket.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { RawClient, upgradeRequest, withClient } from "./helpers/raw_client.ts";
import { delay, echoServer, KERNEL_BOUND, MAX_READ, until, untilNothingHeld } from "./helpers/server.ts";
import { serve, type Server, type ServerEvent } from "../mod.ts";

const WAIT = 2000;
const CLOSE_TIMEOUT = 4000;

/** A request head for `path` with extra header lines. */
function request(method: string, path: string, ...lines: string[]): string {
  return [`${method} ${path} HTTP/1.1`, "Host: 127.0.0.1", ...lines].join("\r\n") + "\r\n\r\n";
}

describe("http: keep-alive and pipelining", () => {
  let server: Server;
  let served = 0;
  before(() => {
    server = serve({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      handshakeTimeout: 300,
      fetch(request) {
        served++;
        return new Response(`${request.method} ${new URL(request.url).pathname}`);
      },
    });
  });
  after(() => server.close());

  it("answers several requests on one HTTP/1.1 connection, and keeps it open", async () => {
    await withClient(server.port, async (client) => {
      for (const path of ["/a", "/b", "/c"]) {
        client.write(request("GET", path));
        const response = await client.readResponse(WAIT);
        assert.equal(response.status, 200);
        assert.equal(response.body, `GET ${path}`);
        assert.equal(response.headers.get("connection"), null);
      }
      assert.equal(client.ended, false);
    });
  });

  it("answers pipelined requests in order", async () => {
    await withClient(server.port, async (client) => {
      client.write(request("GET", "/1") + request("HEAD", "/2") + request("GET", "/3"));
      assert.equal((await client.readResponse(WAIT)).body, "GET /1");
      const head = await client.readResponse(WAIT, true);
      assert.equal(head.headers.get("content-length"), "7", "HEAD gets the length GET would");
      assert.equal((await client.readResponse(WAIT)).body, "GET /3");
    });
  });

  it("answers a client that pipelines without reading no further than its backlog allows, then drops it", async () => {
    const page = "x".repeat(16 * 1024);
    let answered = 0;
    const big = serve({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      handshakeTimeout: 500,
      fetch: () => {
        answered++;
        return new Response(page);
      },
    });
    const requests = 4000;
    try {
      const socket = connect({ host: "127.0.0.1", port: big.port });
      socket.pause();
      socket.write(request("GET", "/").repeat(requests));
      // Dropped as stalled once handshakeTimeout passed with the answers unread.
      await until(() => big.stats().drops.requestTimeout === 1, "the stalled client to be dropped");
      const closed = new Promise((resolve) => socket.once("close", resolve));
      socket.resume();
      await Promise.race([closed, delay(5000).then(() => assert.fail("the connection is still open"))]);
      // All the answers would be 64 MiB; only what the loopback buffers took, and the backlog
      // past them (64 KiB), were made: about 3 MiB here.
      assert.ok(answered * page.length < KERNEL_BOUND, `${answered} of ${requests} requests answered`);
    } finally {
      await big.close();
    }
  });

  // Node calls a write back only once all of it is sent, so how much of one large write a slow
  // client has read is not seen there: on Node the write as a whole must not stall that long.
  const onNode = !("Deno" in globalThis) && !("Bun" in globalThis);
  // About 3 s by design: more time than Bun's default of 5 s per test leaves on a busy machine.
  const seesProgress = {
    skip: onNode ? "Node reports no progress within one write" : false,
    timeout: 20_000,
  };
  it(
    "keeps a client that reads a large answer slowly, for longer than handshakeTimeout",
    seesProgress,
    async () => {
      // Far more than the loopback buffers hold, so that most of it waits in the server for a while.
      const size = 32 * 1024 * 1024;
      const big = serve({
        port: 0,
        closeTimeout: CLOSE_TIMEOUT,
        handshakeTimeout: 1000,
        fetch: () => new Response(new Uint8Array(size)),
      });
      try {
        const socket = connect({ host: "127.0.0.1", port: big.port });
        let received = 0;
        let burst = 0;
        socket.on("data", (chunk: Uint8Array) => {
          received += chunk.length;
          // 1 MiB at a time, every 100 ms: about 3 s in all, several times handshakeTimeout.
          if ((burst += chunk.length) < 1024 * 1024) return;
          burst = 0;
          socket.pause();
          setTimeout(() => socket.resume(), 100);
        });
        socket.write(request("GET", "/"));
        await until(() => received > size, "the whole answer", 10_000);
        socket.destroy();
        assert.equal(big.stats().drops.requestTimeout, 0, "dropped as stalled while it read");
      } finally {
        await big.close();
      }
    },
  );

  it("closes after a response when the request says Connection: close, or is HTTP/1.0", async () => {
    for (
      const head of [
        request("GET", "/x", "Connection: close"),
        "GET /x HTTP/1.0\r\n\r\n",
      ]
    ) {
      await withClient(server.port, async (client) => {
        client.write(head);
        const response = await client.readResponse(WAIT);
        assert.equal(response.headers.get("connection"), "close");
        await client.waitForEnd(WAIT);
        assert.ok(client.ended);
      });
    }
  });

  it("keeps an HTTP/1.0 connection open when it asks for keep-alive", async () => {
    await withClient(server.port, async (client) => {
      client.write("GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      const response = await client.readResponse(WAIT);
      assert.equal(response.headers.get("connection"), "keep-alive");
      client.write("GET /k2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      assert.equal((await client.readResponse(WAIT)).body, "GET /k2");
    });
  });

  it("closes an idle kept-alive connection after handshakeTimeout without answering", async () => {
    await withClient(server.port, async (client) => {
      client.write(request("GET", "/idle"));
      await client.readResponse(WAIT);
      await client.waitForEnd(WAIT);
      assert.ok(client.ended);
      assert.equal(client.unread, 0, "no 408 for a request nobody sent");
    });
  });

  it("upgrades a kept-alive connection to a WebSocket on a later request", async () => {
    const both = serve({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      fetch: (request, info) => info.upgrade(request) ? undefined : new Response("page"),
    });
    try {
      await withClient(both.port, async (client) => {
        client.write(request("GET", "/"));
        assert.equal((await client.readResponse(WAIT)).body, "page");
        client.write(upgradeRequest("/"));
        assert.equal((await client.readResponse(WAIT)).status, 101);
      });
    } finally {
      await both.close();
    }
  });

  it("has served every request above through the handler", () => {
    assert.ok(served >= 10, `served ${served}`);
  });
});

describe("http: request bodies", () => {
  let server: Server;
  /** What the last body-reading handler saw, for the tests to inspect. */
  let seen: { length: number; sum: number; text: string } | null = null;
  before(() => {
    server = serve({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      handshakeTimeout: 300,
      maxBodySize: 64 * 1024 * 1024,
      async fetch(request) {
        const path = new URL(request.url).pathname;
        if (path === "/ignore") return new Response("ignored");
        if (path === "/stream") {
          let length = 0;
          let sum = 0;
          for await (const piece of request.body!) {
            length += piece.length;
            for (const byte of piece) sum = (sum + byte) % 65521;
          }
          seen = { length, sum, text: "" };
          return new Response(String(length));
        }
        const text = await request.text();
        seen = { length: text.length, sum: 0, text };
        return new Response(text, { status: 201 });
      },
    });
  });
  after(() => server.close());

  it("decodes a chunked body, with extensions and trailers, and goes on with the next request", async () => {
    await withClient(server.port, async (client) => {
      client.write(
        request("POST", "/text", "Transfer-Encoding: chunked") +
          "5;name=value\r\nhello\r\n1 ; x\r\n \r\n6\r\nworld!\r\n0\r\nTrailer-Field: 1\r\n\r\n",
      );
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 201);
      assert.equal(response.body, "hello world!");
      client.write(request("POST", "/text", "Content-Length: 3") + "abc");
      assert.equal((await client.readResponse(WAIT)).body, "abc");
    });
  });

  it("decodes a chunked body sent one byte at a time", async () => {
    await withClient(server.port, async (client) => {
      const body = "3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n";
      await client.writeBytewise(
        new TextEncoder().encode(request("POST", "/text", "Transfer-Encoding: chunked") + body),
      );
      assert.equal((await client.readResponse(WAIT)).body, "abc0123456789");
    });
  });

  for (
    const [what, body, status] of [
      ["a chunk size that is not hex", "x\r\nabc\r\n0\r\n\r\n", 400],
      ["chunk data without its CRLF", "3\r\nabcd\r\n0\r\n\r\n", 400],
      ["a size line ending in a bare LF", "3\nabc\r\n0\r\n\r\n", 400],
      ["a chunk over maxBodySize", "4000001\r\n", 413],
    ] as const
  ) {
    it(`answers ${what} with ${status}`, async () => {
      await withClient(server.port, async (client) => {
        client.write(request("POST", "/text", "Transfer-Encoding: chunked") + body);
        const response = await client.readResponse(WAIT);
        assert.equal(response.status, status, response.body);
        await client.waitForEnd(WAIT);
      });
    });
  }

  it("hands a large body to the handler piece by piece, intact and in order", async () => {
    const body = new Uint8Array(4 * 1024 * 1024);
    let sum = 0;
    for (let i = 0; i < body.length; i++) {
      body[i] = (i * 7 + (i >> 11)) & 0xff;
      sum = (sum + body[i]) % 65521;
    }
    await withClient(server.port, async (client) => {
      client.write(request("POST", "/stream", `Content-Length: ${body.length}`));
      client.write(body);
      const response = await client.readResponse(5000);
      assert.equal(response.body, String(body.length));
      assert.deepEqual(seen, { length: body.length, sum, text: "" });
    });
  });

  it("does not read a body the handler does not read: the client's writes back up", async () => {
    // A handler that answers only when told and never reads the body: the body stays in the
    // client, while the server reads as large a body from another client whose handler reads it.
    let answer: (response: Response) => void = () => {};
    const slow = serve({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      maxBodySize: 64 * 1024 * 1024,
      fetch: async (request) => {
        if (new URL(request.url).pathname === "/read") {
          return new Response(`${(await request.arrayBuffer()).byteLength}`);
        }
        return new Promise<Response>((resolve) => (answer = resolve));
      },
    });
    try {
      await withClient(slow.port, async (client) => {
        const size = 48 * 1024 * 1024;
        client.write(request("POST", "/unread", `Content-Length: ${size}`));
        // In writes of 1 MiB, so that `unsent` shrinks as the kernel takes them.
        for (let i = 0; i < 48; i++) client.write(new Uint8Array(1024 * 1024));
        const yardstick = KERNEL_BOUND + 8 * 1024 * 1024;
        await withClient(slow.port, async (other) => {
          other.write(request("POST", "/read", `Content-Length: ${yardstick}`));
          other.write(new Uint8Array(yardstick));
          assert.equal((await other.readResponse(10_000)).body, String(yardstick));
        });
        // What the server read of the unread body is held for it, at most a read's worth.
        const held = slow.stats().connections.httpBytes;
        assert.ok(held <= MAX_READ, `${held} bytes of the unread body held`);
        assert.ok(size - client.unsent < KERNEL_BOUND, `only ${client.unsent} of ${size} bytes still unsent`);
        answer(new Response("later"));
        const response = await client.readResponse(WAIT);
        assert.equal(response.body, "later");
        assert.equal(response.headers.get("connection"), "close", "the unread body ends the connection");
      });
    } finally {
      await slow.close();
    }
  });

  it("answers 100 Continue when the handler reads a body the client waits to send", async () => {
    await withClient(server.port, async (client) => {
      client.write(request("POST", "/text", "Content-Length: 4", "Expect: 100-continue"));
      assert.equal((await client.readResponse(WAIT)).status, 100);
      client.write("data");
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 201);
      assert.equal(response.body, "data");
    });
  });

  it("sends no 100 Continue when the handler answers without the body", async () => {
    await withClient(server.port, async (client) => {
      client.write(request("POST", "/ignore", "Content-Length: 4", "Expect: 100-continue"));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 200);
      assert.equal(response.body, "ignored");
    });
  });

  it("drops a body sent with a GET and goes on with the next request", async () => {
    await withClient(server.port, async (client) => {
      client.write(request("GET", "/ignore", "Content-Length: 5") + "12345" + request("GET", "/ignore"));
      assert.equal((await client.readResponse(WAIT)).body, "ignored");
      assert.equal((await client.readResponse(WAIT)).body, "ignored");
    });
  });

  it("answers 408 when a body the handler waits for stops arriving", async () => {
    await withClient(server.port, async (client) => {
      client.write(request("POST", "/text", "Content-Length: 10") + "01234");
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 408);
      await client.waitForEnd(WAIT);
    });
  });
});

describe("http: without a fetch handler", () => {
  let server: Server;
  before(() => {
    server = echoServer({ closeTimeout: CLOSE_TIMEOUT });
  });
  after(() => server.close());

  it("answers 426 at once, without waiting for a body nobody will read", async () => {
    await withClient(server.port, async (client) => {
      client.write(request("POST", "/", "Content-Length: 1048576"));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 426);
      assert.equal(response.headers.get("upgrade"), "websocket");
      assert.equal(response.headers.get("connection"), "close");
    });
  });
});

describe("http: streamed responses", () => {
  let server: Server;
  /** Each response's second piece waits for its turn here, taken in order by `release`. */
  const waiting: (() => void)[] = [];
  /** Lets the oldest response waiting for its second piece go on. */
  const release = async () => {
    await until(() => waiting.length > 0, "a response waiting for its second piece");
    waiting.shift()!();
  };
  before(() => {
    server = serve({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      fetch() {
        const encoder = new TextEncoder();
        const body = new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(encoder.encode("first,"));
            await new Promise<void>((resolve) => waiting.push(resolve));
            controller.enqueue(encoder.encode("second"));
            controller.close();
          },
        });
        return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
      },
    });
  });
  after(() => {
    for (const go of waiting.splice(0)) go();
    return server.close();
  });

  it("streams a body that is still being produced with chunked coding, head first", async () => {
    await withClient(server.port, async (client) => {
      client.write(request("GET", "/events"));
      // The head and the first piece come while the second cannot have been made yet.
      const response = await client.readResponse(WAIT);
      assert.equal(response.headers.get("transfer-encoding"), "chunked");
      assert.equal(response.headers.get("content-length"), null);
      const first = "6\r\nfirst,\r\n";
      await until(() => client.unread >= first.length, "the first piece");
      assert.equal(client.takeText(), first);
      await release();
      const rest = "6\r\nsecond\r\n0\r\n\r\n";
      await until(() => client.unread >= rest.length, "the second piece and the end");
      assert.equal(client.takeText(), rest);
      // Anything more before the next answer would be read as its head.
      client.write(request("GET", "/again"));
      assert.equal((await client.readResponse(WAIT)).status, 200, "the connection goes on after it");
      await release();
    });
  });

  it("streams to an HTTP/1.0 client without chunked coding, and closes at the end", async () => {
    await withClient(server.port, async (client) => {
      client.write("GET /events HTTP/1.0\r\n\r\n");
      const response = await client.readResponse(WAIT);
      await release();
      assert.equal(response.headers.get("transfer-encoding"), null);
      assert.equal(response.headers.get("connection"), "close");
      await client.waitForEnd(WAIT);
      assert.equal(client.takeText(), "first,second");
    });
  });
});

describe("http: no smuggling", () => {
  let server: Server;
  let bodies = 0;
  before(() => {
    server = serve({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      handshakeTimeout: 5000,
      websocket: {
        message() {
          bodies++;
        },
      },
      fetch: (request, info) => info.upgrade(request) ? undefined : new Response("ok"),
    });
  });
  after(() => server.close());

  /** Sends `bytes` and expects `status` with the connection closed after it, not by a timeout. */
  async function answered(bytes: string, status: number): Promise<void> {
    await withClient(server.port, async (client) => {
      client.write(bytes);
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, status, response.body);
      if (status >= 400) await client.waitForEnd(WAIT);
      const { handshakeTimeout, requestTimeout, closeTimeout } = server.stats().drops;
      assert.deepEqual([handshakeTimeout, requestTimeout, closeTimeout], [0, 0, 0], "a deadline ended it");
    });
  }

  it("refuses an upgrade that carries Content-Length or Transfer-Encoding with 400", async () => {
    // The body here is a masked text frame: it must never reach the message handler.
    const frameBytes = "\x81\x81\x00\x00\x00\x00a";
    await answered(upgradeRequest("/", { "Content-Length": "7" }) + frameBytes, 400);
    await answered(
      upgradeRequest("/", { "Transfer-Encoding": "chunked" }) + `7\r\n${frameBytes}\r\n0\r\n\r\n`,
      400,
    );
    await answered(upgradeRequest("/", { "Content-Length": "x" }), 400);
    assert.equal(bodies, 0);
  });

  it("accepts an upgrade with Content-Length: 0", async () => {
    await answered(upgradeRequest("/", { "Content-Length": "0" }), 101);
  });

  for (
    const [what, lines] of [
      ["a Content-Length that is not a number", ["Content-Length: abc"]],
      ["a signed Content-Length", ["Content-Length: +5"]],
      ["conflicting Content-Lengths", ["Content-Length: 5", "Content-Length: 6"]],
      ["conflicting Content-Lengths in one field", ["Content-Length: 5, 6"]],
      ["Content-Length with Transfer-Encoding", ["Content-Length: 5", "Transfer-Encoding: chunked"]],
      ["Transfer-Encoding whose last coding is not chunked", ["Transfer-Encoding: chunked, gzip"]],
    ]
  ) {
    it(`answers ${what} with 400`, async () => {
      await answered(request("POST", "/", ...lines) + "hello", 400);
    });
  }

  it("answers Transfer-Encoding in HTTP/1.0 with 400", async () => {
    await answered("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
  });

  it("reads equal repeated Content-Lengths as one", async () => {
    await answered(request("POST", "/", "Content-Length: 5", "Content-Length: 5") + "hello", 200);
  });

  it("answers lines that end in a bare LF with 400 at once", async () => {
    await answered("GET / HTTP/1.1\nHost: 127.0.0.1\n\n", 400);
    await answered("GET / HTTP/1.1\r\nHost: 127.0.0.1\n", 400);
  });
});

describe("http: request target, Host and method", () => {
  let server: Server;
  const events: ServerEvent[] = [];
  before(() => {
    server = serve({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      onEvent: (event) => events.push(event),
      fetch: (request) => new Response(`${request.method} ${request.url}`),
    });
  });
  after(() => server.close());

  /** The status and body of the answer to `head`. */
  async function ask(head: string): Promise<{ status: number; body: string }> {
    return await withClient(server.port, async (client) => {
      client.write(head);
      const { status, body } = await client.readResponse(WAIT);
      return { status, body };
    });
  }

  it("takes an origin-form target as a path under Host, even one that starts with //", async () => {
    const get = (target: string) => `GET ${target} HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\n\r\n`;
    assert.deepEqual(await ask(get("//evil.example/p")), {
      status: 200,
      body: "GET http://h.example//evil.example/p",
    });
    assert.deepEqual(await ask(get("/\\evil.example/p")), {
      status: 200,
      body: "GET http://h.example//evil.example/p",
    });
    assert.deepEqual(await ask(get("/a?b=//c")), { status: 200, body: "GET http://h.example/a?b=//c" });
  });

  it("takes the authority of an absolute-form target (RFC 9112 §3.2.2)", async () => {
    const head = "GET http://other.example/q HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\n\r\n";
    assert.deepEqual(await ask(head), { status: 200, body: "GET http://other.example/q" });
  });

  it("takes OPTIONS * as a request for the server as a whole: the URL has an empty path", async () => {
    const head = "OPTIONS * HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\n\r\n";
    assert.deepEqual(await ask(head), { status: 200, body: "OPTIONS http://h.example/" });
  });

  it("answers 400 to a target that is neither a path nor an absolute URL", async () => {
    for (const target of ["x", "*", "evil.example/p"]) {
      const { status } = await ask(`GET ${target} HTTP/1.1\r\nHost: h.example\r\n\r\n`);
      assert.equal(status, 400, target);
    }
  });

  it("answers 400 to a repeated, empty or malformed Host (RFC 9112 §3.2)", async () => {
    const hosts = [
      ["Host: a.example", "Host: a.example"],
      ["Host:", "Host:"],
      ["Host:"],
      ["Host: u@evil.example"],
      ["Host: evil.example/x?"],
      ["Host: a.example:80x"],
      ["Host: [::1"],
    ];
    for (const lines of hosts) {
      const { status } = await ask(["GET /p HTTP/1.1", ...lines].join("\r\n") + "\r\n\r\n");
      assert.equal(status, 400, lines.join(" | "));
    }
    const { status } = await ask("GET /p HTTP/1.1\r\nHost: a.example:99999\r\n\r\n");
    assert.deepEqual(status, 400, "a port past 65535");
    for (const host of ["a.example:8080", "[::1]:3368", "127.0.0.1", "xn--bcher-kva.example"]) {
      const { status, body } = await ask(`GET /p HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      assert.equal(status, 200, host);
      assert.equal(body, `GET http://${host}/p`);
    }
  });

  it("answers 501 to methods a web Request would not carry as they came, without an error event", async () => {
    for (const method of ["TRACE", "TRACK", "CONNECT", "get", "head", "Post"]) {
      const { status } = await ask(`${method} / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi`);
      assert.equal(status, 501, method);
    }
    // A real CONNECT, with its authority-form target.
    assert.equal(
      (await ask("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")).status,
      501,
    );
    // An extension method reaches the handler as it came, or (where the runtime's Request cannot
    // carry it) is answered 501: never as another method.
    const { status, body } = await ask("FOO /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    if (status === 200) assert.equal(body, "FOO http://h/x");
    else assert.equal(status, 501);
    assert.deepEqual(events.filter((event) => event.kind === "handler"), []);
  });
});

describe("http: httpBufferBudget", () => {
  it("drops the partial heads that waited longest to make room, so a whole request gets through", async () => {
    const budget = 64 * 1024;
    const server = echoServer({
      closeTimeout: CLOSE_TIMEOUT,
      maxHeadSize: 256 * 1024,
      httpBufferBudget: budget,
    });
    const attackers: RawClient[] = [];
    try {
      // 64 half heads of 1 KiB each (one read each, held as they came) fill the budget to the byte.
      const piece = 1024;
      for (let i = 0; i < budget / piece; i++) {
        const client = await RawClient.connect(server.port);
        attackers.push(client);
        const start = "GET / HTTP/1.1\r\nX-Pad: ";
        client.write(start + "x".repeat(piece - start.length));
        await until(() => server.stats().connections.httpBytes === (i + 1) * piece, "the bytes held", WAIT);
      }
      const fresh = await RawClient.open(server.port);
      fresh.destroy();
      // The first half head made room (503), and the rest still wait.
      const first = await attackers[0].readResponse(WAIT);
      assert.equal(first.status, 503);
      assert.match(first.body, /waited longest/);
      const { connections, drops } = server.stats();
      assert.deepEqual([connections.http, connections.httpBytes], [63, 63 * piece]);
      assert.equal(drops.eviction, 1);
    } finally {
      for (const client of attackers) client.destroy();
      await server.close();
    }
  });

  it("copies a few bytes left over after large reads rather than hold the read buffer", async () => {
    const server = serve({
      port: 0,
      closeTimeout: CLOSE_TIMEOUT,
      fetch: () => new Response(null, { status: 204 }),
    });
    try {
      await withClient(server.port, async (client) => {
        // 40 pipelined requests of 15 KB make the runtime read in large buffers; then one byte comes.
        client.write(request("HEAD", "/", `X-Pad: ${"x".repeat(15_000)}`).repeat(40));
        for (let i = 0; i < 40; i++) await client.readResponse(WAIT, true);
        const stats = () => server.stats().connections;
        await until(() => stats().httpBytes === 0, "the requests to be done with");
        client.write("G");
        // Counted once the read that brought it was handled.
        await until(() => stats().httpBytes > 0, "the byte to be read");
        const held = stats().httpBytes;
        assert.ok(held <= 4096, `one unread byte holds ${held} bytes of the budget`);
      });
    } finally {
      await server.close();
    }
  });

  it("answers 503 to a connection whose bytes alone would pass the budget, and recovers", async () => {
    const server = echoServer({
      closeTimeout: CLOSE_TIMEOUT,
      maxHeadSize: 256 * 1024,
      httpBufferBudget: 64 * 1024,
    });
    try {
      await withClient(server.port, async (client) => {
        client.write(`GET / HTTP/1.1\r\nX-Filler: ${"x".repeat(70 * 1024)}`);
        const response = await client.readResponse(WAIT);
        assert.equal(response.status, 503);
        assert.match(response.body, /out of memory for request data; try again/);
        await client.waitForEnd(WAIT);
      });
      assert.equal(server.stats().drops.bufferBudget, 1);
      await untilNothingHeld(server);
      const fresh = await RawClient.open(server.port);
      fresh.destroy();
    } finally {
      await server.close();
    }
  });
});
