// The HTTP API client and the login state.
//
// The admin token never goes to localStorage or sessionStorage, where any script running on the
// origin could read it later. When the host has `POST /api/session`, the token is traded for an
// HttpOnly, SameSite=Strict cookie that no script can read and the token is dropped; until then
// the token is kept in this module's memory only (a reload asks for it again) and sent as the
// bearer header.

export interface ApiErrorBody {
  code: string;
  message: string;
  details?: unknown;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
  // missingRoute: the host does not have this route yet (as opposed to a missing element,
  // node or task, which is also a 404).
  get missingRoute(): boolean {
    return this.status === 404 && /^no API route|^no node operation/.test(this.message);
  }
}

export type AuthMode = "cookie" | "token";

let token: string | null = null;
let mode: AuthMode | null = null;
const unauthorizedListeners: Array<() => void> = [];

export function authMode(): AuthMode | null {
  return mode;
}

export function onUnauthorized(fn: () => void): void {
  unauthorizedListeners.push(fn);
}

function headers(extra?: Record<string, string>): Record<string, string> {
  const hd: Record<string, string> = { Accept: "application/json", ...extra };
  if (mode === "token" && token) hd.Authorization = `Bearer ${token}`;
  return hd;
}

async function parse(r: Response): Promise<unknown> {
  const text = await r.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function errorOf(status: number, body: unknown, fallback: string): ApiError {
  const e = (body as { error?: ApiErrorBody } | null)?.error;
  if (e && typeof e === "object") return new ApiError(status, e.code, e.message, e.details);
  return new ApiError(status, "http_" + status, fallback);
}

export interface Query {
  [k: string]: string | number | undefined | null;
}

export function withQuery(path: string, q?: Query): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q ?? {})) if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  const s = p.toString();
  return s ? `${path}?${s}` : path;
}

export async function api<T = unknown>(method: string, path: string, body?: unknown, q?: Query): Promise<T> {
  const init: RequestInit = { method, headers: headers(), credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  const r = await fetch(withQuery(path, q), init);
  const data = await parse(r);
  if (!r.ok) {
    const err = errorOf(r.status, data, r.statusText);
    if (r.status === 401 && mode !== null) {
      mode = null;
      token = null;
      for (const fn of unauthorizedListeners) fn();
    }
    throw err;
  }
  return data as T;
}

export const get = <T = unknown>(path: string, q?: Query) => api<T>("GET", path, undefined, q);
export const post = <T = unknown>(path: string, body?: unknown, q?: Query) => api<T>("POST", path, body, q);

// resume finds out whether a session cookie from an earlier login is still good.
export async function resume(): Promise<boolean> {
  const r = await fetch("/api/elements", { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (r.ok) {
    mode = "cookie";
    return true;
  }
  return false;
}

// login checks the token and keeps it the safest way the host allows.
export async function login(t: string): Promise<AuthMode> {
  t = t.trim();
  if (!t) throw new Error("Enter the admin token.");
  const bearer = { Accept: "application/json", "Content-Type": "application/json", Authorization: `Bearer ${t}` };
  let r = await fetch("/api/session", { method: "POST", headers: bearer, credentials: "same-origin", body: JSON.stringify({ token: t }) });
  if (r.status === 400) {
    // A session route that takes the token from the header only.
    r = await fetch("/api/session", { method: "POST", headers: bearer, credentials: "same-origin" });
  }
  const body = await parse(r);
  if (r.ok) {
    mode = "cookie";
    token = null;
    if (await resume()) return "cookie";
    // The cookie did not take (a non-secure context, say): fall back to the header.
  } else {
    const err = errorOf(r.status, body, r.statusText);
    if (r.status === 401) throw new Error("Wrong token: " + err.message);
    if (!err.missingRoute) throw err;
  }
  // No session route on this host yet: hold the token in memory and check it.
  mode = "token";
  token = t;
  try {
    await get("/api/elements");
  } catch (e) {
    mode = null;
    token = null;
    if (e instanceof ApiError && e.status === 401) throw new Error("Wrong token: " + e.message);
    throw e;
  }
  return "token";
}

export async function logout(): Promise<void> {
  const was = mode;
  if (was === "cookie") {
    try {
      await fetch("/api/session", { method: "DELETE", credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch {
      /* the page forgets the login anyway */
    }
  }
  mode = null;
  token = null;
}
