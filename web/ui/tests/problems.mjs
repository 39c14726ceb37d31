// A broken edit in the app directory: the editor shows the element's problem at its line and
// column in the lint gutter; fixing the file clears it. Then, as you type: an error typed into
// the handler shows at its line and column without saving (the host checks the draft), a
// value the e.json form sets is checked too, and fixing them clears them; nothing is written.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { api, appDir, check, eventually, login, run } from "./lib.mjs";

await run("problems", async ({ page, shot }) => {
  check(appDir, "TRELLIS_UI_APP_DIR names the app directory");
  const file = path.join(appDir, "services/GreetingSvc/index.js");
  const good = readFileSync(file, "utf8");
  // Replace a line (rather than insert one) so that the last good version the host keeps
  // serving and the broken file on disk number their lines alike.
  const broken = good.replace('console.log("greeting", name);', 'console.log("greeting", name +);');
  check(broken !== good, "the sample has the line this scenario breaks after");
  const badLine = broken.split("\n").findIndex((l) => l.includes("name +);")) + 1;
  writeFileSync(file, broken);
  try {
    await eventually(async () => (await api("GET", "/api/elements/services.GreetingSvc")).errors.length > 0, "the host to report the problem");
    await login(page);
    await page.locator('a[data-element="services.GreetingSvc"]').click();
    const problems = page.locator(".problems");
    await problems.waitFor();
    const text = await problems.innerText();
    check(text.includes(`index.js:${badLine}:`), `the problem list names index.js line ${badLine}: ${text}`);
    check(text.includes("js_syntax"), "its code");
    // The diagnostic is in the JS editor's lint gutter, on the broken line.
    const marker = page.locator('.editor-pane[data-file="index.js"] .cm-lint-marker-error');
    await marker.waitFor();
    const tabCount = await page.locator('.tabs button[data-file="index.js"] .count').innerText();
    check(tabCount === "1", "the tab counts one problem");
    await page.locator(".problems button[data-problem=js_syntax]").click();
    const activeLine = await page.locator('.editor-pane[data-file="index.js"] .cm-activeLine').innerText();
    check(activeLine.includes('console.log("greeting"'), `jumping to the problem selects the broken line: ${activeLine}`);
    await page.locator("[data-testid=last-good-note]").waitFor();
    const lineNumber = await page.locator('.editor-pane[data-file="index.js"] .cm-activeLineGutter').first().innerText();
    check(lineNumber.trim() === String(badLine), `active line number ${lineNumber} is ${badLine}`);
    await marker.hover();
    await page.locator(".cm-tooltip-lint").waitFor();
    await shot("js-syntax");
  } finally {
    writeFileSync(file, good);
  }
  await eventually(async () => (await api("GET", "/api/elements/services.GreetingSvc")).errors.length === 0, "the fix to clear the problem");
  await page.getByRole("button", { name: "Reload" }).click();
  await page.locator('.editor-pane[data-file="index.js"] .cm-content').waitFor();
  check((await page.locator(".problems").count()) === 0, "no problems after the fix");

  // As you type: an error typed into the handler is found by the host's check, at its line and
  // column, without a save.
  const before = await api("GET", "/api/elements/services.GreetingSvc");
  const lines = before.files["index.js"].split("\n");
  const typedLine = lines.findIndex((l) => l.includes('console.log("greeting", name);')) + 1;
  check(typedLine > 0, "the sample has the line to type into");
  const cm = page.locator('.editor-pane[data-file="index.js"] .cm-content');
  const checkStatus = page.locator("[data-testid=check-status]");
  await cm.locator(".cm-line", { hasText: 'console.log("greeting", name);' }).click();
  await page.keyboard.press("End");
  await page.keyboard.type(" let = ;");
  await checkStatus.getByText("1 problem").waitFor();
  const typed = await page.locator(".problems").innerText();
  check(typed.includes(`index.js:${typedLine}:`) && typed.includes("js_syntax"), `the typed error at index.js line ${typedLine}: ${typed}`);
  await page.locator('.editor-pane[data-file="index.js"] .cm-lint-marker-error').waitFor();
  check((await page.locator('.tabs button[data-file="index.js"] .count').innerText()) === "1", "the tab counts it");
  check(!(await page.locator("button[data-action=save]").isDisabled()), "not saved: Save is still there to press");
  await page.locator('.editor-pane[data-file="index.js"] .cm-lint-marker-error').hover();
  await page.locator(".cm-tooltip-lint").waitFor();
  await shot("as-you-type");
  // Only the last edit's check counts: typing on quickly, then fixing, leaves no problem.
  for (let i = 0; i < " let = ;".length; i++) await page.keyboard.press("Backspace");
  await checkStatus.getByText("no problems").waitFor();
  check((await page.locator(".problems").count()) === 0, "no problem listed once the typing is fixed");
  check((await page.locator('.editor-pane[data-file="index.js"] .cm-lint-marker-error').count()) === 0, "no marker left");

  // A value the e.json form sets is checked as well, and shows at its field.
  await page.locator('.tabs button[data-file="e.json"]').click();
  const form = page.locator("[data-testid=json-form]");
  await form.locator('input[data-field="timeout"]').fill("soon");
  await form.locator('input[data-field="timeout"]').press("Tab");
  await checkStatus.getByText("1 problem").waitFor();
  await form.locator('[data-row="timeout"].bad [data-problem=bad_duration]').waitFor();
  check((await page.locator(".problems").innerText()).includes("e.json:"), "listed at its place in e.json");
  await form.locator('input[data-field="timeout"]').fill("");
  await form.locator('input[data-field="timeout"]').press("Tab");
  await checkStatus.getByText("no problems").waitFor();
  check((await form.locator(".field-problem [data-problem]").count()) === 0, "the field's problem is gone");

  // Checks write nothing.
  const after = await api("GET", "/api/elements/services.GreetingSvc");
  check(after.version === before.version && after.errors.length === 0, "the element on disk is as it was");
});
