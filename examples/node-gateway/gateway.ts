/**
 * A gateway as it would ship, shared by the Node and the Bun entry points (main.ts beside each):
 * telemetry from a sensor, alarms with priority, commands subscribed and acknowledged, presence,
 * the SQLite outbox under a data directory, one log line per event, and a bounded stop on
 * SIGTERM/SIGINT that leaves the outbox intact.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { createUplink, isUplinkError, type Uplink } from '@uplink/client'
import { type SqliteDriver, sqliteOutbox } from '@uplink/store-sqlite'
import { type GatewayConfig, readConfig } from './config.js'
import { logLine } from './log.js'
import { simulatedSensor } from './sensor.js'

export interface Gateway {
  uplink: Uplink
  /** Stops within config.stopTimeoutMs: the outbox is closed, whatever was unsent stays in it. */
  stop(reason: string): Promise<void>
}

/** Starts the gateway; `driver` is the outbox's SQLite binding ('auto' picks per runtime). */
export async function startGateway(
  config: GatewayConfig,
  driver: SqliteDriver | 'auto' = 'auto',
): Promise<Gateway> {
  const { id } = config
  const log = (event: string, fields: Record<string, unknown> = {}) =>
    process.stdout.write(`${logLine(event, { gateway: id, ...fields })}\n`)
  mkdirSync(config.dataDir, { recursive: true })
  const outbox = sqliteOutbox({ path: join(config.dataDir, 'outbox.db'), driver })
  const uplink = createUplink({
    clientId: id,
    endpoints: config.endpoints,
    username: config.username,
    password: config.password,
    outbox,
    presence: { topic: `presence/${id}` },
  })

  // One line per event, built from the event's own fields: none carries a credential.
  uplink.on('state', (e) => log('state', { state: e.state, previous: e.previous }))
  uplink.on('connect', (e) => log('connect', { endpoint: e.endpoint, address: e.address }))
  uplink.on('disconnect', (e) => log('disconnect', { endpoint: e.endpoint, code: e.error.code }))
  uplink.on('reconnecting', (e) =>
    log('reconnecting', { attempt: e.attempt, endpoint: e.endpoint }),
  )
  uplink.on('failover', (e) => log('failover', { from: e.from, to: e.to, reason: e.reason }))
  uplink.on('drop', (e) => log('drop', { topic: e.topic, priority: e.priority, reason: e.reason }))
  uplink.on('error', (err) => log('error', { code: err.code, message: err.message }))

  await uplink.start()
  log('started', { driver: outbox.info().driver, runtime: outbox.info().runtime })

  const failed = (err: unknown) => {
    // STOPPED once the gateway is stopping; anything else is worth a line.
    if (!isUplinkError(err, 'STOPPED'))
      log('publish-failed', { code: isUplinkError(err) ? err.code : 'UNKNOWN' })
  }

  // Commands: commands/<id>/<name>, acknowledged on acks/<id> with what was done.
  await uplink.subscribe(`commands/${id}/+`, (topic, payload) => {
    const name = topic.slice(`commands/${id}/`.length)
    log('command', { name, bytes: payload.length })
    const ack = JSON.stringify({ command: name, ok: name !== 'unknown', at: Date.now() })
    uplink.publish(`acks/${id}`, ack, { qos: 1, priority: 'alarm' }).catch(failed)
  })

  const sensor = simulatedSensor(config.seed)
  let alarmed = false
  const timer = setInterval(() => {
    const reading = sensor()
    const body = JSON.stringify({ t: reading, at: Date.now() })
    uplink
      .publish(`telemetry/${id}`, body, { qos: 1, ttlSeconds: config.telemetryTtlSeconds })
      .catch(failed)
    // An alarm on crossing the threshold (not on every reading above it), ahead of telemetry.
    const above = reading > config.alarmAbove
    if (above && !alarmed) {
      log('alarm', { reading, threshold: config.alarmAbove })
      uplink
        .publish(`alarms/${id}`, JSON.stringify({ overTemperature: reading }), {
          qos: 1,
          priority: 'alarm',
        })
        .catch(failed)
    }
    alarmed = above
  }, config.telemetryMs)

  let stopping: Promise<void> | undefined
  return {
    uplink,
    stop: (reason) => {
      stopping ??= (async () => {
        clearInterval(timer)
        log('stopping', { reason, unsent: uplink.stats().outbox.messages })
        await uplink.stop({ timeoutMs: config.stopTimeoutMs })
        log('stopped', { unsent: uplink.stats().outbox.messages })
      })()
      return stopping
    },
  }
}

/** The process around a gateway: config from the environment, a bounded stop on a signal. */
export async function runGateway(driver: SqliteDriver | 'auto'): Promise<void> {
  const config = readConfig(process.env)
  const gateway = await startGateway(config, driver)
  const onSignal = (signal: NodeJS.Signals) => {
    // A second signal, or a stop that overruns its bound, ends the process at once: SQLite
    // commits are atomic, so even then the outbox file stays intact.
    process.once(signal, () => process.exit(130))
    setTimeout(() => process.exit(1), config.stopTimeoutMs * 3).unref()
    gateway.stop(signal).then(() => process.exit(0))
  }
  process.once('SIGTERM', onSignal)
  process.once('SIGINT', onSignal)
}
