import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

/**
 * The third-party servers the tests start, each with the executable that must be present and
 * the Debian package that provides it. The one list: the starters find their binaries here, and
 * the test commands' provisioning (test/provision) installs what is missing from it.
 */
export const SERVERS = {
  mosquitto: { binary: 'mosquitto', debian: 'mosquitto' },
  dnsmasq: { binary: 'dnsmasq', debian: 'dnsmasq-base' },
  unbound: { binary: 'unbound', debian: 'unbound' },
  'unbound-control': { binary: 'unbound-control', debian: 'unbound' },
  nginx: { binary: 'nginx', debian: 'nginx-light' },
  rabbitmq: { binary: 'rabbitmq-server', debian: 'rabbitmq-server' },
  openssl: { binary: 'openssl', debian: 'openssl' },
} as const

export type ServerName = keyof typeof SERVERS

/** sbin directories are not on every user's PATH, but Debian puts daemons there. */
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin', '/usr/bin', '/usr/lib/rabbitmq/bin']

/** The absolute path of a server's executable, or undefined when it is not installed. */
export function locate(name: ServerName): string | undefined {
  const { binary } = SERVERS[name]
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_DIRS]
  for (const dir of dirs) {
    const path = join(dir, binary)
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {}
  }
  return undefined
}

/** The path of a server's executable; throws with the command that installs it. */
export function binaryOf(name: ServerName): string {
  const path = locate(name)
  if (path) return path
  throw new Error(
    `${SERVERS[name].binary} is not installed: apt-get install -y ${SERVERS[name].debian} (pnpm test installs it when run as root on Debian)`,
  )
}
