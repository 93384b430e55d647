// Wisp's echo server with `transientMessages: true` (issue #23 point 2): the same as
// `mod.ts --echo`, but a binary message's buffer is Wisp's again once the handler returns.
// Usage: bun run bench/servers/wisp_transient.ts PORT (also deno run -A, node --import)
import { serve } from "../../mod.ts";

// `process` is a global on all three runtimes; argv[2] is the first script argument.
const port = Number(process.argv[2]);

serve({
  port,
  hostname: "127.0.0.1",
  protocols: (offered) => offered[0],
  perMessageDeflate: true,
  transientMessages: true,
  websocket: {
    message(ws, data) {
      ws.send(data);
    },
  },
});
console.log(`listening on ws://127.0.0.1:${port}`);
