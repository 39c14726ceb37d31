// Log in: a wrong token is refused with a message, the right one opens the console, and the
// token is nowhere a script of the origin could read it later.
import { baseURL, check, login, run, token } from "./lib.mjs";

await run("login", async ({ page, shot }) => {
  await page.goto(baseURL + "/");
  await page.getByLabel("Admin token").waitFor();
  check((await page.title()) === "Trellis", "title");
  await page.getByLabel("Admin token").fill("not-the-token");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText(/Wrong token/).waitFor();
  await shot("wrong-token");

  await login(page);
  await page.locator("[data-testid=app-name]").filter({ hasText: /\S/ }).waitFor();
  await page.locator(".tree a[data-element]").first().waitFor();
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
  check(!stored.includes(token), "the token is not in localStorage, sessionStorage or a script-readable cookie");
  await shot("logged-in");

  // With POST /api/session the login is an HttpOnly cookie and survives a reload; without it
  // the token lives in the page's memory only and a reload asks again.
  const session = await fetch(baseURL + "/api/session", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }) });
  const mode = await page.locator(".topbar").innerText();
  if (session.status !== 404) {
    check(mode.includes("session"), "logged in with a session cookie");
    await page.reload();
    await page.locator(".tree a[data-element]").first().waitFor();
  } else {
    check(mode.includes("token in memory"), "token held in memory");
    await page.reload();
    await page.getByLabel("Admin token").waitFor();
    await login(page);
  }

  // Log out forgets the login, also across a reload.
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByLabel("Admin token").waitFor();
  await page.reload();
  await page.getByLabel("Admin token").waitFor();
});
