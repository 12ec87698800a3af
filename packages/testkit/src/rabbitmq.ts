import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnDaemon, withFreePorts } from './daemon.js'
import { accepts, assertLoopback } from './loopback.js'
import { binaryOf } from './servers.js'

/**
 * RabbitMQ (from Debian) with its MQTT plugin (MQTT 3.1.1): a second broker implementation. Its
 * own node (name, ports, epmd, data, logs, config, cookie) in a temp dir, every listener on
 * 127.0.0.1; never the system's service. A node takes some 10 s to boot.
 */
export interface TestRabbitMq {
  url: string
  host: string
  port: number
  version: string
  /** How long the node took to accept MQTT connections. */
  startMs: number
  /** SIGKILL the node: every connection drops at once, as in a crash. */
  kill(): Promise<void>
  stop(): Promise<void>
}

const ERTS = '/usr/lib/erlang'

export function rabbitmqVersion(): string {
  try {
    const dir = '/usr/lib/rabbitmq/lib'
    const name = readdirSync(dir).find((d) => d.startsWith('rabbitmq_server-'))
    return name?.slice('rabbitmq_server-'.length) ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

/** epmd, which the node starts detached, outlives it: stopped by its port. */
function killEpmd(port: number, env: NodeJS.ProcessEnv): void {
  const epmd = readdirSync(ERTS)
    .filter((d) => d.startsWith('erts-'))
    .map((d) => join(ERTS, d, 'bin', 'epmd'))
    .find((p) => existsSync(p))
  if (!epmd) return
  try {
    execFileSync(epmd, ['-port', String(port), '-kill'], { env, stdio: 'ignore' })
  } catch {}
}

export async function startRabbitMq(
  options: { host?: string; readyTimeoutMs?: number } = {},
): Promise<TestRabbitMq> {
  const host = options.host ?? '127.0.0.1'
  assertLoopback(host)
  // The /usr/sbin wrapper switches to the rabbitmq user and its /var/lib home: bypassed.
  const binary = join(binaryOf('rabbitmq'), '..', '..', 'lib', 'rabbitmq', 'bin', 'rabbitmq-server')
  const server = existsSync(binary) ? binary : '/usr/lib/rabbitmq/bin/rabbitmq-server'
  const dir = mkdtempSync(join(tmpdir(), 'uplink-rabbitmq-'))
  chmodSync(dir, 0o755)
  const started = Date.now()
  try {
    const run = await withFreePorts(host, 4, async ([mqttPort, amqpPort, distPort, epmdPort]) => {
      const port = mqttPort as number
      const octets = host.split('.').join(',')
      writeFileSync(
        join(dir, 'rabbitmq.conf'),
        [
          'listeners.tcp = none',
          `mqtt.listeners.tcp.default = ${host}:${port}`,
          'mqtt.allow_anonymous = true',
          'log.console = true',
          'log.console.level = error',
          'log.file = false',
        ].join('\n'),
      )
      writeFileSync(join(dir, 'enabled_plugins'), '[rabbitmq_mqtt].\n')
      writeFileSync(join(dir, 'rabbitmq-env.conf'), '')
      const env = {
        ...process.env,
        // The Erlang cookie goes to $HOME.
        HOME: dir,
        RABBITMQ_NODENAME: `uplink-${port}@localhost`,
        RABBITMQ_NODE_IP_ADDRESS: host,
        RABBITMQ_NODE_PORT: String(amqpPort),
        RABBITMQ_DIST_PORT: String(distPort),
        ERL_EPMD_ADDRESS: host,
        ERL_EPMD_PORT: String(epmdPort),
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: `-kernel inet_dist_use_interface {${octets}}`,
        RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
        RABBITMQ_LOG_BASE: join(dir, 'log'),
        RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
        RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
        RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
        RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
        RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
      }
      try {
        const daemon = await spawnDaemon({
          name: 'rabbitmq',
          binary: server,
          args: [],
          env,
          group: true,
          ready: () => accepts(host, port),
          readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
        })
        return { daemon, port, env, epmdPort: epmdPort as number }
      } catch (err) {
        killEpmd(epmdPort as number, env)
        throw err
      }
    })
    const startMs = Date.now() - started
    const stopWith = async (signal: NodeJS.Signals) => {
      await run.daemon.stop(signal)
      killEpmd(run.epmdPort, run.env)
    }
    return {
      url: `mqtt://${host}:${run.port}`,
      host,
      port: run.port,
      version: rabbitmqVersion(),
      startMs,
      kill: () => stopWith('SIGKILL'),
      async stop() {
        await stopWith('SIGTERM')
        rmSync(dir, { recursive: true, force: true })
      },
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}
