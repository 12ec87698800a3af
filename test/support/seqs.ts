/** The `{ seq }` payloads a broker recorded, in the order it first saw each seq (repeats dropped). */
export function firstSeen(payloads: Buffer[]): number[] {
  const seen = new Set<number>()
  const order: number[] = []
  for (const p of payloads) {
    const seq = JSON.parse(p.toString()).seq as number
    if (!seen.has(seq)) {
      seen.add(seq)
      order.push(seq)
    }
  }
  return order
}
