// Files and disks: what the outbox does when the file, the directory or the volume misbehaves.
// The tmpfs tests mount real small volumes (the suite runs as root) and always unmount them.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createUplink, ManualClock, type OutboxInput, type UplinkError } from '@uplink/client'
import { afterEach, describe, expect, it } from 'vitest'
import { type SqliteOutbox, sqliteOutbox } from '../src/index.js'

const dirs: string[] = []
const mounts: string[] = []
const open: SqliteOutbox[] = []
afterEach(async () => {
  for (const box of open.splice(0)) await box.close().catch(() => {})
  for (const dir of mounts.splice(0)) {
    try {
      execFileSync('umount', [dir], { stdio: 'ignore' })
    } catch {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' })
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'uplink-disk-'))
  dirs.push(dir)
  return dir
}
/** A tmpfs of `size` at a fresh directory. */
const volume = (size: string) => {
  const dir = join(tempDir(), 'vol')
  mkdirSync(dir)
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir])
  mounts.push(dir)
  return dir
}
const unmount = (dir: string) => {
  execFileSync('umount', [dir])
  mounts.splice(mounts.indexOf(dir), 1)
}
/** Files of this process open under `dir`. */
const openFilesUnder = (dir: string) =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir)
    } catch {
      return false
    }
  })
const kib = (n: number, size = 1024): OutboxInput => ({
  topic: `t/${n}`,
  payload: new Uint8Array(size).fill(n % 256),
  qos: 1,
  retain: false,
  priority: 'telemetry',
})

describe('start-up errors reach the application', () => {
  it('OUTBOX_CORRUPT from a corrupt file is heard by a listener attached after createUplink', async () => {
    const path = join(tempDir(), 'outbox.db')
    writeFileSync(path, 'this is not a database '.repeat(200))
    const uplink = createUplink({
      clientId: 'gw-corrupt',
      endpoints: ['mqtt://127.0.0.1:1'],
      outbox: sqliteOutbox({ path }),
    })
    const errors: UplinkError[] = []
    uplink.on('error', (e) => errors.push(e))
    await uplink.start()
    await uplink.stop({ timeoutMs: 10 })
    expect(errors.filter((e) => e.code === 'OUTBOX_CORRUPT')).toHaveLength(1)
    expect(errors[0]?.details?.movedTo).toMatch(/outbox\.db\.corrupt-/)
  })
})

describe('options', () => {
  it('an unknown option is refused naming the one meant', () => {
    const path = join(tempDir(), 'outbox.db')
    expect(() => sqliteOutbox({ path, maxMessage: 10 } as never)).toThrow(
      expect.objectContaining({
        code: 'INVALID_OPTIONS',
        message: 'sqliteOutbox.maxMessage is not an option; did you mean sqliteOutbox.maxMessages?',
      }),
    )
    expect(() => sqliteOutbox({ path, groupCommit: { maxDelay: 1 } } as never)).toThrow(
      /sqliteOutbox\.groupCommit\.maxDelay is not an option; did you mean sqliteOutbox\.groupCommit\.maxDelayMs\?/,
    )
  })
})

describe('paths', () => {
  it('a path with NUL is refused with INVALID_OPTIONS, not cut short', () => {
    const dir = tempDir()
    expect(() => sqliteOutbox({ path: join(dir, 'a.db\u0000b') })).toThrow(
      expect.objectContaining({
        code: 'INVALID_OPTIONS',
        message: expect.stringContaining('path'),
      }),
    )
    expect(readdirSync(dir)).toEqual([])
  })
})

describe('volumes', () => {
  it('a corrupt file on a read-only volume is a typed error, and no handle is left open', () => {
    const dir = volume('256k')
    const path = join(dir, 'outbox.db')
    writeFileSync(path, 'this is not a database '.repeat(200))
    execFileSync('mount', ['-o', 'remount,ro', dir])
    for (let i = 0; i < 3; i++) {
      let thrown: unknown
      try {
        open.push(sqliteOutbox({ path }))
      } catch (err) {
        thrown = err
      }
      expect(thrown).toMatchObject({
        code: 'OUTBOX_CORRUPT',
        message: expect.stringContaining('cannot be moved aside'),
      })
    }
    expect(openFilesUnder(dir)).toEqual([])
    // Nothing holds the volume: it unmounts.
    unmount(dir)
  })

  it('after filling a 256 KiB volume, draining frees it: publishes work again, also after a restart', async () => {
    const dir = volume('256k')
    const path = join(dir, 'outbox.db')
    const errors: UplinkError[] = []
    const clock = new ManualClock(Date.now())
    const start = () => {
      const box = sqliteOutbox({ path, clock })
      box.setListener({ drop: () => {}, error: (e) => errors.push(e) })
      open.push(box)
      return box
    }
    let box = start()
    let stored = 0
    let full: UplinkError | undefined
    for (let n = 0; n < 1_000 && !full; n++) {
      try {
        await box.enqueue(kib(n), 0)
        stored++
      } catch (err) {
        full = err as UplinkError
      }
    }
    expect(full?.code).toBe('OUTBOX_DISK_FULL')
    // Most of the volume holds messages, not a WAL that was never checkpointed.
    expect(stored).toBeGreaterThan(60)

    // Every message acknowledged: the deletes commit, the outbox is empty.
    for (const e of await box.take(10_000, 0)) box.ack(e.id)
    // The batched deletes' timer, and past the once-a-second bound on truncating the WAL.
    await clock.advance(1_000)
    expect(errors).toEqual([])
    expect(box.stats().messages).toBe(0)
    // And there is room again, as much as before.
    for (let n = 0; n < stored; n++) await box.enqueue(kib(10_000 + n), 0)
    for (const e of await box.take(10_000, 0)) box.ack(e.id)
    // The batched deletes' timer, and past the once-a-second bound on truncating the WAL.
    await clock.advance(1_000)
    expect(errors).toEqual([])

    // After a restart nothing acknowledged comes back, and publishing works.
    open.splice(open.indexOf(box), 1)
    await box.close()
    box = start()
    expect(box.stats().messages).toBe(0)
    await box.enqueue(kib(20_000), 0)
    expect(box.stats().messages).toBe(1)
    expect(errors).toEqual([])
  })
})
