/**
 * "Did you mean …?" for mistyped commands and options.
 *
 * @module
 */

/**
 * The edit distance between `a` and `b`: insertions, deletions,
 * substitutions and swaps of two neighbours (`sttaus` → `status` is 1).
 */
export function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
      }
    }
  }
  return rows[a.length][b.length];
}

/**
 * The candidates `word` is most likely a typo of, closest first: those
 * within an edit distance of 1 (2 for words of five letters or more), or
 * that `word` (three letters or more) begins. Empty when nothing is close.
 *
 * @example
 * ```ts
 * suggest("sttaus", ["start", "status", "stop"]); // ["status"]
 * ```
 */
export function suggest(word: string, candidates: readonly string[]): string[] {
  const limit = word.length >= 5 ? 2 : 1;
  const scored = candidates
    .map((candidate) => ({
      candidate,
      distance: word.length >= 3 && candidate.startsWith(word)
        ? 0
        : editDistance(word.toLowerCase(), candidate.toLowerCase()),
    }))
    .filter(({ candidate, distance }) => distance <= limit && candidate !== word);
  const best = Math.min(...scored.map((s) => s.distance));
  return scored.filter((s) => s.distance === best).map((s) => s.candidate);
}

/** ` (did you mean "status"?)`-style text for {@link suggest}'s result; `""` for none. */
export function didYouMean(suggestions: readonly string[]): string {
  if (suggestions.length === 0) return "";
  const quoted = suggestions.map((s) => `"${s}"`);
  const list = quoted.length === 1
    ? quoted[0]
    : `${quoted.slice(0, -1).join(", ")} or ${quoted.at(-1)}`;
  return `; did you mean ${list}?`;
}
