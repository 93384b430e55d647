/**
 * CPU cost of one opening handshake inside Wisp (no sockets): the whole HTTP phase of a
 * connection, and the `Sec-WebSocket-Accept` digest alone. Run with `deno run -A
 * bench/handshake.ts` or `bun bench/handshake.ts`.
 */

import { acceptDigest } from "../src/handshake.ts";
import { HttpConnection, type HttpHost } from "../src/http/connection.ts";
import { resolveOptions } from "../src/options.ts";
import { NullTransport } from "../tests/helpers/null_transport.ts";

const REQUEST = new TextEncoder().encode(
  "GET / HTTP/1.1\r\nHost: 127.0.0.1:3368\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
);

/** Runs `count` handshakes at once; resolves when every one was handed over as a WebSocket. */
function handshakes(count: number): Promise<void> {
  return new Promise((resolve) => {
    let adopted = 0;
    const host: HttpHost<undefined> = {
      options: resolveOptions({ port: 0 }),
      adopt: () => void (++adopted === count && resolve()),
      released() {},
    };
    for (let i = 0; i < count; i++) {
      const transport = new NullTransport();
      const http = new HttpConnection(transport, host);
      transport.events = http;
      http.data(REQUEST.slice());
    }
  });
}

async function microseconds(count: number, run: (count: number) => Promise<unknown>): Promise<string> {
  await run(count / 4); // warm up
  const start = performance.now();
  await run(count);
  return ((performance.now() - start) * 1000 / count).toFixed(1);
}

const COUNT = 20_000;
const runtime = "Bun" in globalThis ? "bun" : "deno";
const whole = await microseconds(COUNT, handshakes);
const digest = await microseconds(
  COUNT,
  (count) => Promise.all(Array.from({ length: count }, () => acceptDigest("dGhlIHNhbXBsZSBub25jZQ=="))),
);
console.log(`${runtime}: ${whole} µs per handshake, of which the accept-key digest ${digest} µs`);
