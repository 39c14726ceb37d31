// The event console: the execution log with filters and paging, a request's call tree, resend,
// and sending an event.

import { get, post, type Query } from "./api";
import { clear, epochMs, errorBox, h, pre, statusBadge } from "./dom";
import { features } from "./features";
import { runResult } from "./elements";
import type { ElementDetail, LogRow, Page } from "./types";

const PAGE_SIZE = 50;

interface LogFilters {
  fullName: string;
  status: string;
  start: string;
  end: string;
  sender: string;
  host: string;
  errorCode: string;
  text: string;
  page: number;
}

const filters: LogFilters = { fullName: "", status: "", start: "", end: "", sender: "", host: "", errorCode: "", text: "", page: 1 };
// The free-text filters, by the query parameter each sets.
const textFilters = ["sender", "host", "errorCode", "text"] as const;

// Live log: while the first page is shown, the tab is visible and the filters are not being
// edited, the page asks for the same query again every LIVE_MS and redraws it; a node new to
// the page, or whose status, stage or attempt changed, is marked for FRESH_MS.
const LIVE_MS = 2000;
const FRESH_MS = 10_000;
let liveTimer: number | undefined;

export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function reqLink(id: string): HTMLElement {
  return id ? h("a", { href: `#/events/requests/${encodeURIComponent(id)}`, class: "mono", "data-request": id }, id) : h("span", null, "—");
}

export async function eventsPage(root: HTMLElement): Promise<void> {
  const results = h("div", { class: "results" });
  const elNames = h("datalist", { id: "element-names" });
  get<Array<{ fullName: string; layer: string }>>("/api/elements")
    .then((els) => elNames.append(...els.filter((e) => e.layer === "instance").map((e) => h("option", { value: e.fullName }))))
    .catch(() => {});

  const fullName = h("input", { name: "fullName", list: "element-names", placeholder: "any element", value: filters.fullName });
  const status = h(
    "select",
    { name: "status" },
    ["", "waiting", "running", "success", "fail"].map((s) => h("option", { value: s }, s || "any status")),
  );
  status.value = filters.status;
  const tzNote = `in your browser's time zone (${Intl.DateTimeFormat().resolvedOptions().timeZone}); the log shows times in the app's`;
  const start = h("input", { type: "datetime-local", name: "start", step: "1", value: filters.start, title: tzNote });
  const end = h("input", { type: "datetime-local", name: "end", step: "1", value: filters.end, title: tzNote });
  const more: Record<(typeof textFilters)[number], HTMLInputElement> = {
    sender: h("input", { name: "senderFilter", placeholder: "any sender", value: filters.sender, size: 16 }),
    host: h("input", { name: "host", placeholder: "any host", value: filters.host, size: 14 }),
    errorCode: h("input", { name: "errorCode", placeholder: "timeout, js_error…", value: filters.errorCode, size: 12 }),
    text: h("input", { name: "text", type: "search", placeholder: "in kwargs or error", value: filters.text, size: 18, title: "found in any case in the kwargs, the error code or the error message" }),
  };
  const requestId = h("input", { name: "requestId", placeholder: "req_…", size: 16, title: "open the call tree of a request" });

  // What each node on the page looked like, and until when a changed one stays marked.
  const seen = new Map<string, string>();
  const freshUntil = new Map<string, number>();
  const liveNote = h("span", { class: "live-note muted small", "data-testid": "live-note", role: "status" });

  const load = async (live = false) => {
    if (!live) {
      filters.fullName = fullName.value.trim();
      filters.status = status.value;
      filters.start = start.value;
      filters.end = end.value;
      for (const k of textFilters) filters[k] = more[k].value.trim();
    }
    const q: Query = {
      fullName: filters.fullName,
      status: filters.status,
      startTime: epochMs(filters.start),
      endTime: epochMs(filters.end),
      sender: filters.sender,
      host: filters.host,
      errorCode: filters.errorCode,
      text: filters.text,
      page: filters.page,
      pageSize: PAGE_SIZE,
    };
    if (!live) {
      clear(results, h("p", { class: "muted" }, "Loading…"));
      seen.clear();
      freshUntil.clear();
    }
    try {
      const page = await get<Page<LogRow>>("/api/events/logs", q);
      const now = Date.now();
      for (const r of page.rowDatas) {
        const key = `${r.status}|${r.stage}|${r.attempt}`;
        if (live && seen.get(r.nodeId) !== key) freshUntil.set(r.nodeId, now + FRESH_MS);
        seen.set(r.nodeId, key);
      }
      renderLog(
        results,
        page,
        (p) => {
          filters.page = p;
          void load();
        },
        (id) => (freshUntil.get(id) ?? 0) > now,
      );
    } catch (e) {
      if (!live) clear(results, errorBox(e));
      else liveNote.textContent = `live: ${e instanceof Error ? e.message : String(e)}`;
      return false;
    }
    return true;
  };

  // One tick of the live log; it says why it waits when it does.
  const poll = async () => {
    window.clearTimeout(liveTimer);
    if (!results.isConnected) return;
    // Filters changed and not yet applied: a redraw would show the old ones' results as current.
    const editing =
      fullName.value.trim() !== filters.fullName ||
      status.value !== filters.status ||
      start.value !== filters.start ||
      end.value !== filters.end ||
      textFilters.some((k) => more[k].value.trim() !== filters[k]);
    if (document.hidden) liveNote.textContent = "live: paused while the tab is hidden";
    else if (filters.page !== 1) liveNote.textContent = `live: paused on page ${filters.page} (page 1 follows new events)`;
    else if (editing) liveNote.textContent = "live: paused while you edit the filters (Search applies them)";
    else if (await load(true)) liveNote.textContent = `live · updated ${new Date().toLocaleTimeString()} · every ${LIVE_MS / 1000} s`;
    if (results.isConnected) liveTimer = window.setTimeout(() => void poll(), LIVE_MS);
  };

  const form = h(
    "form",
    {
      class: "filters",
      onSubmit: (ev: Event) => {
        ev.preventDefault();
        const id = requestId.value.trim();
        if (id) {
          location.hash = `#/events/requests/${encodeURIComponent(id)}`;
          return;
        }
        filters.page = 1;
        void load();
      },
    },
    h("label", null, "Element ", fullName, elNames),
    h("label", null, "Status ", status),
    h("label", null, "From ", start),
    h("label", null, "To ", end),
    h("label", null, "Sender ", more.sender),
    h("label", null, "Host ", more.host),
    h("label", null, "Error code ", more.errorCode),
    h("label", null, "Text ", more.text),
    h("label", null, "Request id ", requestId),
    h("button", { type: "submit", class: "primary" }, "Search"),
  );

  clear(root, h("div", { class: "page" }, h("div", { class: "page-head" }, h("h2", null, "Event log"), liveNote), sendEventForm(() => void load()), form, results));
  window.clearTimeout(liveTimer);
  await load();
  liveTimer = window.setTimeout(() => void poll(), LIVE_MS);
}

function renderLog(box: HTMLElement, page: Page<LogRow>, go: (p: number) => void, fresh: (nodeId: string) => boolean = () => false): void {
  const pages = Math.max(1, Math.ceil(page.totalCount / PAGE_SIZE));
  const pager = h(
    "div",
    { class: "pager" },
    h("button", { disabled: filters.page <= 1, onClick: () => go(filters.page - 1) }, "‹ Newer"),
    h("span", null, `page ${filters.page} of ${pages} · ${page.totalCount} node${page.totalCount === 1 ? "" : "s"}`),
    h("button", { disabled: filters.page >= pages, onClick: () => go(filters.page + 1) }, "Older ›"),
  );
  if (!page.rowDatas.length) {
    clear(box, h("p", { class: "empty" }, "No log rows match."), pager);
    return;
  }
  clear(
    box,
    h(
      "table",
      { class: "grid log" },
      h("thead", null, h("tr", null, ["created (app time)", "kind", "element", "sender", "status", "attempt", "duration", "host", "request", "error"].map((c) => h("th", null, c)))),
      h(
        "tbody",
        null,
        page.rowDatas.map((r) =>
          h(
            "tr",
            { "data-node": r.nodeId, class: fresh(r.nodeId) ? "fresh" : undefined, "data-fresh": fresh(r.nodeId) ? "" : undefined },
            h("td", { class: "nowrap" }, r.createdAt),
            h("td", null, r.kind),
            h("td", null, h("a", { href: `#/elements/${encodeURIComponent(r.fullName)}` }, r.fullName)),
            h("td", { class: "small" }, r.sender || "—"),
            h("td", null, statusBadge(r.status, r.stage)),
            h("td", { class: "num" }, r.attempt),
            h("td", { class: "num nowrap" }, fmtDuration(r.duration)),
            h("td", { class: "small mono" }, r.host),
            h("td", null, reqLink(r.requestId)),
            h("td", { class: "small error-cell", title: r.error ? `${r.error.code}: ${r.error.message}` : "" }, r.error ? `${r.error.code}: ${r.error.message}` : ""),
          ),
        ),
      ),
    ),
    pager,
  );
}

function sendEventForm(sent: () => void): HTMLElement {
  const sender = h("input", { name: "sender", placeholder: "services.GreetingSvc", required: true });
  const eventType = h("input", { name: "eventType", placeholder: "events.NormalType" });
  const kwargs = h("textarea", { name: "kwargs", rows: 2, spellcheck: "false" }, '{\n  "name": "Ada"\n}');
  const out = h("div", { class: "send-result", role: "status" });
  const form = h(
    "form",
    {
      class: "send-event",
      onSubmit: async (ev: Event) => {
        ev.preventDefault();
        let kw: unknown;
        try {
          kw = JSON.parse(kwargs.value || "{}");
        } catch (e) {
          clear(out, errorBox("kwargs: " + (e as Error).message));
          return;
        }
        try {
          const res = await post<{ requestId: string; eventId: string; nodeIds: string[]; subscribers: string[]; note?: string }>(
            "/api/events/send",
            { sender: sender.value.trim(), kwargs: kw, ...(eventType.value.trim() ? { eventType: eventType.value.trim() } : {}) },
          );
          clear(
            out,
            h(
              "p",
              null,
              "Sent ",
              h("span", { class: "mono" }, res.eventId),
              ` to ${res.subscribers.length} listener${res.subscribers.length === 1 ? "" : "s"} `,
              res.subscribers.length ? `(${res.subscribers.join(", ")}) ` : "",
              "· request ",
              reqLink(res.requestId),
            ),
            res.note ? h("p", { class: "muted small" }, res.note) : null,
          );
          sent();
        } catch (e) {
          clear(out, errorBox(e));
        }
      },
    },
    h("label", null, "Sender ", sender),
    h("label", null, "Event type ", eventType),
    h("label", { class: "wide" }, "kwargs (JSON object) ", kwargs),
    h("button", { type: "submit", class: "primary" }, "Send event"),
    out,
  );
  return h("details", { class: "panel send-panel" }, h("summary", null, "Send an event"), form);
}

// ---- the call tree of one request ----

interface TreeNode {
  row: LogRow;
  children: TreeNode[];
}

export function buildTree(rows: LogRow[]): TreeNode[] {
  const byId = new Map<string, TreeNode>();
  for (const r of rows) byId.set(r.nodeId, { row: r, children: [] });
  const roots: TreeNode[] = [];
  for (const n of byId.values()) {
    const parent = n.row.parentNodeId ? byId.get(n.row.parentNodeId) : undefined;
    if (parent && parent !== n) parent.children.push(n);
    else roots.push(n);
  }
  const order = (a: TreeNode, b: TreeNode) => (a.row.createdAt + a.row.nodeId).localeCompare(b.row.createdAt + b.row.nodeId);
  const sort = (ns: TreeNode[]) => {
    ns.sort(order);
    for (const n of ns) sort(n.children);
  };
  sort(roots);
  return roots;
}

export async function requestPage(root: HTMLElement, requestId: string): Promise<void> {
  const body = h("div", { class: "call-tree" });
  const refresh = h("button", { onClick: () => void load() }, "Refresh");
  const reqMsg = h("span", { class: "node-msg small", role: "status" });
  const reqOp = (op: string, label: string, ask?: string) =>
    h(
      "button",
      {
        "data-action": `request-${op}`,
        title: `POST /api/requests/{id}/${op}`,
        onClick: async () => {
          if (ask && !confirm(ask)) return;
          try {
            await post(`/api/requests/${encodeURIComponent(requestId)}/${op}`);
            reqMsg.textContent = `${label.toLowerCase()}: done`;
            reqMsg.classList.remove("bad");
            window.setTimeout(() => void load(), 400);
          } catch (e) {
            reqMsg.textContent = e instanceof Error ? e.message : String(e);
            reqMsg.classList.add("bad");
          }
        },
      },
      label,
    );
  const reqOps = h(
    "div",
    { class: "toolbar" },
    reqOp("pause", "Pause request"),
    reqOp("resume", "Resume request"),
    reqOp("revoke", "Revoke request", `Revoke ${requestId}? Every waiting node of it ends.`),
    refresh,
    reqMsg,
  );
  clear(
    root,
    h(
      "div",
      { class: "page" },
      h("p", null, h("a", { href: "#/events" }, "‹ Event log")),
      h("div", { class: "page-head" }, h("h2", null, "Request ", h("span", { class: "mono", "data-testid": "request-id" }, requestId)), reqOps),
      body,
    ),
  );
  const feats = await features().catch(() => ({ replay: false }) as { replay: boolean });
  let timer: number | undefined;
  const load = async () => {
    window.clearTimeout(timer);
    try {
      const rows = await get<LogRow[] | Page<LogRow>>(`/api/events/requests/${encodeURIComponent(requestId)}`);
      const list = Array.isArray(rows) ? rows : rows.rowDatas;
      const busy = list.filter((r) => r.status === "waiting" || r.status === "running").length;
      clear(
        body,
        h(
          "p",
          { class: "muted small" },
          `${list.length} node${list.length === 1 ? "" : "s"}`,
          busy ? ` · ${busy} waiting or running: refreshing every 2 s` : "",
        ),
        h("ul", { class: "tree-nodes" }, buildTree(list).map((n) => nodeView(n, load, feats.replay))),
      );
      // Follow the request while some of it is in flight, as long as this page is shown.
      // A refresh redraws the tree, so it waits while the user types in it (a callback body).
      const poll = () => {
        if (!body.isConnected) return;
        const typing = document.activeElement instanceof HTMLTextAreaElement && body.contains(document.activeElement);
        if (typing) timer = window.setTimeout(poll, 2000);
        else void load();
      };
      if (busy) timer = window.setTimeout(poll, 2000);
    } catch (e) {
      clear(body, errorBox(e));
    }
  };
  await load();
}

// Which nodes the user opened or closed, kept across refreshes of the tree.
const openNodes = new Set<string>();
const closedNodes = new Set<string>();

function nodeView(n: TreeNode, reload: () => Promise<void>, replay: boolean): HTMLElement {
  const r = n.row;
  const extra = h("div", { class: "node-extra" });
  const msg = h("span", { class: "node-msg small", role: "status" });
  const finished = r.status === "success" || r.status === "fail";
  const resend = h(
    "button",
    {
      disabled: r.kind !== "event" || !finished,
      title: r.kind !== "event" ? "only event nodes can be resent" : finished ? "run it again as the next attempt" : "waiting or running",
      "data-action": "resend",
      onClick: async () => {
        try {
          const res = await post<{ nodeId: string; attempt: number }>(`/api/nodes/${encodeURIComponent(r.nodeId)}/resend`);
          msg.textContent = `resent as attempt ${res.attempt}`;
          window.setTimeout(() => void reload(), 600);
        } catch (e) {
          msg.textContent = e instanceof Error ? e.message : String(e);
          msg.classList.add("bad");
        }
      },
    },
    "Resend",
  );
  // The node operations (docs/reference.md §5): each enabled in the states the host allows it in;
  // the host has the last word, and its refusal (409 naming the state) is shown.
  const waiting = r.status === "waiting" && r.stage !== "paused";
  // A node of a revoked request takes no operation.
  const live = r.stage !== "revoked";
  const opAllowed: Record<string, boolean> = {
    pause: live && waiting,
    resume: live && r.stage === "paused",
    retry: live && r.status === "fail" && r.stage !== "forcedEnd",
    skip: live && (r.status === "fail" || r.status === "waiting"),
    forcedFail: live && (r.status === "waiting" || r.status === "running"),
  };
  const opLabels: Record<string, string> = { pause: "Pause", resume: "Resume", retry: "Retry", skip: "Skip", forcedFail: "Force fail" };
  const ops =
    r.kind === "event" || r.kind === "task"
      ? h(
          "span",
          { class: "node-ops" },
          Object.keys(opLabels).map((op) =>
            h(
              "button",
              {
                "data-action": op,
                disabled: !opAllowed[op],
                title: opAllowed[op] ? `POST /api/nodes/{id}/${op}` : `not in state ${r.status}${r.stage ? " · " + r.stage : ""}`,
                onClick: async (ev: Event) => {
                  if ((op === "skip" || op === "forcedFail") && !confirm(`${opLabels[op]} ${r.nodeId}?`)) return;
                  (ev.target as HTMLButtonElement).disabled = true;
                  try {
                    await post(`/api/nodes/${encodeURIComponent(r.nodeId)}/${op}`);
                    msg.textContent = `${opLabels[op].toLowerCase()}: done`;
                    window.setTimeout(() => void reload(), 400);
                  } catch (e) {
                    msg.textContent = e instanceof Error ? e.message : String(e);
                    msg.classList.add("bad");
                    (ev.target as HTMLButtonElement).disabled = false;
                  }
                },
              },
              opLabels[op],
            ),
          ),
        )
      : null;
  const replayBtn = h(
    "button",
    {
      disabled: !replay,
      "data-action": "replay",
      title: replay ? "run the element's current version on this node's logged input, beside the logged outcome (writes no log rows)" : "POST /api/nodes/{id}/replay is not on this host yet",
    },
    "Replay",
  );
  if (replay) {
    replayBtn.onclick = async () => {
      clear(extra, h("p", { class: "muted small" }, "replaying…"));
      try {
        // The draft is the element as it is now; the editor's Test run covers unsaved drafts.
        const el = await get<ElementDetail>(`/api/elements/${encodeURIComponent(r.fullName)}`);
        const files: Record<string, string> = {};
        for (const [name, text] of Object.entries(el.files ?? {})) if (name !== "e.json") files[name] = text;
        const definition = el.files?.["e.json"] ?? el.definition;
        const res = await post<{ function: string; logged: { status: string; result: unknown; error: unknown }; draft: Parameters<typeof runResult>[0] }>(
          `/api/nodes/${encodeURIComponent(r.nodeId)}/replay`,
          { definition, files },
        );
        clear(
          extra,
          h(
            "div",
            { class: "cols replay", "data-testid": "replay" },
            h("div", null, h("h4", null, "logged"), h("p", { class: "small" }, statusBadge(res.logged.status)), pre(res.logged.error ?? res.logged.result)),
            h("div", null, h("h4", null, `current version: ${res.function}()`), runResult(res.draft)),
          ),
        );
      } catch (e) {
        clear(extra, errorBox(e));
      }
    };
  }
  const attempts = h(
    "button",
    {
      onClick: async () => {
        try {
          const states = await get<LogRow[]>(`/api/events/nodes/${encodeURIComponent(r.nodeId)}/attempts`);
          clear(
            extra,
            h(
              "table",
              { class: "grid small" },
              h("thead", null, h("tr", null, ["recorded", "attempt", "status", "duration", "host", "error"].map((c) => h("th", null, c)))),
              h(
                "tbody",
                null,
                states.map((s) =>
                  h(
                    "tr",
                    null,
                    h("td", null, s.recordedAt),
                    h("td", { class: "num" }, s.attempt),
                    h("td", null, statusBadge(s.status, s.stage)),
                    h("td", null, fmtDuration(s.duration)),
                    h("td", { class: "mono" }, s.host),
                    h("td", null, s.error ? `${s.error.code}: ${s.error.message}` : ""),
                  ),
                ),
              ),
            ),
          );
        } catch (e) {
          clear(extra, errorBox(e));
        }
      },
    },
    "Attempts",
  );
  // A node waiting for its callback can be completed from here (POST /api/nodes/{id}/callback).
  const callback =
    r.stage === "awaitingCallback"
      ? (() => {
          const body = h("textarea", { name: "callback", rows: 2, spellcheck: "false", "aria-label": "callback body (JSON)" }, "{}");
          const send = h("button", { class: "primary", "data-action": "callback" }, "Send callback");
          send.onclick = async () => {
            let v: unknown;
            try {
              v = JSON.parse(body.value || "null");
            } catch (e) {
              msg.textContent = "callback body: " + (e as Error).message;
              return;
            }
            try {
              const res = await post<{ status: string }>(`/api/nodes/${encodeURIComponent(r.nodeId)}/callback`, v);
              msg.textContent = `callback sent: ${res.status}`;
              window.setTimeout(() => void reload(), 300);
            } catch (e) {
              msg.textContent = e instanceof Error ? e.message : String(e);
            }
          };
          return h(
            "div",
            { class: "callback-form" },
            h("h4", null, "callback"),
            h("p", { class: "muted small" }, 'The body is the node\'s result; {"error": "…"} fails it.'),
            body,
            send,
          );
        })()
      : null;
  const logs = (r.logs ?? []).map((l) => h("div", { class: `log-line level-${l.level}` }, h("span", { class: "muted" }, l.time.replace(/^.*T/, "").replace(/Z$/, "")), " ", h("b", null, l.level), " ", l.message));
  return h(
    "li",
    { class: "node", "data-node": r.nodeId },
    h(
      "details",
      {
        open: openNodes.has(r.nodeId) || (r.status === "fail" && !closedNodes.has(r.nodeId)),
        onToggle: (ev: Event) => {
          const open = (ev.target as HTMLDetailsElement).open;
          (open ? openNodes : closedNodes).add(r.nodeId);
          (open ? closedNodes : openNodes).delete(r.nodeId);
        },
      },
      h(
        "summary",
        null,
        statusBadge(r.status, r.stage),
        h("span", { class: "kind" }, r.kind),
        h("b", null, r.fullName),
        h("span", { class: "muted small" }, r.kind === "event" ? ` from ${r.sender}` : r.sender ? ` ${r.sender}` : ""),
        h("span", { class: "meta" }, `attempt ${r.attempt} · ${fmtDuration(r.duration)} · ${r.host || "no host"}`),
      ),
      h(
        "div",
        { class: "node-body" },
        h(
          "dl",
          { class: "kv" },
          h("dt", null, "node"),
          h("dd", { class: "mono" }, r.nodeId),
          h("dt", null, "event"),
          h("dd", { class: "mono" }, r.eventId || "—"),
          h("dt", null, "created"),
          h("dd", null, r.createdAt),
          h("dt", null, "ran"),
          h("dd", null, r.startTime ? `${r.startTime} → ${r.endTime ?? "…"}` : "not yet"),
        ),
        h("div", { class: "cols" }, h("div", null, h("h4", null, "kwargs"), pre(r.kwargs)), h("div", null, h("h4", null, "result"), pre(r.result))),
        r.error ? h("div", { class: "error-box" }, h("b", null, r.error.code), ": ", r.error.message, r.error.stack ? pre(r.error.stack, "stack") : null) : null,
        h("h4", null, "console"),
        logs.length ? h("div", { class: "console" }, logs) : h("p", { class: "muted small" }, "no output"),
        callback,
        h(
          "div",
          { class: "toolbar" },
          resend,
          replayBtn,
          // The element's editor, with this node ready to replay against an unsaved draft there.
          replay && ["event", "task", "service"].includes(r.kind)
            ? h(
                "a",
                {
                  class: "button",
                  href: `#/elements/${encodeURIComponent(r.fullName)}?replay=${encodeURIComponent(r.nodeId)}`,
                  "data-action": "replay-in-editor",
                  title: "open the element's editor with this node ready to replay against your draft, saved or not",
                },
                "Replay in editor",
              )
            : null,
          attempts,
          ops,
          msg,
        ),
        extra,
      ),
    ),
    n.children.length ? h("ul", { class: "tree-nodes" }, n.children.map((c) => nodeView(c, reload, replay))) : null,
  );
}

