/** Number formatting shared by the storm's record, tables and charts. */

/** Milliseconds as seconds for a person: two decimals below 10 s, one above; '-' for none. */
export function fmtS(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-'
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(n * f) / f
}
