// How long the event log's first page takes in the browser: from pressing Search to the table
// drawn, and the /api/events/logs request alone (Resource Timing). Not a test scenario: run it
// by hand against a host whose log is big (BENCHMARKS.md, "Console over a 10M-row log"):
//   node web/ui/tests/perf/log-first-page.mjs <baseURL> <token> <screenshotDir> [runs] [query]
// query is what to type in the filters as k=v&k=v (fullName, status, text…), default none.
import { login, run } from "../lib.mjs";

const runs = Number(process.argv[5] ?? 30);
const query = new URLSearchParams(process.argv[6] ?? "");

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

await run("perf-log", async ({ page, shot }) => {
  await login(page);
  await page.locator("[data-nav=events]").click();
  await page.locator("table.log tbody tr, .results .empty").first().waitFor({ timeout: 120000 });
  if (query.get("fullName")) await page.locator("input[name=fullName]").fill(query.get("fullName"));
  if (query.get("status")) await page.locator("select[name=status]").selectOption(query.get("status"));
  if (query.get("text")) await page.locator("input[name=text]").fill(query.get("text"));
  const drawn = [];
  const fetched = [];
  for (let i = 0; i < runs + 2; i++) {
    await page.evaluate(() => performance.clearResourceTimings());
    const t0 = Date.now();
    await page.getByRole("button", { name: "Search" }).click();
    await page.locator(".results p.muted", { hasText: "Loading" }).waitFor({ state: "detached", timeout: 120000 });
    await page.locator("table.log tbody tr, .results .empty").first().waitFor({ timeout: 120000 });
    const ms = Date.now() - t0;
    const api = await page.evaluate(() =>
      performance.getEntriesByType("resource").filter((e) => e.name.includes("/api/events/logs")).map((e) => e.duration),
    );
    if (i < 2) continue; // warm-up
    drawn.push(ms);
    if (api.length) fetched.push(api[api.length - 1]);
  }
  await shot("first-page");
  const rows = await page.locator("table.log tbody tr").count();
  const total = await page.locator(".pager span").first().innerText();
  console.log(`${runs} runs, ${rows} rows drawn (${total})`);
  console.log(`Search → table drawn: p50 ${pct(drawn, 50)} ms, p95 ${pct(drawn, 95)} ms, max ${Math.max(...drawn)} ms`);
  if (fetched.length) console.log(`GET /api/events/logs alone: p50 ${pct(fetched, 50).toFixed(1)} ms, p95 ${pct(fetched, 95).toFixed(1)} ms`);
});
