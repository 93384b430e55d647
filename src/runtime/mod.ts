/**
 * Picks the transport adapter for the runtime Wisp is running on.
 * @module
 */

import * as bun from "./bun.ts";
import * as deno from "./deno.ts";
import * as node from "./node.ts";
import type { Connect, Listen } from "./types.ts";

/**
 * The adapter over `Bun`, `Deno` or `node:net`, tried in that order (Bun and Deno report a Node
 * version too); throws on any other runtime.
 */
function adapter(): { listen: Listen; connect: Connect } {
  if ("Bun" in globalThis) return bun;
  if ("Deno" in globalThis) return deno;
  if (globalThis.process?.versions?.node !== undefined) return node;
  throw new Error("Wisp runs on Deno, Bun or Node; this runtime is none of them");
}

/** Returns the runtime's `Listen`: over `Bun.listen`, `Deno.listen` or `node:net`. */
export function runtimeListen(): Listen {
  return adapter().listen;
}

/** Returns the runtime's `Connect` (for a backplane's connections to Redis). */
export function runtimeConnect(): Connect {
  return adapter().connect;
}
