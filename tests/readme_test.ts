/**
 * The defaults as `src/options.ts` declares them (each once, as a value) against the places that
 * show them: the README's options table (the same names, each default as derived from its value),
 * the README's `perMessageDeflate` row, and the doc comment of every option with a value default.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { DEFLATE_OPTIONS, OPTIONS } from "../src/options.ts";
import { resolveTable } from "../src/option_table.ts";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

/** The rows of the README's options table: option name → [default cell, meaning cell]. */
function readmeOptions(): Map<string, [string, string]> {
  const section = readme.slice(
    readme.indexOf("### Options"),
    readme.indexOf("\n## ", readme.indexOf("### Options")),
  );
  const rows = new Map<string, [string, string]>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((cell) => cell.trim());
    const name = /^`(\w+)/.exec(cells[1] ?? "")?.[1];
    if (name !== undefined) rows.set(name, [cells[2], cells[3]]);
  }
  return rows;
}

/** The doc comment of each property of `interface name` in options.ts: property → comment text. */
function docComments(name: string): Map<string, string> {
  const source = readFileSync(new URL("../src/options.ts", import.meta.url), "utf8");
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

  it("shows each perMessageDeflate default as declared", () => {
    const defaults = resolveTable(DEFLATE_OPTIONS, {}, (name) => name, "test");
    for (const [name, value] of Object.entries(defaults)) {
      assert.match(rows.get("perMessageDeflate")![1], new RegExp(`\\b${name}: ${value}\\b`), name);
    }
  });
});

describe("doc comments of the options", () => {
  const cases = [
    ["ServeOptions", OPTIONS, docComments("ServeOptions")],
    ["PerMessageDeflateOptions", DEFLATE_OPTIONS, docComments("PerMessageDeflateOptions")],
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
