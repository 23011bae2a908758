/**
 * "Did you mean …?" suggestions for misspelt names. Distances count Unicode code points, so one
 * wrong Chinese character (`单元` for `单位`) is one edit, as it is to the person who typed it.
 */

/**
 * Levenshtein distance over code points, giving up once it exceeds `limit`.
 * @example editDistance('单元', '单位') // 1
 */
export function editDistance(a: string, b: string, limit = Number.POSITIVE_INFINITY): number {
  const s = Array.from(a);
  const t = Array.from(b);
  if (Math.abs(s.length - t.length) > limit) return limit + 1;
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      const v = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      cur.push(v);
      if (v < rowMin) rowMin = v;
    }
    if (rowMin > limit) return limit + 1;
    prev = cur;
  }
  return prev[t.length] ?? limit + 1;
}

/** How many edits a name of this length may be away from a suggestion: short names need a close match. */
function allowance(length: number): number {
  if (length <= 1) return 0;
  if (length <= 4) return 1;
  if (length <= 8) return 2;
  return 3;
}

/**
 * The candidate closest to `name`, if one is close enough to be what was meant.
 * Ties go to the earlier candidate; a match ignoring case always wins.
 * @example closest('lenght', ['len', 'length']) // 'length'
 */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  if (name === '') return undefined;
  const lower = name.toLowerCase();
  const max = allowance(Array.from(name).length);
  let best: string | undefined;
  let bestDistance = max + 1;
  for (const c of candidates) {
    if (c === name || c === '') continue;
    const d = editDistance(lower, c.toLowerCase(), bestDistance - 1);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * A hint sentence suggesting the closest candidate, or undefined when none is close.
 * @example didYouMean('单元', ['单位', '社区']) // 'Did you mean "单位"?'
 */
export function didYouMean(name: string, candidates: Iterable<string>): string | undefined {
  const c = closest(name, candidates);
  return c === undefined ? undefined : `Did you mean "${c}"?`;
}
