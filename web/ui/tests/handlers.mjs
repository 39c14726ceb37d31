// The editor and the host together: test-run a draft (result or error with its stack at the
// draft's line, console output, duration); a listener that throws fails an event; from the
// failed node, "Replay in editor" opens the handler's editor with the node ready; the handler
// is fixed there and the node replayed against the fixed, unsaved draft, old and new side by
// side; the fix is saved; the node view replays the saved version too; the failure is resent
// and the log shows the new handler's result.
import { api, check, eventually, login, run } from "./lib.mjs";

const name = "events.FlakyListener";
const v1 = 'exports.handle = function (event) {\n  console.log("v1 got", event.kwargs.n);\n  throw new Error("v1 broke on " + event.kwargs.n);\n};\n';
const v2 = 'exports.handle = function (event) {\n  console.log("v2 got", event.kwargs.n);\n  return {doubled: event.kwargs.n * 2};\n};\n';

await run("handlers", async ({ page, shot }) => {
  const existing = await api("GET", "/api/elements");
  if (existing.some((e) => e.fullName === name)) await api("DELETE", `/api/elements/${name}?force=true`);
  await api("PUT", `/api/elements/${name}`, {
    definition: { title: "Fails until fixed", type: "events.NormalType", sender: "tests.Flaky", retry: { policy: "none" } },
    files: { "index.js": v1 },
  });

  // Test run of a draft: the error's stack points at the draft's line; console and duration.
  await login(page);
  await page.goto(`${page.url().split("#")[0]}#/elements/${name}`);
  const cm = page.locator('.editor-pane[data-file="index.js"] .cm-content');
  await cm.waitFor();
  await page.locator(".test-run textarea[name=args]").fill('{"n": 4}');
  await page.locator("button[data-action=run]").click();
  const out = page.locator("[data-testid=run-output]");
  await out.locator(".run-result").waitFor();
  const failed = await out.innerText();
  check(failed.includes("failed") && failed.includes("v1 broke on 4"), `the draft's error: ${failed}`);
  check(/index\.js:3/.test(failed), `the stack points at the draft's line 3: ${failed}`);
  check(failed.includes("v1 got 4"), "the draft's console output");
  check(/in \d+ ms/.test(failed), "its duration");
  await out.scrollIntoViewIfNeeded();
  await shot("test-run-error");

  // A real event fails on the saved version.
  const sent = await api("POST", "/api/events/send", { sender: "tests.Flaky", kwargs: { n: 21 } });
  let node;
  await eventually(async () => {
    const rows = await api("GET", `/api/events/requests/${sent.requestId}`);
    node = rows.find((r) => r.fullName === name && r.status === "fail");
    return !!node;
  }, "the listener to fail");

  // From the failed node to its handler's editor, the node ready to replay.
  await page.goto(`${page.url().split("#")[0]}#/events/requests/${sent.requestId}`);
  const li = page.locator(`li.node[data-node="${node.nodeId}"]`);
  await li.waitFor();
  if ((await li.locator("details").first().getAttribute("open")) === null) await li.locator("summary").first().click();
  await li.locator(".error-box", { hasText: "v1 broke on 21" }).waitFor();
  await li.locator("a[data-action=replay-in-editor]").click();
  await page.locator("[data-testid=element-name]", { hasText: name }).waitFor();
  check(page.url().includes(`?replay=${node.nodeId}`), `the address names the node: ${page.url()}`);
  const part = page.locator("[data-testid=replay-draft]");
  check((await part.locator("input[name=replayNode]").inputValue()) === node.nodeId, "the node is filled in");
  await part.locator(`[data-testid=recent-failures] button[data-node="${node.nodeId}"]`).waitFor();

  // Fix the handler in the editor, unsaved: the host's check finds no problem; a test run
  // returns; the failed node replayed on the draft shows the logged failure beside the fix.
  await cm.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.insertText(v2);
  await page.locator("[data-testid=check-status]", { hasText: "no problems" }).waitFor();
  await page.locator(".test-run textarea[name=args]").fill('{"n": 4}');
  await page.locator("button[data-action=run]").click();
  await out.getByText('"doubled": 8').waitFor();
  check((await out.innerText()).includes("returned"), "the fixed draft returns");
  await part.locator("button[data-action=replay-draft]").click();
  const draftReplay = part.locator("[data-testid=replay]");
  await draftReplay.waitFor();
  const logged = await draftReplay.locator("[data-side=logged]").innerText();
  const fixed = await draftReplay.locator("[data-side=draft]").innerText();
  check(logged.includes("v1 broke on 21") && logged.includes("fail"), `the logged failure: ${logged}`);
  check(fixed.includes('"doubled": 42') && fixed.includes("v2 got 21") && fixed.includes("returned"), `the unsaved draft's result and console: ${fixed}`);
  check((await api("GET", `/api/elements/${name}`)).files["index.js"] === v1, "the replay saved nothing");
  check(!(await page.locator("button[data-action=save]").isDisabled()), "the draft is still unsaved");
  await draftReplay.scrollIntoViewIfNeeded();
  await shot("replay-draft");

  // Save the fix: the host runs it.
  await page.locator("button[data-action=save]").click();
  await page.locator(".save-status.ok").waitFor();
  check((await api("GET", `/api/elements/${name}`)).files["index.js"] === v2, "the host has the fix");

  // The node view's one-click replay runs the saved version: the logged failure beside it.
  await page.goto(`${page.url().split("#")[0]}#/events/requests/${sent.requestId}`);
  await li.waitFor();
  if ((await li.locator("details").first().getAttribute("open")) === null) await li.locator("summary").first().click();
  await li.locator(".error-box", { hasText: "v1 broke on 21" }).waitFor();
  await li.getByRole("button", { name: "Replay", exact: true }).click();
  const replay = li.locator("[data-testid=replay]");
  await replay.waitFor();
  const side = await replay.innerText();
  check(side.includes("v1 broke on 21"), `the logged failure: ${side}`);
  check(side.includes('"doubled": 42') && side.includes("v2 got 21"), `the fixed version's result and console: ${side}`);
  await shot("replay");

  // Resend the failure: attempt 2 runs the saved fix, and the log shows its result.
  await li.getByRole("button", { name: "Resend" }).click();
  await li.getByText(/resent as attempt 2/).waitFor();
  await eventually(async () => {
    const rows = await api("GET", `/api/events/requests/${sent.requestId}`);
    return rows.some((r) => r.fullName === name && r.attempt === 2 && r.status === "success" && r.result?.doubled === 42);
  }, "the resent attempt to succeed with the fix");
  await page.getByRole("button", { name: "Refresh" }).click();
  const again = page.locator(`li.node[data-node="${node.nodeId}"]`);
  await again.locator(".meta", { hasText: "attempt 2" }).waitFor();
  if ((await again.locator("details").first().getAttribute("open")) === null) await again.locator("summary").first().click();
  await again.locator(".console", { hasText: "v2 got 21" }).waitFor();
  check((await again.innerText()).includes('"doubled": 42'), "the new result in the log");
  await shot("resent");

  await api("DELETE", `/api/elements/${name}?force=true`);
});
