import { describe, expect, it } from 'vitest'
import { type AckedRange, AckedRanges, NO_BOUND, type ReadBetween } from '../src/acked.js'
import type { Row } from '../src/row.js'
import type { Statements } from '../src/statements.js'

/** Ranges over ids, their rows not counted: `live` and `has` look at the ids alone. */
function marked(...spans: Array<[number, number]>): AckedRanges {
  const acked = new AckedRanges({} as Statements, { rows: 1, bytes: 1 })
  const ranges = spans.map(([lo, hi]): AckedRange => ({ lo, hi, rows: hi - lo + 1, bytes: 0 }))
  acked.state = { ranges, rows: 0, bytes: 0 }
  return acked
}

/** A table of rows with ids 1..n, read as SQLite would, each read recorded. */
function table(n: number) {
  const reads: Array<[number, number, number]> = []
  const read: ReadBetween = (after, before, limit) => {
    reads.push([after, before, limit])
    const rows: Row[] = []
    for (let id = after + 1; id < before && id <= n && rows.length < limit; id++) {
      rows.push([id, 1, 't', new Uint8Array(0), 1, 0, 0, null, 1])
    }
    return rows
  }
  return { read, reads }
}
const ids = (rows: Row[]) => rows.map((r) => r[0])

describe('reading past acknowledged ranges', () => {
  it('never reads a marked row, in one read per gap between ranges', () => {
    const acked = marked([3, 4], [7, 9])
    const { read, reads } = table(12)
    expect(ids(acked.live(0, 100, read))).toEqual([1, 2, 5, 6, 10, 11, 12])
    expect(reads).toEqual([
      [0, 3, 100],
      [4, 7, 98],
      [9, NO_BOUND, 96],
    ])
  })

  it('stops at the limit, which may fall in any gap', () => {
    const acked = marked([3, 4], [7, 9])
    const { read } = table(12)
    expect(ids(acked.live(0, 3, read))).toEqual([1, 2, 5])
    expect(ids(acked.live(5, 2, read))).toEqual([6, 10])
  })

  it('starting inside a range, or right before it, goes on after it', () => {
    const acked = marked([3, 4], [7, 9])
    const { read, reads } = table(12)
    expect(ids(acked.live(7, 2, read))).toEqual([10, 11])
    expect(ids(acked.live(2, 1, read))).toEqual([5])
    expect(reads.map(([after]) => after)).toEqual([9, 4])
  })

  it('with no range ahead, reads once and unbounded, as without ranges', () => {
    const acked = marked([3, 4])
    const { read, reads } = table(12)
    expect(ids(acked.live(4, 100, read))).toEqual([5, 6, 7, 8, 9, 10, 11, 12])
    expect(reads).toEqual([[4, NO_BOUND, 100]])
    expect(ids(marked().live(0, 2, read))).toEqual([1, 2])
  })

  it('knows which ids it holds', () => {
    const acked = marked([3, 4], [7, 9])
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].filter((id) => acked.has(id))).toEqual([3, 4, 7, 8, 9])
    expect(acked.last).toBe(9)
    expect(marked().last).toBe(0)
  })
})
