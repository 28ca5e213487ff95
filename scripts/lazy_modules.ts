/**
 * The modules courier loads with `importLazily` (lib/lazy): out of sight of
 * `deno run`'s start-up analysis, and so of `deno compile`'s as well, which
 * must be told to embed them (`--include`). Found by reading the source, so
 * a new lazy import cannot be forgotten.
 *
 * @module
 */
import { dirname, join, relative, resolve } from "node:path";

/** The project's root folder. */
const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");

/** One `importLazily` call: where it stands and the module it loads. */
export interface LazyImport {
  /** The file holding the call, relative to the project root. */
  file: string;
  /** The module it loads, relative to the project root. */
  target: string;
}

/** `importLazily<typeof import("X")>("X", import.meta.url)`, the only form allowed. */
const CALL =
  /importLazily<\s*typeof import\("([^"]+)"\)\s*>\(\s*"([^"]+)",\s*import\.meta\.url,?\s*\)/g;

/** A call of `importLazily` in code (not its definition, a comment or a string). */
const ANY_CALL = /^[^*/]*\bimportLazily(<|\()/gm;

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) files.push(...sourceFiles(path));
    else if (entry.name.endsWith(".ts")) files.push(path);
  }
  return files;
}

/**
 * Every `importLazily` call in `main.ts` and `lib/`, with the module it
 * loads.
 *
 * @throws {Error} for a call not in the one allowed form (the type and the
 * specifier must name the same module, relative to `import.meta.url`), so
 * that none escapes this scan.
 */
export function lazyImports(root: string = ROOT): LazyImport[] {
  const found: LazyImport[] = [];
  for (const path of [join(root, "main.ts"), ...sourceFiles(join(root, "lib"))].sort()) {
    const text = Deno.readTextFileSync(path);
    const file = relative(root, path);
    const calls = [...text.matchAll(CALL)];
    const all = [...text.matchAll(ANY_CALL)].length - (file === "lib/lazy/mod.ts" ? 1 : 0);
    if (calls.length !== all) {
      throw new Error(
        `${file}: an importLazily call is not in the form ` +
          `importLazily<typeof import("X")>("X", import.meta.url)`,
      );
    }
    for (const [, typed, specifier] of calls) {
      if (typed !== specifier) {
        throw new Error(
          `${file}: importLazily names "${typed}" as its type but loads "${specifier}"`,
        );
      }
      found.push({ file, target: relative(root, resolve(dirname(path), specifier)) });
    }
  }
  return found;
}

/** The modules to `--include` in a compiled binary, relative to the root, sorted, once each. */
export function lazyModules(root: string = ROOT): string[] {
  return [...new Set(lazyImports(root).map((i) => i.target))].sort();
}
