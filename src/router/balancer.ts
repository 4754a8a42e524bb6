// Least-in-flight balancing by the power of two choices: sample two candidates, take the less loaded.
// Pure: `random` is injected so tests can pin the choice.

/**
 * Picks a candidate with the power of two choices. `load` gives each candidate's in-flight count;
 * candidates that are full (`load >= limit`) are never picked. Returns undefined when none has room.
 */
export function pickTwoChoices<T>(
  candidates: readonly T[],
  load: (c: T) => number,
  limit: number,
  random: () => number,
): T | undefined {
  const n = candidates.length;
  if (n === 0) return undefined;
  if (n === 1) {
    const only = candidates[0]!;
    return load(only) < limit ? only : undefined;
  }
  const i = Math.floor(random() * n);
  let j = Math.floor(random() * (n - 1));
  if (j >= i) j++;
  const a = candidates[i]!;
  const b = candidates[j]!;
  const la = load(a);
  const lb = load(b);
  const best = lb < la ? b : a;
  if (load(best) < limit) return best;
  // Both sampled candidates are full: fall back to a scan so a free instance is never missed.
  let pick: T | undefined;
  let min = limit;
  for (const c of candidates) {
    const l = load(c);
    if (l < min) {
      min = l;
      pick = c;
    }
  }
  return pick;
}
