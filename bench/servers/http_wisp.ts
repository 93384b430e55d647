// Wisp's plain-HTTP server for bench/http.mjs, the same program on Deno, Bun and Node: `fetch`
// runs one of the handlers of http_handlers.mjs. MOD (default: this tree's mod.ts) lets the driver
// run another tree's Wisp (--baseline) with the same handlers.
// Usage: deno run -A bench/servers/http_wisp.ts PORT hello|json [MOD]
//        bun run bench/servers/http_wisp.ts PORT hello|json [MOD]
//        node --import ./scripts/node_ts.mjs bench/servers/http_wisp.ts PORT hello|json [MOD]
import { handlers } from "./http_handlers.mjs";

// `process` is a global on all three runtimes; argv[2] is the first script argument.
const [port, name, mod = "../../mod.ts"] = process.argv.slice(2);
const { serve }: typeof import("../../mod.ts") = await import(mod);
const fetch = handlers[name as keyof typeof handlers];
if (fetch === undefined) throw new Error(`unknown handler ${name}`);

serve({ port: Number(port), hostname: "127.0.0.1", fetch });
console.log(`listening on http://127.0.0.1:${port}/ (${name})`);
