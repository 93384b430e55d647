// Draws a scaling run (bench/scale.mjs) as a small SVG chart, written by hand: three panels, RSS
// per connection, connections/s while opening, and publish time per subscriber, each against the
// connections per server process (log scale), one line per server (Wisp solid, its native peer
// dashed, one colour per runtime), medians over the rounds; the multi-process run, when there is
// one, adds a diamond per runtime at its total.
// Usage: node bench/chart.mjs bench/results/scale-STAMP.json [OUT.svg]   (default: beside it)
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BUSY, median } from "./report.mjs";

const PANELS = [
  { key: "rss_kib_per_conn", title: "RSS per connection, KiB", note: "lower is better" },
  { key: "conn_per_s", title: "connections/s while opening", note: "higher is better" },
  { key: "us_per_sub", title: "publish time per subscriber, µs", note: "lower is better; flat scales" },
];
const STYLE = {
  "wisp-deno": { color: "#2563c9", dash: "" },
  deno: { color: "#2563c9", dash: "5 4" },
  "wisp-bun": { color: "#c7641c", dash: "" },
  bun: { color: "#c7641c", dash: "5 4" },
  "wisp-node": { color: "#2f8f3e", dash: "" },
  ws: { color: "#2f8f3e", dash: "5 4" },
};
const PANEL_W = 300, PANEL_H = 230, PLOT = { left: 56, right: 14, top: 34, bottom: 40 };

const escape = (text) =>
  String(text).replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]);

// Gridlines for values up to `max`: a step of 1, 2 or 5 times a power of ten, at most 5 of them.
function ticks(max) {
  if (!(max > 0)) return { step: 1, top: 1 };
  const p = 10 ** Math.floor(Math.log10(max / 5));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => Math.ceil(max / s) <= 5);
  return { step, top: Math.ceil(max / step) * step };
}

function short(x) {
  if (x >= 1e6) return `${+(x / 1e6).toFixed(1)}M`;
  if (x >= 1e3) return `${+(x / 1e3).toFixed(1)}k`;
  if (x >= 10) return String(Math.round(x));
  return String(+x.toFixed(2));
}

const medianOf = (runs, key) => {
  const ok = runs.filter((r) => !r.error && Number.isFinite(r[key]));
  return ok.length ? median(ok.map((r) => r[key])) : null;
};

/**
 * The SVG text of a scaling run's chart.
 * @param {{ meta: object, counts: number[], servers: string[], labels: Record<string, string>,
 *   single: object[], workers: object[] }} data the results file of bench/scale.mjs
 * @returns {string}
 */
export function scaleChart(data) {
  const { meta, counts, servers, labels, single, workers = [] } = data;
  const xs = [...counts];
  const workerIds = [...new Set(workers.map((r) => r.server))];
  if (workers.some((r) => !r.error)) xs.push(meta.workersTotal);
  const lo = Math.min(...xs), hi = Math.max(...xs);
  const plotW = PANEL_W - PLOT.left - PLOT.right, plotH = PANEL_H - PLOT.top - PLOT.bottom;
  // Log scale; one count alone sits in the middle.
  const x = (v) => PLOT.left + (hi === lo ? plotW / 2 : (Math.log(v / lo) / Math.log(hi / lo)) * plotW);
  const out = [];
  PANELS.forEach((panel, i) => {
    const series = servers.map((id) => ({
      id,
      points: counts
        .map((c) => [c, medianOf(single.filter((r) => r.server === id && r.count === c), panel.key)])
        .filter(([, v]) => v !== null),
    }));
    const extra = workerIds.map((id) => ({
      id,
      value: medianOf(workers.filter((r) => r.server === id), panel.key),
    }))
      .filter((w) => w.value !== null);
    const { step, top } = ticks(
      Math.max(0, ...series.flatMap((s) => s.points.map(([, v]) => v)), ...extra.map((w) => w.value)),
    );
    const y = (v) => PLOT.top + plotH - (v / top) * plotH;
    const g = [`<g transform="translate(${i * PANEL_W},0)">`];
    g.push(`<text x="${PLOT.left}" y="16" class="title">${escape(panel.title)}</text>`);
    g.push(`<text x="${PLOT.left}" y="28" class="note">${escape(panel.note)}</text>`);
    for (let v = 0; v <= top + step / 2; v += step) {
      const yy = y(v).toFixed(1);
      g.push(`<line x1="${PLOT.left}" x2="${PLOT.left + plotW}" y1="${yy}" y2="${yy}" class="grid"/>`);
      g.push(`<text x="${PLOT.left - 6}" y="${yy}" dy="3" text-anchor="end">${short(v)}</text>`);
    }
    for (const c of xs) {
      const xx = x(c).toFixed(1);
      g.push(
        `<line x1="${xx}" x2="${xx}" y1="${PLOT.top + plotH}" y2="${PLOT.top + plotH + 4}" class="axis"/>`,
      );
      g.push(`<text x="${xx}" y="${PLOT.top + plotH + 16}" text-anchor="middle">${short(c)}</text>`);
    }
    g.push(
      `<text x="${PLOT.left + plotW / 2}" y="${
        PANEL_H - 6
      }" text-anchor="middle" class="note">connections</text>`,
    );
    for (const s of series) {
      const { color, dash } = STYLE[s.id] ?? { color: "#555", dash: "" };
      const d = s.points.map(([c, v], j) => `${j ? "L" : "M"}${x(c).toFixed(1)},${y(v).toFixed(1)}`).join("");
      if (s.points.length > 1) {
        g.push(
          `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${
            dash ? ` stroke-dasharray="${dash}"` : ""
          }/>`,
        );
      }
      for (const [c, v] of s.points) {
        g.push(
          `<circle cx="${x(c).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${dash ? "#fff" : color}" ` +
            `stroke="${color}" stroke-width="1.5"><title>${
              escape(`${labels[s.id]}, ${c}: ${short(v)}`)
            }</title></circle>`,
        );
      }
    }
    for (const w of extra) {
      const { color } = STYLE[w.id] ?? { color: "#555" };
      const cx = x(meta.workersTotal), cy = y(w.value), r = 5;
      g.push(
        `<path d="M${cx.toFixed(1)},${
          (cy - r).toFixed(1)
        }l${r},${r}l${-r},${r}l${-r},${-r}z" fill="${color}">` +
          `<title>${
            escape(`${labels[w.id]}, ${meta.workers} workers, ${meta.workersTotal}: ${short(w.value)}`)
          }</title></path>`,
      );
    }
    g.push(
      `<line x1="${PLOT.left}" x2="${PLOT.left}" y1="${PLOT.top}" y2="${PLOT.top + plotH}" class="axis"/>`,
      `<line x1="${PLOT.left}" x2="${PLOT.left + plotW}" y1="${PLOT.top + plotH}" y2="${
        PLOT.top + plotH
      }" class="axis"/>`,
      "</g>",
    );
    out.push(g.join("\n"));
  });
  // Legend: one entry per server, and the workers' diamond.
  const legendY = PANEL_H + 14;
  const entries = servers.map((id) => ({ id, text: labels[id] }));
  if (workerIds.length && workers.some((r) => !r.error)) {
    entries.push({ id: null, text: `◆ ${meta.workers} workers, in all` });
  }
  const step = (PANEL_W * PANELS.length - 40) / Math.max(entries.length, 1);
  entries.forEach((e, j) => {
    const lx = 20 + j * step;
    if (e.id) {
      const { color, dash } = STYLE[e.id] ?? { color: "#555", dash: "" };
      out.push(
        `<line x1="${lx}" x2="${lx + 24}" y1="${legendY}" y2="${legendY}" stroke="${color}" stroke-width="2"${
          dash ? ` stroke-dasharray="${dash}"` : ""
        }/>`,
        `<text x="${lx + 30}" y="${legendY + 4}">${escape(e.text)}</text>`,
      );
    } else {
      out.push(`<text x="${lx}" y="${legendY + 4}">${escape(e.text)}</text>`);
    }
  });
  const busy = [...single, ...workers].some((r) => !r.error && r.others > BUSY);
  // The machine in short: its cores and memory.
  const machine = meta.machine.split(", Linux")[0];
  const caption = [
    `Medians of ${meta.rounds} round(s), ${meta.started}, ${machine}.`,
    busy
      ? "Other processes were busy during some runs (‡ in the tables): a busy machine, figures suspect."
      : "",
  ].filter(Boolean);
  const width = PANEL_W * PANELS.length, height = PANEL_H + 30 + 14 * caption.length;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="11">
<style>
text { fill: #222; } .title { font-size: 12px; font-weight: 600; } .note { fill: #666; font-size: 10px; }
.grid { stroke: #e3e3e3; } .axis { stroke: #888; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
${out.join("\n")}
${
    caption.map((line, j) => `<text x="20" y="${PANEL_H + 40 + 14 * j}" class="note">${escape(line)}</text>`)
      .join("\n")
  }
</svg>
`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [input, output] = process.argv.slice(2);
  if (!input) {
    console.error("usage: node bench/chart.mjs bench/results/scale-STAMP.json [OUT.svg]");
    process.exit(2);
  }
  const file = output ?? input.replace(/\.json$/, "") + ".svg";
  fs.writeFileSync(file, scaleChart(JSON.parse(fs.readFileSync(input, "utf8"))));
  console.log(`wrote ${file}`);
}
