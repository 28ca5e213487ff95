/**
 * Terminal output: plain text, `--json`, colour (only on a TTY and never
 * with `NO_COLOR`), and aligned tables.
 *
 * @module
 */

const encoder = new TextEncoder();

function write(stream: "stdout" | "stderr", text: string): void {
  const bytes = encoder.encode(text);
  const target = stream === "stdout" ? Deno.stdout : Deno.stderr;
  let written = 0;
  try {
    while (written < bytes.length) written += target.writeSync(bytes.subarray(written));
  } catch (error) {
    // A closed pipe (`courier status | head -0`) is not our failure.
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
}

/** Whether colour may be used on `stream`: a TTY, and `NO_COLOR` unset or empty. */
export function colorEnabled(stream: "stdout" | "stderr" = "stdout"): boolean {
  const noColor = Deno.env.get("NO_COLOR");
  if (noColor !== undefined && noColor !== "") return false;
  const target = stream === "stdout" ? Deno.stdout : Deno.stderr;
  try {
    return target.isTerminal();
  } catch {
    return false;
  }
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, dim: 2, bold: 1 } as const;

/** A colour or style name for {@link Output.paint}. */
export type Style = keyof typeof CODES;

/** Where a command writes: text or JSON on stdout, problems on stderr. */
export class Output {
  /** Whether the user asked for `--json`. */
  readonly json: boolean;
  readonly #color: boolean;
  readonly #colorErr: boolean;

  /** @param options `json`: machine output; `color`: force colour on or off. */
  constructor(options: { json?: boolean; color?: boolean } = {}) {
    this.json = options.json ?? false;
    this.#color = options.color ?? colorEnabled("stdout");
    this.#colorErr = options.color ?? colorEnabled("stderr");
  }

  /** Prints lines of text on stdout (nothing in `--json` mode). */
  text(...lines: string[]): void {
    if (!this.json) { for (const line of lines) write("stdout", line + "\n"); }
  }

  /** Prints one JSON document on stdout (only in `--json` mode). */
  data(value: unknown): void {
    if (this.json) write("stdout", JSON.stringify(value, null, 2) + "\n");
  }

  /** Prints `text` in human mode and `value` in `--json` mode. */
  result(text: string | string[], value: unknown): void {
    if (this.json) this.data(value);
    else this.text(...(Array.isArray(text) ? text : [text]));
  }

  /** Prints a line on stderr (both modes: stderr never carries JSON). */
  warn(line: string): void {
    write("stderr", line + "\n");
  }

  /** Prints an error line on stderr, `courier: ` prefixed and red on a TTY. */
  error(line: string): void {
    write("stderr", this.#paint(this.#colorErr, "red", "courier: ") + line + "\n");
  }

  /** Wraps `text` in a colour when colour is on. */
  paint(style: Style, text: string): string {
    return this.#paint(this.#color, style, text);
  }

  #paint(on: boolean, style: Style, text: string): string {
    return on ? `\x1b[${CODES[style]}m${text}\x1b[0m` : text;
  }
}

/** Strips ANSI colour codes (to measure printed width). */
export function stripAnsi(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

/**
 * Code points a terminal shows two columns wide: the East Asian Wide and
 * Fullwidth ranges of Unicode's EastAsianWidth.txt (CJK, Hangul, kana,
 * fullwidth forms…), beside emoji shown as pictures (`\p{Emoji_Presentation}`).
 */
const WIDE: readonly [number, number][] = [
  [0x1100, 0x115f],
  [0x231a, 0x231b],
  [0x2329, 0x232a],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xa960, 0xa97f],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe10, 0xfe19],
  [0xfe30, 0xfe6f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x16fe0, 0x16fe4],
  [0x17000, 0x18cff],
  [0x1b000, 0x1b2ff],
  [0x1f200, 0x1f2ff],
  [0x20000, 0x2fffd],
  [0x30000, 0x3fffd],
];

const ZERO_WIDTH = /[\p{Mn}\p{Me}\p{Cf}\p{Cc}]/u;
const EMOJI = /\p{Emoji_Presentation}/u;

function charWidth(char: string): number {
  const code = char.codePointAt(0)!;
  if (code < 0x300) return code < 0x20 || (code >= 0x7f && code < 0xa0) ? 0 : 1;
  if (ZERO_WIDTH.test(char)) return 0;
  for (const [start, end] of WIDE) {
    if (code < start) break;
    if (code <= end) return 2;
  }
  return EMOJI.test(char) ? 2 : 1;
}

/**
 * How many terminal columns `text` takes: colour codes none, combining
 * marks and zero-width characters none, East Asian wide and fullwidth
 * characters (and emoji) two, everything else one.
 */
export function displayWidth(text: string): number {
  let width = 0;
  for (const char of stripAnsi(text)) width += charWidth(char);
  return width;
}

/**
 * Lays out rows as an aligned table: columns padded to their widest cell,
 * by display width (a CJK character takes two columns, a combining mark
 * none: see {@link displayWidth}), two spaces apart, the last column
 * unpadded.
 */
export function formatTable(header: string[], rows: string[][]): string[] {
  const all = [header, ...rows];
  const widths = header.map((_, col) => Math.max(...all.map((r) => displayWidth(r[col] ?? ""))));
  return all.map((row) =>
    row.map((cell, col) =>
      col === row.length - 1 ? cell : cell + " ".repeat(widths[col] - displayWidth(cell))
    ).join("  ").trimEnd()
  );
}

/** Prints text on stdout with no formatting (for `logs`, completions). */
export function writeStdout(text: string): void {
  write("stdout", text);
}
