// Node's own HTTP server (node:http) doing the work of http_handlers.mjs the way a node:http
// server does it: the baseline for Wisp on Node in bench/http.mjs. The same headers as the web
// handlers' responses (a Response with a string body is text/plain;charset=UTF-8), and set before
// `end` so that Node sends a Content-Length (after `writeHead` it would chunk the body).
// Usage: node bench/servers/http_node.mjs PORT hello|json
import http from "node:http";
import { reply } from "./http_handlers.mjs";

const [port, name] = process.argv.slice(2);

const handlers = {
  hello(_request, response) {
    response.setHeader("content-type", "text/plain;charset=UTF-8");
    response.end("hello world");
  },
  json(request, response) {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const body = JSON.stringify(reply(JSON.parse(Buffer.concat(chunks).toString())));
      response.setHeader("content-type", "application/json");
      response.end(body);
    });
  },
};
const handler = handlers[name];
if (handler === undefined) throw new Error(`unknown handler ${name}`);

http.createServer(handler).listen(Number(port), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${port}/ (${name})`);
});
