// The element tree by kind with layer and origin badges; opening an element shows its e.json
// and JavaScript in CodeMirror.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { api, appDir, check, eventually, login, run } from "./lib.mjs";

await run("elements", async ({ page, shot }) => {
  await login(page);
  for (const kind of ["services", "events", "tasks", "models", "signals", "commons"]) {
    await page.locator(`details.group[data-kind=${kind}]`).waitFor();
  }
  const link = page.locator('a[data-element="services.GreetingSvc"]');
  await link.waitFor();
  check((await link.locator(".badge").allInnerTexts()).join(",") === "instance,own", "badges of an own instance");

  // Built-ins show when asked, marked built-in.
  await page.getByLabel("built-ins").check();
  const builtin = page.locator('a[data-element="events.Meta"]');
  await builtin.waitFor();
  check((await builtin.innerText()).includes("built-in"), "built-in badge");
  check((await builtin.innerText()).includes("meta"), "meta layer badge");

  await link.click();
  await page.locator("[data-testid=element-name]", { hasText: "services.GreetingSvc" }).waitFor();
  // index.js is shown first, in CodeMirror with JavaScript highlighting.
  const js = page.locator('.editor-pane[data-file="index.js"] .cm-content');
  await js.waitFor();
  check((await js.innerText()).includes("exports.hello"), "index.js in CodeMirror");
  check((await page.locator('.editor-pane[data-file="index.js"] .cm-lint-marker, .editor-pane[data-file="index.js"] .cm-gutter-lint').count()) > 0, "lint gutter");
  // Save is off while the host cannot write elements, and says why.
  const save = page.locator("button[data-action=save]");
  check(await save.isDisabled(), "save disabled");
  await shot("index-js");

  await page.getByRole("tab", { name: "e.json" }).click();
  const ej = page.locator('.editor-pane[data-file="e.json"] .cm-content');
  await ej.waitFor();
  check((await ej.innerText()).includes('"functionList"'), "e.json in CodeMirror");
  await shot("e-json");

  // Moving between elements keeps the tree where it was scrolled to.
  await page.setViewportSize({ width: 1360, height: 560 });
  await page.locator("nav.tree").evaluate((t) => (t.scrollTop = t.scrollHeight));
  const scrolled = await page.locator("nav.tree").evaluate((t) => t.scrollTop);
  check(scrolled > 0, "the tree with built-ins scrolls");
  await page.locator('a[data-element="signals.AuditTrail"]').click();
  await page.locator("[data-testid=element-name]", { hasText: "signals.AuditTrail" }).waitFor();
  const after = await page.locator("nav.tree").evaluate((t) => t.scrollTop);
  check(Math.abs(after - scrolled) < 2, `tree scroll kept: ${scrolled} → ${after}`);
  await page.setViewportSize({ width: 1360, height: 820 });

  // An app element that replaces a built-in is marked as overriding it (reference.md §1.7).
  check(appDir, "TRELLIS_UI_APP_DIR");
  const dir = path.join(appDir, "services/TaskSvc");
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "e.json"), '{"title": "Task service, wrapped", "type": "services.NormalType"}\n');
  writeFileSync(path.join(dir, "index.js"), 'const builtin = app.getBuiltin("services.TaskSvc");\nexports.getTaskTmplList = function (q) { return builtin.getTaskTmplList(q || ""); };\n');
  try {
    await eventually(async () => (await api("GET", "/api/elements")).some((e) => e.fullName === "services.TaskSvc" && e.origin === "app"), "the override to load");
    // Opening it re-reads the element list (a reload would ask for the token on a host
    // without sessions).
    await page.evaluate(() => (location.hash = "#/elements/services.TaskSvc"));
    const over = page.locator('a[data-element="services.TaskSvc"]');
    await over.waitFor();
    // A tree drawn from a list fetched before the reload may show first (the built-in, as the
    // element opened); the list fetched on opening replaces it.
    let badges = [];
    await eventually(async () => {
      badges = await over.locator(".badge").allInnerTexts();
      return badges.join(",") === "instance,own,overrides built-in";
    }, `override badges (last: ${badges})`, 10000).catch(() => {});
    check(badges.join(",") === "instance,own,overrides built-in", `override badges: ${badges}`);
    await shot("override");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await eventually(async () => (await api("GET", "/api/elements")).some((e) => e.fullName === "services.TaskSvc" && e.origin === "builtin"), "the built-in back");

  // An app this one extends: its elements are inherited, and the app's own GreetingSvc
  // overrides the parent's (reference.md §1.7).
  const parent = path.join(appDir, "..", "uitest-parent");
  for (const name of ["ParentSvc", "GreetingSvc"]) {
    mkdirSync(path.join(parent, "services", name), { recursive: true });
    writeFileSync(path.join(parent, "services", name, "e.json"), `{"title": "${name} of the parent", "type": "services.NormalType", "functionList": [{"name": "hi"}]}\n`);
    writeFileSync(path.join(parent, "services", name, "index.js"), 'exports.hi = function () { return "hi"; };\n');
  }
  writeFileSync(path.join(parent, "app.json"), '{"name": "parent"}\n');
  const appJSON = path.join(appDir, "app.json");
  const original = readFileSync(appJSON, "utf8");
  writeFileSync(appJSON, JSON.stringify({ ...JSON.parse(original), extends: ["../uitest-parent"] }, null, 2) + "\n");
  try {
    await eventually(async () => (await api("GET", "/api/elements")).some((e) => e.fullName === "services.ParentSvc" && e.origin === "parent"), "the parent's elements");
    await page.evaluate(() => (location.hash = "#/elements/services.ParentSvc"));
    const inherited = page.locator('a[data-element="services.ParentSvc"]');
    await inherited.waitFor();
    check((await inherited.locator(".badge").allInnerTexts()).join(",") === "instance,inherited", "inherited badges");
    const own = await page.locator('a[data-element="services.GreetingSvc"] .badge').allInnerTexts();
    check(own.join(",") === "instance,own,overrides inherited", `the app's override of the parent's: ${own}`);
    await page.getByText(/Read-only: not an element of this app/).waitFor();
    await shot("inherited");
  } finally {
    writeFileSync(appJSON, original);
  }
  await eventually(async () => (await api("GET", "/api/elements")).every((e) => e.origin !== "parent"), "the app without its parent");
  rmSync(parent, { recursive: true, force: true });
});
