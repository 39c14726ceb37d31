// The task console: templates, task records with forcedEnd, and creating a timer task.

import { get, post } from "./api";
import { clear, errorBox, h, pre, statusBadge } from "./dom";
import type { ElementDetail, Page, TaskRecord, TaskTemplate } from "./types";

const PAGE_SIZE = 25;
let page = 1;
let statusFilter = "";
let templateFilter = "";
let templateNames: string[] = [];

export async function tasksPage(root: HTMLElement): Promise<void> {
  const templatesBox = h("div");
  const recordsBox = h("div");
  const createBox = h("div");
  clear(
    root,
    h(
      "div",
      { class: "page" },
      h("h2", null, "Tasks"),
      h("section", null, h("h3", null, "Templates"), templatesBox),
      h("section", null, h("h3", null, "Create a timer task"), createBox),
      h("section", null, h("h3", null, "Task records"), recordsBox),
    ),
  );
  const loadRecords = () => records(recordsBox);
  let templates: TaskTemplate[] = [];
  const loadTemplates = async (): Promise<void> => {
    try {
      templates = await get<TaskTemplate[]>("/api/tasks/templates");
      templateNames = templates.map((t) => t.fullName);
      clear(templatesBox, templatesTable(templates, loadTemplates, loadRecords));
    } catch (e) {
      clear(templatesBox, errorBox(e));
    }
  };
  await loadTemplates();
  clear(createBox, createForm(templates, loadRecords));
  await loadRecords();
}

// templatesTable lists the templates with their schedule and next tick, an enabled switch (an
// edit of the template's e.json, hot-reloaded) and "Run now" (a task due at once).
function templatesTable(templates: TaskTemplate[], reload: () => Promise<void>, reloadRecords: () => Promise<void>): HTMLElement {
  if (!templates.length) return h("p", { class: "empty" }, "This app has no task templates.");
  return h(
    "table",
    { class: "grid templates" },
    h("thead", null, h("tr", null, ["template", "title", "schedule", "next run", "enabled", ""].map((c) => h("th", null, c)))),
    h(
      "tbody",
      null,
      templates.map((t) => {
        const msg = h("span", { class: "small", role: "status" });
        const act = async (ev: Event, op: "enable" | "disable" | "run", confirmText?: string) => {
          if (confirmText && !confirm(confirmText)) return;
          const btn = ev.target as HTMLButtonElement;
          btn.disabled = true;
          try {
            const res = await post<TaskRecord & TaskTemplate>(`/api/tasks/templates/${encodeURIComponent(t.fullName)}/${op}`);
            if (op === "run") {
              msg.textContent = "";
              msg.append("started ", h("span", { class: "mono", "data-task": res.taskId }, res.taskId));
              page = 1;
              await reloadRecords();
            } else await reload();
          } catch (e) {
            msg.textContent = e instanceof Error ? e.message : String(e);
          } finally {
            btn.disabled = false;
          }
        };
        const known = t.enabled !== undefined;
        const toggle = known
          ? h(
              "button",
              {
                "data-action": t.enabled ? "disable" : "enable",
                title: t.enabled ? "stop its ticks: sets \"enabled\": false in its e.json" : "let it tick: sets \"enabled\": true in its e.json",
                onClick: (ev: Event) => void act(ev, t.enabled ? "disable" : "enable"),
              },
              t.enabled ? "Disable" : "Enable",
            )
          : null;
        return h(
          "tr",
          { "data-template": t.fullName, class: t.enabled === false ? "disabled" : "" },
          h("td", null, h("a", { href: `#/elements/${encodeURIComponent(t.fullName)}` }, t.fullName)),
          h("td", null, t.title),
          h("td", null, t.schedule || t.repeatType || "—", t.funcName ? h("div", { class: "muted small" }, `runs ${t.funcName}()`) : null),
          h("td", { class: "nowrap", "data-field": "nextFireTime" }, t.nextFireTime || (t.enabled === false ? "off" : "—")),
          h("td", null, known ? h("span", { class: `badge ${t.enabled ? "status-success" : "status-forcedEnd"}`, "data-enabled": String(t.enabled) }, t.enabled ? "on" : "off") : "—"),
          h(
            "td",
            { class: "nowrap" },
            h(
              "button",
              {
                "data-action": "run-now",
                disabled: !t.funcName,
                title: t.funcName ? `make a task of it due now, calling ${t.funcName} with the template's argDict` : "the template names no funcName",
                onClick: (ev: Event) => void act(ev, "run", `Run ${t.fullName} now?`),
              },
              "Run now",
            ),
            " ",
            toggle,
            " ",
            msg,
          ),
        );
      }),
    ),
  );
}

function createForm(templates: TaskTemplate[], done: () => Promise<void>): HTMLElement {
  const tmpl = h("select", { name: "fullName" }, templates.map((t) => h("option", { value: t.fullName }, t.fullName)));
  const funcName = h("input", { name: "funcName", placeholder: "run", required: true });
  const taskType = h("input", { name: "taskType", value: templates[0]?.taskType ?? "tasks.NormalType" });
  const soon = new Date(Date.now() + 3600_000);
  soon.setSeconds(0, 0);
  const local = new Date(soon.getTime() - soon.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  const start = h("input", { type: "datetime-local", name: "startTime", value: local, required: true });
  const argDict = h("textarea", { name: "argDict", rows: 3, spellcheck: "false" }, "{}");
  const out = h("div", { role: "status" });
  const fill = async () => {
    const t = templates.find((x) => x.fullName === tmpl.value);
    if (t) taskType.value = t.taskType;
    try {
      const el = await get<ElementDetail>(`/api/elements/${encodeURIComponent(tmpl.value)}`);
      if (typeof el.resolved?.funcName === "string") funcName.value = el.resolved.funcName;
    } catch {
      /* the user types it */
    }
  };
  tmpl.addEventListener("change", () => void fill());
  if (templates.length) void fill();
  return h(
    "form",
    {
      class: "stack task-form",
      onSubmit: async (ev: Event) => {
        ev.preventDefault();
        let args: unknown;
        try {
          args = JSON.parse(argDict.value || "{}");
        } catch (e) {
          clear(out, errorBox("argDict: " + (e as Error).message));
          return;
        }
        const when = new Date(start.value);
        if (Number.isNaN(when.getTime())) {
          clear(out, errorBox("start time: pick a date and time"));
          return;
        }
        try {
          const rec = await post<TaskRecord>("/api/tasks", {
            fullName: tmpl.value,
            funcName: funcName.value.trim(),
            taskType: taskType.value.trim(),
            startTime: when.toISOString(),
            argDict: args,
          });
          clear(out, h("p", null, "Created ", h("span", { class: "mono", "data-task": rec.taskId }, rec.taskId), ", due ", rec.startTime, "."));
          page = 1;
          await done();
        } catch (e) {
          clear(out, errorBox(e));
        }
      },
    },
    h("label", null, "Template ", tmpl),
    h("label", null, "Function ", funcName),
    h("label", null, "Task type ", taskType),
    h("label", null, "Start time ", start),
    h("label", null, "argDict (JSON) ", argDict),
    h("button", { type: "submit", class: "primary", disabled: !templates.length }, "Create task"),
    out,
  );
}

async function records(box: HTMLElement): Promise<void> {
  const status = h(
    "select",
    { "aria-label": "status", onChange: (ev: Event) => { statusFilter = (ev.target as HTMLSelectElement).value; page = 1; void records(box); } },
    ["", "waiting", "paused", "running", "success", "fail", "forcedEnd"].map((s) => h("option", { value: s }, s || "any status")),
  );
  status.value = statusFilter;
  const tmpl = h(
    "select",
    { "aria-label": "template", name: "templateFilter", onChange: (ev: Event) => { templateFilter = (ev.target as HTMLSelectElement).value; page = 1; void records(box); } },
    ["", ...templateNames].map((t) => h("option", { value: t }, t || "any template")),
  );
  tmpl.value = templateFilter;
  let res: Page<TaskRecord>;
  try {
    res = await get<Page<TaskRecord>>("/api/tasks", { fullName: templateFilter, status: statusFilter, page, pageSize: PAGE_SIZE });
  } catch (e) {
    clear(box, status, errorBox(e));
    return;
  }
  const pages = Math.max(1, Math.ceil(res.totalCount / PAGE_SIZE));
  const detail = h("div");
  clear(
    box,
    h("div", { class: "filters" }, h("label", null, "Template ", tmpl), h("label", null, "Status ", status), h("button", { onClick: () => void records(box) }, "Refresh")),
    res.rowDatas.length
      ? h(
          "table",
          { class: "grid tasks" },
          h("thead", null, h("tr", null, ["task", "template", "function", "due", "status", "attempt", "host", "request", ""].map((c) => h("th", null, c)))),
          h(
            "tbody",
            null,
            res.rowDatas.map((t) => {
              const msg = h("span", { class: "small" });
              const open = t.status === "waiting" || t.status === "paused" || t.status === "running";
              return h(
                "tr",
                { "data-task": t.taskId },
                h("td", { class: "mono small" }, h("button", { class: "link", onClick: () => clear(detail, h("h4", null, t.taskId), pre(t)) }, t.taskId)),
                h("td", null, t.fullName),
                h("td", null, t.funcName),
                h("td", { class: "nowrap" }, t.startTime),
                h("td", null, statusBadge(t.status)),
                h("td", { class: "num" }, t.attempt),
                h("td", { class: "mono small" }, t.host || "—"),
                h("td", null, t.requestId ? h("a", { href: `#/events/requests/${encodeURIComponent(t.requestId)}`, class: "mono small" }, t.requestId) : "—"),
                h(
                  "td",
                  null,
                  h(
                    "button",
                    {
                      disabled: !open,
                      "data-action": "forcedEnd",
                      title: open ? "stop it: its status becomes forcedEnd" : "already finished",
                      onClick: async (ev: Event) => {
                        if (!confirm(`Force-end ${t.taskId}?`)) return;
                        (ev.target as HTMLButtonElement).disabled = true;
                        try {
                          await post(`/api/tasks/${encodeURIComponent(t.taskId)}/forcedEnd`);
                          await records(box);
                        } catch (e) {
                          msg.textContent = e instanceof Error ? e.message : String(e);
                        }
                      },
                    },
                    "Force end",
                  ),
                  msg,
                ),
              );
            }),
          ),
        )
      : h("p", { class: "empty" }, "No task records."),
    h(
      "div",
      { class: "pager" },
      h("button", { disabled: page <= 1, onClick: () => { page--; void records(box); } }, "‹ Newer"),
      h("span", null, `page ${page} of ${pages} · ${res.totalCount} task${res.totalCount === 1 ? "" : "s"}`),
      h("button", { disabled: page >= pages, onClick: () => { page++; void records(box); } }, "Older ›"),
    ),
    detail,
  );
}
