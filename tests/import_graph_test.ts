/**
 * The module graph of `mod.ts` and `src/`: no import cycles (type-only imports included), and
 * `node:` built-ins only where the design allows them.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Static imports and re-exports (`import … from`, `export … from`, bare `import "…"`) and dynamic `import("…")`. */
const SPECIFIER =
  /(?:^|\n)\s*(?:import|export)\b[^"'`;]*?\bfrom\s*["']([^"']+)["']|(?:^|\n)\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Every `.ts` file under `dir`, as paths relative to the repository root. */
function sources(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(join(root, dir))) {
    const path = join(dir, entry);
    if (statSync(join(root, path)).isDirectory()) found.push(...sources(path));
    else if (path.endsWith(".ts")) found.push(path);
  }
  return found;
}

/** Each module's imports: relative ones as root-relative paths, others (`node:…`) as they are. */
function graph(): Map<string, string[]> {
  const modules = new Map<string, string[]>();
  for (const file of ["mod.ts", ...sources("src")]) {
    const text = readFileSync(join(root, file), "utf8").replace(/^\s*(?:\/\/|\*).*$/gm, "");
    const imports: string[] = [];
    for (const match of text.matchAll(SPECIFIER)) {
      const specifier = match[1] ?? match[2] ?? match[3];
      imports.push(
        specifier.startsWith(".") ? relative(root, resolve(root, dirname(file), specifier)) : specifier,
      );
    }
    modules.set(file, imports);
  }
  return modules;
}

/** A cycle in `modules` as the list of files around it, or null when there is none. */
function findCycle(modules: Map<string, string[]>): string[] | null {
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (file: string): string[] | null => {
    const at = path.indexOf(file);
    if (at >= 0) return [...path.slice(at), file];
    if (done.has(file) || !modules.has(file)) return null;
    path.push(file);
    for (const next of modules.get(file)!) {
      const cycle = visit(next);
      if (cycle !== null) return cycle;
    }
    path.pop();
    done.add(file);
    return null;
  };
  for (const file of modules.keys()) {
    const cycle = visit(file);
    if (cycle !== null) return cycle;
  }
  return null;
}

describe("import graph", () => {
  const modules = graph();

  it("reads the imports of every module", () => {
    assert.ok(modules.get("src/server.ts")!.includes("src/http/connection.ts"));
    assert.ok(modules.get("mod.ts")!.includes("src/cli.ts"), "the CLI's dynamic import");
  });

  it("has no import cycle", () => {
    assert.equal(findCycle(modules)?.join(" → ") ?? null, null);
  });

  it("finds a cycle when there is one", () => {
    const looped = new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]]]);
    assert.deepEqual(findCycle(looped), ["a.ts", "b.ts", "c.ts", "a.ts"]);
  });

  it("imports node: built-ins only in the codec and the Node adapter", () => {
    const users = [...modules].filter(([, imports]) => imports.some((name) => name.startsWith("node:")))
      .map(([file]) => file).sort();
    for (const file of users) assert.ok(["src/deflate/codec.ts", "src/runtime/node.ts"].includes(file), file);
  });
});
