// Where the benchmarks find the tree, the runtimes and their build output, and which core runs
// what: the servers on one core, the load generators on the other (every script the same).
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** Build output and logs (the C tools, exported baselines, server logs). */
export const BUILD = path.join(ROOT, "bench/.build");
/** The C load generator, compiled from bench/loadgen.c. */
export const LOADGEN = path.join(BUILD, "loadgen");
/** Deno and Bun as package.json pins them. */
export const DENO = path.join(ROOT, "node_modules/.bin/deno");
export const BUN = path.join(ROOT, "node_modules/.bin/bun");
/** Node 20 runs Wisp's TypeScript through this loader (esbuild strips the types once, at startup). */
export const NODE_TS = path.join(ROOT, "scripts/node_ts.mjs");
/** The core the servers are pinned to, and the generators' core. */
export const SERVER_CORE = "0";
export const GEN_CORE = "1";
