import { execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnDaemon, withFreePorts } from './daemon.js'
import { awaitDnsAnswer, dnsProbe } from './dns-probe.js'
import { assertLoopback } from './loopback.js'
import { binaryOf } from './servers.js'

/**
 * dnsmasq (from Debian) as a device's DNS server, as on countless site routers: local names
 * from a hosts file, no upstream. For a name it has only an A record for, it answers AAAA with
 * REFUSED (it has nowhere to forward the question).
 */
export interface TestDnsmasq {
  host: string
  port: number
  /** `host:port`, as `dns.servers` takes it. */
  server: string
  version: string
  /** Rewrites the hosts file (atomically), SIGHUPs dnsmasq and resolves once it answers so. */
  set(name: string, addresses: string[]): Promise<void>
  stop(): Promise<void>
}

export function dnsmasqVersion(): string {
  const text = execFileSync(binaryOf('dnsmasq'), ['--version'], { encoding: 'utf8' })
  return /version (\S+)/.exec(text)?.[1] ?? 'unknown'
}

export async function startDnsmasq(
  options: { host?: string; records?: Record<string, string[]>; ttl?: number } = {},
): Promise<TestDnsmasq> {
  const host = options.host ?? '127.0.0.1'
  assertLoopback(host)
  const binary = binaryOf('dnsmasq')
  const dir = mkdtempSync(join(tmpdir(), 'uplink-dnsmasq-'))
  chmodSync(dir, 0o755)
  const hostsFile = join(dir, 'hosts')
  const records = new Map(Object.entries(options.records ?? {}))
  const writeHosts = () => {
    const lines = [...records].flatMap(([name, addresses]) => addresses.map((a) => `${a} ${name}`))
    writeFileSync(`${hostsFile}.new`, `${lines.join('\n')}\n`)
    renameSync(`${hostsFile}.new`, hostsFile)
  }
  writeHosts()
  try {
    const { daemon, port } = await withFreePorts(host, 1, async ([p]) => {
      const port = p as number
      const config = join(dir, 'dnsmasq.conf')
      writeFileSync(
        config,
        [
          `port=${port}`,
          `listen-address=${host}`,
          'bind-interfaces',
          'no-resolv',
          'no-hosts',
          `addn-hosts=${hostsFile}`,
          `local-ttl=${options.ttl ?? 1}`,
          'pid-file=',
          'log-facility=-',
          // As root it would drop to `nobody`, who could not re-read the hosts file on SIGHUP.
          ...(process.getuid?.() === 0 ? ['user=root'] : []),
        ].join('\n'),
      )
      const daemon = await spawnDaemon({
        name: 'dnsmasq',
        binary,
        args: ['--keep-in-foreground', `--conf-file=${config}`],
        ready: () => dnsProbe({ host, port }, 'ready.invalid').then(() => true),
      })
      return { daemon, port }
    })
    return {
      host,
      port,
      server: `${host}:${port}`,
      version: dnsmasqVersion(),
      async set(name, addresses) {
        if (addresses.length) records.set(name, addresses)
        else records.delete(name)
        writeHosts()
        daemon.signal('SIGHUP')
        await awaitDnsAnswer({ host, port }, name, addresses)
      },
      async stop() {
        await daemon.stop()
        rmSync(dir, { recursive: true, force: true })
      },
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}
