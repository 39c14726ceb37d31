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

  // Log out forgets the login.
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByLabel("Admin token").waitFor();
});
