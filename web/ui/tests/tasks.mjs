// The task page lists the templates; create a timer task from the form and force-end it.
import { check, login, run } from "./lib.mjs";

await run("tasks", async ({ page, shot }) => {
  await login(page);
  await page.locator("[data-nav=tasks]").click();
  await page.locator('table.templates tr[data-template="tasks.DailyReport"]').waitFor();
  check((await page.locator("table.templates tbody tr").count()) >= 2, "both sample templates");

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
