// Analytics: node counts, failures and p95 duration over time (uPlot), and a summary per element.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { get } from "./api";
import { clear, errorBox, h } from "./dom";

interface Point {
  start: string;
  total: number;
  failed: number;
  p95: number;
  byStatus: Record<string, number>;
}

interface Summary {
  start: string;
  end: string;
  elements: Array<{ fullName: string; total: number; byStatus: Record<string, number>; failureRate: number; p50: number; p95: number; p99: number }>;
}

const RANGES: Record<string, { ms: number; bucket: string; bucketMs: number }> = {
  "1h": { ms: 3600_000, bucket: "1m", bucketMs: 60_000 },
  "6h": { ms: 6 * 3600_000, bucket: "5m", bucketMs: 300_000 },
  "24h": { ms: 24 * 3600_000, bucket: "30m", bucketMs: 1_800_000 },
  "7d": { ms: 7 * 24 * 3600_000, bucket: "360m", bucketMs: 21_600_000 },
};

let range = "1h";
let element = "";
const charts: uPlot[] = [];

export async function analyticsPage(root: HTMLElement): Promise<void> {
  for (const c of charts.splice(0)) c.destroy();
  const rangeSel = h("select", { "aria-label": "range" }, Object.keys(RANGES).map((r) => h("option", { value: r }, `last ${r}`)));
  rangeSel.value = range;
  const el = h("input", { placeholder: "all elements", value: element, "aria-label": "element" });
  const body = h("div");
  const form = h(
    "form",
    {
      class: "filters",
      onSubmit: (ev: Event) => {
        ev.preventDefault();
        range = rangeSel.value;
        element = el.value.trim();
        void analyticsPage(root);
      },
    },
    h("label", null, "Range ", rangeSel),
    h("label", null, "Element ", el),
    h("button", { type: "submit", class: "primary" }, "Show"),
    element
      ? h("button", { type: "button", onClick: () => { element = ""; void analyticsPage(root); } }, "All elements")
      : null,
  );
  clear(root, h("div", { class: "page" }, h("h2", null, "Analytics"), form, body));

  const r = RANGES[range];
  const end = Date.now();
  const start = end - r.ms;
  try {
    const [ts, sum] = await Promise.all([
      get<{ bucket: string; points: Point[] }>("/api/analytics/timeseries", { start, end, bucket: r.bucket, fullName: element }),
      get<Summary>("/api/analytics/summary", { start, end, fullName: element }),
    ]);
    // Buckets are aligned to multiples of the bucket since the Unix epoch (UTC), from the one
    // holding start: their times follow from that, in the browser's time zone, without parsing
    // the app-timezone labels.
    const first = Math.floor(start / r.bucketMs) * r.bucketMs;
    const xs = ts.points.map((_, i) => (first + i * r.bucketMs) / 1000);
    const counts = h("div", { class: "chart", "data-chart": "counts" });
    const p95 = h("div", { class: "chart", "data-chart": "p95" });
    clear(
      body,
      h("div", { class: "cols" }, h("section", null, h("h3", null, "Nodes per ", r.bucket, " (total and failed)"), counts), h("section", null, h("h3", null, "p95 duration (ms)"), p95)),
      summaryTable(sum, (name) => {
        element = name;
        void analyticsPage(root);
      }),
    );
    const width = Math.max(320, Math.floor(counts.clientWidth || 480));
    charts.push(
      new uPlot(
        {
          width,
          height: 220,
          series: [
            {},
            { label: "total", stroke: "#3867d6", fill: "rgba(56,103,214,0.12)", width: 2 },
            { label: "failed", stroke: "#d63838", fill: "rgba(214,56,56,0.12)", width: 2 },
          ],
          axes: [{}, { label: "nodes" }],
          scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
        },
        [xs, ts.points.map((p) => p.total), ts.points.map((p) => p.failed)],
        counts,
      ),
      new uPlot(
        {
          width: Math.max(320, Math.floor(p95.clientWidth || 480)),
          height: 220,
          series: [{}, { label: "p95 ms", stroke: "#8854d0", width: 2, points: { show: true } }],
          axes: [{}, { label: "ms" }],
          scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
        },
        [xs, ts.points.map((p) => (p.total ? p.p95 : null))],
        p95,
      ),
    );
  } catch (e) {
    clear(body, errorBox(e));
  }
}

function summaryTable(sum: Summary, chart: (fullName: string) => void): HTMLElement {
  if (!sum.elements.length) return h("p", { class: "empty" }, `No nodes between ${sum.start} and ${sum.end}.`);
  return h(
    "section",
    null,
    h("h3", null, `By element, ${sum.start} – ${sum.end}`),
    h(
      "table",
      { class: "grid summary" },
      h("thead", null, h("tr", null, ["element", "total", "by status", "failure rate", "p50", "p95", "p99"].map((c) => h("th", null, c)))),
      h(
        "tbody",
        null,
        sum.elements.map((e) =>
          h(
            "tr",
            null,
            h(
              "td",
              null,
              h("a", { href: `#/elements/${encodeURIComponent(e.fullName)}` }, e.fullName),
              " ",
              e.fullName === element
                ? h("span", { class: "badge" }, "charted")
                : h("button", { class: "link", "data-chart-element": e.fullName, title: "chart only this element", onClick: () => chart(e.fullName) }, "chart"),
            ),
            h("td", { class: "num" }, e.total),
            h("td", { class: "small" }, Object.entries(e.byStatus).map(([k, v]) => `${k} ${v}`).join(" · ")),
            h("td", { class: "num" }, `${(e.failureRate * 100).toFixed(1)} %`),
            h("td", { class: "num" }, `${e.p50} ms`),
            h("td", { class: "num" }, `${e.p95} ms`),
            h("td", { class: "num" }, `${e.p99} ms`),
          ),
        ),
      ),
    ),
  );
}
