/**
 * Picks the transport adapter for the runtime Wisp is running on.
 * @module
 */

import type { Listen } from "./types.ts";
import { listen as listenBun } from "./bun.ts";
import { listen as listenDeno } from "./deno.ts";

/** Returns the adapter over `Bun.listen` or `Deno.listen`; throws on any other runtime. */
export function runtimeListen(): Listen {
  if ("Bun" in globalThis) return listenBun;
  if ("Deno" in globalThis) return listenDeno;
  throw new Error("Wisp runs on Deno or Bun; this runtime has neither Deno.listen nor Bun.listen");
}
