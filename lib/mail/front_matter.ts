/**
 * A fast reader of the YAML subset courier's mail renderer writes (block
 * mappings and sequences indented by two, plain, quoted and literal block
 * scalars, empty `[]` and `{}`), about ten times faster than a full YAML
 * parser: indexing a mailbox without its cache reads every mail. Anything
 * outside the subset (anchors, tags, flow collections, folded scalars, a
 * hand edit in another style) makes it throw {@link UnsupportedYaml}, and
 * the caller falls back to the full parser, so the result is always what
 * the full parser gives.
 *
 * @module
 */

/** The text uses YAML this reader does not handle: use the full parser. */
export class UnsupportedYaml extends Error {
  /**
   * Creates an `UnsupportedYaml`.
   *
   * @param line The line (0-based) where it gave up.
   */
  constructor(line: number) {
    super(`YAML outside the fast subset at line ${line + 1}`);
    this.name = "UnsupportedYaml";
  }
}

const NULL = /^(?:~|[Nn]ull|NULL)?$/;
const TRUE = /^(?:[Tt]rue|TRUE)$/;
const FALSE = /^(?:[Ff]alse|FALSE)$/;
const INT = /^[-+]?[0-9]+$/;
const OCT = /^0o[0-7]+$/;
const HEX = /^0x[0-9a-fA-F]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/;
const SPECIAL_FLOAT = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
/** A plain scalar may not start with these (the renderer quotes such text). */
const INDICATORS = new Set([..."-?:,[]{}#&*!|>'\"%@`"]);

/** A plain scalar as the YAML 1.2 core schema reads it. */
function plain(text: string, line: number): unknown {
  if (text.includes(" #") || text.endsWith(":") || text.includes(": ")) {
    throw new UnsupportedYaml(line);
  }
  if (NULL.test(text)) return null;
  if (TRUE.test(text)) return true;
  if (FALSE.test(text)) return false;
  if (INT.test(text)) {
    const n = Number(text);
    if (!Number.isSafeInteger(n)) throw new UnsupportedYaml(line);
    return n;
  }
  if (OCT.test(text)) return parseInt(text.slice(2), 8);
  if (HEX.test(text)) return parseInt(text.slice(2), 16);
  if (FLOAT.test(text)) return Number(text);
  if (SPECIAL_FLOAT.test(text)) {
    return text.endsWith("nan") || text.endsWith("NaN") || text.endsWith("NAN")
      ? NaN
      : text.startsWith("-")
      ? -Infinity
      : Infinity;
  }
  const first = text[0];
  if (INDICATORS.has(first) && !(first === "-" && text.length > 1 && text[1] !== " ")) {
    throw new UnsupportedYaml(line);
  }
  return text;
}

const ESCAPES: Record<string, string> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  t: "\t",
  "\t": "\t",
  n: "\n",
  v: "\v",
  f: "\f",
  r: "\r",
  e: "\x1b",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
  N: "\u0085",
  _: "\u00a0",
  L: "\u2028",
  P: "\u2029",
};
const HEX_DIGITS: Record<string, number> = { x: 2, u: 4, U: 8 };

/**
 * Reads a double-quoted scalar starting at `text[0]`; returns it and where
 * it ended (`end` is -1 when it goes on past this line: `value` then holds
 * the line's part, escapes decoded, and `raw` the part as written).
 */
function doubleQuoted(text: string, line: number): { value: string; end: number } {
  let value = "";
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (c === '"') return { value, end: i + 1 };
    if (c !== "\\") {
      value += c;
      continue;
    }
    const e = text[++i];
    if (e === undefined) break; // an escaped line break
    if (e in ESCAPES) {
      value += ESCAPES[e];
    } else if (e in HEX_DIGITS) {
      const digits = text.slice(i + 1, i + 1 + HEX_DIGITS[e]);
      if (!/^[0-9a-fA-F]+$/.test(digits) || digits.length !== HEX_DIGITS[e]) {
        throw new UnsupportedYaml(line);
      }
      value += String.fromCodePoint(parseInt(digits, 16));
      i += digits.length;
    } else {
      throw new UnsupportedYaml(line);
    }
  }
  return { value, end: -1 };
}

/** Where an unescaped `"` closes a double-quoted part (`-1`: not on this line). */
function closingQuote(text: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === '"') return i;
  }
  return -1;
}

/** `text` without trailing spaces and tabs that are not escaped. */
function trimUnescapedEnd(text: string): string {
  let end = text.length;
  while (end > 0 && (text[end - 1] === " " || text[end - 1] === "\t")) {
    let slashes = 0;
    while (text[end - 2 - slashes] === "\\") slashes++;
    if (slashes % 2 === 1) break; // "\ ": an escaped space
    end--;
  }
  return text.slice(0, end);
}

/** Reads a single-quoted scalar starting at `text[0]`. */
function singleQuoted(text: string, line: number): { value: string; end: number } {
  let value = "";
  for (let i = 1; i < text.length; i++) {
    if (text[i] !== "'") {
      value += text[i];
    } else if (text[i + 1] === "'") {
      value += "'";
      i++;
    } else {
      return { value, end: i + 1 };
    }
  }
  throw new UnsupportedYaml(line);
}

function indentOf(line: string): number {
  let n = 0;
  while (line.charCodeAt(n) === 32) n++;
  if (line[n] === "\t") return -1;
  return n;
}

class Reader {
  readonly lines: string[];
  i = 0;

  constructor(lines: string[]) {
    this.lines = lines;
  }

  /** A `key: …` entry of `text`: its key and what follows the colon; `null` if not one. */
  entry(text: string): { key: string; rest: string } | null {
    let key: string, after: number;
    if (text[0] === '"' || text[0] === "'") {
      const quoted = text[0] === '"' ? doubleQuoted(text, this.i) : singleQuoted(text, this.i);
      if (text[quoted.end] !== ":") return null;
      key = quoted.value;
      after = quoted.end + 1;
    } else {
      const colon = text.search(/:(?: |$)/);
      if (colon <= 0) return null;
      key = text.slice(0, colon);
      if (INDICATORS.has(key[0]) || key.endsWith(" ") || key.includes(" #")) {
        throw new UnsupportedYaml(this.i);
      }
      if (typeof plain(key, this.i) !== "string") throw new UnsupportedYaml(this.i);
      after = colon + 1;
    }
    const rest = text.slice(after);
    if (rest !== "" && rest[0] !== " ") return null;
    return { key, rest: rest.slice(1) };
  }

  /** A block mapping whose keys sit at `indent`. */
  mapping(indent: number): Record<string, unknown> {
    const result: Record<string, unknown> = {};
    while (this.i < this.lines.length) {
      const line = this.lines[this.i];
      const at = indentOf(line);
      if (at < 0 || (at > indent && line.trim() !== "")) throw new UnsupportedYaml(this.i);
      if (at < indent || line.trim() === "" || line.startsWith("- ", at) || line === "-") break;
      const entry = this.entry(line.slice(at));
      if (!entry) throw new UnsupportedYaml(this.i);
      if (Object.hasOwn(result, entry.key)) throw new UnsupportedYaml(this.i);
      this.i++;
      result[entry.key] = entry.rest === "" ? this.nested(indent) : this.inline(entry.rest, indent);
    }
    return result;
  }

  /** What follows a `key:` with nothing after it: a mapping, a sequence or null. */
  nested(indent: number): unknown {
    const line = this.lines[this.i];
    if (line === undefined || line.trim() === "") return null;
    const at = indentOf(line);
    if (at < 0) throw new UnsupportedYaml(this.i);
    const item = line.startsWith("- ", at) || line.slice(at) === "-";
    if (item && at >= indent) return this.sequence(at);
    if (at > indent) return this.mapping(at);
    return null;
  }

  /** A block sequence whose `- ` sit at `indent`. */
  sequence(indent: number): unknown[] {
    const result: unknown[] = [];
    while (this.i < this.lines.length) {
      const line = this.lines[this.i];
      if (
        indentOf(line) !== indent || !(line.startsWith("- ", indent) || line.slice(indent) === "-")
      ) {
        break;
      }
      const text = line.slice(indent + 2);
      if (text === "") {
        this.i++;
        result.push(this.nested(indent));
      } else if (this.entry(text)) {
        // A mapping that starts on the item's line: read it as if indented.
        this.lines[this.i] = " ".repeat(indent + 2) + text;
        result.push(this.mapping(indent + 2));
      } else {
        this.i++;
        result.push(this.inline(text, indent));
      }
    }
    return result;
  }

  /** A value on the line of its key (or item); `indent` is the key's. */
  inline(text: string, indent: number): unknown {
    const line = this.i - 1;
    if (text === "[]") return [];
    if (text === "{}") return {};
    if (text[0] === '"') {
      const quoted = doubleQuoted(text, line);
      if (quoted.end === -1) return this.foldedQuoted(text, indent);
      if (quoted.end !== text.length) throw new UnsupportedYaml(line);
      return quoted.value;
    }
    if (text[0] === "'") {
      const quoted = singleQuoted(text, line);
      if (quoted.end !== text.length) throw new UnsupportedYaml(line);
      return quoted.value;
    }
    if (text[0] === "|") return this.literal(text, indent, line);
    return plain(text, line);
  }

  /**
   * A double-quoted scalar over several lines (`first` is its first line):
   * a line break between two lines is a space, k empty lines between them
   * are k newlines, a `\\` at the end of a line joins it to the next.
   */
  foldedQuoted(first: string, indent: number): string {
    const start = this.i - 1;
    let out = "";
    let part = first.slice(1);
    let empty = 0;
    let joined = false;
    for (let n = 0;; n++) {
      if (n > 0) {
        const raw = this.lines[this.i++];
        if (raw === undefined) throw new UnsupportedYaml(start);
        const at = indentOf(raw);
        if (raw.trim() !== "" && (at < 0 || at <= indent)) throw new UnsupportedYaml(this.i - 1);
        part = raw.replace(/^[ \t]+/, "");
      }
      const close = closingQuote(part);
      if (close < 0 && part === "" && n > 0) {
        if (joined) throw new UnsupportedYaml(this.i - 1);
        empty++;
        continue;
      }
      let body = close < 0 ? trimUnescapedEnd(part) : part.slice(0, close);
      const escapedBreak = close < 0 && /(^|[^\\])(\\\\)*\\$/.test(body);
      if (escapedBreak) body = body.slice(0, -1);
      if (n > 0 && !joined) out += empty > 0 ? "\n".repeat(empty) : " ";
      empty = 0;
      out += doubleQuoted(`"${body}"`, this.i - 1).value;
      joined = escapedBreak;
      if (close >= 0) {
        if (close !== part.length - 1) throw new UnsupportedYaml(this.i - 1);
        return out;
      }
    }
  }

  /** A literal block scalar (`|`, `|-`, `|+`, with an optional indentation digit). */
  literal(header: string, indent: number, line: number): string {
    const match = /^\|([1-9])?([-+])?([1-9])?$/.exec(header);
    if (!match || (match[1] && match[3])) throw new UnsupportedYaml(line);
    const chomp = match[2] ?? "";
    const explicit = Number(match[1] ?? match[3] ?? 0);
    let content = explicit ? indent + explicit : -1;
    let leadingBlank = 0; // spaces on empty lines before the first content line
    const parts: string[] = [];
    while (this.i < this.lines.length) {
      const text = this.lines[this.i];
      let at = 0;
      while (text.charCodeAt(at) === 32) at++;
      const blank = at === text.length; // only spaces: a tab is content
      if (blank) {
        if (content < 0) leadingBlank = Math.max(leadingBlank, text.length);
        parts.push(content >= 0 && text.length > content ? text.slice(content) : "");
        this.i++;
        continue;
      }
      if (content < 0) {
        if (at <= indent) break;
        if (leadingBlank > at) throw new UnsupportedYaml(this.i);
        content = at;
      }
      if (at < content) {
        if (text[at] === "\t") throw new UnsupportedYaml(this.i);
        break;
      }
      parts.push(text.slice(content));
      this.i++;
    }
    if (content >= 0 && leadingBlank > content) throw new UnsupportedYaml(line);
    let trailing = 0;
    while (parts.length > trailing && parts[parts.length - 1 - trailing] === "") trailing++;
    const body = parts.slice(0, parts.length - trailing).join("\n");
    if (chomp === "-") return body;
    if (chomp === "+") return body + "\n".repeat(trailing + (body === "" && trailing ? 0 : 1));
    return body === "" ? "" : body + "\n";
  }
}

/**
 * Parses YAML `text` (a mail's front matter) if it is in the subset the
 * renderer writes.
 *
 * @throws {UnsupportedYaml} for anything else: parse it with a full YAML parser.
 */
export function parseFrontMatterFast(text: string): Record<string, unknown> {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const reader = new Reader(lines);
  const value = reader.mapping(0);
  if (reader.i !== lines.length) throw new UnsupportedYaml(reader.i);
  return value;
}
