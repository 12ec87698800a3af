/**
 * Target mode's pure parts: the flags parse into a target, URLs with credentials are refused
 * without echoing them, the login files are read as the devices need them, the user's command
 * is bounded, and the accounting from the devices' side counts what they still held as lost.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { parseArgs } from '../bench/storm/config.js'
import { accountFromDevices } from '../bench/storm/metrics.js'
import { clientRate } from '../bench/storm/probe.js'
import { normalizeBrokerUrl, readTargetAuth, runCommand } from '../bench/storm/target.js'

const dir = mkdtempSync(join(tmpdir(), 'uplink-storm-target-config-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('storm target mode, pure parts', () => {
  it('--primary/--secondary make a target run of Uplink alone; other scenarios and half a target are refused', () => {
    const c = parseArgs([
      ...['--primary', 'mqtts://A.example.com', '--secondary', 'mqtt://10.0.0.2:1884'],
      ...['--fail-cmd', 'kill 1', '--cmd-timeout-ms', '5000', '--dns-server', '10.0.0.53'],
    ])
    expect(c.target).toMatchObject({
      primary: 'mqtts://a.example.com:8883',
      secondary: 'mqtt://10.0.0.2:1884',
      failCmd: 'kill 1',
      cmdTimeoutMs: 5_000,
      dnsServer: '10.0.0.53',
      countdownS: 10,
    })
    expect(c.clients).toEqual(['uplink'])
    expect(() => parseArgs(['--primary', 'mqtt://a:1'])).toThrow(/both --primary and --secondary/)
    expect(() =>
      parseArgs(['--primary', 'mqtt://a:1', '--secondary', 'mqtt://b:1', '--scenario', 'dns-flip']),
    ).toThrow(/crash or blackhole/)
    expect(() => parseArgs(['--primary', 'mqtt://a:1', '--secondary', 'mqtt://a:1'])).toThrow(
      /differ/,
    )
  })

  it('a broker URL with credentials or another scheme is refused, and the message does not echo it', () => {
    let message = ''
    try {
      normalizeBrokerUrl('--primary', 'mqtt://user:hunter2@a.example.com')
    } catch (err) {
      message = (err as Error).message
    }
    expect(message).toMatch(/--password-file/)
    expect(message).not.toContain('hunter2')
    expect(() => normalizeBrokerUrl('--secondary', 'http://a.example.com')).toThrow(/mqtt:\/\//)
    expect(() => normalizeBrokerUrl('--secondary', 'not a url')).toThrow(/mqtt:\/\//)
    expect(normalizeBrokerUrl('--primary', 'mqtt://[::1]:1883')).toBe('mqtt://[::1]:1883')
  })

  it('login and TLS files are read as contents, a secret without its trailing newline', () => {
    writeFileSync(join(dir, 'user'), 'dev\n')
    writeFileSync(join(dir, 'pass'), 'pw with spaces\r\n')
    writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\n')
    const auth = readTargetAuth({
      primary: 'mqtt://a:1',
      secondary: 'mqtt://b:1',
      usernameFile: join(dir, 'user'),
      passwordFile: join(dir, 'pass'),
      ca: join(dir, 'ca.pem'),
      cmdTimeoutMs: 1_000,
      countdownS: 0,
    })
    expect(auth).toEqual({
      username: 'dev',
      password: 'pw with spaces',
      tls: { ca: '-----BEGIN CERTIFICATE-----\n' },
    })
    expect(readTargetAuth({ primary: '', secondary: '', cmdTimeoutMs: 1, countdownS: 0 })).toEqual({
      username: undefined,
      password: undefined,
      tls: undefined,
    })
  })

  it('the user command runs through the shell and is killed at its timeout; a failure is reported, not thrown', async () => {
    const ok = await runCommand('echo failed-over; exit 0', 5_000)
    expect(ok).toMatchObject({ ok: true, code: 0, output: 'failed-over' })
    const bad = await runCommand('exit 3', 5_000)
    expect(bad).toMatchObject({ ok: false, code: 3 })
    const slow = await runCommand('sleep 5', 200)
    expect(slow.ok).toBe(false)
    expect(slow.ms).toBeLessThan(4_000)
  })

  it('accounting from the devices: what a device still held or dropped is lost, duplicates unseen', () => {
    // Device 0 issued 5 (seq 4 unresolved), device 1 issued 3 and still holds 1.
    const ledger = {
      issued: Uint32Array.from([5, 3]),
      notPublished: new Map([[0, new Set([4])]]),
    }
    const a = accountFromDevices(ledger, new Map([[1, 1]]), 0)
    expect(a).toMatchObject({ published: 7, delivered: 6, lost: 1, duplicates: 0 })
    expect(Array.from(a.perDevice.delivered)).toEqual([4, 2])
    expect(accountFromDevices(ledger, new Map(), 2)).toMatchObject({ delivered: 5, lost: 2 })
    expect(clientRate(100, 500)).toEqual({ perSec: 200, spanMs: 500 })
    expect(clientRate(0, 0)).toEqual({ perSec: 0, spanMs: 1 })
  })
})
