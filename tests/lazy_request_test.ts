/**
 * The lazy `Request` of a GET or HEAD (src/http/lazy_request.ts): made only on Bun, answering as
 * the real `Request` in every member, passed on by `fetch` and `new Request`; its `url` only taken
 * without parsing when the URL parser would leave it as it is (fast-check against `new URL`).
 * @module
 */

import { execFileSync } from "node:child_process";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { RequestHead } from "../src/handshake.ts";
import { isCanonicalHref, lazyRequest } from "../src/http/lazy_request.ts";
import { webRequest } from "../src/http/request.ts";
import { withClient } from "./helpers/raw_client.ts";
import { serve, type Server } from "../mod.ts";

const WAIT = 2000;

/** A GET head for `target` with `headers`. */
function getHead(target: string, headers: [string, string][]): RequestHead {
  return { method: "GET", target, minorVersion: 1, headers: new Map(headers), size: 0 };
}

const HEAD = getHead("/a/b?c=1&d", [["host", "localhost:3368"], ["accept", "text/html"], ["x-trace", "7"]]);
const HREF = "http://localhost:3368/a/b?c=1&d";
const onBun = "Bun" in globalThis;
const onNode = !onBun && !("Deno" in globalThis);

describe("lazy request", () => {
  it("is made on Bun only (Deno's and Node's Request refuse it as the input of new Request)", () => {
    assert.equal(lazyRequest(HEAD, HREF) !== null, onBun);
  });

  it("leaves Request alone until the first plain request (on Node, touching it loads undici)", {
    skip: !onNode,
  }, () => {
    const loader = new URL("../scripts/node_ts.mjs", import.meta.url).href;
    const mod = new URL("../mod.ts", import.meta.url).href;
    const script = `await import(${JSON.stringify(mod)});
      console.log(process.moduleLoadList.filter((m) => m.includes("undici")).length);`;
    const loaded = execFileSync(process.execPath, ["--import", loader, "--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    assert.equal(loaded.trim(), "0", "importing Wisp loaded undici");
  });

  it("answers every member of Request as the real one does", { skip: !onBun }, async () => {
    const lazy = lazyRequest(HEAD, HREF)!;
    const real = webRequest(HEAD, HREF, null);
    assert.ok(lazy instanceof Request);
    assert.equal(Object.prototype.toString.call(lazy), "[object Request]");
    for (let proto = Request.prototype; proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
      for (const key of Reflect.ownKeys(proto)) {
        const descriptor = Object.getOwnPropertyDescriptor(proto, key)!;
        if (descriptor.get === undefined) continue;
        const [mine, theirs] = [Reflect.get(lazy, key), Reflect.get(real, key)];
        if (mine === null || typeof mine !== "object") assert.equal(mine, theirs, String(key));
      }
    }
    assert.deepEqual([...lazy.headers], [...real.headers]);
    assert.equal(lazy.signal.aborted, false);
    assert.equal(await lazy.text(), "");
    assert.equal(lazy.clone().url, HREF);
    const copy = new Request(lazy);
    assert.deepEqual([copy.url, copy.method, copy.headers.get("x-trace")], [HREF, "GET", "7"]);
  });

  it("takes an href without parsing only when the URL parser would leave it as it is", () => {
    for (
      const href of [
        "http://127.0.0.1:8080/",
        "http://localhost:3368/chat?room=1&name=%20x",
        "https://api.example.com/v1/items;page=2?q=a:b@c/d?e",
        "http://a-b.c/~user/file.tar.gz",
      ]
    ) assert.ok(isCanonicalHref(href), href);
    for (
      const href of [
        "http://Localhost/", // the parser lower-cases hosts
        "http://a:80/", // and drops the default port
        "https://a:443/",
        "http://a:65536/",
        "http://a:08/",
        "http://1.2.3/", // an IPv4 address in short form
        "http://0x7f.1/",
        "http://01.2.3.4/",
        "http://256.1.1.1/",
        "http://xn--nxasmq6b/", // IDNA
        "http://a..b/",
        "http://a/./b", // dot segments
        "http://a/b/%2E%2e/c",
        "http://a/b\\c", // a backslash is a slash to the parser
        "http://a/b'?c'", // a quote in the query is escaped
        "http://a/{x}",
        "http://a/b|c",
        "http://a", // no path: the parser adds "/"
        "http://a/b#c",
      ]
    ) assert.ok(!isCanonicalHref(href), href);
    const char = (chars: string) => fc.constantFrom(...chars);
    const part = (chars: string, maxLength: number) =>
      fc.array(char(chars), { maxLength }).map((c) => c.join(""));
    const href = fc.tuple(
      fc.constantFrom("http", "https"),
      part("aZ09x.-n_%", 12),
      fc.option(part("0123456789", 6)),
      part("aZ09/.?%2eE&=:@;~'\\|{}[]^`\"<> #!$()*+,-_", 24),
    ).map(([scheme, host, port, target]) =>
      `${scheme}://${host}${port === null ? "" : ":" + port}/${target}`
    );
    fc.assert(
      fc.property(href, (text) => !isCanonicalHref(text) || new URL(text).href === text),
      { seed: 20261207, numRuns: 20_000 },
    );
  });
});

describe("lazy request: served", () => {
  let server: Server;
  let upstream: Server;
  before(() => {
    upstream = serve({
      port: 0,
      fetch: (request) => new Response(`${request.method} ${request.url} ${request.headers.get("x-trace")}`),
    });
    server = serve({
      port: 0,
      fetch(request) {
        if (new URL(request.url).pathname === "/pass") return fetch(request);
        return Response.json({
          url: request.url,
          method: request.method,
          trace: request.headers.get("x-trace"),
        });
      },
    });
  });
  after(() => Promise.all([server.close(), upstream.close()]));

  /** The response to a GET of `target` with `lines` as its header fields. */
  async function get(target: string, ...lines: string[]) {
    return await withClient(server.port, async (client) => {
      client.write([`GET ${target} HTTP/1.1`, ...lines].join("\r\n") + "\r\n\r\n");
      return await client.readResponse(WAIT);
    });
  }

  it("gives the handler the request as it came", async () => {
    const response = await get("/x/y?z=1", `Host: 127.0.0.1:${server.port}`, "X-Trace: 12");
    assert.equal(response.status, 200);
    assert.deepEqual(JSON.parse(response.body), {
      url: `http://127.0.0.1:${server.port}/x/y?z=1`,
      method: "GET",
      trace: "12",
    });
  });

  it("gives the parser's URL for a target it would change", async () => {
    const response = await get("/a/./b/../c?q='", "Host: LocalHost:80");
    assert.equal(JSON.parse(response.body).url, "http://localhost/a/c?q=%27");
  });

  it("is passed on by fetch as the request that came", async () => {
    const response = await get("/pass?n=1", `Host: 127.0.0.1:${upstream.port}`, "X-Trace: 5");
    assert.equal(response.status, 200);
    assert.equal(response.body, `GET http://127.0.0.1:${upstream.port}/pass?n=1 5`);
  });

  it("answers 400 to a Host the URL parser refuses", async () => {
    assert.equal((await get("/", "Host: %00")).status, 400);
  });
});
