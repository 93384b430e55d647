// The floor under Wisp's HTTP path on each runtime, for bench/http.mjs: Wisp's own transport
// adapter (src/runtime, over Deno.listen, Bun.listen or node:net) answering every request head
// with the fixed bytes of the handler's response, with no parsing, no Request, no Response and no
// state. What no HTTP layer on that transport can beat: its CPU per request is the runtime's cost
// of one read and one write.
// Usage: deno run -A bench/servers/http_floor.ts PORT hello|json
//        bun run bench/servers/http_floor.ts PORT hello|json
//        node --import ./scripts/node_ts.mjs bench/servers/http_floor.ts PORT hello|json
import { runtimeListen } from "../../src/runtime/mod.ts";
import { reply, REQUEST_BODY } from "./http_handlers.mjs";

const [port, name] = process.argv.slice(2);
const body = name === "hello"
  ? "hello world"
  : name === "json"
  ? JSON.stringify(reply(JSON.parse(REQUEST_BODY)))
  : null;
if (body === null) throw new Error(`unknown handler ${name}`);
const type = name === "hello" ? "text/plain;charset=UTF-8" : "application/json";
const encoder = new TextEncoder();
const RESPONSE = encoder.encode(
  `HTTP/1.1 200 OK\r\ncontent-type: ${type}\r\ncontent-length: ${encoder.encode(body).length}\r\n\r\n${body}`,
);
const CR = 0x0d, LF = 0x0a;

runtimeListen()({ hostname: "127.0.0.1", port: Number(port) }, (transport) => {
  // The generator sends one request at a time per connection, each ending at its head's blank
  // line (the JSON body holds no CRLF): one answer per "\r\n\r\n", which may straddle reads.
  let matched = 0;
  transport.events = {
    data(chunk) {
      for (let i = 0; i < chunk.length; i++) {
        const byte = chunk[i];
        matched = byte === (matched % 2 === 0 ? CR : LF) ? matched + 1 : byte === CR ? 1 : 0;
        if (matched === 4) {
          matched = 0;
          transport.write(RESPONSE);
        }
      }
      return false;
    },
    drain() {},
    closed() {},
  };
});
console.log(`listening on http://127.0.0.1:${port}/ (${name}, transport floor)`);
