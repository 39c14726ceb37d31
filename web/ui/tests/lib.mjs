// Shared plumbing of the browser scenarios: run as
//   node web/ui/tests/<scenario>.mjs <baseURL> <token> <screenshotDir>
// by web/uitest (go test), against a real `trellis serve` of the sample app. The app directory
// is in TRELLIS_UI_APP_DIR for scenarios that edit it. Chromium is Debian's (/usr/bin/chromium,
// or $CHROMIUM); playwright-core never downloads a browser.

import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export const [baseURL, token, shotDir] = process.argv.slice(2);
if (!baseURL || !token || !shotDir) {
  console.error("usage: node <scenario>.mjs <baseURL> <token> <screenshotDir>");
  process.exit(2);
}
mkdirSync(shotDir, { recursive: true });

export const appDir = process.env.TRELLIS_UI_APP_DIR ?? "";

export function check(cond, msg) {
  if (!cond) throw new Error("check failed: " + msg);
}

// api calls the host directly (setup and cross-checks, not what the page does).
export async function api(method, p, body) {
  const r = await fetch(baseURL + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return data;
}

export async function eventually(fn, what, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${what}${last ? ": " + last.message : ""}`);
}

// run opens a fresh browser profile, gives the scenario a page, and fails on any page error or
// console error the scenario did not expect.
export async function run(name, scenario) {
  const started = Date.now();
  const profile = mkdtempSync(path.join(tmpdir(), "trellis-ui-profile-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1360, height: 820 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  // Generous: CI runs this beside the whole suite under -race on two cores.
  page.setDefaultTimeout(30000);
  const problems = [];
  const allowed = [];
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const t = m.text();
    if (allowed.some((re) => re.test(t))) return;
    problems.push("console error: " + t);
  });
  page.on("dialog", (d) => d.accept());
  const t = {
    page,
    // allowConsoleError: an expected failed request (a 401 for a wrong token, a probe's 404).
    allowConsoleError: (re) => allowed.push(re),
    shot: async (label) => {
      const file = path.resolve(shotDir, `${name}-${label}.png`);
      await page.screenshot({ path: file });
      console.log(`screenshot: ${file}`);
      return file;
    },
  };
  // The browser logs every non-2xx fetch as a console error: the session check at start (401
  // without a session), the probes of routes not built yet (404) or of those that are (400 for
  // the probe's bad name), a rejected save (422, 409). What the page makes of answers is what
  // the scenarios check; a 5xx is never expected.
  t.allowConsoleError(/Failed to load resource: the server responded with a status of 4\d\d/);
  let failed = null;
  try {
    await scenario(t);
    if (problems.length) throw new Error(problems.join("\n"));
  } catch (e) {
    failed = e;
    try {
      await t.shot("FAILED");
    } catch {
      /* the page is gone */
    }
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
  if (failed) {
    console.error(`${name}: FAIL after ${Date.now() - started} ms\n${failed.stack ?? failed}`);
    process.exit(1);
  }
  console.log(`${name}: ok in ${Date.now() - started} ms`);
}

export async function login(page) {
  await page.goto(baseURL + "/");
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator(".topbar").waitFor();
}
