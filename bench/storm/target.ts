/**
 * Target mode: the fleet against brokers the user runs (`--primary URL --secondary URL`) instead
 * of the storm's own aedes regions. Credentials and certificates come from files, are read only
 * here and go to the device workers over IPC: never into the printed settings, the JSON or the
 * page. The failure is the user's: a command run at the scenario's moment, or a countdown.
 */
import { exec } from 'node:child_process'
import { readFileSync } from 'node:fs'

export interface TargetConfig {
  primary: string
  secondary: string
  /** Files, read when the run starts. */
  usernameFile?: string | undefined
  passwordFile?: string | undefined
  ca?: string | undefined
  cert?: string | undefined
  key?: string | undefined
  /** DNS server for the brokers' names ('ip' or 'ip:port'); default the system's resolvers. */
  dnsServer?: string | undefined
  failCmd?: string | undefined
  recoverCmd?: string | undefined
  /** Bound on each command. */
  cmdTimeoutMs: number
  /** Without --fail-cmd: the countdown before the moment the user fails the primary. */
  countdownS: number
}

/** What the devices need to log in: contents, not paths. Never printed. */
export interface TargetAuth {
  username?: string | undefined
  password?: string | undefined
  tls?: { ca?: string; cert?: string; key?: string } | undefined
}

/**
 * A broker URL as Uplink's `connect` event names it (`scheme://host:port`), so the workers can
 * tell the primary from the secondary by the endpoint (both may share an address). Refuses
 * credentials in the URL without echoing it: they would be printed with the settings.
 */
export function normalizeBrokerUrl(flag: string, text: string | undefined): string {
  let url: URL
  try {
    url = new URL(text ?? '')
  } catch {
    throw new Error(`${flag} must be an mqtt:// or mqtts:// URL`)
  }
  if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:')
    throw new Error(`${flag} must be an mqtt:// or mqtts:// URL`)
  if (url.username || url.password)
    throw new Error(`${flag} must not carry credentials: use --username-file and --password-file`)
  const port = url.port || (url.protocol === 'mqtts:' ? '8883' : '1883')
  // As Uplink names it: mqtt: is not a scheme URL lowercases the host of, and a device's
  // endpoint would not match a mixed-case --primary.
  return `${url.protocol}//${url.hostname.toLowerCase()}:${port}`
}

/** Host and port of a normalized URL, and whether it is TLS. */
export function brokerParts(url: string): { host: string; port: number; secure: boolean } {
  const u = new URL(url)
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(u.port),
    secure: u.protocol === 'mqtts:',
  }
}

/** Reads the credential and certificate files; a trailing newline in a secret file is not part of it. */
export function readTargetAuth(t: TargetConfig): TargetAuth {
  const secret = (f: string | undefined) =>
    f === undefined ? undefined : readFileSync(f, 'utf8').replace(/\r?\n$/, '')
  const pem = (f: string | undefined) => (f === undefined ? undefined : readFileSync(f, 'utf8'))
  const tls = { ca: pem(t.ca), cert: pem(t.cert), key: pem(t.key) }
  const anyTls = tls.ca !== undefined || tls.cert !== undefined || tls.key !== undefined
  return {
    username: secret(t.usernameFile),
    password: secret(t.passwordFile),
    tls: anyTls
      ? Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined))
      : undefined,
  }
}

/**
 * Runs the user's command through the shell, bounded by `timeoutMs`; resolves with how it
 * ended (never rejects: a failed command is reported, the run goes on and shows what happened).
 */
export function runCommand(
  cmd: string,
  timeoutMs: number,
): Promise<{ ok: boolean; code: number | null; ms: number; output: string }> {
  const started = Date.now()
  return new Promise((resolve) => {
    exec(cmd, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0
      resolve({
        ok: !err,
        code,
        ms: Date.now() - started,
        output: `${stdout}${stderr}`.trim().slice(0, 2_000),
      })
    })
  })
}

/** The figures target mode cannot see at the broker, and where they come from instead. */
export const DERIVED = {
  acceptRatePerSec: "the probe clients' CONNACKs per second (not timed at the broker)",
  peakConnectsPerSec:
    "the devices' first CONNACKs on the secondary per second (no broker accept log)",
  peakSessionsPerSec: "the devices' first CONNACKs on the secondary per second",
  delivered: 'messages the broker acknowledged to the devices (PUBACK), not receipts at the broker',
  duplicates: 'not observable from the devices (0)',
  'cpu.brokers': "not measured (0): the brokers are not this machine's processes",
} as const
