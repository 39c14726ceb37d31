// Dead letters and the live event log. The scenario adds to its app a listener that always
// fails and never retries (and removes it at the end): each event it hears becomes a dead letter.
// The event log, left open, shows the new nodes without a reload; the Dead letters page lists
// them, resends one selected, then every one matching, and shows what each resend answered.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { api, appDir, check, eventually, login, run } from "./lib.mjs";

const listener = "events.UitestAlwaysFails";
const sender = "uitest.DeadLetters";

await run("deadletters", async ({ page, shot }) => {
  check(appDir, "TRELLIS_UI_APP_DIR names the app directory");
  const dir = path.join(appDir, "events", "UitestAlwaysFails");
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, "e.json"),
    JSON.stringify({ title: "Always fails (browser test)", type: "events.NormalType", sender, retry: { policy: "none" } }, null, 2),
  );
  writeFileSync(path.join(dir, "index.js"), 'exports.handle = function (event) { throw new Error("out of stock: " + event.kwargs.sku); };\n');
  try {
    await eventually(async () => (await api("GET", "/api/events/listeners")).listeners.some((l) => l.fullName === listener), "the host to load the listener");

    // The live event log: open it, then send; the new nodes appear, marked, without a reload.
    await login(page);
    await page.locator("[data-nav=events]").click();
    await page.locator("[data-testid=live-note]", { hasText: "live ·" }).waitFor();
    const sent = [];
    for (const sku of ["A-1", "B-2"]) sent.push(await api("POST", "/api/events/send", { sender, kwargs: { sku } }));
    // Each event's node (the sample's signal receiver adds a row of its own under it).
    for (const s of sent) await page.locator(`table.log tr.fresh[data-node="${s.nodeIds[0]}"] a[data-request="${s.requestId}"]`).waitFor();
    await page.locator(`table.log tr.fresh[data-node="${sent[0].nodeIds[0]}"] [data-status=fail]`).waitFor();
    await shot("live-log");

    await eventually(async () => (await api("GET", `/api/events/logs?stage=deadLettered&fullName=${listener}`)).totalCount === 2, "two dead letters");
    await page.locator("[data-nav=dead-letters]").click();
    await page.locator("input[name=fullName]").fill(listener);
    await page.getByRole("button", { name: "Search" }).click();
    const rows = page.locator("table.dead-letters tbody tr");
    await eventually(async () => (await rows.count()) === 2, "two rows");
    const first = sent[0].nodeIds[0];
    const row = page.locator(`table.dead-letters tr[data-node="${first}"]`);
    check((await row.innerText()).includes("out of stock: A-1"), "the error of the last try");
    check((await row.locator("td.num").innerText()).trim() === "1", "attempt 1");

    // Resend the one selected.
    await row.locator("input[type=checkbox]").check();
    await page.getByRole("button", { name: "Resend selected (1)" }).click();
    const result = page.locator("[data-testid=resend-result]");
    await result.getByText("resent as attempt 2").waitFor();
    check((await result.innerText()).includes("Resent 1 of 1 selected"), "the count");
    // It ran again, failed again, and is a dead letter at attempt 2: the page reloads itself.
    await eventually(async () => (await row.locator("td.num").innerText()).trim() === "2", "the new attempt in the list");
    await shot("resent-one");

    // Resend every dead letter of the listener.
    await page.getByRole("button", { name: "Resend all matching (2)" }).click();
    await result.getByText("Resent 2.").waitFor();
    await eventually(async () => {
      const page1 = await api("GET", `/api/events/logs?stage=deadLettered&fullName=${listener}`);
      return page1.totalCount === 2 && page1.rowDatas.every((r) => r.attempt >= 2) && page1.rowDatas.some((r) => r.attempt === 3);
    }, "both resent and dead again");
    await eventually(async () => (await row.locator("td.num").innerText()).trim() === "3", "attempt 3 in the list");
    await shot("resent-all");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await eventually(async () => !(await api("GET", "/api/events/listeners")).listeners.some((l) => l.fullName === listener), "the listener to go");
});
