/** The gateway's settings, from environment variables (what a systemd unit or container sets). */
export interface GatewayConfig {
  id: string
  endpoints: string[]
  username: string | undefined
  password: string | undefined
  dataDir: string
  telemetryMs: number
  telemetryTtlSeconds: number
  alarmAbove: number
  stopTimeoutMs: number
  seed: number
}

export const GATEWAY_DEFAULTS = {
  dataDir: '/var/lib/uplink-gateway',
  telemetryMs: 1_000,
  telemetryTtlSeconds: 3_600,
  alarmAbove: 30,
  // Under systemd's TimeoutStopSec (10 s in the unit file), so systemd never has to SIGKILL.
  stopTimeoutMs: 2_000,
  seed: 1,
}

function number(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value)) throw new Error(`${name} must be a number`)
  return value
}

export function readConfig(env: NodeJS.ProcessEnv): GatewayConfig {
  const id = env.GATEWAY_ID
  const endpoints = (env.UPLINK_ENDPOINTS ?? '').split(',').filter(Boolean)
  if (!id) throw new Error('GATEWAY_ID is required')
  if (endpoints.length === 0) throw new Error('UPLINK_ENDPOINTS is required (comma-separated URLs)')
  return {
    id,
    endpoints,
    username: env.UPLINK_USERNAME || undefined,
    password: env.UPLINK_PASSWORD || undefined,
    dataDir: env.DATA_DIR || GATEWAY_DEFAULTS.dataDir,
    telemetryMs: number(env, 'TELEMETRY_MS', GATEWAY_DEFAULTS.telemetryMs),
    telemetryTtlSeconds: number(env, 'TELEMETRY_TTL_SECONDS', GATEWAY_DEFAULTS.telemetryTtlSeconds),
    alarmAbove: number(env, 'ALARM_ABOVE', GATEWAY_DEFAULTS.alarmAbove),
    stopTimeoutMs: number(env, 'STOP_TIMEOUT_MS', GATEWAY_DEFAULTS.stopTimeoutMs),
    seed: number(env, 'SENSOR_SEED', GATEWAY_DEFAULTS.seed),
  }
}
