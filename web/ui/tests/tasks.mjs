// The task page lists the templates with their schedules and next runs; a template is run now,
// disabled and enabled again; a timer task is created from the form and force-ended.
import { check, login, run } from "./lib.mjs";

await run("tasks", async ({ page, shot }) => {
  await login(page);
  await page.locator("[data-nav=tasks]").click();
  await page.locator('table.templates tr[data-template="tasks.DailyReport"]').waitFor();
  check((await page.locator("table.templates tbody tr").count()) >= 2, "both sample templates");
  const daily = page.locator('table.templates tr[data-template="tasks.DailyReport"]');
  check((await daily.innerText()).includes("cron 0 8 * * * (UTC)"), "the schedule in words");
  const next = (await daily.locator("[data-field=nextFireTime]").innerText()).trim();
  check(/^\d{4}-\d\d-\d\d 08:00:00$/.test(next), `the next run is a day at 08:00 (UTC app): ${next}`);
  await shot("templates");

  // Run now: a task of the template, due at once, that runs to success.
  await daily.locator("button[data-action=run-now]").click();
  const started = daily.locator("span[data-task]");
  await started.waitFor();
  const ranId = await started.getAttribute("data-task");
  // The list shows what it read when the task was created; refresh until the run is over.
  const succeeded = page.locator(`table.tasks tr[data-task="${ranId}"] [data-status=success]`);
  for (let i = 0; !(await succeeded.count()); i++) {
    check(i < 75, `the task run now (${ranId}) did not succeed`);
    await page.waitForTimeout(200);
    await page.getByRole("button", { name: "Refresh" }).click();
  }
  await shot("run-now");

  // Disable: the template stops ticking (no next run), its e.json says so; enable brings it back.
  await daily.locator("button[data-action=disable]").click();
  await page.locator('table.templates tr[data-template="tasks.DailyReport"] [data-enabled=false]').waitFor();
  check((await daily.locator("[data-field=nextFireTime]").innerText()).trim() === "off", "a disabled template has no next run");
  const fs = await import("node:fs");
  const ejson = fs.readFileSync(`${process.env.TRELLIS_UI_APP_DIR}/tasks/DailyReport/e.json`, "utf8");
  check(/"enabled": false/.test(ejson) && ejson.includes('"cron": "0 8 * * *"'), `e.json gains "enabled": false and keeps the rest: ${ejson}`);
  await shot("disabled");
  await daily.locator("button[data-action=enable]").click();
  await page.locator('table.templates tr[data-template="tasks.DailyReport"] [data-enabled=true]').waitFor();
  check(/08:00:00$/.test((await daily.locator("[data-field=nextFireTime]").innerText()).trim()), "enabled again: a next run");

  await page.locator("select[name=fullName]").selectOption("tasks.DailyReport");
  // funcName comes from the template's definition.
  await page.waitForFunction(() => document.querySelector("input[name=funcName]")?.value === "run");
  await page.locator("textarea[name=argDict]").fill('{"day": "2030-01-01"}');
  await page.getByRole("button", { name: "Create task" }).click();
  const created = page.locator("span[data-task]");
  await created.waitFor();
  const taskId = await created.getAttribute("data-task");
  const row = page.locator(`table.tasks tr[data-task="${taskId}"]`);
  await row.waitFor();
  check((await row.innerText()).includes("waiting"), "the new task waits");
  await shot("created");

  // Its node in the call tree: pause it (it will not run, even when due), then resume it.
  await row.locator(`a[href^="#/events/requests/"]`).click();
  const node = page.locator(`.call-tree li.node[data-node="${taskId}"] > details`);
  await node.locator("summary").click();
  await node.locator("button[data-action=pause]").click();
  await node.locator("[data-status=waiting]", { hasText: "paused" }).waitFor();
  check(await node.locator("button[data-action=pause]").isDisabled(), "a paused task cannot be paused again");
  await shot("task-paused");
  await node.locator("button[data-action=resume]").click();
  await node.locator("[data-status=waiting]", { hasText: "scheduled" }).waitFor();
  await page.goBack();
  await row.waitFor();

  await row.locator("button[data-action=forcedEnd]").click();
  await page.locator(`table.tasks tr[data-task="${taskId}"] [data-status=forcedEnd]`).waitFor();
  check(await page.locator(`table.tasks tr[data-task="${taskId}"] button[data-action=forcedEnd]`).isDisabled(), "a finished task cannot be force-ended again");
  await shot("forced-end");

  // Filters: by template and status.
  await page.locator("select[name=templateFilter]").selectOption("tasks.OrderDueReminder");
  // Another template's records only: the task goes from the list.
  await page.locator(`table.tasks tr[data-task="${taskId}"]`).waitFor({ state: "detached" });
  await page.locator("select[name=templateFilter]").selectOption("tasks.DailyReport");
  await page.locator("select[aria-label=status]").selectOption("forcedEnd");
  await page.locator(`table.tasks tr[data-task="${taskId}"]`).waitFor();
});
