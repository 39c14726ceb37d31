// The listeners page: every listener of the sample app grouped by sender, with its handling and
// retry policy and its lag, refreshed while the page is open.
import { api, check, eventually, login, run } from "./lib.mjs";

await run("listeners", async ({ page, shot }) => {
  const ans = await api("GET", "/api/events/listeners");
  const greeting = ans.listeners.find((l) => l.fullName === "events.GreetingSent");
  check(greeting, "the API lists events.GreetingSent");
  check(greeting.retry.policy && greeting.handlerType && !("secret" in (greeting.webhook ?? {})), "with its policy, never a secret");

  await login(page);
  await page.locator("[data-nav=listeners]").click();
  const group = page.locator('section.sender-group[data-sender="services.GreetingSvc"]');
  await group.waitFor();
  const row = group.locator('tr[data-listener="events.GreetingSent"]');
  await row.waitFor();
  // What the page shows is what the API says (an earlier scenario may have edited the listener).
  const retry = await row.locator("[data-field=retry]").innerText();
  check(retry.includes(greeting.retry.policy) && retry.includes(`${greeting.retry.maxAttempts} tries`) && retry.includes(greeting.retry.interval), `retry policy shown: ${retry}`);
  check((await row.locator("[data-field=handling]").innerText()).includes(greeting.handlerType), "handler type");
  const delivery = await row.locator("[data-field=delivery]").innerText();
  check(delivery.includes(greeting.reliableDelivery ? "reliable" : "at most once"), `delivery: ${delivery}`);
  // This host consumes its listeners: the lag is a number (0 once the queue is drained).
  const lag = await eventually(async () => {
    const v = await row.locator("[data-field=lag]").getAttribute("data-lag");
    return v !== null && v !== "" ? v : null;
  }, "a lag figure");
  check(/^\d+$/.test(lag), `lag is a count: ${lag}`);
  await eventually(async () => (await row.locator("[data-field=lag]").getAttribute("data-lag")) === "0", "a lag of 0 once drained");
  // The model listener is under its model.
  await page.locator('section.sender-group[data-sender="models.OrderModel"] tr[data-listener="events.OrderCreated"]').waitFor();

  // It refreshes by itself: the note's time changes without a reload.
  const note = page.locator("[data-testid=lag-note]");
  const before = await note.innerText();
  await eventually(async () => (await note.innerText()) !== before, "the lag to refresh", 10000);
  await shot("page");
});
