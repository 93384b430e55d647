// Runs Wisp's TypeScript on Node 20, which cannot: `node --import ./scripts/node_ts.mjs mod.ts`.
// Imported with --import, it registers itself as a module hook; on the hooks thread, its `load`
// hands each .ts file to esbuild (a dev dependency), which strips the types as Deno and Bun do.
// Unlike tsx, it leaves function names alone instead of wrapping functions in a `__name` helper,
// so a function's source (what Playwright sends to the browser to evaluate) runs anywhere.
import { readFile } from "node:fs/promises";
import { register } from "node:module";
import { fileURLToPath } from "node:url";
import { isMainThread } from "node:worker_threads";
import { transform } from "esbuild";

/** The load hook: .ts files become ES modules; everything else loads as usual. */
export async function load(url, context, nextLoad) {
  if (!url.startsWith("file:") || !url.endsWith(".ts")) return nextLoad(url, context);
  const file = fileURLToPath(url);
  const { code } = await transform(await readFile(file, "utf8"), {
    loader: "ts",
    format: "esm",
    target: "node20",
    sourcefile: file,
    // No inline source map: Node reads none without --enable-source-maps, and their text stays in
    // the heap (with every module's source in it), where it tripled the collector's full
    // collections of a 1 MiB echo (bench/run.mjs scenario c: 10 against 60–70 in 5 s, and a
    // quarter of the throughput).
  });
  return { format: "module", source: code, shortCircuit: true };
}

if (isMainThread) register(import.meta.url);
