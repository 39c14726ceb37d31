// Dead letters: event nodes whose latest state is fail · deadLettered (their last try failed and
// no retry is left), from GET /api/events/logs?stage=deadLettered. Select some and resend them
// one by one (POST /api/nodes/{id}/resend), or resend every one the filter matches
// (POST /api/events/resend?stage=deadLettered…); the answer of each is shown.

import { get, post, type Query } from "./api";
import { clear, errorBox, h, statusBadge } from "./dom";
import type { LogRow, Page } from "./types";

const PAGE_SIZE = 50;

const state = { fullName: "", page: 1 };

interface BulkResult {
  resent: Array<{ nodeId: string; attempt: number }>;
  skipped: Array<{ nodeId: string; reason: string }>;
  truncated: boolean;
}

export async function deadLettersPage(root: HTMLElement): Promise<void> {
  const results = h("div", { class: "results" });
  const out = h("div", { class: "resend-result", role: "status", "data-testid": "resend-result" });
  const fullName = h("input", { name: "fullName", list: "dl-element-names", placeholder: "any listener", value: state.fullName });
  const names = h("datalist", { id: "dl-element-names" });
  const selected = new Set<string>();
  let rows: LogRow[] = [];
  let total = 0;

  const resendSel = h("button", { class: "primary", "data-action": "resend-selected", disabled: true }, "Resend selected");
  const resendAll = h("button", { "data-action": "resend-all", disabled: true }, "Resend all matching");
  const syncButtons = () => {
    resendSel.disabled = selected.size === 0;
    resendSel.textContent = selected.size ? `Resend selected (${selected.size})` : "Resend selected";
    resendAll.disabled = total === 0;
    resendAll.textContent = total ? `Resend all matching (${total})` : "Resend all matching";
  };

  const query = (): Query => ({ stage: "deadLettered", fullName: state.fullName });

  const load = async () => {
    state.fullName = fullName.value.trim();
    try {
      const page = await get<Page<LogRow>>("/api/events/logs", { ...query(), page: state.page, pageSize: PAGE_SIZE });
      rows = page.rowDatas;
      total = page.totalCount;
      for (const id of [...selected]) if (!rows.some((r) => r.nodeId === id)) selected.delete(id);
      renderTable();
    } catch (e) {
      clear(results, errorBox(e));
      total = 0;
    }
    syncButtons();
  };

  const renderTable = () => {
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    const pager = h(
      "div",
      { class: "pager" },
      h("button", { disabled: state.page <= 1, onClick: () => { state.page--; void load(); } }, "‹ Newer"),
      h("span", null, `page ${state.page} of ${pages} · ${total} dead letter${total === 1 ? "" : "s"}`),
      h("button", { disabled: state.page >= pages, onClick: () => { state.page++; void load(); } }, "Older ›"),
    );
    if (!rows.length) {
      clear(results, h("p", { class: "empty" }, "No dead letters: every event that ran out of tries has been resent, or none has."), pager);
      return;
    }
    const all = h("input", { type: "checkbox", "aria-label": "select all on this page", checked: rows.every((r) => selected.has(r.nodeId)) });
    all.onchange = () => {
      for (const r of rows) all.checked ? selected.add(r.nodeId) : selected.delete(r.nodeId);
      renderTable();
      syncButtons();
    };
    clear(
      results,
      h(
        "table",
        { class: "grid log dead-letters" },
        h("thead", null, h("tr", null, h("th", null, all), ["created (app time)", "listener", "sender", "status", "attempt", "error", "last try", "request"].map((c) => h("th", null, c)))),
        h(
          "tbody",
          null,
          rows.map((r) => {
            const box = h("input", { type: "checkbox", "aria-label": `select ${r.nodeId}`, checked: selected.has(r.nodeId) });
            box.onchange = () => {
              box.checked ? selected.add(r.nodeId) : selected.delete(r.nodeId);
              all.checked = rows.every((x) => selected.has(x.nodeId));
              syncButtons();
            };
            return h(
              "tr",
              { "data-node": r.nodeId },
              h("td", null, box),
              h("td", { class: "nowrap" }, r.createdAt),
              h("td", null, h("a", { href: `#/elements/${encodeURIComponent(r.fullName)}`, class: "mono" }, r.fullName)),
              h("td", { class: "small" }, r.sender || "—"),
              h("td", null, statusBadge(r.status, r.stage)),
              h("td", { class: "num" }, r.attempt),
              h("td", { class: "small" }, r.error ? h("span", null, h("b", null, r.error.code), ": ", r.error.message) : "—"),
              h("td", { class: "nowrap small" }, r.endTime ?? r.recordedAt),
              h("td", null, h("a", { href: `#/events/requests/${encodeURIComponent(r.requestId)}`, class: "mono", "data-request": r.requestId }, r.requestId)),
            );
          }),
        ),
      ),
      pager,
    );
  };

  // After a resend the nodes run again: reload once they have had a moment to.
  const reloadSoon = () => window.setTimeout(() => void load(), 1000);

  resendSel.onclick = async () => {
    const ids = [...selected];
    resendSel.disabled = true;
    const lines: HTMLElement[] = [];
    let ok = 0;
    for (const id of ids) {
      try {
        const res = await post<{ nodeId: string; attempt: number }>(`/api/nodes/${encodeURIComponent(id)}/resend`);
        ok++;
        lines.push(h("li", { "data-node": id }, h("span", { class: "mono" }, id), ` resent as attempt ${res.attempt}`));
      } catch (e) {
        lines.push(h("li", { class: "bad", "data-node": id }, h("span", { class: "mono" }, id), `: ${e instanceof Error ? e.message : String(e)}`));
      }
    }
    selected.clear();
    clear(out, h("p", null, `Resent ${ok} of ${ids.length} selected.`), h("ul", { class: "small" }, lines));
    reloadSoon();
  };

  resendAll.onclick = async () => {
    const q = query();
    if (!window.confirm(`Resend every dead letter${state.fullName ? ` of ${state.fullName}` : ""} (${total})?`)) return;
    resendAll.disabled = true;
    try {
      // status=fail is the bulk resend's default; stage narrows it to the dead letters.
      const res = await post<BulkResult>("/api/events/resend", undefined, q);
      clear(
        out,
        h("p", null, `Resent ${res.resent.length}`, res.skipped.length ? `, skipped ${res.skipped.length}` : "", res.truncated ? " (more matched than one resend takes: run it again)" : "", "."),
        res.skipped.length ? h("ul", { class: "small" }, res.skipped.map((s) => h("li", { class: "bad" }, h("span", { class: "mono" }, s.nodeId), `: ${s.reason}`))) : null,
      );
    } catch (e) {
      clear(out, errorBox(e));
    }
    reloadSoon();
  };

  get<Array<{ fullName: string; layer: string; type: string }>>("/api/elements")
    .then((els) => names.append(...els.filter((e) => e.layer === "instance" && e.fullName.startsWith("events.")).map((e) => h("option", { value: e.fullName }))))
    .catch(() => {});

  const form = h(
    "form",
    {
      class: "filters",
      onSubmit: (ev: Event) => {
        ev.preventDefault();
        state.page = 1;
        selected.clear();
        void load();
      },
    },
    h("label", null, "Listener ", fullName, names),
    h("button", { type: "submit" }, "Search"),
    h("button", { type: "button", onClick: () => void load() }, "Refresh"),
    h("span", { class: "spacer" }),
    resendSel,
    resendAll,
  );
  clear(
    root,
    h(
      "div",
      { class: "page" },
      h("h2", null, "Dead letters"),
      h("p", { class: "muted small" }, "Event nodes whose last try failed with no retry left (fail · deadLettered). A resend runs the node again as its next attempt, with the same event id and kwargs."),
      form,
      out,
      results,
    ),
  );
  await load();
}
