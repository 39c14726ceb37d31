// Small DOM helpers: the console is plain TypeScript, no framework.

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, unknown> & { class?: string; style?: string };

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
    } else if (k === "value" && "value" in el) {
      (el as unknown as { value: string }).value = String(v);
    } else if (k === "checked" && el instanceof HTMLInputElement) {
      el.checked = Boolean(v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

export function clear(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

export function badge(text: string, kind = ""): HTMLSpanElement {
  return h("span", { class: `badge ${kind}`.trim() }, text);
}

// statusBadge colours a node or task status (waiting, running, success, fail, forcedEnd).
export function statusBadge(status: string, stage?: string): HTMLSpanElement {
  const label = stage && stage !== status ? `${status} · ${stage}` : status;
  return h("span", { class: `badge status-${status || "none"}`, "data-status": status }, label || "—");
}

export function json(v: unknown): string {
  return JSON.stringify(v, null, 2) ?? "null";
}

export function pre(v: unknown, cls = ""): HTMLPreElement {
  return h("pre", { class: `json ${cls}`.trim() }, typeof v === "string" ? v : json(v));
}

export function errorBox(e: unknown): HTMLDivElement {
  return h("div", { class: "error-box", role: "alert" }, e instanceof Error ? e.message : String(e));
}

// epochMs turns a datetime-local input's value (the browser's time zone) into epoch
// milliseconds, a form every time filter of the API takes without asking for the app timezone.
export function epochMs(local: string): string | undefined {
  if (!local) return undefined;
  const t = new Date(local).getTime();
  return Number.isNaN(t) ? undefined : String(t);
}

export function debounce<A extends unknown[]>(fn: (...a: A) => void, ms: number): (...a: A) => void {
  let t: number | undefined;
  return (...a: A) => {
    window.clearTimeout(t);
    t = window.setTimeout(() => fn(...a), ms);
  };
}
