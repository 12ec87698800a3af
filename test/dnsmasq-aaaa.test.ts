import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import dgram from 'node:dgram'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { createResolver, createUplink, type DnsPartialEvent } from '@uplink/client'
import { startBroker, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'

/**
 * The README's scenario against a DNS server nobody here wrote: a gateway whose DNS server is
 * dnsmasq holding the broker's name as a local IPv4 record, with no upstream. dnsmasq answers A
 * and REFUSED to AAAA; with default options (dns.family 0) the device must still connect.
 */

const HOST = '127.0.0.1'
const NAME = 'broker.site.test'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

function dnsmasqPath(): string {
  for (const path of ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq', '/sbin/dnsmasq']) {
    if (spawnSync(path, ['--version']).status === 0) return path
  }
  throw new Error('dnsmasq is not installed: apt-get install -y dnsmasq-base')
}

/** A port free for both UDP and TCP on HOST, as dnsmasq binds both and cannot pick its own. */
async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const server = net.createServer()
    const port = await new Promise<number>((r) =>
      server.listen(0, HOST, () => r((server.address() as net.AddressInfo).port)),
    )
    const udp = dgram.createSocket('udp4')
    const ok = await new Promise<boolean>((r) => {
      udp.once('error', () => r(false))
      udp.bind(port, HOST, () => r(true))
    })
    await new Promise<void>((r) => udp.close(() => r()))
    await new Promise<void>((r) => server.close(() => r()))
    if (ok) return port
  }
  throw new Error('no port free for both UDP and TCP')
}

/** dnsmasq on HOST with its own configuration: only a hosts file, no upstream, no system files. */
async function startDnsmasq(hostsLine: string): Promise<string> {
  const binary = dnsmasqPath()
  const dir = mkdtempSync(join(tmpdir(), 'uplink-dnsmasq-'))
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
  const hosts = join(dir, 'hosts')
  writeFileSync(hosts, `${hostsLine}\n`)
  const port = await freePort()
  const conf = join(dir, 'dnsmasq.conf')
  writeFileSync(
    conf,
    [
      'no-resolv',
      'no-hosts',
      `addn-hosts=${hosts}`,
      `listen-address=${HOST}`,
      'bind-interfaces',
      `port=${port}`,
      // Stay the user that runs the test (root would otherwise drop to nobody) and write nothing
      // outside the test's directory.
      `user=${userInfo().username}`,
      'pid-file=',
      'log-facility=-',
    ].join('\n'),
  )
  const child: ChildProcess = spawn(binary, ['--keep-in-foreground', `--conf-file=${conf}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let log = ''
  child.stderr?.on('data', (chunk) => {
    log += chunk
  })
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  cleanup.push(async () => {
    child.kill('SIGTERM')
    await exited
  })
  const server = `${HOST}:${port}`
  // Ready once it answers the A record (bounded by waitFor's timeout).
  const probe = createResolver({
    servers: [server],
    timeoutMs: 200,
    attempts: 1,
    family: 4,
    systemFallback: false,
  })
  let ready = false
  await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`dnsmasq exited: ${log}`)
    probe.resolve(NAME).then(
      () => {
        ready = true
      },
      () => {},
    )
    return ready
  }, `dnsmasq answering on ${server} (${log})`)
  return server
}

describe('dnsmasq with an IPv4 record only, no upstream', () => {
  it('answers the A record and REFUSED to AAAA', async () => {
    const server = await startDnsmasq(`${HOST} ${NAME}`)
    const ask = (family: 4 | 6) =>
      createResolver({
        servers: [server],
        timeoutMs: 1_000,
        attempts: 1,
        family,
        systemFallback: false,
      })
    expect((await ask(4).resolve(NAME)).addresses).toEqual([
      { address: HOST, family: 4, ttl: expect.any(Number) },
    ])
    await expect(ask(6).resolve(NAME)).rejects.toMatchObject({ code: 'DNS_REFUSED' })
  })

  it('a device with default options connects through it, reports the refused AAAA and delivers', async () => {
    const server = await startDnsmasq(`${HOST} ${NAME}`)
    const broker = await startBroker({ host: HOST })
    cleanup.push(() => broker.stop())
    const uplink = createUplink({
      clientId: 'gw-dnsmasq',
      endpoints: [`mqtt://${NAME}:${broker.port}`],
      dns: { servers: [server] },
    })
    cleanup.push(() => uplink.stop())
    const partials: DnsPartialEvent[] = []
    uplink.on('dns-partial', (e) => partials.push(e))
    for (let seq = 0; seq < 5; seq++) await uplink.publish('telemetry/gw-dnsmasq', `${seq}`)
    await uplink.start()
    await waitFor(() => broker.publishes.length === 5, 'five publishes at the broker', 10_000)
    expect(broker.publishes.map((p) => p.payload.toString())).toEqual(['0', '1', '2', '3', '4'])
    expect(uplink.stats()).toMatchObject({ state: 'connected', address: HOST })
    expect(partials[0]).toMatchObject({
      host: NAME,
      server,
      family: 6,
      error: { code: 'DNS_REFUSED' },
    })
  })
})
