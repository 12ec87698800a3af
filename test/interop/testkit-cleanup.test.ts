import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startMosquitto, startUnbound } from '@uplink/testkit'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

/**
 * The testkit's servers write their configuration, keys and certificates to temporary
 * directories; these tests give the process a temporary directory of its own (os.tmpdir() reads
 * TMPDIR on every call) and look at what is left in it. Each test file runs in a process of its
 * own, so the unbound control keys are made here, in this file's first startUnbound.
 */
let saved: string | undefined
let scratch: string
beforeEach(() => {
  saved = process.env.TMPDIR
  scratch = mkdtempSync(join(tmpdir(), 'uplink-cleanup-'))
  process.env.TMPDIR = scratch
})
afterEach(() => {
  if (saved === undefined) delete process.env.TMPDIR
  else process.env.TMPDIR = saved
  rmSync(scratch, { recursive: true, force: true })
})

describe('the testkit leaves nothing in the temporary directory', () => {
  it('unbound: neither its own directory nor the control keys made for it', async () => {
    const unbound = await startUnbound({ records: { 'a.test': ['127.0.0.1'] } })
    expect(readdirSync(scratch).map((d) => d.replace(/-[^-]+$/, ''))).toEqual(['uplink-unbound'])
    await unbound.stop()
    expect(readdirSync(scratch)).toEqual([])
  })

  it('Mosquitto: stop() after kill() removes its directory, as a test that crashes its broker last needs', async () => {
    const mosquitto = await startMosquitto({ persistence: true })
    expect(readdirSync(scratch)).toHaveLength(1)
    await mosquitto.kill()
    await mosquitto.stop()
    expect(readdirSync(scratch)).toEqual([])
  })
})
