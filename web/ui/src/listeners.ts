// The listeners page: every event listener of the running app version, grouped by sender, with
// its handling and retry policy and its live backlog on the bus (GET /api/events/listeners),
// refreshed every few seconds while the page is shown and the tab visible.

import { get } from "./api";
import { badge, clear, errorBox, h } from "./dom";

const REFRESH_MS = 3000;

export interface GroupLag {
  group: string;
  pending: number;
  undelivered: number;
  consumers: number;
}

export interface Listener {
  fullName: string;
  sender: string;
  model?: string;
  operate?: string[];
  fields?: string[];
  eventType: string;
  handler: string;
  handlerType: "pool" | "singleton" | "broadcast";
  broadcastIdentifier: string;
  reliableDelivery: boolean;
  requeueOnError: boolean;
  retry: { policy: string; interval?: string; maxAttempts: number; window?: string; maxInterval?: string };
  timeout: string;
  enabled: boolean;
  webhook: { url: string; mode: string; timeout: string } | null;
  lag: { pending: number; undelivered: number; groups: GroupLag[] } | null;
}

interface ListenersAnswer {
  listeners: Listener[];
  lagError?: string;
}

// retryText says a retry policy in a few words: "none", "default · 5 × 5m0s", "cyclic · 30s for 1h0m0s".
export function retryText(r: Listener["retry"]): string {
  switch (r.policy) {
    case "none":
      return "none";
    case "cyclic":
      return `cyclic · every ${r.interval ?? "?"}${r.window ? ` for ${r.window}` : ""}`;
    case "exponential":
      return `exponential · ${r.maxAttempts} tries from ${r.interval ?? "?"}${r.maxInterval ? ` up to ${r.maxInterval}` : ""}`;
    default:
      return `${r.policy} · ${r.maxAttempts} tries, ${r.interval ?? "?"} apart`;
  }
}

let timer: number | undefined;

export async function listenersPage(root: HTMLElement): Promise<void> {
  window.clearTimeout(timer);
  const body = h("div", { class: "listeners" });
  const note = h("span", { class: "muted small", "data-testid": "lag-note" });
  clear(
    root,
    h(
      "div",
      { class: "page" },
      h("div", { class: "page-head" }, h("h2", null, "Listeners"), note),
      h("p", { class: "muted small" }, "Every listener of the running app version, by sender. Lag: deliveries taken and not yet acknowledged (pending) and not yet taken (undelivered), per consumer group."),
      body,
    ),
  );
  let first = true;
  const load = async () => {
    window.clearTimeout(timer);
    if (!body.isConnected) return;
    // A hidden tab asks nothing; the next tick after it shows again refreshes.
    if (!document.hidden || first) {
      try {
        const ans = await get<ListenersAnswer>("/api/events/listeners");
        render(body, ans);
        note.textContent = `lag at ${new Date().toLocaleTimeString()} · refreshed every ${REFRESH_MS / 1000} s`;
      } catch (e) {
        clear(body, errorBox(e));
      }
      first = false;
    }
    if (body.isConnected) timer = window.setTimeout(() => void load(), REFRESH_MS);
  };
  await load();
}

function render(box: HTMLElement, ans: ListenersAnswer): void {
  if (!ans.listeners.length) {
    clear(box, h("p", { class: "empty" }, "This app has no event listeners."));
    return;
  }
  const bySender = new Map<string, Listener[]>();
  for (const l of ans.listeners) {
    const key = l.sender || "—";
    if (!bySender.has(key)) bySender.set(key, []);
    bySender.get(key)!.push(l);
  }
  const senders = [...bySender.keys()].sort();
  clear(
    box,
    ans.lagError ? errorBox("lag unavailable: " + ans.lagError) : null,
    senders.map((s) => {
      const ls = bySender.get(s)!;
      const model = ls.find((l) => l.model);
      return h(
        "section",
        { class: "sender-group", "data-sender": s },
        h("h3", null, h("span", { class: "mono" }, s), model ? h("span", { class: "muted small" }, " model writes") : null, h("span", { class: "count" }, ls.length)),
        h(
          "table",
          { class: "grid listeners-table" },
          h("thead", null, h("tr", null, ["listener", "event type", "handling", "delivery", "retry", "timeout", "lag (pending / undelivered)", "groups"].map((c) => h("th", null, c)))),
          h("tbody", null, ls.map(row)),
        ),
      );
    }),
  );
}

function row(l: Listener): HTMLElement {
  const lag = l.lag;
  const busy = lag ? lag.pending + lag.undelivered : 0;
  return h(
    "tr",
    { "data-listener": l.fullName, class: l.enabled ? "" : "disabled" },
    h(
      "td",
      null,
      h("a", { href: `#/elements/${encodeURIComponent(l.fullName)}`, class: "mono" }, l.fullName),
      " ",
      l.enabled ? null : badge("disabled", "status-fail"),
      l.model && l.operate?.length ? h("div", { class: "muted small" }, l.operate.join(", "), l.fields?.length ? ` · fields ${l.fields.join(", ")}` : "") : null,
    ),
    h("td", { class: "small mono" }, l.eventType),
    h(
      "td",
      { class: "small", "data-field": "handling" },
      l.handlerType,
      l.handlerType === "broadcast" ? h("span", { class: "muted" }, ` · ${l.broadcastIdentifier}`) : null,
      l.webhook ? h("div", { class: "mono small", title: "webhook: the secret stays on the host" }, `webhook ${l.webhook.mode} → ${l.webhook.url}`) : h("div", { class: "muted small" }, `${l.handler}()`),
    ),
    h(
      "td",
      { class: "small", "data-field": "delivery" },
      l.reliableDelivery ? "reliable" : "at most once",
      l.requeueOnError ? h("div", { class: "muted" }, "requeue on error") : null,
    ),
    h("td", { class: "small", "data-field": "retry" }, retryText(l.retry)),
    h("td", { class: "small num" }, l.timeout),
    h(
      "td",
      { class: `num ${busy ? "bad" : ""}`.trim(), "data-field": "lag", "data-lag": lag ? String(busy) : "" },
      lag ? `${lag.pending} / ${lag.undelivered}` : "—",
    ),
    h(
      "td",
      { class: "small" },
      lag && lag.groups.length
        ? lag.groups.map((g) => h("div", { class: "mono" }, `${g.group}: ${g.pending}/${g.undelivered} · ${g.consumers} consumer${g.consumers === 1 ? "" : "s"}`))
        : h("span", { class: "muted" }, "no consumer group yet"),
    ),
  );
}
