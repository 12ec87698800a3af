import { describe, expect, it } from 'vitest'
import { pageRows, READ_AHEAD } from '../src/cursor.js'

describe('read-ahead pages', () => {
  it('reads long pages of small messages, capped in rows', () => {
    expect(pageRows({ messages: 1_000, bytes: 220_000 })).toBe(READ_AHEAD.rows)
    expect(pageRows({ messages: 0, bytes: 0 })).toBe(READ_AHEAD.rows)
  })

  it('keeps a page of large messages to about READ_AHEAD.bytes, never below minRows', () => {
    // 64 KiB a message: four of them fill the byte budget, but a page holds at least minRows.
    expect(pageRows({ messages: 10, bytes: 10 * 65_536 })).toBe(READ_AHEAD.minRows)
    const rows = pageRows({ messages: 10, bytes: 10 * 8_192 })
    expect(rows).toBe(READ_AHEAD.bytes / 8_192)
    expect(rows * 8_192).toBeLessThanOrEqual(READ_AHEAD.bytes)
  })
})
