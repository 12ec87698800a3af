import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { assertLoopback, listen } from './loopback.js'

/**
 * Mosquitto (from Debian) for MQTT 5 behaviour that aedes (3.1.1 only) cannot show. Each call
 * runs its own process with its own config file on a loopback port.
 */
export interface TestMosquitto {
  url: string
  host: string
  port: number
  stop(): Promise<void>
  /** SIGKILL: every connection drops at once, as in a crash. */
  kill(): Promise<void>
}

export function mosquittoPath(): string {
  for (const candidate of ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto']) {
    try {
      execFileSync(candidate, ['-h'], { stdio: 'ignore' })
      return candidate
    } catch (err) {
      // `mosquitto -h` exits 3 after printing help: it exists.
      if ((err as { status?: number }).status === 3) return candidate
    }
  }
  throw new Error('mosquitto is not installed: apt-get install -y mosquitto (.ci/run does this)')
}

/** A port the OS picks, freed for the child to take. Retried by the caller if lost to a race. */
async function freePort(host: string): Promise<number> {
  const server = net.createServer()
  const port = await listen(server, host)
  await new Promise((r) => server.close(r))
  return port
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port }, () => {
      socket.destroy()
      resolve(true)
    })
    socket.on('error', () => resolve(false))
  })
}

export async function startMosquitto(
  options: {
    host?: string
    /** A fixed port, e.g. the port another region's broker has on another loopback address. */
    port?: number
    /** A TLS listener; `requireCertificate`: clients must present one signed by `ca`. */
    tls?: { cert: string; key: string; ca?: string; requireCertificate?: boolean }
    extraConfig?: string[]
  } = {},
): Promise<TestMosquitto> {
  const host = options.host ?? '127.0.0.1'
  assertLoopback(host)
  const binary = mosquittoPath()
  const dir = mkdtempSync(join(tmpdir(), 'uplink-mosquitto-'))
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = options.port ?? (await freePort(host))
    const config = join(dir, 'mosquitto.conf')
    const tls: string[] = []
    if (options.tls) {
      writeFileSync(join(dir, 'server.pem'), options.tls.cert)
      writeFileSync(join(dir, 'server.key'), options.tls.key)
      tls.push(`certfile ${join(dir, 'server.pem')}`, `keyfile ${join(dir, 'server.key')}`)
      if (options.tls.ca) {
        writeFileSync(join(dir, 'ca.pem'), options.tls.ca)
        tls.push(`cafile ${join(dir, 'ca.pem')}`)
      }
      if (options.tls.requireCertificate) tls.push('require_certificate true')
    }
    writeFileSync(
      config,
      [
        // As root it would drop to the mosquitto user, which cannot read this temp dir.
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        `listener ${port} ${host}`,
        ...tls,
        'allow_anonymous true',
        'persistence false',
        'log_dest none',
        ...(options.extraConfig ?? []),
      ].join('\n'),
    )
    const child: ChildProcess = spawn(binary, ['-c', config], { stdio: 'ignore' })
    let exited = false
    child.on('exit', () => {
      exited = true
    })
    let up = false
    const deadline = Date.now() + 5_000
    while (!exited && Date.now() < deadline) {
      if (await accepts(host, port)) {
        up = true
        break
      }
      await new Promise((r) => setTimeout(r, 20))
    }
    if (!up) {
      child.kill('SIGKILL')
      continue
    }
    const stopWith = async (signal: NodeJS.Signals) => {
      if (!exited) {
        const gone = new Promise((r) => child.once('exit', r))
        child.kill(signal)
        await gone
      }
      rmSync(dir, { recursive: true, force: true })
    }
    const urlHost = host.includes(':') ? `[${host}]` : host
    return {
      url: `mqtt://${urlHost}:${port}`,
      host,
      port,
      stop: () => stopWith('SIGTERM'),
      kill: () => stopWith('SIGKILL'),
    }
  }
  rmSync(dir, { recursive: true, force: true })
  throw new Error('mosquitto did not start')
}
