/**
 * Picks the outgoing-connection adapter for the runtime Wisp is running on (for a backplane's
 * connections to Redis).
 * @module
 */

import { connect as connectBun } from "./bun.ts";
import { connect as connectDeno } from "./deno.ts";
import type { Connect } from "./types.ts";

/** Returns `Bun.connect` or `Deno.connect` behind the {@linkcode Connect} interface. */
export function runtimeConnect(): Connect {
  if ("Bun" in globalThis) return connectBun;
  if ("Deno" in globalThis) return connectDeno;
  throw new Error("Wisp's outgoing connections (a Redis backplane) need Deno or Bun");
}
