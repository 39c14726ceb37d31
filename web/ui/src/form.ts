// The e.json form: one input per field of the element's schema, as the registry serves it
// (GET /api/elements/{fullName}/schema). The form holds no rules of its own: it edits the raw
// JSON text, which stays the one source (the server validates it), and it is rebuilt from that
// text whenever the text changes, so the two stay in sync both ways. Numbers go through
// jsonexact.ts, so a value the user did not touch is written back as it was: an integer beyond
// 2^53 stays exact, as the host keeps it.

import { h, clear } from "./dom";
import { isNumber, numberFromInput, parseExact, stringifyExact } from "./jsonexact";
import type { ElementSchema, FieldSchema, Problem } from "./types";

export interface JsonForm {
  el: HTMLElement;
  // refresh reads the text again (after the raw editor changed it).
  refresh(): void;
  // setProblems shows problems of e.json at the fields they are about.
  setProblems(ps: Problem[]): void;
}

type Obj = Record<string, unknown>;

const show = (v: unknown) => (v === undefined ? "" : (stringifyExact(v, 0) ?? ""));
const pretty = (v: unknown) => stringifyExact(v, 2) ?? "";

// topLevelLines finds the line on which each top-level key of a JSON object text starts.
function topLevelLines(text: string): { key: string; line: number }[] {
  const out: { key: string; line: number }[] = [];
  let depth = 0;
  let line = 1;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\n") line++;
    else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (depth === 1 && expectKey) out.push({ key: JSON.parse(text.slice(i, j + 1)), line });
      expectKey = false;
      i = j;
    } else if (c === "{" || c === "[") {
      depth++;
      expectKey = depth === 1;
    } else if (c === "}" || c === "]") depth--;
    else if (c === "," && depth === 1) expectKey = true;
  }
  return out;
}

// fieldOf says which top-level field of the text a problem is about ("" for none).
export function fieldOf(text: string, p: Problem): string {
  const req = /required field "([^"]+)"/.exec(p.message);
  if (req) return req[1];
  if (!p.line) return "";
  let key = "";
  for (const k of topLevelLines(text)) if (k.line <= p.line) key = k.key;
  return key;
}

export function jsonForm(schema: ElementSchema, getText: () => string, setText: (t: string) => void, readOnly: boolean): JsonForm {
  const el = h("form", { class: "json-form", "data-testid": "json-form", onSubmit: (e: Event) => e.preventDefault() });
  const notes = new Map<string, HTMLElement>();
  const rows = new Map<string, HTMLElement>();
  let problems: Problem[] = [];

  const parse = (): Obj | null => {
    try {
      const v = parseExact(getText());
      return v && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : null;
    } catch {
      return null;
    }
  };
  // write sets (or, with undefined, removes) one key and writes the text back, keys in order.
  const write = (key: string, v: unknown) => {
    const obj = parse();
    if (!obj) return;
    if (v === undefined) delete obj[key];
    else obj[key] = v;
    setText(pretty(obj) + "\n");
  };

  const input = (key: string, f: FieldSchema, cur: unknown, inherited: unknown): HTMLElement => {
    const placeholder = inherited !== undefined ? `${show(inherited)} (from its Type)` : f.hasDefault ? `${show(f.default)} (default)` : "";
    const common = { name: key, "data-field": key, disabled: readOnly, title: placeholder };
    if (f.enum || f.type === "boolean") {
      const opts = f.enum ?? [true, false];
      return h(
        "select",
        {
          ...common,
          onChange: (e: Event) => {
            const i = (e.target as HTMLSelectElement).selectedIndex - 1;
            write(key, i < 0 ? undefined : opts[i]);
          },
        },
        h("option", { value: "" }, placeholder ? `— ${placeholder}` : "— unset"),
        opts.map((o) => h("option", { value: show(o), selected: cur !== undefined && show(cur) === show(o) }, typeof o === "string" ? o : show(o))),
      );
    }
    if (f.type === "integer" || f.type === "number") {
      return h("input", {
        ...common,
        type: "number",
        step: f.type === "integer" ? "1" : "any",
        min: f.minimum,
        max: f.maximum,
        value: isNumber(cur) ? String(cur) : "",
        placeholder,
        onChange: (e: Event) => {
          const s = (e.target as HTMLInputElement).value.trim();
          write(key, s === "" ? undefined : numberFromInput(s));
        },
      });
    }
    if (f.type === "array" && f.items && ["string", "duration", "element", "integer", "number"].includes(f.items.type) && (cur === undefined || Array.isArray(cur))) {
      // A list of scalars: one input per item.
      const items = (cur as unknown[] | undefined) ?? [];
      const num = f.items.type === "integer" || f.items.type === "number";
      const list = h("div", { class: "form-list", "data-field": key });
      const commit = () => {
        const vals = [...list.querySelectorAll<HTMLInputElement>("input")].map((i) => i.value.trim()).filter((s) => s !== "");
        write(key, vals.length || cur !== undefined ? vals.map((s) => (num ? numberFromInput(s) : s)) : undefined);
      };
      items.forEach((it, i) =>
        list.append(
          h(
            "div",
            { class: "form-list-item" },
            h("input", { type: num ? "number" : "text", value: typeof it === "string" ? it : show(it), disabled: readOnly, onChange: commit }),
            readOnly ? null : h("button", { type: "button", class: "small", title: "remove", onClick: () => write(key, items.filter((_, j) => j !== i)) }, "×"),
          ),
        ),
      );
      if (!readOnly) list.append(h("button", { type: "button", class: "small", onClick: () => write(key, [...items, num ? 0 : ""]) }, "+ item"));
      return list;
    }
    if (["object", "array", "any"].includes(f.type)) {
      // A small JSON editor for sub-objects: written back when it parses.
      const ta = h("textarea", {
        ...common,
        rows: cur === undefined ? 2 : Math.min(10, pretty(cur).split("\n").length),
        spellcheck: "false",
        placeholder,
        value: cur === undefined ? "" : pretty(cur),
        onChange: (e: Event) => {
          const t = e.target as HTMLTextAreaElement;
          const s = t.value.trim();
          if (s === "") return write(key, undefined);
          try {
            write(key, parseExact(s));
            t.classList.remove("bad");
          } catch (err) {
            t.classList.add("bad");
            t.title = `not JSON: ${err instanceof Error ? err.message : String(err)}`;
          }
        },
      });
      return ta;
    }
    // string, duration, cron, timezone, element
    return h("input", {
      ...common,
      type: "text",
      value: typeof cur === "string" ? cur : cur === undefined ? "" : show(cur),
      placeholder,
      list: undefined,
      onChange: (e: Event) => {
        const s = (e.target as HTMLInputElement).value;
        write(key, s === "" ? undefined : s);
      },
    });
  };

  const draw = () => {
    const obj = parse();
    notes.clear();
    rows.clear();
    if (!obj) {
      clear(el, h("p", { class: "muted small", "data-testid": "form-unparsable" }, "e.json is not a JSON object right now: fix it in the raw editor and the form comes back."));
      return;
    }
    const fieldRow = (key: string, f: FieldSchema, universal: boolean) => {
      const note = h("div", { class: "field-problem", role: "alert" });
      notes.set(key, note);
      const kind = f.enum ? "enum" : f.type + (f.items ? ` of ${f.items.type}` : "");
      const row = h(
        "div",
        { class: `form-row${universal ? " universal" : ""}`, "data-row": key },
        h("label", { for: `f-${key}` }, h("span", { class: "field-name" }, key), f.required ? h("span", { class: "req", title: "required" }, " *") : null, h("span", { class: "muted small" }, ` ${kind}`)),
        input(key, f, obj[key], schema.inherited?.[key]),
        f.description || f.title ? h("div", { class: "muted small" }, f.title ? `${f.title}. ` : "", f.description ?? "") : null,
        note,
      );
      const ctl = row.querySelector("[data-field]");
      ctl?.setAttribute("id", `f-${key}`);
      rows.set(key, row);
      return row;
    };
    const names = Object.keys(schema.fields).sort((a, b) => Number(!!schema.fields[b].required) - Number(!!schema.fields[a].required) || a.localeCompare(b));
    const unknown = Object.keys(obj).filter((k) => k !== "type" && !schema.fields[k] && !schema.universal[k]);
    clear(
      el,
      h("div", { class: "form-head muted small" }, `Fields of ${schema.layer === "instance" ? "an instance" : schema.layer === "type" ? "a Type" : "a Meta"}, from its type's schema. Empty means default.`),
      names.length ? names.map((k) => fieldRow(k, schema.fields[k], false)) : h("p", { class: "muted small" }, "Its type declares no fields."),
      h("h4", null, "Every element"),
      ["title", "description", "entry", "native", "schema", "loader"].filter((k) => schema.universal[k]).map((k) => fieldRow(k, schema.universal[k], true)),
      unknown.length ? h("p", { class: "field-problem", "data-testid": "unknown-fields" }, "Not in the schema (edit them in the raw JSON): ", unknown.join(", ")) : null,
    );
    applyProblems();
  };

  const applyProblems = () => {
    for (const n of notes.values()) n.replaceChildren();
    for (const r of rows.values()) r.classList.remove("bad");
    const text = getText();
    for (const p of problems) {
      const k = fieldOf(text, p);
      const note = notes.get(k);
      if (!note) continue;
      rows.get(k)?.classList.add("bad");
      note.append(h("div", { "data-problem": p.code }, `${p.message} (${p.code})`));
    }
  };

  draw();
  return {
    el,
    refresh: () => {
      // Do not redraw under the user's caret: the form's own writes come back here too.
      if (el.contains(document.activeElement) && document.activeElement?.tagName === "TEXTAREA") return;
      draw();
    },
    setProblems: (ps) => {
      problems = ps.filter((p) => !p.file || p.file === "e.json" || p.file.endsWith("/e.json"));
      applyProblems();
    },
  };
}
