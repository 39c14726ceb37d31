// The e.json form: built from the type's schema (GET /api/elements/{fullName}/schema), beside
// the raw JSON and in sync with it both ways; a save's problems show at their field; a value
// edited in the form and saved is in e.json; an integer beyond 2^53 (an id in a task's argDict)
// goes through the form and is written back exactly.
import { api, check, login, run } from "./lib.mjs";

await run("form", async ({ page, shot }) => {
  const name = "events.GreetingSent";
  const schema = await api("GET", `/api/elements/${name}/schema`);
  const original = (await api("GET", `/api/elements/${name}`)).files["e.json"];
  check(schema.fields.timeout?.type === "duration" && schema.fields.handlerType?.enum?.includes("pool"), "the schema has the Meta's fields");
  await login(page);
  await page.locator(`a[data-element="${name}"]`).click();
  await page.locator('.tabs button[data-file="e.json"]').click();
  const form = page.locator("[data-testid=json-form]");
  await form.waitFor();
  // One input per field of the schema, the Type's required sender first.
  for (const k of Object.keys(schema.fields)) check((await form.locator(`[data-row="${k}"]`).count()) === 1, `a row for ${k}`);
  check((await form.locator("[data-row]").first().getAttribute("data-row")) === "sender", "required fields first");
  check((await form.locator('select[data-field="handlerType"]').inputValue()) === '"pool"', "the enum shows its value");
  check((await form.locator('textarea[data-field="retry"]').inputValue()).includes('"maxAttempts": 5'), "a sub-object as JSON");
  const raw = page.locator('.editor-pane[data-file="e.json"] .raw-json .cm-content');

  // Form → raw JSON.
  await form.locator('input[data-field="timeout"]').fill("soon");
  await form.locator('input[data-field="timeout"]').press("Tab");
  check((await raw.innerText()).includes('"timeout": "soon"'), "the form wrote the raw JSON");

  // A save the host refuses: the problem is at its field.
  const save = page.locator("button[data-action=save]");
  await save.click();
  await page.locator(".save-status.bad", { hasText: "not saved" }).waitFor();
  await form.locator('[data-row="timeout"].bad [data-problem=bad_duration]').waitFor();
  await form.locator('[data-row="timeout"]').scrollIntoViewIfNeeded();
  await shot("problem-at-field");

  // Raw JSON → form: the title typed in the raw editor shows in the form.
  const text = (await api("GET", `/api/elements/${name}`)).files["e.json"];
  const edited = JSON.stringify({ ...JSON.parse(text), title: "Greeting listener", timeout: "soon" }, null, 2) + "\n";
  await raw.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.insertText(edited);
  await form.locator('input[data-field="title"]').waitFor();
  check((await form.locator('input[data-field="title"]').inputValue()) === "Greeting listener", "the raw edit shows in the form");

  // Fix it in the form and save: e.json on the host has the form's values.
  await form.locator('input[data-field="timeout"]').fill("45s");
  await form.locator('input[data-field="timeout"]').press("Tab");
  await form.locator('select[data-field="reliableDelivery"]').selectOption('false');
  await save.click();
  await page.locator(".save-status.ok").waitFor();
  const def = JSON.parse((await api("GET", `/api/elements/${name}`)).files["e.json"]);
  check(def.timeout === "45s" && def.reliableDelivery === false && def.title === "Greeting listener", `saved e.json: ${JSON.stringify(def)}`);
  check(def.sender === "services.GreetingSvc" && def.retry.maxAttempts === 5, "other fields kept");
  check((await form.locator(".field-problem [data-problem]").count()) === 0, "no problem left at a field");
  await shot("form");

  // Put the listener back as it was: later scenarios rely on its settings.
  const now = await api("GET", `/api/elements/${name}`);
  const files = { ...now.files };
  delete files["e.json"];
  await api("PUT", `/api/elements/${name}`, { definition: original, files, version: now.version });

  // An integer no JS Number holds (2^53 + 1, as an id may be) in a task's argDict: typed into
  // the form's JSON field, kept when another field of the form rewrites e.json, saved exactly.
  const task = "tasks.DailyReport";
  const big = "9007199254740993";
  const taskBefore = await api("GET", `/api/elements/${task}`);
  await page.locator(`a[data-element="${task}"]`).click();
  await page.locator("[data-testid=element-name]", { hasText: task }).waitFor();
  await page.locator('.tabs button[data-file="e.json"]').click();
  const argDict = form.locator('textarea[data-field="argDict"]');
  await argDict.fill(`{"accountId": ${big}, "small": 7}`);
  await argDict.press("Tab");
  await raw.getByText(big).waitFor();
  check((await raw.innerText()).includes(`"accountId": ${big}`), `the form wrote the integer exactly: ${await raw.innerText()}`);
  await form.locator('input[data-field="timeout"]').fill("2m");
  await form.locator('input[data-field="timeout"]').press("Tab");
  check((await raw.innerText()).includes('"timeout": "2m"'), "the form wrote the timeout");
  check((await raw.innerText()).includes(`"accountId": ${big}`), "and kept the integer it did not touch");
  check((await argDict.inputValue()).includes(`"accountId": ${big}`), "the form shows it exactly");
  await save.click();
  await page.locator(".save-status.ok").waitFor();
  const taskText = (await api("GET", `/api/elements/${task}`)).files["e.json"];
  check(taskText.includes(`"accountId": ${big}`) && taskText.includes('"timeout": "2m"'), `saved exactly: ${taskText}`);
  await argDict.scrollIntoViewIfNeeded();
  await shot("big-integer");
  const taskNow = await api("GET", `/api/elements/${task}`);
  const taskFiles = { ...taskNow.files };
  delete taskFiles["e.json"];
  await api("PUT", `/api/elements/${task}`, { definition: taskBefore.files["e.json"], files: taskFiles, version: taskNow.version });
});
