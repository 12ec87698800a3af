import { execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Daemon, spawnDaemon, withFreePorts } from './daemon.js'
import { accepts, assertLoopback } from './loopback.js'
import { binaryOf } from './servers.js'

/**
 * Mosquitto 2 (from Debian), for what aedes cannot show: MQTT 5, TLS with client certificates,
 * ACLs, persistent sessions. Each call runs its own process with its own config file and
 * directory, on a loopback port.
 */
export interface MosquittoOptions {
  host?: string
  /** A fixed port, e.g. the port another region's broker has on another loopback address. */
  port?: number
  /** A TLS listener instead of plain TCP. `requireCertificate`: clients must present one
   * signed by `ca`; its CN becomes the MQTT username (for the ACL). */
  tls?: { cert: string; key: string; ca?: string; requireCertificate?: boolean }
  /** Lines of an acl_file (`user name`, `topic write a/#`, `pattern read cmd/%u/#`, ...). */
  acl?: string[]
  /** `persistence true`, in the broker's own directory: sessions and queued messages survive
   * `restart()`. */
  persistence?: boolean
  extraConfig?: string[]
}

export interface TestMosquitto {
  url: string
  host: string
  port: number
  /** The broker's directory (config, ACL, certificates, persistence). */
  dir: string
  readonly running: boolean
  /** SIGTERM and remove the directory; the broker is gone for good. */
  stop(): Promise<void>
  /** SIGKILL: every connection drops at once, as in a crash. `restart()` brings it back. */
  kill(): Promise<void>
  /** Stops it (SIGTERM, saving persistence; or SIGKILL with `{ crash: true }`) if it runs, then
   * starts it again on the same port with the same configuration and persistence. */
  restart(options?: { crash?: boolean }): Promise<void>
}

/** @deprecated kept for callers of the first testkit: use `binaryOf('mosquitto')`. */
export function mosquittoPath(): string {
  return binaryOf('mosquitto')
}

/** "2.0.11", from `mosquitto -h` (which exits 3 after printing its help). */
export function mosquittoVersion(): string {
  let text = ''
  try {
    text = execFileSync(binaryOf('mosquitto'), ['-h'], { encoding: 'utf8' })
  } catch (err) {
    text = String((err as { stdout?: string }).stdout ?? '')
  }
  return /version (\S+)/.exec(text)?.[1] ?? 'unknown'
}

/** Runs as root without dropping to the `mosquitto` user, which could not read the temp dir. */
const stayRoot = () => (process.getuid?.() === 0 ? ['user root'] : [])

function writeConfig(dir: string, host: string, port: number, options: MosquittoOptions): string {
  const lines = [
    'per_listener_settings false',
    'allow_anonymous true',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    ...stayRoot(),
    `listener ${port} ${host}`,
  ]
  if (options.tls) {
    writeFileSync(join(dir, 'server.pem'), options.tls.cert)
    writeFileSync(join(dir, 'server.key'), options.tls.key)
    lines.push(`certfile ${join(dir, 'server.pem')}`, `keyfile ${join(dir, 'server.key')}`)
    if (options.tls.ca) {
      writeFileSync(join(dir, 'ca.pem'), options.tls.ca)
      lines.push(`cafile ${join(dir, 'ca.pem')}`)
    }
    if (options.tls.requireCertificate) {
      lines.push('require_certificate true', 'use_identity_as_username true')
    }
  }
  if (options.acl) {
    writeFileSync(join(dir, 'acl'), `${options.acl.join('\n')}\n`)
    lines.push(`acl_file ${join(dir, 'acl')}`)
  }
  if (options.persistence) {
    lines.push(
      'persistence true',
      `persistence_location ${dir}/`,
      // Written on SIGTERM; no periodic saves needed for a test's lifetime.
      'autosave_interval 0',
    )
  } else lines.push('persistence false')
  lines.push(...(options.extraConfig ?? []))
  const config = join(dir, 'mosquitto.conf')
  writeFileSync(config, `${lines.join('\n')}\n`)
  return config
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<TestMosquitto> {
  const host = options.host ?? '127.0.0.1'
  assertLoopback(host)
  const binary = binaryOf('mosquitto')
  const dir = mkdtempSync(join(tmpdir(), 'uplink-mosquitto-'))
  chmodSync(dir, 0o755)
  const run = (port: number): Promise<Daemon> =>
    spawnDaemon({
      name: 'mosquitto',
      binary,
      args: ['-c', writeConfig(dir, host, port, options)],
      ready: () => accepts(host, port),
    })
  let daemon: Daemon
  let port: number
  try {
    ;[daemon, port] = options.port
      ? [await run(options.port), options.port]
      : await withFreePorts(host, 1, async ([p]) => [await run(p as number), p as number] as const)
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  const urlHost = host.includes(':') ? `[${host}]` : host
  return {
    url: `${options.tls ? 'mqtts' : 'mqtt'}://${urlHost}:${port}`,
    host,
    port,
    dir,
    get running() {
      return daemon.running
    },
    async stop() {
      await daemon.stop('SIGTERM')
      rmSync(dir, { recursive: true, force: true })
    },
    kill: () => daemon.stop('SIGKILL'),
    async restart(restartOptions = {}) {
      await daemon.stop(restartOptions.crash ? 'SIGKILL' : 'SIGTERM')
      daemon = await run(port)
    },
  }
}
