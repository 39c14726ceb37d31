// A new element from the browser: a draft from a skeleton, a problem in it refused at its line,
// saved into the app (the host runs it), then deleted. Skips the writes on a host without PUT.
import { api, baseURL, check, eventually, login, run, token } from "./lib.mjs";

await run("create", async ({ page, shot }) => {
  const r = await fetch(baseURL + "/api/elements/probe..x", { method: "PUT", headers: { Authorization: `Bearer ${token}` }, body: '"probe"' });
  const canSave = !(r.status === 404 && /no API route/.test(await r.text()));
  await login(page);
  const newLink = page.locator("a[data-action=new]");
  await newLink.waitFor();
  if (!canSave) {
    check((await newLink.getAttribute("aria-disabled")) === "true", "+ New is off without PUT");
    return;
  }
  await newLink.click();
  await page.locator("select[name=type]").selectOption("services.NormalType");
  await page.locator("input[name=fullName]").fill("services.HelloSvc");
  await page.locator("input[name=title]").fill("Hello from the browser");
  await page.getByRole("button", { name: "Open a draft" }).click();
  const ej = page.locator('.editor-pane[data-file="e.json"] .cm-content');
  await page.getByRole("tab", { name: "e.json" }).click();
  await ej.waitFor();
  check((await ej.innerText()).includes('"functionList"'), "the skeleton of a service");

  // A mistake in the draft: an unknown field is refused with its line.
  await ej.click();
  await page.keyboard.press("Control+Home");
  await page.keyboard.press("End");
  await page.keyboard.type('\n  "timout": "5s",');
  await page.locator("button[data-action=save]").click();
  await page.locator(".problems", { hasText: "unknown_field" }).waitFor();
  check((await page.locator(".problems").innerText()).includes("e.json:2:"), "the unknown field at e.json line 2");
  await page.locator('.editor-pane[data-file="e.json"] .cm-lint-marker-error').waitFor();
  await shot("draft-problem");
  check((await api("GET", "/api/elements")).every((e) => e.fullName !== "services.HelloSvc"), "nothing written");

  // Fixed and saved: the host runs it.
  // Jump to the problem (it focuses the editor at its line) and delete the line (Shift-Ctrl-K).
  await page.locator(".problems button[data-problem=unknown_field]").click();
  await page.keyboard.press("Control+Shift+K");
  check(!(await ej.innerText()).includes("timout"), "the line is gone");
  await page.locator("button[data-action=save]").click();
  await page.locator("[data-testid=element-name]", { hasText: "services.HelloSvc" }).waitFor();
  await page.locator('a[data-element="services.HelloSvc"]').waitFor();
  const called = await api("POST", "/api/services/services.HelloSvc/hello", { name: "Ada" });
  check(called.result.message === "Hello, Ada!", "the new service runs");
  await shot("saved");

  // Deleted.
  await page.locator("button[data-action=delete]").click();
  await page.waitForURL(/#\/elements$/);
  await eventually(async () => (await api("GET", "/api/elements")).every((e) => e.fullName !== "services.HelloSvc"), "the element to be gone");
  // The tree redraws after the delete's answer; wait for it rather than read it once.
  await eventually(async () => (await page.locator('a[data-element="services.HelloSvc"]').count()) === 0, "gone from the tree");
});
