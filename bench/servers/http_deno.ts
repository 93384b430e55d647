// Deno's own HTTP server (Deno.serve) with the handlers of http_handlers.mjs: the baseline for
// Wisp on Deno in bench/http.mjs.
// Usage: deno run -A bench/servers/http_deno.ts PORT hello|json
import { handlers } from "./http_handlers.mjs";

const [port, name] = Deno.args;
const fetch = handlers[name as keyof typeof handlers];
if (fetch === undefined) throw new Error(`unknown handler ${name}`);

Deno.serve({ port: Number(port), hostname: "127.0.0.1", onListen() {} }, fetch);
console.log(`listening on http://127.0.0.1:${port}/ (${name})`);
