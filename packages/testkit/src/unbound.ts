import { execFile, execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { spawnDaemon, withFreePorts } from './daemon.js'
import { awaitDnsAnswer, dnsProbe } from './dns-probe.js'
import { assertLoopback } from './loopback.js'
import { binaryOf } from './servers.js'

const run = promisify(execFile)

/**
 * unbound (from Debian) as a device's DNS server, authoritative for `zone` (default `test.`) from
 * local-data, records changed at run time through `unbound-control` on a loopback control port
 * with its own keys. Names it has no data for are NXDOMAIN; a missing type is NODATA.
 */
export interface TestUnbound {
  host: string
  port: number
  /** `host:port`, as `dns.servers` takes it. */
  server: string
  version: string
  /** Replaces the name's records (`local_data_remove`, then `local_data`) and resolves once
   * unbound answers them. */
  set(name: string, addresses: string[], ttl?: number): Promise<void>
  stop(): Promise<void>
}

export function unboundVersion(): string {
  const text = execFileSync(binaryOf('unbound'), ['-V'], { encoding: 'utf8' })
  return /Version (\S+)/.exec(text)?.[1] ?? 'unknown'
}

/**
 * unbound-control-setup makes RSA keys (seconds of CPU): once per process, kept in memory and
 * written into each server's directory. Their own directory goes at once: a process exit hook
 * never ran when vitest ended its workers, and every interop run left one behind in /tmp.
 */
let controlKeys: Promise<Map<string, Buffer>> | undefined
function makeControlKeys(): Promise<Map<string, Buffer>> {
  controlKeys ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uplink-unbound-keys-'))
    try {
      const setup = join(binaryOf('unbound-control'), '..', 'unbound-control-setup')
      await run(setup, ['-d', dir])
      return new Map(readdirSync(dir).map((name) => [name, readFileSync(join(dir, name))]))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })()
  return controlKeys
}

const record = (name: string, ttl: number, address: string) =>
  `${name} ${ttl} IN ${address.includes(':') ? 'AAAA' : 'A'} ${address}`

export async function startUnbound(
  options: { host?: string; zone?: string; records?: Record<string, string[]>; ttl?: number } = {},
): Promise<TestUnbound> {
  const host = options.host ?? '127.0.0.1'
  assertLoopback(host)
  const binary = binaryOf('unbound')
  const control = binaryOf('unbound-control')
  const defaultTtl = options.ttl ?? 1
  const dir = mkdtempSync(join(tmpdir(), 'uplink-unbound-'))
  chmodSync(dir, 0o755)
  const config = join(dir, 'unbound.conf')
  const controlArgs = ['-c', config]
  try {
    for (const [name, bytes] of await makeControlKeys())
      writeFileSync(join(dir, name), bytes, { mode: 0o600 })
    const { daemon, port } = await withFreePorts(host, 2, async ([p, c]) => {
      const port = p as number
      writeFileSync(
        config,
        [
          'server:',
          `  interface: ${host}@${port}`,
          `  port: ${port}`,
          '  do-daemonize: no',
          '  chroot: ""',
          '  username: ""',
          `  directory: "${dir}"`,
          '  pidfile: ""',
          '  use-syslog: no',
          '  logfile: ""',
          '  verbosity: 0',
          '  do-ip6: no',
          '  module-config: "iterator"',
          '  access-control: 127.0.0.0/8 allow',
          `  local-zone: "${options.zone ?? 'test.'}" static`,
          ...Object.entries(options.records ?? {}).flatMap(([name, addresses]) =>
            addresses.map((a) => `  local-data: "${record(name, defaultTtl, a)}"`),
          ),
          'remote-control:',
          '  control-enable: yes',
          `  control-interface: ${host}`,
          `  control-port: ${c}`,
          `  server-key-file: "${dir}/unbound_server.key"`,
          `  server-cert-file: "${dir}/unbound_server.pem"`,
          `  control-key-file: "${dir}/unbound_control.key"`,
          `  control-cert-file: "${dir}/unbound_control.pem"`,
        ].join('\n'),
      )
      const daemon = await spawnDaemon({
        name: 'unbound',
        binary,
        args: ['-d', '-c', config],
        ready: async () => {
          await dnsProbe({ host, port }, 'ready.invalid')
          await run(control, [...controlArgs, 'status'])
          return true
        },
      })
      return { daemon, port }
    })
    return {
      host,
      port,
      server: `${host}:${port}`,
      version: unboundVersion(),
      async set(name, addresses, ttl = defaultTtl) {
        await run(control, [...controlArgs, 'local_data_remove', name])
        for (const address of addresses) {
          await run(control, [...controlArgs, 'local_data', record(name, ttl, address)])
        }
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
