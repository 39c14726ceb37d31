// A new element broken on disk: listed in the tree with its count of problems, opened with the
// text on disk and its problem at its line, fixed in the editor and saved: the host runs it.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { api, appDir, check, eventually, login, run } from "./lib.mjs";

const name = "services.BrokenSvc";

await run("broken", async ({ page, shot }) => {
  check(appDir, "TRELLIS_UI_APP_DIR names the app directory");
  const dir = path.join(appDir, "services/BrokenSvc");
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "e.json"), '{\n  "title": "Broken on disk",\n  "type": "services.NormalType"\n}\n');
  writeFileSync(path.join(dir, "index.js"), 'exports.ping = function () {\n  return "pong" +;\n};\n');
  await eventually(async () => (await api("GET", "/api/elements")).some((e) => e.fullName === name && e.brokenOnDisk), "the broken element to be listed");

  await login(page);
  const link = page.locator(`a[data-element="${name}"]`);
  await link.waitFor();
  check((await link.locator("[data-problems]").innerText()) === "1", "the tree counts its problem");
  await link.click();
  const cm = page.locator('.editor-pane[data-file="index.js"] .cm-content');
  await cm.waitFor();
  check((await cm.innerText()).includes('"pong" +;'), "the text on disk is shown");
  await page.locator("[data-testid=last-good-note]", { hasText: "does not run it yet" }).waitFor();
  const problems = await page.locator(".problems").innerText();
  check(problems.includes("index.js:2:"), `the problem at its line in that text: ${problems}`);
  await page.locator('.editor-pane[data-file="index.js"] .cm-lint-marker-error').waitFor();
  await shot("listed");

  // Fixed in the editor and saved: it runs.
  await cm.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.insertText('exports.ping = function () {\n  return "pong";\n};\n');
  await page.locator("button[data-action=save]").click();
  await page.locator(".save-status.ok").waitFor();
  const called = await api("POST", `/api/services/${name}/ping`, []);
  check(called.result === "pong", "the fixed element runs");
  check(!(await api("GET", `/api/elements/${name}`)).brokenOnDisk, "no longer broken");
  check((await link.locator("[data-problems]").count()) === 0, "the tree no longer counts a problem");
  await shot("fixed");
  await api("DELETE", `/api/elements/${name}?force=true`);
});
