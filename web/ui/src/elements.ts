// The element editor: a tree of the app's elements by kind, and one element's e.json and code in
// CodeMirror with its problems at their line and column, checked by the host as you type
// (POST /api/elements/{fullName}/check). Saving, test runs and replays of logged nodes use
// PUT /api/elements/{fullName}, POST /api/elements/{fullName}/run and
// POST /api/nodes/{nodeId}/replay when the host has them.

import { ApiError, api, get, withQuery } from "./api";
// CodeMirror loads with the first element opened, not with the login page.
import type { CodeEditor, Marker } from "./code";
import { badge, clear, errorBox, h, json, pre, statusBadge } from "./dom";
import { features } from "./features";
import { jsonForm, type JsonForm } from "./form";
import type { ElementDetail, ElementSummary, LogEntry, LogRow, Page, Problem } from "./types";

// How long after the last edit the draft is checked.
const CHECK_MS = 400;

const KINDS = ["services", "events", "tasks", "models", "signals", "commons"] as const;
const KIND_TITLES: Record<string, string> = {
  services: "Services",
  events: "Events",
  tasks: "Tasks",
  models: "Models",
  signals: "Signals",
  commons: "Commons",
  other: "Other",
};

const ORIGIN: Record<string, [string, string]> = {
  app: ["own", "origin-own"],
  parent: ["inherited", "origin-inherited"],
  builtin: ["built-in", "origin-builtin"],
};

export function originBadges(el: ElementSummary): HTMLElement[] {
  const [label, cls] = ORIGIN[el.origin] ?? [el.origin, ""];
  const out = [badge(el.layer, `layer layer-${el.layer}`), badge(label, cls)];
  if (el.overrides) {
    const what = ORIGIN[el.overrides]?.[0] ?? el.overrides;
    out.push(h("span", { class: "badge origin-overridden", title: `replaces the ${what} element of the same name` }, `overrides ${what}`));
  }
  return out;
}

function kindOf(fullName: string): string {
  const k = fullName.split(".")[0];
  return (KINDS as readonly string[]).includes(k) ? k : "other";
}

// The open editors of the element on screen.
let openEditors: CodeEditor[] = [];

// The page's layout is kept while moving between elements, and the tree (read again each time:
// hot reload may have changed the app) keeps its scroll position and filter.
let layout: { split: HTMLElement; tree: HTMLElement; detail: HTMLElement; list: ElementSummary[] | null } | null = null;
let currentName: string | undefined;
// Each opening of the page is numbered: a tree whose list arrives after a newer opening's was
// asked for is not drawn (it would put an older app over a newer one).
let openings = 0;

// What the address may ask of the editor: replay is a logged node to replay the draft on.
export interface EditorOptions {
  replay?: string;
}

export async function elementsPage(root: HTMLElement, fullName: string | undefined, newElement = false, opts: EditorOptions = {}): Promise<void> {
  currentName = fullName;
  let l = layout;
  if (!l || !root.contains(l.split)) {
    const tree = h("nav", { class: "tree", "aria-label": "Elements" });
    const detail = h("section", { class: "detail" });
    const split = h("div", { class: "split" }, tree, detail);
    clear(root, split);
    l = layout = { split, tree, detail, list: null };
  }
  const scroll = l.tree.scrollTop;
  const opening = ++openings;
  const list = await renderTree(l.tree, () => opening === openings);
  if (opening !== openings) return; // a newer opening draws the page
  l.list = list;
  l.tree.scrollTop = scroll;
  const detail = l.detail;
  if (newElement) await renderNew(detail, l.list ?? []);
  else if (fullName) await renderElement(detail, fullName, undefined, opts);
  else
    clear(
      detail,
      h("div", { class: "empty" }, h("h2", null, "Elements"), h("p", null, "Pick an element on the left to read its definition and code.")),
    );
}

let showBuiltins = false;
let filterText = "";

async function renderTree(tree: HTMLElement, current: () => boolean): Promise<ElementSummary[] | null> {
  let list: ElementSummary[];
  try {
    list = await get<ElementSummary[]>("/api/elements");
  } catch (e) {
    if (current()) clear(tree, errorBox(e));
    return null;
  }
  if (!current()) return null;
  const body = h("div", { class: "tree-body" });
  const filter = h("input", {
    type: "search",
    placeholder: "Filter elements",
    value: filterText,
    "aria-label": "Filter elements",
    onInput: (ev: Event) => {
      filterText = (ev.target as HTMLInputElement).value;
      draw();
    },
  });
  const builtins = h("input", {
    type: "checkbox",
    checked: showBuiltins,
    onChange: (ev: Event) => {
      showBuiltins = (ev.target as HTMLInputElement).checked;
      draw();
    },
  });
  const draw = () => {
    const f = filterText.toLowerCase();
    const groups = new Map<string, ElementSummary[]>();
    for (const k of [...KINDS, "other"]) groups.set(k, []);
    for (const el of list) {
      if (!showBuiltins && el.origin === "builtin" && el.fullName !== currentName) continue;
      if (f && !el.fullName.toLowerCase().includes(f) && !(el.title ?? "").toLowerCase().includes(f)) continue;
      groups.get(kindOf(el.fullName))!.push(el);
    }
    clear(
      body,
      [...groups].map(([kind, els]) => {
        if (kind === "other" && els.length === 0) return null;
        els.sort((a, b) => a.fullName.localeCompare(b.fullName));
        return h(
          "details",
          { class: "group", open: true, "data-kind": kind },
          h("summary", null, KIND_TITLES[kind], h("span", { class: "count" }, String(els.length))),
          els.length === 0
            ? h("div", { class: "muted small pad" }, kind === "commons" ? "plain modules are not elements" : "none")
            : h(
                "ul",
                null,
                els.map((el) =>
                  h(
                    "li",
                    { class: el.fullName === currentName ? "current" : "" },
                    h(
                      "a",
                      { href: `#/elements/${encodeURIComponent(el.fullName)}`, title: el.title, "data-element": el.fullName },
                      h("span", { class: "name" }, el.fullName.slice(kind === "other" ? 0 : kind.length + 1)),
                      h("span", { class: "badges" }, originBadges(el)),
                      el.problems ? h("span", { class: "count bad", title: el.brokenOnDisk ? "broken on disk" : "problems", "data-problems": String(el.problems) }, String(el.problems)) : null,
                    ),
                  ),
                ),
              ),
        );
      }),
    );
  };
  draw();
  const feats = await features().catch(() => null);
  clear(
    tree,
    h(
      "div",
      { class: "tree-head" },
      filter,
      h("label", { class: "small" }, builtins, " built-ins"),
      h(
        "a",
        {
          class: `button small${feats?.writeElements ? "" : " disabled"}`,
          href: feats?.writeElements ? "#/new-element" : undefined,
          title: feats?.writeElements ? "a new element of this app" : "PUT /api/elements is not on this host yet",
          "aria-disabled": feats?.writeElements ? undefined : "true",
          "data-action": "new",
        },
        "+ New",
      ),
    ),
    body,
  );
  return list;
}

// skeletons of a new element's files by the kind its Type is of.
function skeleton(fullName: string, type: string, title: string): Record<string, string> {
  const kind = type.split(".")[0];
  const def: Record<string, unknown> = { title: title || fullName.split(".").pop(), type };
  let js = "";
  if (kind === "services") {
    def.functionList = [{ name: "hello", title: "Say hello", args: [{ name: "name", type: "Stext" }] }];
    js = 'exports.hello = function (args) {\n  return {message: "Hello, " + ((args && args.name) || "world") + "!"};\n};\n';
  } else if (kind === "events") {
    def.sender = "services.GreetingSvc";
    js = "// handle(event, ctx): event has sender, eventType, kwargs, requestId, nodeId, attempt.\nexports.handle = function (event, ctx) {\n  console.log(\"got\", JSON.stringify(event.kwargs));\n};\n";
  } else if (kind === "tasks") {
    Object.assign(def, { repeatType: "cron", cron: "0 8 * * *", timezone: "UTC", funcName: "run" });
    js = "exports.run = function (argDict, ctx) {\n  console.log(\"run\", JSON.stringify(argDict));\n};\n";
  } else if (kind === "models") {
    def.fields = [
      { name: "id", title: "ID", type: "AutoInt" },
      { name: "title", title: "Title", type: "Stext" },
    ];
  } else if (kind === "signals") {
    js = "exports.receive = function (eventType, data) {\n};\n";
  }
  const files: Record<string, string> = { "e.json": JSON.stringify(def, null, 2) + "\n" };
  if (js) files["index.js"] = js;
  return files;
}

async function renderNew(detail: HTMLElement, list: ElementSummary[]): Promise<void> {
  const types = list.filter((e) => e.layer === "type").map((e) => e.fullName).sort();
  const type = h("select", { name: "type" }, types.map((t) => h("option", { value: t }, t)));
  const name = h("input", { name: "fullName", placeholder: "services.BillingSvc", required: true, pattern: "[A-Za-z0-9_$]+(\\.[A-Za-z0-9_$]+)+" });
  const title = h("input", { name: "title", placeholder: "optional" });
  const out = h("div");
  type.addEventListener("change", () => {
    if (!name.value || name.dataset.auto === "1") {
      name.value = type.value.split(".")[0] + ".";
      name.dataset.auto = "1";
    }
  });
  name.addEventListener("input", () => delete name.dataset.auto);
  type.value = types.includes("services.NormalType") ? "services.NormalType" : types[0] ?? "";
  clear(
    detail,
    h("h2", null, "New element"),
    h(
      "form",
      {
        class: "stack new-element",
        onSubmit: (ev: Event) => {
          ev.preventDefault();
          const fullName = name.value.trim();
          if (list.some((e) => e.fullName === fullName && e.origin === "app")) {
            clear(out, errorBox(`${fullName} already exists in this app.`));
            return;
          }
          const files = skeleton(fullName, type.value, title.value.trim());
          void renderElement(detail, fullName, {
            fullName,
            title: title.value.trim(),
            type: type.value,
            layer: "instance",
            origin: "app",
            definition: JSON.parse(files["e.json"]),
            resolved: JSON.parse(files["e.json"]),
            files,
            errors: [],
          });
        },
      },
      h("label", null, "Type ", type),
      h("label", null, "fullName (its directory: dots become slashes) ", name),
      h("label", null, "Title ", title),
      h("button", { type: "submit", class: "primary" }, "Open a draft"),
      h("p", { class: "muted small" }, "The draft is written to the app directory when you save it, after the host validated the whole app with it."),
      out,
    ),
  );
  name.value = type.value.split(".")[0] + ".";
  name.dataset.auto = "1";
}

// isIn says whether a problem is about the element's file (file: relative to the element). A
// problem names its file from the app root ("services/X/index.js"), from an extended app
// ("../base/services/X/index.js") or as a built-in ("builtin:services/X/index.js"); a draft's
// check also lists the problems it causes in other elements, which are not this one's.
function isIn(fullName: string, file: string, p: Problem): boolean {
  if (!p.file) return false;
  if (p.element && p.element !== fullName) return false;
  if (p.file === file) return true;
  const rel = `${fullName.split(".").join("/")}/${file}`;
  return p.file === rel || p.file.endsWith("/" + rel) || p.file.endsWith(":" + rel);
}

function problemsFor(fullName: string, file: string, errors: Problem[]): Marker[] {
  return errors.filter((p) => isIn(fullName, file, p)).map((p) => ({ line: p.line, column: p.column, message: p.message, code: p.code }));
}

function problemList(fullName: string, errors: Problem[], reveal: (p: Problem) => void): HTMLElement | null {
  if (!errors.length) return null;
  return h(
    "div",
    { class: "problems", role: "alert" },
    h("h3", null, `${errors.length} problem${errors.length > 1 ? "s" : ""}`),
    h(
      "ul",
      null,
      errors.map((p) =>
        h(
          "li",
          null,
          // A problem of another element (one the draft breaks) links to that element.
          p.element && p.element !== fullName
            ? h(
                "a",
                { href: `#/elements/${encodeURIComponent(p.element)}`, "data-problem": p.code, title: `a problem of ${p.element}` },
                `${p.file ?? p.element}${p.line ? `:${p.line}:${p.column ?? 1}` : ""}`,
              )
            : h(
                "button",
                { class: "link", onClick: () => reveal(p), "data-problem": p.code },
                `${p.file ?? "(app)"}${p.line ? `:${p.line}:${p.column ?? 1}` : ""}`,
              ),
          " ",
          h("code", null, p.code),
          " ",
          p.message,
        ),
      ),
    ),
  );
}

// problemsOf finds the problems in a 422's details, whatever key the host puts them under.
function problemsOf(details: unknown): Problem[] {
  if (Array.isArray(details)) return details as Problem[];
  if (details && typeof details === "object") {
    for (const k of ["problems", "errors"]) {
      const v = (details as Record<string, unknown>)[k];
      if (Array.isArray(v)) return v as Problem[];
    }
  }
  return [];
}

async function renderElement(detail: HTMLElement, fullName: string, draftOf?: ElementDetail, opts: EditorOptions = {}): Promise<void> {
  for (const e of openEditors) e.destroy();
  openEditors = [];
  clear(detail, h("p", { class: "muted" }, "Loading ", fullName, "…"));
  let el: ElementDetail;
  const isNew = !!draftOf;
  if (draftOf) el = draftOf;
  else
    try {
      el = await get<ElementDetail>(`/api/elements/${encodeURIComponent(fullName)}`);
    } catch (e) {
      clear(detail, h("h2", null, fullName), errorBox(e));
      return;
    }
  const [feats, { CodeEditor }] = await Promise.all([
    features().catch(() => ({ writeElements: false, testRun: false, replay: false, check: false, openapi: false })),
    import("./code"),
  ]);
  const writable = feats.writeElements && el.origin === "app";
  let version = el.version;

  const names = Object.keys(el.files ?? {}).sort((a, b) => (a === "e.json" ? -1 : b === "e.json" ? 1 : a.localeCompare(b)));
  if (!names.includes("e.json")) names.unshift("e.json");
  const texts: Record<string, string> = { ...el.files };
  if (texts["e.json"] === undefined) texts["e.json"] = json(el.definition) + "\n";

  const status = h("span", { class: "save-status", role: "status" });
  const staleNote = (el.errors ?? []).length
    ? h(
        "p",
        { class: "stale-note small", "data-testid": "last-good-note" },
        el.brokenOnDisk && !el.running
          ? "This new element is broken on disk, so the host does not run it yet. The text shown here is the files on disk, with their problems at their line and column"
          : "The files on disk have problems, so the host keeps running the last good version of this element. The text shown here is the files on disk, with their problems at their line and column",
        writable ? ": fix them here and save, or fix the files and reload." : ": fix the files and reload.",
        el.running
          ? h("details", { class: "running" }, h("summary", null, "the running version"), Object.entries(el.running.files ?? {}).map(([n, t]) => h("div", null, h("strong", null, n), h("pre", { class: "json" }, t))))
          : null,
      )
    : null;
  const saveBtn = h("button", { class: "primary", disabled: true, "data-action": "save" }, "Save") as HTMLButtonElement;
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const panes = h("div", { class: "editor-panes" });
  const problemsBox = h("div");
  const conflictBox = h("div");
  // What the host's check of the draft in the editor says, as you type.
  const checkStatus = h("span", { class: "check-status", role: "status", "data-testid": "check-status" });
  const editors = new Map<string, CodeEditor>();
  let form: JsonForm | null = null;
  let dirty = false;

  // Validation as you type: CHECK_MS after the last edit the draft goes to the host's check
  // (the same validation as a save, nothing written) and its problems replace those shown.
  // Each edit or save starts a new generation: an answer about an older text is dropped.
  const checking = writable && feats.check;
  let checkGen = 0;
  let checkTimer: number | undefined;
  const setCheckStatus = (text: string, cls = "") => {
    checkStatus.textContent = text;
    checkStatus.className = `check-status${cls ? " " + cls : ""}`;
  };
  const cancelCheck = () => {
    window.clearTimeout(checkTimer);
    checkTimer = undefined;
    checkGen++;
  };
  const runCheck = async (gen: number) => {
    // The page keeps its layout between elements: this element's boxes leave it when another
    // element opens (and its editors are destroyed), and its checks stop counting.
    if (!problemsBox.isConnected || !editors.has("e.json")) return;
    setCheckStatus("checking…");
    try {
      const res = await api<{ problems: Problem[] }>("POST", `/api/elements/${encodeURIComponent(fullName)}/check`, draft());
      if (gen !== checkGen || !problemsBox.isConnected) return;
      const ps = res?.problems ?? [];
      applyProblems(ps);
      setCheckStatus(ps.length ? `${ps.length} problem${ps.length === 1 ? "" : "s"}` : "no problems", ps.length ? "bad" : "ok");
    } catch (e) {
      if (gen !== checkGen) return;
      setCheckStatus(`not checked: ${e instanceof Error ? e.message : String(e)}`, "bad");
    }
  };
  function scheduleCheck(): void {
    if (!checking) return;
    cancelCheck();
    const gen = checkGen;
    setCheckStatus("checking…");
    checkTimer = window.setTimeout(() => void runCheck(gen), CHECK_MS);
  }

  const showTab = (name: string) => {
    for (const b of tabs.querySelectorAll("button")) {
      b.classList.toggle("active", b.dataset.file === name);
      b.setAttribute("aria-selected", String(b.dataset.file === name));
    }
    for (const p of panes.children) (p as HTMLElement).hidden = (p as HTMLElement).dataset.file !== name;
  };

  const applyProblems = (errors: Problem[]) => {
    for (const [name, ed] of editors) ed.setMarkers(problemsFor(fullName, name, errors));
    form?.setProblems(errors.filter((p) => isIn(fullName, "e.json", p)));
    for (const b of tabs.querySelectorAll<HTMLButtonElement>("button")) {
      const n = problemsFor(fullName, b.dataset.file!, errors).length;
      b.querySelector(".count")?.remove();
      if (n) b.append(h("span", { class: "count bad" }, String(n)));
    }
    clear(
      problemsBox,
      problemList(fullName, errors, (p) => {
        const name = names.find((n) => isIn(fullName, n, p));
        if (!name) return;
        showTab(name);
        editors.get(name)?.reveal(p.line, p.column);
      }),
    );
  };

  for (const name of names) {
    tabs.append(h("button", { role: "tab", "data-file": name, onClick: () => showTab(name) }, name));
    const pane = h("div", { class: "editor-pane", "data-file": name });
    panes.append(pane);
    // e.json is a form built from its type's schema beside the raw JSON, kept in sync.
    let host: HTMLElement = pane;
    if (name === "e.json" && el.schema) {
      host = h("div", { class: "raw-json" });
      pane.classList.add("form-split");
      pane.append(host);
    }
    const ed = new CodeEditor(host, name, texts[name] ?? "", {
      readOnly: !writable,
      onChange: () => {
        if (name === "e.json") form?.refresh();
        dirty = true;
        saveBtn.disabled = false;
        status.textContent = "unsaved changes";
        status.className = "save-status";
        // Every edit, in the code or through the e.json form (which writes the raw JSON), is
        // checked by the host a moment after the typing stops.
        scheduleCheck();
      },
    });
    editors.set(name, ed);
    openEditors.push(ed);
    if (name === "e.json" && el.schema) {
      form = jsonForm(el.schema, () => ed.text, (t) => ed.setText(t), !writable);
      pane.prepend(form.el);
    }
  }
  const resolvedPane = h("div", { class: "editor-pane", "data-file": "(resolved)" }, pre(el.resolved));
  tabs.append(h("button", { role: "tab", "data-file": "(resolved)", title: "with defaults and inherited values", onClick: () => showTab("(resolved)") }, "resolved"));
  panes.append(resolvedPane);

  const draft = () => {
    const files: Record<string, string> = {};
    for (const [name, ed] of editors) if (name !== "e.json") files[name] = ed.text;
    return { definition: editors.get("e.json")!.text, files };
  };


  const save = async (force = false) => {
    // The save validates the same text: a check still to come or on its way is dropped.
    cancelCheck();
    setCheckStatus("");
    conflictBox.replaceChildren();
    saveBtn.disabled = true;
    status.textContent = "saving…";
    status.className = "save-status";
    try {
      const res = await api<{ version?: string; created?: boolean; current?: boolean } | null>(
        "PUT",
        `/api/elements/${encodeURIComponent(fullName)}${force ? "?force=true" : ""}`,
        { ...draft(), version },
      );
      dirty = false;
      version = res?.version ?? version;
      if (isNew) {
        location.hash = `#/elements/${encodeURIComponent(fullName)}`;
        return;
      }
      status.textContent = res?.current === false ? "saved (runs after a restart: no hot reload)" : "saved · running now";
      status.className = "save-status ok";
      staleNote?.remove();
      applyProblems([]);
      // The saved version is valid: the tree's count of its problems on disk is gone too.
      document.querySelector(`a[data-element="${CSS.escape(fullName)}"] [data-problems]`)?.remove();
    } catch (e) {
      saveBtn.disabled = false;
      status.className = "save-status bad";
      if (e instanceof ApiError && e.status === 422) {
        const ps = problemsOf(e.details);
        status.textContent = `not saved: ${ps.length || "some"} problem${ps.length === 1 ? "" : "s"}`;
        applyProblems(ps.length ? ps : [{ code: e.code, message: e.message }]);
        if (checking) setCheckStatus(`${ps.length || "some"} problem${ps.length === 1 ? "" : "s"}`, "bad");
      } else if (e instanceof ApiError && e.status === 409) {
        status.textContent = "not saved: conflict";
        applyProblems([]);
        const onDisk = (e.details as { version?: string } | undefined)?.version;
        clear(
          conflictBox,
          h(
            "div",
            { class: "conflict", role: "alert", "data-testid": "conflict" },
            h("strong", null, "Conflict: "),
            "this element changed on the host since you opened it (",
            e.message,
            "). Your edits are still in the editor. ",
            h("button", { onClick: () => void renderElement(detail, fullName) }, "Drop mine, load the version on disk"),
            " ",
            onDisk
              ? h(
                  "button",
                  {
                    onClick: () => {
                      version = onDisk;
                      void save();
                    },
                  },
                  "Overwrite it with mine",
                )
              : null,
          ),
        );
      } else {
        status.textContent = e instanceof Error ? e.message : String(e);
      }
    }
  };
  saveBtn.onclick = () => void save();
  detail.onkeydown = (ev: KeyboardEvent) => {
    if ((ev.ctrlKey || ev.metaKey) && ev.key === "s") {
      ev.preventDefault();
      if (!saveBtn.disabled) void save();
    }
  };

  const deleteBtn = h(
    "button",
    {
      class: "danger",
      "data-action": "delete",
      title: "remove this element's directory from the app",
      onClick: async () => {
        if (!confirm(`Delete ${fullName} from the app directory?${el.overrides ? " The element it overrides comes back." : ""}`)) return;
        status.textContent = "deleting…";
        try {
          await api("DELETE", withQuery(`/api/elements/${encodeURIComponent(fullName)}`, { version: version ?? "" }));
          location.hash = "#/elements";
        } catch (e) {
          status.className = "save-status bad";
          status.textContent = e instanceof ApiError && e.status === 409 ? `not deleted: ${e.message}` : e instanceof Error ? e.message : String(e);
        }
      },
    },
    "Delete",
  );
  const reload = h("button", { onClick: () => { if (!dirty || confirm("Drop your unsaved changes?")) void renderElement(detail, fullName); } }, "Reload");
  const writeNote = !feats.writeElements
    ? h("span", { class: "muted small", title: "PUT /api/elements/{fullName} answers 404 on this host" }, "Read-only: this host cannot save elements yet. Edit the app directory; hot reload picks the change up.")
    : el.origin !== "app"
      ? h("span", { class: "muted small" }, "Read-only: not an element of this app (override it in the app directory to change it).")
      : null;
  saveBtn.disabled = !(isNew && writable);
  if (!writable) saveBtn.title = feats.writeElements ? "not an element of this app" : "PUT /api/elements is not on this host yet";

  clear(
    detail,
    h(
      "header",
      { class: "detail-head" },
      h("div", null, h("h2", { "data-testid": "element-name" }, el.fullName), h("div", { class: "muted" }, el.title ?? "", el.type ? [" · type ", h("a", { href: `#/elements/${encodeURIComponent(el.type)}` }, el.type)] : "")),
      h("div", { class: "badges" }, originBadges(el)),
    ),
    h("div", { class: "toolbar" }, saveBtn, isNew ? h("span", { class: "badge origin-inherited" }, "new, not saved yet") : reload, writable && !isNew ? deleteBtn : null, status, checking ? checkStatus : null, writeNote),
    staleNote,
    conflictBox,
    problemsBox,
    tabs,
    panes,
    testRunPanel(el, { run: feats.testRun, replay: feats.replay }, draft, applyProblems, opts.replay),
  );
  applyProblems(el.errors ?? []);
  const firstBad = names.find((n) => problemsFor(fullName, n, el.errors ?? []).length);
  showTab(firstBad ?? (names.find((n) => n.endsWith(".js")) ? names.find((n) => n.endsWith(".js"))! : "e.json"));
}

type Draft = () => { definition: string; files: Record<string, string> };
type RunResult = Parameters<typeof runResult>[0];

function testRunPanel(
  el: ElementDetail,
  hostHas: { run: boolean; replay: boolean },
  draft: Draft,
  showProblems: (ps: Problem[]) => void,
  replayNode?: string,
): HTMLElement {
  const available = hostHas.run;
  const r = el.resolved ?? {};
  const fns = Array.isArray(r.functionList)
    ? (r.functionList as Array<{ name: string }>).map((f) => f.name)
    : typeof r.funcName === "string"
      ? [r.funcName]
      : typeof r.handler === "string"
        ? [r.handler]
        : [];
  // A list to pick from when the definition names the functions; any exported name may be typed.
  const listId = `fns-${el.fullName.replace(/\W/g, "-")}`;
  const fn = h("input", { name: "function", "aria-label": "function", list: listId, value: fns[0] ?? "", placeholder: "exported function", size: 18 });
  const fnList = h("datalist", { id: listId }, fns.map((f) => h("option", { value: f })));
  const what = el.fullName.startsWith("events.") ? "sample event kwargs" : el.fullName.startsWith("tasks.") ? "argDict" : "argument: an object, or an array of positional arguments";
  const args = h("textarea", { name: "args", rows: 3, spellcheck: "false", "aria-label": "arguments (JSON)" }, "{}");
  const out = h("div", { class: "run-output", "data-testid": "run-output" });
  const canRun = available && el.layer === "instance";
  const run = h("button", { class: "primary", disabled: !canRun, "data-action": "run" }, "Run draft") as HTMLButtonElement;
  run.onclick = async () => {
    let a: unknown;
    try {
      a = JSON.parse(args.value || "null");
    } catch (e) {
      clear(out, errorBox("arguments: " + (e as Error).message));
      return;
    }
    run.disabled = true;
    clear(out, h("p", { class: "muted" }, "running…"));
    try {
      const res = await api<{ result: unknown; logs: LogEntry[] | null; error: { code: string; message: string; details?: unknown } | null; durationMs: number }>(
        "POST",
        `/api/elements/${encodeURIComponent(el.fullName)}/run`,
        { ...draft(), ...(fn.value ? { function: fn.value } : {}), ...(a === null ? {} : { args: a }) },
      );
      clear(out, runResult(res));
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) {
        const ps = problemsOf(e.details);
        showProblems(ps);
        clear(out, errorBox(`The draft has ${ps.length} problem${ps.length === 1 ? "" : "s"} (shown in the editor); nothing ran.`));
      } else clear(out, errorBox(e), e instanceof ApiError && e.details ? pre(e.details) : null);
    } finally {
      run.disabled = false;
    }
  };
  const canReplay = hostHas.replay && el.layer === "instance";
  return h(
    "details",
    { class: `panel test-run${available ? "" : " disabled"}`, open: canRun || (canReplay && !!replayNode) },
    h("summary", null, "Test run", available ? h("span", { class: "muted small" }, " — runs the draft in the editor without saving it; writes no log rows (calls it makes are real)") : h("span", { class: "muted small" }, " — not on this host yet (POST /api/elements/{fullName}/run answers 404)")),
    canRun
      ? h("div", { class: "run-form" }, h("div", { class: "toolbar" }, h("label", null, "function ", fn, fnList), run), h("label", null, `${what} (JSON) `, args), out)
      : h("p", { class: "muted small" }, available ? "Only instances (services, listeners, task templates) run." : "A test run executes the draft in the editor without saving it. This host does not offer it yet."),
    canReplay ? replayPart(el, draft, showProblems, replayNode) : null,
  );
}

// replayPart replays the draft in the editor, saved or not, on a logged node's exact input
// (POST /api/nodes/{nodeId}/replay) and shows what was logged beside what the draft does. The
// node comes from the address (the node view's "Replay in editor"), is typed, or is picked
// among this element's recent failures.
function replayPart(el: ElementDetail, draft: Draft, showProblems: (ps: Problem[]) => void, nodeId?: string): HTMLElement {
  const node = h("input", { name: "replayNode", "aria-label": "node id", placeholder: "node id (node_…)", value: nodeId ?? "", size: 36, spellcheck: "false" });
  const btn = h("button", { class: "primary", "data-action": "replay-draft" }, "Replay draft") as HTMLButtonElement;
  const recent = h("div", { class: "recent-failures small", "data-testid": "recent-failures" });
  const out = h("div", { class: "run-output", "data-testid": "replay-output" });
  btn.onclick = async () => {
    const id = node.value.trim();
    if (!id) {
      clear(out, errorBox(`Give the id of a logged node of ${el.fullName}, or pick a recent failure.`));
      return;
    }
    btn.disabled = true;
    clear(out, h("p", { class: "muted" }, "replaying…"));
    try {
      // fullName: the host refuses a node of another element rather than run this draft as it.
      const res = await api<{ function: string; logged: { status: string; result: unknown; error: unknown }; draft: RunResult }>(
        "POST",
        `/api/nodes/${encodeURIComponent(id)}/replay`,
        { ...draft(), fullName: el.fullName },
      );
      clear(
        out,
        h(
          "div",
          { class: "cols replay", "data-testid": "replay" },
          h("div", { "data-side": "logged" }, h("h4", null, "logged"), h("p", { class: "small" }, statusBadge(res.logged.status), " ", h("span", { class: "mono" }, id)), pre(res.logged.error ?? res.logged.result)),
          h("div", { "data-side": "draft" }, h("h4", null, `draft in the editor: ${res.function}()`), runResult(res.draft)),
        ),
      );
    } catch (e) {
      if (e instanceof ApiError && e.status === 422 && e.code === "invalid_element") {
        const ps = problemsOf(e.details);
        showProblems(ps);
        clear(out, errorBox(`The draft has ${ps.length} problem${ps.length === 1 ? "" : "s"} (shown in the editor); nothing ran.`));
      } else clear(out, errorBox(e));
    } finally {
      btn.disabled = false;
    }
  };
  node.addEventListener("keydown", (ev: KeyboardEvent) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      btn.click();
    }
  });
  get<Page<LogRow>>("/api/events/logs", { fullName: el.fullName, status: "fail", pageSize: 5 })
    .then((page) => {
      const rows = page?.rowDatas ?? [];
      clear(
        recent,
        rows.length
          ? [
              h("span", { class: "muted" }, "Recent failures: "),
              h(
                "ul",
                null,
                rows.map((r) =>
                  h(
                    "li",
                    null,
                    h("button", { class: "link mono", "data-node": r.nodeId, title: "replay this node", onClick: () => { node.value = r.nodeId; btn.click(); } }, r.nodeId),
                    h("span", { class: "muted" }, ` ${r.createdAt}`),
                    r.error ? h("span", null, ` · ${r.error.code}: ${r.error.message.length > 90 ? r.error.message.slice(0, 90) + "…" : r.error.message}`) : null,
                  ),
                ),
              ),
            ]
          : h("span", { class: "muted" }, "No failed node of this element in the log."),
      );
    })
    .catch(() => clear(recent));
  const part = h(
    "div",
    { class: "replay-draft", "data-testid": "replay-draft" },
    h("h4", null, "Replay a logged node"),
    h("p", { class: "muted small" }, "Runs the draft in the editor, saved or not, on the exact input a node of this element was logged with, beside what was logged. Writes no log rows."),
    h("div", { class: "toolbar" }, h("label", null, "node ", node), btn),
    recent,
    out,
  );
  if (nodeId) window.setTimeout(() => part.scrollIntoView({ block: "center" }), 0);
  return part;
}

export function runResult(res: { result: unknown; logs: LogEntry[] | null; error: { code: string; message: string; details?: unknown } | null; durationMs: number }): HTMLElement {
  const logs = res.logs ?? [];
  return h(
    "div",
    { class: "run-result" },
    h("p", { class: "small" }, res.error ? h("span", { class: "badge status-fail" }, "failed") : h("span", { class: "badge status-success" }, "returned"), ` in ${res.durationMs} ms`),
    res.error
      ? h("div", { class: "error-box" }, h("b", null, res.error.code), ": ", res.error.message, res.error.details ? pre((res.error.details as { stack?: string }).stack ?? res.error.details, "stack") : null)
      : pre(res.result),
    logs.length ? h("div", { class: "console" }, logs.map((l) => h("div", { class: `log-line level-${l.level}` }, h("b", null, l.level), " ", l.message))) : null,
  );
}
