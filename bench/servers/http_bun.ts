// Bun's own HTTP server (Bun.serve) with the handlers of http_handlers.mjs: the baseline for Wisp
// on Bun in bench/http.mjs.
// Usage: bun run bench/servers/http_bun.ts PORT hello|json
import { handlers } from "./http_handlers.mjs";

const [port, name] = Bun.argv.slice(2);
const fetch = handlers[name as keyof typeof handlers];
if (fetch === undefined) throw new Error(`unknown handler ${name}`);

Bun.serve({ port: Number(port), hostname: "127.0.0.1", fetch });
console.log(`listening on http://127.0.0.1:${port}/ (${name})`);
