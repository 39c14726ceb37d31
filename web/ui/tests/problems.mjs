// A broken edit in the app directory: the editor shows the element's problem at its line and
// column in the lint gutter; fixing the file clears it.
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
});
