// Counts passed and failed tests in a JUnit report from `deno test`, `bun test` or `node --test`.
// Only leaf test cases count: Deno also reports each `describe` block as a case of its own,
// named as the prefix ("suite > ") of its steps. Node nests cases in a <testsuite> per block, and
// reports a skipped block as one skipped case.
// Usage: node scripts/count_junit.mjs REPORT.xml  → prints "PASSED FAILED SKIPPED"
import { readFileSync } from "node:fs";

const xml = readFileSync(process.argv[2], "utf8");
const cases = [];
const pattern = /<testcase\s+name="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g;
for (const match of xml.matchAll(pattern)) {
  const body = match[3] ?? "";
  cases.push({ name: match[1], failed: /<(failure|error)\b/.test(body), skipped: /<skipped\b/.test(body) });
}
const names = cases.map((testCase) => testCase.name);
const leaves = cases.filter((testCase) => !names.some((name) => name.startsWith(`${testCase.name} &gt; `)));
const counted = leaves.filter((testCase) => !testCase.skipped);
const failed = counted.filter((testCase) => testCase.failed).length;
console.log(`${counted.length - failed} ${failed} ${leaves.length - counted.length}`);
