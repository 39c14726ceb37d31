// Analytics: the timeseries charts (uPlot) and the summary table render from the host's data.
import { api, check, eventually, login, run } from "./lib.mjs";

await run("analytics", async ({ page, shot }) => {
  await api("POST", "/api/services/services.GreetingSvc/hello", { name: "Chart" });
  await eventually(async () => (await api("GET", "/api/analytics/summary")).elements.length > 0, "some nodes in the summary");
  await login(page);
  await page.locator("[data-nav=analytics]").click();
  for (const c of ["counts", "p95"]) {
    await page.locator(`.chart[data-chart=${c}] canvas`).waitFor();
    const box = await page.locator(`.chart[data-chart=${c}] canvas`).boundingBox();
    check(box && box.width > 200 && box.height > 100, `chart ${c} has a size`);
  }
  await page.locator("table.summary td", { hasText: "services.GreetingSvc" }).waitFor();
  // The counts chart's legend shows the last bucket's totals; some bucket holds nodes.
  const legend = await page.locator(".chart[data-chart=counts] .u-legend").innerText();
  check(/total/.test(legend) && /failed/.test(legend), "legend names the series");
  await shot("charts");

  // One element's charts, from its row.
  await page.locator('button[data-chart-element="services.GreetingSvc"]').click();
  await page.waitForFunction(() => document.querySelector("input[aria-label=element]")?.value === "services.GreetingSvc");
  await page.locator(".chart[data-chart=counts] canvas").waitFor();
  await page.locator("table.summary .badge", { hasText: "charted" }).waitFor();
  check((await page.locator("table.summary tbody tr").count()) === 1, "the summary of that element only");
});
