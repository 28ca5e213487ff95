/**
 * Loading modules on demand, out of sight of the runtime's module analysis.
 *
 * `deno run` reads and resolves, at start-up, every module reachable from
 * the main module — modules named in `import("…")` with a literal
 * included — before the first line runs. courier's CLI imports each
 * command, and each command its implementation, only when it runs; with
 * literal specifiers Deno would still analyse all of them (the daemon, the
 * mail service, the chat platforms…) on every call. {@link importLazily}
 * computes the specifier at run time instead, so a call pays only for what
 * it loads. `deno compile` cannot see these imports either:
 * `scripts/lazy_modules.ts` finds every `importLazily` call in the source
 * (and refuses one it cannot read), and `scripts/compile.ts` `--include`s
 * their modules.
 *
 * @module
 */

/**
 * Imports `specifier` relative to `base` (pass `import.meta.url`) at run
 * time. Give the module's type as `T`: `typeof import("./x.ts")` (a type
 * only: it loads nothing).
 *
 * @example
 * ```ts
 * const { startService } = await importLazily<typeof import("../service/control.ts")>(
 *   "../service/control.ts",
 *   import.meta.url,
 * );
 * ```
 */
export function importLazily<T>(specifier: string, base: string): Promise<T> {
  return import(new URL(specifier, base).href);
}
