// What every benchmark report is made of: medians, numbers as the tables print them, markdown
// tables, and the marks for a run whose generator was the limit (†) or whose machine was busy (‡).

/** The generator's share of its core above which its figure may be the generator's limit (†). */
export const GEN_BOUND = 0.8;
/** The share of a core other processes used above which a run is suspect (‡). */
export const BUSY = 0.15;

/** The median of `xs` (NaN when there are none). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** `x` with as many digits as it deserves (thousands grouped), or "–" when there is none. */
export function fmt(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  if (x >= 1000) return Math.round(x).toLocaleString("en-US");
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** A markdown table. */
export function table(header, rows) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}
