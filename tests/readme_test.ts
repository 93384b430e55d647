/**
 * The defaults as `src/options.ts` declares them (each once, as a value) against the places that
 * show them: the README's options table (the same names, each default as derived from its value),
 * the README's `perMessageDeflate` row, and the doc comment of every option with a value default.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { DEFLATE_OPTIONS, HISTORY_OPTIONS, OPTIONS } from "../src/options.ts";
import type { OptionTable } from "../src/option_table.ts";
import { REDIS_OPTIONS } from "../src/pubsub/redis_options.ts";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

/**
 * The rows of the README's table that starts at `marker` (to the next section, or the end of the
 * table): option name → [default cell, meaning cell].
 */
function readmeOptions(marker = "### Options"): Map<string, [string, string]> {
  const start = readme.indexOf(marker);
  const section = marker.startsWith("#")
    ? readme.slice(start, readme.indexOf("\n## ", start))
    : readme.slice(start, readme.indexOf("\n\n", start));
  const rows = new Map<string, [string, string]>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((cell) => cell.trim());
    const name = /^`(\w+)/.exec(cells[1] ?? "")?.[1];
    if (name !== undefined && cells[2] !== "default") rows.set(name, [cells[2], cells[3]]);
  }
  return rows;
}

/** The doc comment of each property of `interface name` in `file`: property → comment text. */
function docComments(name: string, file = "../src/options.ts"): Map<string, string> {
  const source = readFileSync(new URL(file, import.meta.url), "utf8");
  const start = source.indexOf(`export interface ${name}`);
  const body = source.slice(start, source.indexOf("\n}\n", start));
  const docs = new Map<string, string>();
  for (const match of body.matchAll(/\/\*\*([\s\S]*?)\*\/\s*(\w+)\??[(:]/g)) {
    docs.set(match[2], match[1].replace(/\s*\n\s*\*\s?/g, " ").trim());
  }
  return docs;
}

describe("README options table", () => {
  const rows = readmeOptions();

  it("lists every option, and no other", () => {
    assert.deepEqual([...rows.keys()].sort(), Object.keys(OPTIONS).sort());
  });

  for (const [name, option] of Object.entries(OPTIONS)) {
    it(`shows the default of ${name} as declared`, () => {
      assert.equal(rows.get(name)?.[0], option.shown);
    });
  }

  for (
    const [option, table] of [["perMessageDeflate", DEFLATE_OPTIONS], ["history", HISTORY_OPTIONS]] as const
  ) {
    it(`shows each ${option} default as declared`, () => {
      for (const [name, spec] of Object.entries(table as OptionTable)) {
        const shown = spec.derived ? spec.shown.replaceAll("`", "") : name;
        assert.ok(
          rows.get(option)![1].includes(spec.derived ? `${name}: ${shown}` : name),
          `${option}.${name}`,
        );
      }
    });
  }
});

describe("README redisBackplane options table", () => {
  const rows = readmeOptions("| `redisBackplane` option");

  it("lists every option, and no other", () => {
    assert.deepEqual([...rows.keys()].sort(), Object.keys(REDIS_OPTIONS).sort());
  });

  for (const [name, option] of Object.entries(REDIS_OPTIONS)) {
    it(`shows the default of ${name} as declared`, () => {
      assert.equal(rows.get(name)?.[0], option.shown);
    });
  }
});

describe("doc comments of the options", () => {
  const cases = [
    ["ServeOptions", OPTIONS, docComments("ServeOptions")],
    ["PerMessageDeflateOptions", DEFLATE_OPTIONS, docComments("PerMessageDeflateOptions")],
    ["HistoryOptions", HISTORY_OPTIONS, docComments("HistoryOptions")],
    [
      "RedisBackplaneOptions",
      REDIS_OPTIONS,
      docComments("RedisBackplaneOptions", "../src/pubsub/redis_options.ts"),
    ],
  ] as const;
  for (const [type, table, docs] of cases) {
    it(`documents every option of ${type}`, () => {
      assert.deepEqual([...docs.keys()].sort(), Object.keys(table).sort());
    });
    for (const [name, option] of Object.entries(table)) {
      // Defaults that are values (numbers, booleans, strings) are derived; descriptions are free text.
      if (!option.derived) continue;
      it(`states the default of ${type}.${name} as declared`, () => {
        const shown = option.shown.replaceAll("`", "");
        assert.ok(
          docs.get(name)!.includes(`Default ${shown}.`),
          `${docs.get(name)} lacks "Default ${shown}."`,
        );
      });
    }
  }
});
