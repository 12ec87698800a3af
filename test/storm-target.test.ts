/**
 * The storm in target mode against brokers it did not start: two Mosquitto processes (started
 * here, as a user's brokers would be running), `--primary` and `--secondary` pointing at them,
 * a login read from files, and `--fail-cmd` killing the primary's process at the scenario's
 * moment. Every device must end on the secondary with nothing lost, the figures that need the
 * broker's side must say they were derived, and the password must be in no output.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startMosquitto, type TestMosquitto } from '@uplink/testkit'
import { afterAll, describe, expect, it } from 'vitest'
import type { StormRecord } from '../bench/storm/record.js'
import { DERIVED } from '../bench/storm/target.js'
import { storm } from './storm-cli.js'

const DEVICES = 60
const PASSWORD = 's3cret-storm-pw'
const dir = mkdtempSync(join(tmpdir(), 'uplink-storm-target-'))
const brokers: TestMosquitto[] = []
afterAll(async () => {
  await Promise.all(brokers.map((b) => b.stop().catch(() => {})))
  rmSync(dir, { recursive: true, force: true })
})

/** The pid of the Mosquitto this test started: the one whose command line names its own dir. */
function pidOf(broker: TestMosquitto): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let cmdline = ''
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
    } catch {
      continue
    }
    if (cmdline.includes(broker.dir) && cmdline.includes('mosquitto')) return Number(entry)
  }
  throw new Error(`no process for ${broker.dir}`)
}

describe('fleet storm in target mode', () => {
  it('crash by --fail-cmd killing the primary Mosquitto: every device on the secondary, 0 lost, derived figures flagged, no password anywhere', async () => {
    // A login both brokers require, as a user's would.
    const passwd = join(dir, 'passwd')
    writeFileSync(passwd, `storm:${PASSWORD}\n`)
    const { execFileSync } = await import('node:child_process')
    execFileSync('mosquitto_passwd', ['-U', passwd])
    const auth = ['allow_anonymous false', `password_file ${passwd}`]
    for (let i = 0; i < 2; i++) brokers.push(await startMosquitto({ extraConfig: auth }))
    const [primary, secondary] = brokers as [TestMosquitto, TestMosquitto]
    writeFileSync(join(dir, 'user'), 'storm\n')
    writeFileSync(join(dir, 'password'), `${PASSWORD}\n`)
    const json = join(dir, 'target.json')
    const run = await storm([
      ...['--primary', primary.url, '--secondary', secondary.url],
      ...['--username-file', join(dir, 'user'), '--password-file', join(dir, 'password')],
      ...['--fail-cmd', `kill -9 ${pidOf(primary)}`, '--recover-cmd', 'true'],
      ...['--devices', String(DEVICES), '--scenario', 'crash', '--rate', '4'],
      ...['--backoff-initial-ms', '200', '--backoff-max-ms', '1000', '--warmup-ms', '1000'],
      ...['--tail-ms', '500', '--workers', '1', '--probe', '20', '--seed', '7', '--no-progress'],
      ...['--json', json, '--html', join(dir, 'target.html')],
    ])
    expect(run.code, run.out).toBe(0)
    expect(run.out).toMatch(/--fail-cmd done in \d+ ms/)
    expect(run.out).toMatch(/--recover-cmd done/)
    expect(primary.running).toBe(false)
    const [record] = JSON.parse(readFileSync(json, 'utf8')) as StormRecord[]
    if (!record) throw new Error('no record')
    expect(record.devices).toBe(DEVICES)
    expect(record.devicesOnSecondary).toBe(DEVICES)
    expect(record.recovery.allMs).not.toBeNull()
    expect(record.messages.published).toBeGreaterThan(DEVICES * 4)
    expect(record.messages.lost).toBe(0)
    expect(record.undelivered.queuedAtEnd).toBe(0)
    expect(record.target).toEqual({ primary: primary.url, secondary: secondary.url })
    expect(record.derived).toEqual(DERIVED)
    expect(record.acceptRatePerSec).toBeGreaterThan(0)
    // Derived from the devices: every one's first CONNACK there, so at least one in a second.
    expect(record.peakSessionsPerSec).toBeGreaterThan(0)
    const page = readFileSync(join(dir, 'target.html'), 'utf8')
    for (const text of [run.out, readFileSync(json, 'utf8'), page])
      expect(text).not.toContain(PASSWORD)
  }, 60_000)
})
