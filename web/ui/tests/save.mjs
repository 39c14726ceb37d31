// Editing from the browser (PUT /api/elements, POST …/run): save an edit, see every problem of a
// rejected save at its line, test-run the draft, and meet a conflict when the file changed on
// disk behind the editor. On a host without those routes, the editor stays read-only.
import { appendFileSync } from "node:fs";
import path from "node:path";
import { api, appDir, baseURL, check, eventually, login, run, token } from "./lib.mjs";

const has = async (method, p) => {
  const r = await fetch(baseURL + p, { method, headers: { Authorization: `Bearer ${token}` }, body: '"probe"' });
  return !(r.status === 404 && /no API route/.test(await r.text()));
};

await run("save", async ({ page, shot }) => {
  const canSave = await has("PUT", "/api/elements/probe..x");
  const canRun = await has("POST", "/api/elements/probe..x/run");
  await login(page);
  await page.locator('a[data-element="services.GreetingSvc"]').click();
  const cm = page.locator('.editor-pane[data-file="index.js"] .cm-content');
  await cm.waitFor();
  const save = page.locator("button[data-action=save]");
  check(await save.isDisabled(), "nothing to save before an edit");
  if (!canSave) {
    check((await cm.getAttribute("contenteditable")) === "false", "read-only without PUT");
    await page.getByText(/cannot save elements yet/).waitFor();
    return;
  }

  // An edit, saved.
  await cm.click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type("// edited in the browser\n");
  check(!(await save.isDisabled()), "an edit enables Save");
  await save.click();
  await page.locator(".save-status.ok").waitFor();
  check((await api("GET", "/api/elements/services.GreetingSvc")).files["index.js"].includes("edited in the browser"), "the host has the edit");

  // A broken edit: the host refuses it (422) and every problem shows at its line.
  await cm.click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type("exports.broken = 1 +;");
  // The saved text ends with a newline; the broken line is the one after it.
  const badLine = (await api("GET", "/api/elements/services.GreetingSvc")).files["index.js"].split("\n").length;
  await save.click();
  await page.locator(".save-status.bad", { hasText: "not saved" }).waitFor();
  const problems = await page.locator(".problems").innerText();
  check(problems.includes(`index.js:${badLine}:`), `the problem is at index.js line ${badLine}: ${problems}`);
  await page.locator('.editor-pane[data-file="index.js"] .cm-lint-marker-error').waitFor();
  await page.locator(".problems button[data-problem]").first().click();
  check((await page.locator('.editor-pane[data-file="index.js"] .cm-activeLine').innerText()).includes("exports.broken"), "jumps to the broken line");
  await shot("rejected");
  check(!(await api("GET", "/api/elements/services.GreetingSvc")).files["index.js"].includes("exports.broken"), "nothing written");
  await page.keyboard.press("End");
  await page.keyboard.press("Shift+Home");
  await page.keyboard.press("Backspace");

  // A test run of the draft.
  if (canRun) {
    await page.locator(".test-run input[name=function]").fill("hello");
    await page.locator(".test-run textarea[name=args]").fill('{"name": "Ada"}');
    await page.locator("button[data-action=run]").click();
    await page.locator("[data-testid=run-output]", { hasText: "Hello, Ada!" }).waitFor();
    check((await page.locator("[data-testid=run-output]").innerText()).includes("greeting Ada"), "the run's console output");
    await shot("test-run");
  }

  // A change on disk behind the editor: the save is a conflict, then overwrites on request.
  check(appDir, "TRELLIS_UI_APP_DIR");
  const before = (await api("GET", "/api/elements/services.GreetingSvc")).version;
  appendFileSync(path.join(appDir, "services/GreetingSvc/index.js"), "// changed on disk\n");
  await eventually(async () => (await api("GET", "/api/elements/services.GreetingSvc")).version !== before, "the new version on disk");
  await cm.click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type("// mine\n");
  await save.click();
  await page.locator("[data-testid=conflict]").waitFor();
  await shot("conflict");
  await page.getByRole("button", { name: "Overwrite it with mine" }).click();
  await page.locator(".save-status.ok").waitFor();
  const now = (await api("GET", "/api/elements/services.GreetingSvc")).files["index.js"];
  check(now.includes("// mine") && !now.includes("changed on disk"), "mine replaced the change on disk, on request");
});
