import { describe, expect, it } from 'vitest'
import { type Row, RowCache } from '../src/row-cache.js'

// size 136 + the 64 bytes of overhead the cache charges per row: 200 bytes a row.
const row = (id: number): Row => [id, 1, `t/${id}`, new Uint8Array([id % 256]), 1, 0, 0, null, 136]
const ids = (rows: Row[]) => rows.map((r) => r[0])

describe('RowCache', () => {
  it('keeps the newest rows within its budget and raises the floor past what it lets go', () => {
    const cache = new RowCache(600, 10)
    expect(cache.covers(10)).toBe(true)
    expect(cache.covers(9)).toBe(false)
    for (let id = 11; id <= 15; id++) cache.add(row(id))
    // Three rows fit: 11 and 12 were let go, so only after 12 is everything here.
    expect(cache.floor).toBe(12)
    expect(cache.covers(11)).toBe(false)
    expect(ids(cache.after(12, 10))).toEqual([13, 14, 15])
    expect(ids(cache.after(13, 1))).toEqual([14])
    expect(ids(cache.after(15, 10))).toEqual([])
  })

  it('a budget of 0 keeps nothing, and the floor follows the newest row', () => {
    const cache = new RowCache(0, 0)
    cache.add(row(1))
    cache.add(row(2))
    expect(cache.floor).toBe(2)
    expect(ids(cache.after(2, 10))).toEqual([])
  })

  it('skips deleted rows, and lets them go once they reach the bottom', () => {
    const cache = new RowCache(10_000, 0)
    for (let id = 1; id <= 6; id++) cache.add(row(id))
    cache.delete(3)
    cache.delete(5)
    expect(ids(cache.after(0, 10))).toEqual([1, 2, 4, 6])
    expect(cache.floor).toBe(0)
    cache.delete(1)
    expect(cache.floor).toBe(1)
    cache.delete(2)
    // 3 was already gone: the floor passes it too.
    expect(cache.floor).toBe(3)
    expect(ids(cache.after(3, 10))).toEqual([4, 6])
  })

  it('ignores ids that are not here: below the floor, between rows, or past the top', () => {
    const cache = new RowCache(10_000, 4)
    for (const id of [5, 7, 9]) cache.add(row(id))
    for (const id of [2, 6, 8, 12]) cache.delete(id)
    expect(ids(cache.after(4, 10))).toEqual([5, 7, 9])
    expect(cache.floor).toBe(4)
    new RowCache(10_000, 0).delete(1)
  })

  it('stays right across the compaction of its array', () => {
    const cache = new RowCache(200 * 3_000, 0)
    for (let id = 1; id <= 5_000; id++) cache.add(row(id))
    for (let id = 2_001; id <= 4_990; id++) cache.delete(id)
    expect(cache.floor).toBe(4_990)
    expect(ids(cache.after(4_990, 100))).toEqual([
      4_991, 4_992, 4_993, 4_994, 4_995, 4_996, 4_997, 4_998, 4_999, 5_000,
    ])
    cache.add(row(5_001))
    expect(ids(cache.after(4_999, 10))).toEqual([5_000, 5_001])
  })

  it('hands back every field and its own copy of the payload, across chunks of any payload size', () => {
    const cache = new RowCache(2 ** 30, 0)
    const payloadOf = (id: number) =>
      new Uint8Array(id % 7 === 0 ? 300_000 : id % 50).fill(id % 256)
    const stored: Row[] = []
    for (let id = 1; id <= 2_500; id++) {
      const r: Row = [
        id,
        1,
        `t/${id}`,
        payloadOf(id),
        id % 3,
        id % 2,
        1_700_000_000_000 + id,
        id % 5 ? null : id,
        10 + id,
      ]
      stored.push([...r] as Row)
      cache.add(r)
      // The caller reuses its buffer once publish() resolved: the cache must not see it.
      r[3].fill(0xff)
    }
    const back = cache.after(0, 10_000)
    expect(back.length).toBe(2_500)
    for (let i = 0; i < back.length; i++) {
      const [got, want] = [back[i] as Row, stored[i] as Row]
      expect(got.slice(0, 3)).toEqual(want.slice(0, 3))
      expect(got.slice(4)).toEqual(want.slice(4))
      expect(Buffer.from(got[3]).equals(Buffer.from(payloadOf(want[0])))).toBe(true)
    }
  })
})
