/**
 * `wss://` and `https://` with the `tls` option, against a certificate `openssl` makes at test
 * time: hand-built frames over a raw TLS socket, Node's `ws`, the Deno and Bun `WebSocket`
 * clients in their own processes, the handshake deadline, and bad PEM.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { frame, PING, PONG, RawClient, TEXT, upgradeRequest } from "./helpers/raw_client.ts";
import { testCertificate, tlsSkipReason } from "./helpers/tls.ts";
import { serve, type Server } from "../mod.ts";

const WAIT = 3000;
const skip = tlsSkipReason;
const BIN = fileURLToPath(new URL("../node_modules/.bin/", import.meta.url));

describe("tls: wss and https", { skip }, () => {
  let server: Server;
  let seenUrl = "";
  let seenRequestUrl = "";
  before(() => {
    const { cert, key } = testCertificate();
    server = serve({
      port: 0,
      tls: { cert, key },
      handshakeTimeout: 400,
      fetch(request, info) {
        if (info.upgrade(request)) return; // WebSockets are upgraded from fetch, as with Bun.serve
        seenRequestUrl = request.url;
        return new Response("secure page");
      },
      websocket: {
        open(ws) {
          seenUrl = ws.url;
        },
        message(ws, data) {
          ws.send(data);
        },
      },
    });
  });
  after(() => server.close());

  it("says https in server.url", () => {
    assert.equal(server.url, `https://127.0.0.1:${server.port}/`);
  });

  it("completes a handshake and echoes frames over TLS, agreeing on ALPN http/1.1", async () => {
    const client = await RawClient.connectTls(server.port, testCertificate().ca);
    try {
      assert.equal(client.alpnProtocol, "http/1.1");
      client.write(upgradeRequest("/room?x=1", { Host: `localhost:${server.port}` }));
      assert.equal((await client.readResponse(WAIT)).status, 101);
      client.write(frame(TEXT, "over tls"));
      const echoed = await client.readFrame(WAIT);
      assert.equal(new TextDecoder().decode(echoed.payload), "over tls");
      assert.equal(seenUrl, `wss://localhost:${server.port}/room?x=1`);
    } finally {
      client.destroy();
    }
  });

  it("answers plain HTTP over TLS with an https request URL", async () => {
    const client = await RawClient.connectTls(server.port, testCertificate().ca);
    try {
      client.write(`GET /page HTTP/1.1\r\nHost: localhost:${server.port}\r\n\r\n`);
      const response = await client.readResponse(WAIT);
      assert.equal(response.body, "secure page");
      assert.equal(seenRequestUrl, `https://localhost:${server.port}/page`);
    } finally {
      client.destroy();
    }
  });

  // Autobahn case 2.11 over wss://: pings whose bytes come one at a time, so each arrives in a read
  // of its own while the pong before it may still be in flight (Deno writes asynchronously). A
  // write in flight is no backlog: every ping is answered, in order.
  it("answers each of 10 pings sent a byte at a time with its own pong (20 runs)", async () => {
    for (let run = 0; run < 20; run++) {
      const client = await RawClient.connectTls(server.port, testCertificate().ca);
      try {
        client.write(upgradeRequest("/", { Host: `localhost:${server.port}` }));
        assert.equal((await client.readResponse(WAIT)).status, 101);
        const payloads = Array.from({ length: 10 }, (_, i) => `payload-${run}-${i}`);
        for (const payload of payloads) {
          for (const byte of frame(PING, payload)) client.write(Uint8Array.of(byte));
        }
        for (const payload of payloads) {
          const pong = await client.readFrame(WAIT);
          assert.deepEqual(
            [pong.opcode, new TextDecoder().decode(pong.payload)],
            [PONG, payload],
            `run ${run}`,
          );
        }
      } finally {
        client.destroy();
      }
    }
  });

  it("interoperates with Node's ws client trusting the test certificate", async () => {
    const ws = new WebSocket(`wss://localhost:${server.port}/`, { ca: testCertificate().ca });
    try {
      await new Promise((resolve, reject) => {
        ws.once("open", resolve);
        ws.once("error", reject);
      });
      const echoed = new Promise<string>((resolve) =>
        ws.once("message", (data: unknown) => resolve(String(data)))
      );
      ws.send("hello from ws");
      assert.equal(await echoed, "hello from ws");
    } finally {
      ws.close();
    }
  });

  for (const runtime of ["deno", "bun"] as const) {
    it(`interoperates with ${runtime}'s own WebSocket client, in its own process`, async () => {
      const { caFile } = testCertificate();
      const script = `const ws = new WebSocket(${JSON.stringify(`wss://localhost:${server.port}/`)});
ws.onopen = () => ws.send("hello from ${runtime}");
ws.onmessage = (event) => { console.log(event.data); ws.close(); };
ws.onerror = (event) => { console.log("error: " + (event.message ?? event.type)); };`;
      const [command, args] = runtime === "deno"
        ? [BIN + "deno", ["eval", `--cert=${caFile}`, script]]
        : [BIN + "bun", ["-e", script]];
      const output = await new Promise<string>((resolve, reject) => {
        execFile(
          command,
          args,
          {
            timeout: 15_000,
            env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile, NO_COLOR: "1" },
          },
          (error, stdout, stderr) =>
            error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
        );
      });
      assert.equal(output.trim(), `hello from ${runtime}`);
    });
  }

  // Deno's TLS listener runs each handshake to its end on its own: closing a connection whose
  // handshake has not come releases Wisp's side at the deadline, but not the socket.
  const denoHoldsHandshakes = "Deno" in globalThis && !("Bun" in globalThis)
    ? "Deno cannot close a TLS connection before its handshake"
    : false;
  it("closes a connection whose TLS handshake does not come within handshakeTimeout", {
    skip: skip || denoHoldsHandshakes,
  }, async () => {
    const client = await RawClient.connect(server.port); // plain TCP: no ClientHello follows
    try {
      const started = Date.now();
      await client.waitForEnd(WAIT);
      assert.ok(client.ended, "the server left the connection open");
      assert.ok(Date.now() - started >= 300, "closed before the deadline");
    } finally {
      client.destroy();
    }
  });
});

describe("tls: bad certificates", { skip }, () => {
  it("refuses a tls option that is not PEM with a TypeError naming it", () => {
    const { key } = testCertificate();
    assert.throws(
      () => serve({ port: 0, tls: { cert: "cert.pem", key } }),
      /option "tls.cert" must be the PEM/,
    );
    assert.throws(
      () => serve({ port: 0, tls: { cert: testCertificate().cert, key: "" } }),
      /option "tls.key" must be the PEM/,
    );
    assert.throws(
      () => serve({ port: 0, tls: { cert: "", key, ca: "" } as never }),
      /unknown option "tls.ca"/,
    );
  });

  it("refuses PEM that does not hold a usable certificate with an Error that says so", () => {
    const { key } = testCertificate();
    const garbage = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    assert.throws(() => serve({ port: 0, tls: { cert: garbage, key } }), /TLS certificate or key/);
  });
});
