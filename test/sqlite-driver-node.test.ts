// On Node only (pnpm test; Bun can load every driver, so it has no foreign one to ask for).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { UplinkError } from '@uplink/client'
import { sqliteOutbox } from '@uplink/store-sqlite'
import { afterEach, describe, expect, it } from 'vitest'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe('sqliteOutbox on Node', () => {
  it('driver bun:sqlite, which Node has not, is OUTBOX_ERROR naming it and why; nothing created', () => {
    const dir = mkdtempSync(join(tmpdir(), 'uplink-driver-'))
    dirs.push(dir)
    let err: UplinkError | undefined
    try {
      sqliteOutbox({ path: join(dir, 'outbox.db'), driver: 'bun:sqlite' })
    } catch (e) {
      err = e as UplinkError
    }
    expect(err?.code).toBe('OUTBOX_ERROR')
    expect(err?.message).toMatch(/bun:sqlite: .+/)
    expect(err?.details).toEqual({ tried: ['bun:sqlite'] })
    expect(readdirSync(dir)).toEqual([])
  })
})
