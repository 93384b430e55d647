/**
 * The crossws adapter with the real `crossws` package: the cases of crossws's own adapter suite
 * (its test/tests.ts: a chat demo behind each adapter) run against Wisp's, then what Wisp adds
 * (namespaces as separate topics, failures, options, resolve), crossws's `broadcastChannel` sync
 * driver between two servers, and crossws's `createWebSocketProxy` hooks in front of a Wisp echo
 * server. Hand-built requests and frames over raw TCP.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createWebSocketProxy, defineHooks } from "crossws";
import { broadcastChannel } from "crossws/sync";
import {
  BINARY,
  CLOSE,
  closePayload,
  concat,
  frame,
  PING,
  PONG,
  RawClient,
  TEXT,
  upgradeRequest,
  withClient,
} from "./helpers/raw_client.ts";
import { echoServer, until } from "./helpers/server.ts";
import { serve, type Server, type ServerEvent } from "../mod.ts";
import wispAdapter, { type WispAdapter, WSError } from "../src/integrations/crossws.ts";

const WAIT = 3000;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Reads the next text frame, parsed as JSON when it is an object. */
async function next(client: RawClient): Promise<string> {
  const received = await client.readFrame(WAIT);
  assert.equal(received.opcode, TEXT, `a text frame, got opcode ${received.opcode}`);
  return decoder.decode(received.payload);
}

/** Reads the next text frame as JSON. */
async function nextJson(client: RawClient): Promise<Record<string, never>> {
  return JSON.parse(await next(client));
}

/** Opens a socket on `path`, expecting 101, and returns it with the response head. */
async function connect(server: Server, path = "/", headers: Record<string, string> = {}) {
  const client = await RawClient.connect(server.port);
  client.write(upgradeRequest(path, headers));
  const response = await client.readResponse(WAIT);
  assert.equal(response.status, 101, response.body);
  return { client, response };
}

/** A server in front of `ws`: `/peers` and `/publish` as crossws's demo has them, upgrades, else 200. */
function serveAdapter(ws: WispAdapter, options: { onEvent?: (event: ServerEvent) => void } = {}): Server {
  return serve({
    port: 0,
    perMessageDeflate: true,
    onEvent: options.onEvent ?? (() => {}),
    websocket: ws.websocket,
    fetch(request, info) {
      const url = new URL(request.url);
      if (url.pathname === "/peers") {
        const peers = ws.peers.get(url.searchParams.get("namespace") ?? "/") ?? new Set();
        return Response.json({ peers: [...peers].map((peer) => peer.id) });
      }
      if (url.pathname === "/publish") {
        const namespace = url.searchParams.get("namespace") ?? undefined;
        ws.publish(url.searchParams.get("topic")!, url.searchParams.get("message"), { namespace });
        return new Response("published");
      }
      if (request.headers.get("upgrade") === "websocket") return ws.handleUpgrade(request, info);
      return new Response("http works");
    },
  });
}

/** GETs `path` on a fresh connection. */
function get(server: Server, path: string) {
  return withClient(server.port, async (client) => {
    client.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    return await client.readResponse(WAIT);
  });
}

// The demo of crossws's adapter suite, written with crossws's own defineHooks.
const demo = defineHooks({
  open(peer) {
    peer.send(`Welcome to the server ${peer}! (namespace: ${peer.namespace})`);
    peer.subscribe("chat");
    peer.publish("chat", `${peer} joined!`);
  },
  message(peer, message) {
    const text = message.text();
    switch (text) {
      case "ping":
        peer.send("pong");
        break;
      case "binary":
        peer.send(encoder.encode("binary message works!"));
        break;
      case "debug":
        peer.send({
          id: peer.id,
          remoteAddress: peer.remoteAddress,
          bufferedAmount: peer.bufferedAmount,
          context: peer.context,
          request: { url: peer.request.url, headers: Object.fromEntries(peer.request.headers) },
          websocket: {
            readyState: peer.websocket.readyState,
            protocol: peer.websocket.protocol,
            extensions: peer.websocket.extensions,
            url: peer.websocket.url,
          },
        });
        break;
      case "waitForDrain":
        peer.waitForDrain({ pollInterval: 10 }).then(() => peer.send("drained"));
        break;
      case "peers":
        peer.send({ peers: [...peer.peers].map((other) => other.id) });
        break;
      default:
        peer.send(text);
        peer.publish("chat", text);
    }
  },
  upgrade(request) {
    if (request.url.endsWith("?unauthorized")) {
      throw {
        get response() {
          return new Response("unauthorized", {
            status: 401,
            statusText: "Unauthorized",
            headers: { "x-error": "unauthorized", "www-authenticate": 'Bearer realm="crossws"' },
          });
        },
      };
    }
    const headers: Record<string, string> = {
      "x-powered-by": "cross-ws",
      "set-cookie": "cross-ws=1; SameSite=None; Secure",
    };
    if (request.headers.get("sec-websocket-protocol") === "supported") {
      headers["sec-websocket-protocol"] = "supported";
    }
    return { context: { test: "1" }, headers };
  },
});

describe("crossws adapter: crossws's adapter suite", () => {
  let server: Server;
  let ws: WispAdapter;
  before(() => {
    ws = wispAdapter({ hooks: demo });
    server = serveAdapter(ws);
  });
  after(async () => {
    await ws.close();
    await server.close();
  });

  it("http works", async () => {
    const response = await get(server, "/");
    assert.deepEqual([response.status, response.body], [200, "http works"]);
  });

  it("connect to websocket", async () => {
    const { client } = await connect(server, "/welcome");
    assert.match(await next(client), /^Welcome to the server [\w-]{36}! \(namespace: \/welcome\)$/);
    client.destroy();
  });

  it("send ping", async () => {
    const { client } = await connect(server, "/ping");
    await next(client);
    client.write(frame(TEXT, "ping"));
    assert.equal(await next(client), "pong");
    client.destroy();
  });

  it("send message: echoed to the sender, published to the other subscriber", async () => {
    const one = (await connect(server, "/chat")).client;
    await next(one);
    const two = (await connect(server, "/chat")).client;
    await next(two);
    assert.match(await next(one), /^[\w-]{36} joined!$/);
    one.write(frame(TEXT, "hello from 1"));
    assert.equal(await next(one), "hello from 1");
    assert.equal(await next(two), "hello from 1");
    two.write(frame(TEXT, "hello from 2"));
    assert.equal(await next(one), "hello from 2");
    assert.equal(await next(two), "hello from 2");
    one.destroy();
    two.destroy();
  });

  it("binary message", async () => {
    const { client } = await connect(server, "/binary");
    await next(client);
    client.write(frame(BINARY, encoder.encode("binary")));
    const received = await client.readFrame(WAIT);
    assert.equal(received.opcode, BINARY);
    assert.equal(decoder.decode(received.payload), "binary message works!");
    client.destroy();
  });

  it("upgrade response headers", async () => {
    const { client, response } = await connect(server, "/headers");
    assert.match(response.headers.get("connection") ?? "", /^upgrade$/i);
    assert.ok(response.headers.get("sec-websocket-accept"));
    assert.equal(response.headers.get("set-cookie"), "cross-ws=1; SameSite=None; Secure");
    assert.equal(response.headers.get("x-powered-by"), "cross-ws");
    client.destroy();
  });

  it("negotiate sub-protocol", async () => {
    const { client, response } = await connect(server, "/", { "Sec-WebSocket-Protocol": "supported" });
    assert.equal(response.headers.get("sec-websocket-protocol"), "supported");
    client.destroy();
  });

  it("reject sub-protocol", async () => {
    const { client, response } = await connect(server, "/", { "Sec-WebSocket-Protocol": "unsupported" });
    assert.equal(response.headers.get("sec-websocket-protocol"), null);
    client.destroy();
  });

  it("peer.request (headers, url, remoteAddress) and peer.context", async () => {
    const { client } = await connect(server, "/?foo=bar", { "x-test": "1" });
    await next(client);
    client.write(frame(TEXT, "debug"));
    const { request, remoteAddress, context } = await nextJson(client);
    assert.match((request as { headers: Record<string, string> }).headers.connection, /^upgrade$/i);
    assert.equal((request as { headers: Record<string, string> }).headers["x-test"], "1");
    assert.equal((request as { url: string }).url, `http://127.0.0.1/?foo=bar`);
    assert.equal(remoteAddress, "127.0.0.1");
    assert.deepEqual(context, { test: "1" });
    client.destroy();
  });

  it("peer.bufferedAmount", async () => {
    const { client } = await connect(server, "/");
    await next(client);
    client.write(frame(TEXT, "debug"));
    const { bufferedAmount } = await nextJson(client);
    assert.equal(typeof bufferedAmount, "number");
    assert.ok(bufferedAmount >= 0);
    client.destroy();
  });

  it("peer.waitForDrain", async () => {
    const { client } = await connect(server, "/");
    await next(client);
    client.write(frame(TEXT, "waitForDrain"));
    assert.equal(await next(client), "drained");
    client.destroy();
  });

  it("peer.websocket: readyState, the agreed protocol and extensions, url", async () => {
    const { client } = await connect(server, "/?foo=bar", {
      "Sec-WebSocket-Protocol": "supported",
      "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
    });
    await next(client);
    client.write(frame(TEXT, "debug"));
    const { websocket } = await nextJson(client);
    assert.equal((websocket as { readyState: number }).readyState, 1);
    assert.equal((websocket as { protocol: string }).protocol, "supported");
    assert.match((websocket as { extensions: string }).extensions, /^permessage-deflate/);
    assert.equal((websocket as { url: string }).url, "ws://127.0.0.1/?foo=bar");
    client.destroy();
  });

  it("upgrade fail response (a thrown object's response)", async () => {
    await withClient(server.port, async (client) => {
      client.write(upgradeRequest("/?unauthorized"));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 401);
      // Bun's Response gives a string body no Content-Type (Bun.serve adds one as it sends the
      // response); Wisp sends the headers the Response has.
      if (!("Bun" in globalThis)) assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
      assert.equal(response.headers.get("x-error"), "unauthorized");
      assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="crossws"');
      assert.equal(response.body, "unauthorized");
    });
  });

  it("get peers from adapter", async () => {
    const one = (await connect(server, "/counted")).client;
    const two = (await connect(server, "/counted")).client;
    const { peers } = JSON.parse((await get(server, "/peers?namespace=/counted")).body);
    assert.equal(peers.length, 2);
    one.destroy();
    two.destroy();
  });

  it("get peers from peer", async () => {
    const one = (await connect(server, "/listed")).client;
    await next(one);
    const two = (await connect(server, "/listed")).client;
    await next(two);
    await next(one); // two joined
    one.write(frame(TEXT, "peers"));
    two.write(frame(TEXT, "peers"));
    const peers1 = (await nextJson(one)).peers as string[];
    const peers2 = (await nextJson(two)).peers as string[];
    assert.equal(peers1.length, 2);
    assert.deepEqual(peers1, peers2);
    one.destroy();
    two.destroy();
  });

  it("publish to all peers from adapter", async () => {
    const one = (await connect(server, "/everyone")).client;
    await next(one);
    const two = (await connect(server, "/everyone")).client;
    await next(two);
    await next(one); // two joined
    await get(server, "/publish?topic=chat&message=ping&namespace=/everyone");
    assert.equal(await next(one), "ping");
    assert.equal(await next(two), "ping");
    one.destroy();
    two.destroy();
  });
});

describe("crossws adapter on Wisp", () => {
  let server: Server;
  let ws: WispAdapter;
  const events: ServerEvent[] = [];
  const closes: string[] = [];
  const errors: string[] = [];
  const pings: string[] = [];
  before(() => {
    ws = wispAdapter({
      hooks: {
        upgrade(request) {
          const url = new URL(request.url);
          if (url.searchParams.has("refuse")) return new Response("no entry", { status: 403 });
          if (url.searchParams.has("headers")) return new Headers({ "x-plain": "headers" });
          const room = url.searchParams.get("room");
          return room === null ? undefined : { namespace: `room:${room}` };
        },
        open(peer) {
          peer.subscribe("news");
          peer.send(`${peer.namespace} ${peer.topics.has("news")}`);
        },
        message(peer, message) {
          const text = message.text();
          if (text === "throw") throw new Error("message hook failed");
          if (text === "reject") return Promise.reject(new Error("async hook failed"));
          if (text === "close") return peer.close(4002, "bye");
          if (text === "ping") return void peer.ping("are you there");
          if (text === "long ping") return void peer.ping("x".repeat(126));
          if (text.startsWith("publish:")) return peer.publish("news", text.slice("publish:".length));
          if (message.rawData instanceof Uint8Array) {
            const buffer = message.arrayBuffer();
            return void peer.send(
              `${message.uint8Array().length} ${buffer.byteLength} ${message.blob().size}`,
            );
          }
          peer.send(message.json());
        },
        close(peer, details) {
          closes.push(`${peer.namespace} ${details.code} ${details.reason}`);
        },
        error(peer, error) {
          errors.push(`${error instanceof WSError} ${error.name} ${(error.cause as Error).message}`);
          peer.send("error hook");
        },
        ping(_peer, data) {
          pings.push(`ping ${decoder.decode(data)}`);
        },
        pong(_peer, data) {
          pings.push(`pong ${decoder.decode(data)}`);
        },
      },
    });
    server = serveAdapter(ws, { onEvent: (event) => void events.push(event) });
  });
  after(async () => {
    await ws.close();
    await server.close();
  });

  it("refuses with the Response the upgrade hook returns", async () => {
    await withClient(server.port, async (client) => {
      client.write(upgradeRequest("/?refuse"));
      const response = await client.readResponse(WAIT);
      assert.deepEqual([response.status, response.body], [403, "no entry"]);
    });
  });

  it("takes Headers returned by the upgrade hook as the 101's", async () => {
    const { client, response } = await connect(server, "/?headers");
    assert.equal(response.headers.get("x-plain"), "headers");
    client.destroy();
  });

  it("answers 400 to an upgrade request that is no valid one", async () => {
    await withClient(server.port, async (client) => {
      client.write(upgradeRequest("/", { "Sec-WebSocket-Key": "short" }));
      const response = await client.readResponse(WAIT);
      assert.equal(response.status, 400);
      assert.match(response.body, /^Not a valid WebSocket upgrade request/);
    });
  });

  it("keeps namespaces apart: peer.publish reaches only its namespace's subscribers", async () => {
    const a = (await connect(server, "/?room=a")).client;
    const a2 = (await connect(server, "/?room=a")).client;
    const b = (await connect(server, "/?room=b")).client;
    for (const client of [a, a2, b]) assert.match(await next(client), /^room:[ab] true$/);
    a.write(frame(TEXT, "publish:for a"));
    assert.equal(await next(a2), "for a");
    b.write(frame(TEXT, '"probe"'));
    assert.equal(await next(b), "probe", "room b got nothing before its own answer");
    a.write(frame(TEXT, '"probe"'));
    assert.equal(await next(a), "probe", "the publisher got no copy");
    for (const client of [a, a2, b]) client.destroy();
  });

  it("publishes from the adapter to one namespace, or to every namespace", async () => {
    const a = (await connect(server, "/?room=c")).client;
    const b = (await connect(server, "/?room=d")).client;
    for (const client of [a, b]) await next(client);
    await get(server, "/publish?topic=news&message=to%20c&namespace=room:c");
    assert.equal(await next(a), "to c");
    await get(server, "/publish?topic=news&message=to%20all");
    assert.equal(await next(a), "to all");
    assert.equal(await next(b), "to all", "room d got only the publish to all");
    for (const client of [a, b]) client.destroy();
  });

  it("gives binary messages as bytes, an ArrayBuffer of exactly them and a Blob", async () => {
    const { client } = await connect(server, "/bytes");
    await next(client);
    const sizes = [5, 200, 3]; // one write: each message is a view into it on one runtime or another
    client.write(concat(...sizes.map((size) => frame(BINARY, new Uint8Array(size)))));
    for (const size of sizes) assert.equal(await next(client), `${size} ${size} ${size}`);
    client.destroy();
  });

  it("tells the close hook the client's code and reason, and forgets an empty namespace", async () => {
    const { client } = await connect(server, "/?room=closing");
    await next(client);
    assert.ok(ws.peers.has("room:closing"));
    client.write(frame(CLOSE, closePayload(4001, "done")));
    assert.equal((await client.readClose(WAIT)).code, 4001);
    await until(() => closes.includes("room:closing 4001 done"), "the close hook");
    assert.equal(ws.peers.has("room:closing"), false);
    client.destroy();
  });

  it("closes with the code peer.close gives (4002)", async () => {
    const { client } = await connect(server, "/leaving");
    await next(client);
    client.write(frame(TEXT, "close"));
    const received = await client.readClose(WAIT);
    assert.deepEqual([received.code, received.reason], [4002, "bye"]);
    client.destroy();
  });

  it("hands a hook's throw or rejection to the error hook as a WSError, then closes with 1011", async () => {
    for (const [what, message] of [["throw", "message hook failed"], ["reject", "async hook failed"]]) {
      const { client } = await connect(server, "/failing");
      await next(client);
      client.write(frame(TEXT, what));
      assert.equal(await next(client), "error hook");
      assert.equal((await client.readClose(WAIT)).code, 1011);
      assert.equal(errors.at(-1), `true WSError ${message}`);
      client.destroy();
    }
  });

  it("passes pings and pongs to their hooks; peer.ping sends one, a long one goes to the error hook", async () => {
    const { client } = await connect(server, "/pinging");
    await next(client);
    client.write(frame(PING, "hello"));
    const pong = await client.readFrame(WAIT);
    assert.deepEqual([pong.opcode, decoder.decode(pong.payload)], [PONG, "hello"]);
    client.write(frame(TEXT, "ping"));
    const ping = await client.readFrame(WAIT);
    assert.deepEqual([ping.opcode, decoder.decode(ping.payload)], [PING, "are you there"]);
    client.write(frame(PONG, "here"));
    await until(() => pings.length === 2, "the ping and pong hooks");
    assert.deepEqual(pings, ["ping hello", "pong here"]);
    client.write(frame(TEXT, "long ping"));
    assert.equal(await next(client), "error hook");
    assert.match(errors.at(-1)!, /^true WSError /);
    client.write(frame(TEXT, '"still open"'));
    assert.equal(await next(client), "still open");
    client.destroy();
  });

  it("sends what crossws sends: JSON for plain objects, text for numbers, nothing as empty", async () => {
    const { client } = await connect(server, "/values");
    await next(client);
    for (const [sent, expected] of [['{"a":1}', '{"a":1}'], ["12", "12"], ["null", ""], ['"text"', "text"]]) {
      client.write(frame(TEXT, sent));
      assert.equal(await next(client), expected);
    }
    client.destroy();
  });

  it("reports nothing to onEvent while the error hook hears of every failure", () => {
    assert.deepEqual(events.filter((event) => event.kind === "websocket"), []);
  });
});

describe("crossws adapter options", () => {
  it("refuses what it does not know with a TypeError naming it", () => {
    assert.throws(() => wispAdapter({ idleTimeout: 30 } as never), {
      name: "TypeError",
      message: `wispAdapter() option "idleTimeout" is serve's: Wisp pings idle sockets itself`,
    });
    assert.throws(() => wispAdapter({ hook: {} } as never), {
      name: "TypeError",
      message: 'unknown wispAdapter() option "hook"',
    });
    assert.throws(() => wispAdapter({ hooks: { mesage() {} } } as never), {
      name: "TypeError",
      message: /^unknown hook "mesage"; the hooks are upgrade, open, message/,
    });
    assert.throws(() => wispAdapter({ hooks: { open: "hi" } } as never), {
      name: "TypeError",
      message: 'hook "open" must be a function, got "hi"',
    });
    assert.throws(() => wispAdapter(null as never), {
      name: "TypeError",
      message: /takes an options object/,
    });
  });

  it("without an error hook, closes a failing socket with 1011 and tells the server's onEvent", async () => {
    const events: ServerEvent[] = [];
    const ws = wispAdapter({ hooks: { message: () => Promise.reject(new Error("nobody listens")) } });
    const server = serveAdapter(ws, { onEvent: (event) => void events.push(event) });
    try {
      const { client } = await connect(server, "/");
      client.write(frame(TEXT, "anything"));
      assert.equal((await client.readClose(WAIT)).code, 1011);
      await until(() => events.length > 0, "the event");
      assert.match(events[0].message, /nobody listens/);
      client.destroy();
    } finally {
      await server.close();
    }
  });

  it("runs the hooks resolve gives for a request after the hooks option's, asking once per socket", async () => {
    const calls: string[] = [];
    let resolved = 0;
    const ws = wispAdapter({
      hooks: { open: (peer) => void calls.push(`global open ${peer.namespace}`) },
      resolve(request) {
        resolved++;
        if (new URL(request.url).pathname !== "/resolved") return undefined;
        return {
          upgrade: () => ({ headers: { "x-resolved": "yes" } }),
          open: (peer) => void peer.send("resolved open"),
          message: (peer, message) => void peer.send(`resolved ${message.text()}`),
        };
      },
    });
    const server = serveAdapter(ws);
    try {
      const { client, response } = await connect(server, "/resolved");
      assert.equal(response.headers.get("x-resolved"), "yes");
      assert.equal(await next(client), "resolved open");
      client.write(frame(TEXT, "one"));
      client.write(frame(TEXT, "two"));
      assert.equal(await next(client), "resolved one");
      assert.equal(await next(client), "resolved two");
      client.destroy();
      const plain = (await connect(server, "/plain")).client;
      await until(() => calls.length === 2, "the global open hooks");
      assert.deepEqual(calls, ["global open /resolved", "global open /plain"]);
      assert.equal(resolved, 2);
      plain.destroy();
    } finally {
      await server.close();
    }
  });

  it("lets handleProtocols choose from the client's offer, and getNamespace name the namespace", async () => {
    const ws = wispAdapter({
      handleProtocols: (offered) => offered.has("graphql-transport-ws") ? "graphql-transport-ws" : false,
      getNamespace: (request) => new URL(request.url).searchParams.get("ns") ?? "default",
      hooks: { open: (peer) => void peer.send(peer.namespace) },
    });
    const server = serveAdapter(ws);
    try {
      const offer = { "Sec-WebSocket-Protocol": "chat, graphql-transport-ws" };
      const { client, response } = await connect(server, "/?ns=mine", offer);
      assert.equal(response.headers.get("sec-websocket-protocol"), "graphql-transport-ws");
      assert.equal(await next(client), "mine");
      client.destroy();
      const declined = await connect(server, "/", { "Sec-WebSocket-Protocol": "chat" });
      assert.equal(declined.response.headers.get("sec-websocket-protocol"), null);
      assert.equal(await next(declined.client), "default");
      declined.client.destroy();
    } finally {
      await server.close();
    }
  });
});

describe("crossws sync (crossws's broadcastChannel driver) between two servers", () => {
  it("relays a publish both ways, and not back to the publisher", async () => {
    const hooks = defineHooks({
      open: (peer) => peer.subscribe("chat"),
      message: (peer, message) => peer.publish("chat", message.text()),
    });
    const sync = broadcastChannel({ channel: `wisp-crossws-test-${crypto.randomUUID()}` });
    const a = wispAdapter({ hooks, sync });
    const b = wispAdapter({ hooks, sync });
    const servers = [serveAdapter(a), serveAdapter(b)];
    try {
      const clientA = (await connect(servers[0], "/chat")).client;
      const clientB = (await connect(servers[1], "/chat")).client;
      clientA.write(frame(TEXT, "from A"));
      assert.equal(await next(clientB), "from A");
      clientB.write(frame(TEXT, "from B"));
      assert.equal(await next(clientA), "from B", "A's first message is B's: its own did not come back");
      a.publish("chat", "from A's adapter");
      assert.equal(await next(clientA), "from A's adapter");
      assert.equal(await next(clientB), "from A's adapter");
      clientA.destroy();
      clientB.destroy();
    } finally {
      await Promise.all([a.close(), b.close()]);
      await Promise.all(servers.map((server) => server.close()));
    }
  });
});

describe("crossws's createWebSocketProxy hooks on Wisp", () => {
  it("proxies text, binary and the client's close code to a Wisp echo server", async () => {
    const upstreamCloses: number[] = [];
    const upstream = echoServer({
      websocket: {
        message: (ws, data) => void ws.send(data),
        close: (_ws, code) => void upstreamCloses.push(code),
      },
    });
    const proxy = wispAdapter({ hooks: createWebSocketProxy(`ws://127.0.0.1:${upstream.port}/`) });
    const server = serveAdapter(proxy);
    try {
      const { client } = await connect(server, "/");
      client.write(frame(TEXT, "through"));
      assert.equal(await next(client), "through");
      client.write(frame(BINARY, Uint8Array.of(1, 2, 3)));
      const echoed = await client.readFrame(WAIT);
      assert.deepEqual([echoed.opcode, [...echoed.payload]], [BINARY, [1, 2, 3]]);
      client.write(frame(CLOSE, closePayload(4001, "done")));
      assert.equal((await client.readClose(WAIT)).code, 4001);
      await until(() => upstreamCloses.length === 1, "the upstream's close");
      assert.deepEqual(upstreamCloses, [4001]);
      client.destroy();
    } finally {
      await server.close();
      await upstream.close();
    }
  });
});
