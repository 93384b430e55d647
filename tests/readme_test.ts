/**
 * The README's options table against the options as `src/options.ts` declares them: the same
 * names, and each default as the declaration shows it.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { OPTIONS } from "../src/options.ts";

/** The rows of the README's options table: option name → default cell. */
function readmeOptions(): Map<string, string> {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.slice(
    readme.indexOf("### Options"),
    readme.indexOf("\n## ", readme.indexOf("### Options")),
  );
  const rows = new Map<string, string>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((cell) => cell.trim());
    const name = /^`(\w+)/.exec(cells[1] ?? "")?.[1];
    if (name !== undefined) rows.set(name, cells[2]);
  }
  return rows;
}

describe("README options table", () => {
  const rows = readmeOptions();

  it("lists every option, and no other", () => {
    assert.deepEqual([...rows.keys()].sort(), Object.keys(OPTIONS).sort());
  });

  for (const [name, option] of Object.entries(OPTIONS)) {
    it(`shows the default of ${name} as declared`, () => {
      assert.equal(rows.get(name), option.shown);
    });
  }
});
