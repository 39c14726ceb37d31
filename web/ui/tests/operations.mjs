// Node and request operations from the call tree. The scenario adds a listener that always fails
// and retries an hour later (and removes it at the end): its node waits for that retry, so it can
// be paused, resumed and force-failed; then retried and skipped; a second request is revoked.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { api, appDir, check, eventually, login, run } from "./lib.mjs";

const listener = "events.UitestOps";
const sender = "uitest.Operations";

await run("operations", async ({ page, shot }) => {
  check(appDir, "TRELLIS_UI_APP_DIR names the app directory");
  const dir = path.join(appDir, "events", "UitestOps");
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, "e.json"),
    JSON.stringify({ title: "Fails, retries in an hour (browser test)", type: "events.NormalType", sender, retry: { policy: "default", interval: "1h", maxAttempts: 5 } }, null, 2),
  );
  writeFileSync(path.join(dir, "index.js"), 'exports.handle = function (event) { throw new Error("no stock for " + event.kwargs.sku); };\n');
  try {
    await eventually(async () => (await api("GET", "/api/events/listeners")).listeners.some((l) => l.fullName === listener), "the host to load the listener");
    const sent = await api("POST", "/api/events/send", { sender, kwargs: { sku: "OPS-1" } });
    const nodeId = sent.nodeIds[0];
    const state = async () => (await api("GET", `/api/events/logs?fullName=${listener}&pageSize=50`)).rowDatas.find((r) => r.nodeId === nodeId);
    await eventually(async () => (await state())?.stage === "retryScheduled", "the first try to fail and wait for its retry");

    await login(page);
    await page.goto(`${page.url().split("#")[0]}#/events/requests/${sent.requestId}`);
    const own = () => page.locator(`.call-tree li.node[data-node="${nodeId}"] > details`);
    await own().locator("summary").click();
    const button = (op) => own().locator(`button[data-action=${op}]`);
    check(await button("retry").isDisabled(), "a waiting node cannot be retried");
    check(await button("resume").isDisabled(), "nor resumed");

    // Pause: the waiting node is held; resume gives it back.
    await button("pause").click();
    await own().locator("[data-status=waiting]", { hasText: "paused" }).waitFor();
    check((await state()).stage === "paused", "the log says paused");
    await shot("paused");
    await button("resume").click();
    await eventually(async () => (await state()).stage !== "paused", "the node resumed");

    // Force fail: it ends failed, whatever it was waiting for.
    await eventually(async () => ["waiting", "running"].includes((await state()).status), "waiting again");
    await page.getByRole("button", { name: "Refresh" }).click();
    await button("forcedFail").click();
    await eventually(async () => (await state()).stage === "forcedFail", "force-failed");
    await own().locator("[data-status=fail]").waitFor();
    await shot("forced-fail");

    // Retry: a failed node runs again as its next attempt (and fails again: it waits for a retry).
    const before = (await state()).attempt;
    await button("retry").click();
    await eventually(async () => (await state()).attempt > before, "the retry ran as the next attempt");
    // Skip: it ends as done without running.
    await page.getByRole("button", { name: "Refresh" }).click();
    await button("skip").click();
    await eventually(async () => (await state()).stage === "skipped", "skipped");
    await own().locator("[data-status=success]").waitFor();
    await shot("skipped");

    // A request revoked: its waiting node ends.
    const second = await api("POST", "/api/events/send", { sender, kwargs: { sku: "OPS-2" } });
    const secondNode = second.nodeIds[0];
    await eventually(
      async () => (await api("GET", `/api/events/logs?fullName=${listener}&pageSize=50`)).rowDatas.find((r) => r.nodeId === secondNode)?.stage === "retryScheduled",
      "the second event to wait for its retry",
    );
    await page.goto(`${page.url().split("#")[0]}#/events/requests/${second.requestId}`);
    await page.locator(`.call-tree li.node[data-node="${secondNode}"]`).waitFor();
    await page.locator("button[data-action=request-revoke]").click();
    await page.locator("[role=status]", { hasText: "revoke request: done" }).waitFor();
    await page.locator(`.call-tree li.node[data-node="${secondNode}"] > details [data-status=fail]`).waitFor();
    const revoked = (await api("GET", `/api/events/requests/${second.requestId}`)).find((r) => r.nodeId === secondNode);
    check(revoked.stage === "revoked", `the node ends revoked: ${revoked.status}/${revoked.stage}`);
    for (const op of ["pause", "resume", "retry", "skip", "forcedFail"])
      check(await page.locator(`.call-tree li.node[data-node="${secondNode}"] > details button[data-action=${op}]`).isDisabled(), `${op} is off on a revoked node`);
    await shot("revoked");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await eventually(async () => !(await api("GET", "/api/events/listeners")).listeners.some((l) => l.fullName === listener), "the listener to go");
});
