// A node in flight: a listener that waits for its callback shows running/awaitingCallback, and
// the call tree follows it to success without a click when the callback arrives.
import { writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { api, appDir, check, eventually, login, run } from "./lib.mjs";

await run("callback", async ({ page, shot }) => {
  check(appDir, "TRELLIS_UI_APP_DIR");
  const dir = path.join(appDir, "events/WaitsForCallback");
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "e.json"), '{"title": "Waits for a callback", "type": "events.NormalType", "sender": "uitest.callback", "timeout": "5m"}\n');
  writeFileSync(path.join(dir, "index.js"), "exports.handle = function (event, ctx) {\n  console.log(\"waiting for the callback\");\n  ctx.waitCallback();\n};\n");
  await eventually(async () => (await api("GET", "/api/elements")).some((e) => e.fullName === "events.WaitsForCallback"), "the listener to load");

  const sent = await api("POST", "/api/events/send", { sender: "uitest.callback", kwargs: { order: 7 } });
  check(sent.nodeIds.length === 1, "one listener");
  const nodeId = sent.nodeIds[0];
  await eventually(async () => (await api("GET", `/api/events/requests/${sent.requestId}`)).some((r) => r.stage === "awaitingCallback"), "the node to await its callback");

  await login(page);
  await page.evaluate((id) => (location.hash = `#/events/requests/${id}`), sent.requestId);
  const node = page.locator(`li.node[data-node="${nodeId}"]`);
  await node.locator("[data-status=running]", { hasText: "awaitingCallback" }).waitFor();
  await page.getByText(/refreshing every 2 s/).waitFor();
  check(await node.locator("button[data-action=resend]").isDisabled(), "no resend while running");
  await shot("awaiting");

  // Complete it from the page.
  await node.locator("summary").click();
  await node.locator("textarea[name=callback]").fill('{"paid": true}');
  // The page keeps refreshing the request, but not under the user's typing.
  await page.waitForTimeout(2500);
  check((await node.locator("textarea[name=callback]").inputValue()) === '{"paid": true}', "the typed body survives a refresh");
  await node.locator("button[data-action=callback]").click();
  await node.locator("[data-status=success]", { hasText: "callback" }).waitFor();
  check((await page.getByText(/refreshing every 2 s/).count()) === 0, "stops refreshing when nothing is in flight");
  await node.locator("pre", { hasText: '"paid": true' }).waitFor();
  await shot("called-back");
});
