// JSON that keeps its numbers exact. JSON.parse turns every number into a JS Number, which holds
// integers exactly only up to 2^53 − 1: an id such as 9007199254740993 would come back from
// JSON.stringify as 9007199254740992. The host keeps such integers exact everywhere
// (docs/reference.md §2.3), so the e.json form must too: parseExact keeps a number whose text a
// Number would not write back the same (a big integer, 1.0, 1e3) as an ExactNumber holding
// its source text, and stringifyExact writes that text back untouched.

export class ExactNumber {
  constructor(readonly text: string) {}
  valueOf(): number {
    return Number(this.text);
  }
  toString(): string {
    return this.text;
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

// numberOf is a JSON number's text as a value: a Number when it writes back the same text, else
// the text itself.
export function numberOf(text: string): number | ExactNumber {
  const n = Number(text);
  return String(n) === text ? n : new ExactNumber(text);
}

// numberFromInput reads what a number input holds: a big integer stays exact.
export function numberFromInput(s: string): number | ExactNumber {
  s = s.trim();
  return JSON_NUMBER.test(s) ? numberOf(s) : Number(s);
}

// isNumber: a Number or an ExactNumber.
export function isNumber(v: unknown): v is number | ExactNumber {
  return typeof v === "number" || v instanceof ExactNumber;
}

// parseExact parses JSON text as JSON.parse does (and throws what it throws), numbers aside.
export function parseExact(text: string): unknown {
  JSON.parse(text); // the text is JSON: the walk below need not check it
  let i = 0;
  const ws = () => {
    while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  };
  const str = (): string => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): unknown => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const o: Record<string, unknown> = {};
      ws();
      if (text[i] === "}") {
        i++;
        return o;
      }
      for (;;) {
        ws();
        const k = str();
        ws();
        i++; // :
        // defineProperty: a key "__proto__" is a plain key, as JSON.parse makes it.
        Object.defineProperty(o, k, { value: value(), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i++] === "}") return o;
      }
    }
    if (c === "[") {
      i++;
      const a: unknown[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return a;
      }
      for (;;) {
        a.push(value());
        ws();
        if (text[i++] === "]") return a;
      }
    }
    if (c === '"') return str();
    if (text.startsWith("true", i)) return (i += 4), true;
    if (text.startsWith("false", i)) return (i += 5), false;
    if (text.startsWith("null", i)) return (i += 4), null;
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text)![0];
    i += m.length;
    return numberOf(m);
  };
  return value();
}

// stringifyExact writes a value as JSON.stringify(v, null, indent) does, an ExactNumber as its
// text.
export function stringifyExact(v: unknown, indent = 2): string | undefined {
  const pad = " ".repeat(indent);
  const write = (v: unknown, at: string): string | undefined => {
    if (v instanceof ExactNumber) return v.text;
    if (v === null || typeof v !== "object") {
      // Strings, numbers, booleans; undefined, functions and symbols are undefined.
      return JSON.stringify(v);
    }
    const inner = at + pad;
    const sep = indent ? ",\n" + inner : ",";
    if (Array.isArray(v)) {
      if (!v.length) return "[]";
      const items = v.map((x) => write(x, inner) ?? "null");
      return indent ? `[\n${inner}${items.join(sep)}\n${at}]` : `[${items.join(",")}]`;
    }
    if (typeof (v as { toJSON?: unknown }).toJSON === "function") return write((v as { toJSON: () => unknown }).toJSON(), at);
    const parts: string[] = [];
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const w = write(x, inner);
      if (w !== undefined) parts.push(`${JSON.stringify(k)}:${indent ? " " : ""}${w}`);
    }
    if (!parts.length) return "{}";
    return indent ? `{\n${inner}${parts.join(sep)}\n${at}}` : `{${parts.join(",")}}`;
  };
  return write(v, "");
}
