/** Small DOM helpers: typed lookups and element creation without innerHTML (user text stays text). */

export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

type Attrs = Record<string, string | number | boolean | null | undefined>;
type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = String(value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, ...children);
  return el;
}

export function append(parent: Element, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
}

export function errorText(err: unknown): string {
  if (err && typeof err === "object") {
    const e = err as { statusCode?: number; body?: unknown; message?: string };
    const body = e.body as { message?: string; detail?: unknown } | undefined;
    if (e.statusCode !== undefined) {
      const detail =
        body?.message ??
        (Array.isArray(body?.detail) ? (body.detail as { msg?: string }[]).map((d) => d.msg).join("; ") : undefined);
      return `${e.statusCode}: ${detail ?? e.message ?? "request failed"}`;
    }
    if (e.message) return e.message;
  }
  return String(err);
}

export function formatTime(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(s / 60);
  return m ? `${m} min ${s % 60} s` : `${s} s`;
}
