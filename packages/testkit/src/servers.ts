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
  // nginx's stream proxy (an SNI router): a dynamic module in Debian, loaded by path.
  'nginx-stream': {
    binary: 'ngx_stream_module.so',
    debian: 'libnginx-mod-stream',
    dirs: ['/usr/lib/nginx/modules'],
  },
  rabbitmq: { binary: 'rabbitmq-server', debian: 'rabbitmq-server' },
  openssl: { binary: 'openssl', debian: 'openssl' },
  // The power-loss filesystem: FUSE, and the Python binding the system interpreter imports.
  fusermount: { binary: 'fusermount3', debian: 'fuse3' },
  fusepy: {
    binary: 'fusepy.py',
    debian: 'python3-fusepy',
    dirs: ['/usr/lib/python3/dist-packages'],
  },
} as const satisfies Record<string, { binary: string; debian: string; dirs?: readonly string[] }>

export type ServerName = keyof typeof SERVERS

/** sbin directories are not on every user's PATH, but Debian puts daemons there. */
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin', '/usr/bin', '/usr/lib/rabbitmq/bin']

/** The absolute path of a server's executable, or undefined when it is not installed. */
export function locate(name: ServerName): string | undefined {
  const server: { binary: string; dirs?: readonly string[] } = SERVERS[name]
  // A module rather than an executable lives in its own directory and needs only be readable.
  const dirs = server.dirs ?? [
    ...(process.env.PATH ?? '').split(delimiter).filter(Boolean),
    ...EXTRA_DIRS,
  ]
  for (const dir of dirs) {
    const path = join(dir, server.binary)
    try {
      accessSync(path, server.dirs ? constants.R_OK : constants.X_OK)
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
