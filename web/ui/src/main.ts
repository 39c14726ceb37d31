// The Trellis editor and console: log in, then Elements, Events, Tasks and Analytics pages
// addressed by the URL's hash (#/elements/<fullName>, #/events/requests/<id>, …; an element's
// editor with a logged node ready to replay: #/elements/<fullName>?replay=<nodeId>).

import "./style.css";
import { authMode, login, logout, onUnauthorized, resume } from "./api";
import { clear, errorBox, h } from "./dom";
import { elementsPage } from "./elements";
import { deadLettersPage } from "./deadletters";
import { eventsPage, requestPage } from "./events";
import { listenersPage } from "./listeners";
import { resetFeatures } from "./features";
import { tasksPage } from "./tasks";
import type { Health } from "./types";

const root = document.getElementById("root")!;

const NAV: Array<[string, string]> = [
  ["elements", "Elements"],
  ["events", "Events"],
  ["listeners", "Listeners"],
  ["dead-letters", "Dead letters"],
  ["tasks", "Tasks"],
  ["analytics", "Analytics"],
];

let health: Health | null = null;

async function loadHealth(): Promise<Health | null> {
  try {
    const r = await fetch("/api/health", { headers: { Accept: "application/json" } });
    health = (await r.json()) as Health;
  } catch {
    health = null;
  }
  return health;
}

function loginScreen(message?: string): void {
  const input = h("input", { type: "password", name: "token", autocomplete: "current-password", placeholder: "admin token", required: true, autofocus: true });
  const out = h("div", { role: "alert" }, message ? errorBox(message) : null);
  const button = h("button", { type: "submit", class: "primary" }, "Log in");
  clear(
    root,
    h(
      "div",
      { class: "login" },
      h(
        "form",
        {
          class: "login-card",
          onSubmit: async (ev: Event) => {
            ev.preventDefault();
            button.disabled = true;
            clear(out);
            try {
              await login(input.value);
              input.value = "";
              resetFeatures();
              await shell();
            } catch (e) {
              clear(out, errorBox(e));
            } finally {
              button.disabled = false;
            }
          },
        },
        h("h1", null, "Trellis"),
        // Without a session the health answer is public: status and version only, no app name.
        h("p", { class: "muted" }, health ? (health.app ? `App ${health.app} · ${health.version}` : `Version ${health.version}`) : ""),
        h("label", null, "Admin token", input),
        button,
        out,
        h(
          "p",
          { class: "muted small" },
          "The token is in DATA/admin-token (APP/.trellis/admin-token by default) or TRELLIS_ADMIN_TOKEN. ",
          "It is not stored in the browser.",
        ),
      ),
    ),
  );
  input.focus();
}

const main = h("main", { class: "content" });
const navLinks = new Map<string, HTMLAnchorElement>();
const statusChip = h("span", { class: "chip" });

async function shell(): Promise<void> {
  navLinks.clear();
  const nav = h(
    "nav",
    { class: "topnav" },
    NAV.map(([k, label]) => {
      const a = h("a", { href: `#/${k}`, "data-nav": k }, label);
      navLinks.set(k, a);
      return a;
    }),
  );
  const h0 = await loadHealth();
  clear(statusChip, h0 ? `${h0.status}${h0.problems ? ` · ${h0.problems} problem${h0.problems > 1 ? "s" : ""}` : ""}` : "no health");
  statusChip.className = `chip ${h0?.status === "ok" ? "ok" : "warn"}`;
  clear(
    root,
    h(
      "div",
      { class: "app" },
      h(
        "header",
        { class: "topbar" },
        h("a", { class: "brand", href: "#/elements" }, "Trellis"),
        h("span", { class: "app-name", "data-testid": "app-name" }, h0?.app ?? ""),
        nav,
        h("span", { class: "spacer" }),
        statusChip,
        h("span", { class: "muted small", title: authMode() === "cookie" ? "an HttpOnly session cookie" : "the token is held in this page's memory only; a reload asks for it again" }, authMode() === "cookie" ? "session" : "token in memory"),
        h("button", { onClick: async () => { await logout(); loginScreen(); } }, "Log out"),
      ),
      main,
    ),
  );
  await route();
}

async function route(): Promise<void> {
  if (!authMode()) return;
  // A page's options follow a "?" (#/elements/<fullName>?replay=<nodeId>).
  const [hash, query = ""] = location.hash.replace(/^#\/?/, "").split("?", 2);
  const params = new URLSearchParams(query);
  const [page, ...rest] = hash.split("/");
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : undefined;
  for (const [k, a] of navLinks) a.classList.toggle("active", k === (page === "new-element" ? "elements" : page || "elements"));
  try {
    switch (page) {
      case "":
      case "elements":
        document.title = arg ? `${arg} · Trellis` : "Elements · Trellis";
        await elementsPage(main, arg, false, { replay: params.get("replay") ?? undefined });
        break;
      case "new-element":
        document.title = "New element · Trellis";
        await elementsPage(main, undefined, true);
        break;
      case "events":
        if (rest[0] === "requests" && rest[1]) {
          document.title = "Request · Trellis";
          await requestPage(main, decodeURIComponent(rest[1]));
        } else {
          document.title = "Events · Trellis";
          await eventsPage(main);
        }
        break;
      case "listeners":
        document.title = "Listeners · Trellis";
        await listenersPage(main);
        break;
      case "dead-letters":
        document.title = "Dead letters · Trellis";
        await deadLettersPage(main);
        break;
      case "tasks":
        document.title = "Tasks · Trellis";
        await tasksPage(main);
        break;
      case "analytics":
        document.title = "Analytics · Trellis";
        // uPlot loads with the analytics page.
        await (await import("./analytics")).analyticsPage(main);
        break;
      default:
        clear(main, h("div", { class: "page" }, h("h2", null, "Not found"), h("p", null, "No page ", hash, ". ", h("a", { href: "#/elements" }, "Elements"))));
    }
  } catch (e) {
    clear(main, errorBox(e));
  }
}

window.addEventListener("hashchange", () => void route());
onUnauthorized(() => loginScreen("The session ended or the token is no longer accepted: log in again."));

async function boot(): Promise<void> {
  await loadHealth();
  if (await resume().catch(() => false)) await shell();
  else loginScreen();
}

void boot();
