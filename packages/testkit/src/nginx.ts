import { spawnSync } from 'node:child_process'
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { spawnDaemon, withFreePorts } from './daemon.js'
import { accepts, assertLoopback } from './loopback.js'
import { binaryOf } from './servers.js'

/**
 * nginx (from Debian) serving static files over HTTPS: what an operator is likely to deploy as a
 * concierge. ETag and If-None-Match are nginx's own (for static files, the ETag is the file's
 * mtime in seconds and its size).
 */
export interface TestNginx {
  host: string
  port: number
  version: string
  /** `https://host:port<path>`. */
  url(path: string): string
  /** Writes a file under the document root atomically (a temporary file, then rename), as an
   * operator's deploy would; its mtime is moved past the previous one so the ETag changes. */
  writeFile(path: string, content: string): void
  /** Status codes of the requests served so far, in order (from nginx's access log). */
  statuses(): number[]
  stop(): Promise<void>
}

export function nginxVersion(): string {
  // `nginx -v` prints "nginx version: nginx/1.22.1" on stderr.
  const result = spawnSync(binaryOf('nginx'), ['-v'], { encoding: 'utf8' })
  return /nginx\/(\S+)/.exec(`${result.stderr}`)?.[1] ?? 'unknown'
}

export async function startNginx(options: {
  tls: { cert: string; key: string }
  host?: string
  files?: Record<string, string>
}): Promise<TestNginx> {
  const host = options.host ?? '127.0.0.1'
  assertLoopback(host)
  binaryOf('nginx') // before anything is made: fails with the command that installs it
  const dir = mkdtempSync(join(tmpdir(), 'uplink-nginx-'))
  chmodSync(dir, 0o755)
  const root = join(dir, 'www')
  mkdirSync(root)
  writeFileSync(join(dir, 'server.pem'), options.tls.cert)
  writeFileSync(join(dir, 'server.key'), options.tls.key)
  const accessLog = join(dir, 'access.log')
  let lastMtime = 0
  const writeFile = (path: string, content: string) => {
    const target = join(root, path)
    mkdirSync(dirname(target), { recursive: true })
    writeFileSync(`${target}.tmp`, content)
    // nginx's ETag is mtime (seconds) and size: two rewrites of equal length within a second
    // would keep the ETag, and clients with If-None-Match would get 304 for the new content.
    lastMtime = Math.max(Math.floor(Date.now() / 1000), lastMtime + 1)
    utimesSync(`${target}.tmp`, lastMtime, lastMtime)
    renameSync(`${target}.tmp`, target)
  }
  for (const [path, content] of Object.entries(options.files ?? {})) writeFile(path, content)
  const { port, stop } = await spawnNginx(dir, host, (port) => [
    'http {',
    '  log_format status "$status";',
    `  access_log ${accessLog} status;`,
    `  client_body_temp_path ${dir}/client_body;`,
    `  proxy_temp_path ${dir}/proxy;`,
    `  fastcgi_temp_path ${dir}/fastcgi;`,
    `  uwsgi_temp_path ${dir}/uwsgi;`,
    `  scgi_temp_path ${dir}/scgi;`,
    '  types { application/json json; }',
    '  default_type application/json;',
    '  server {',
    `    listen ${address(host, port)} ssl;`,
    `    ssl_certificate ${dir}/server.pem;`,
    `    ssl_certificate_key ${dir}/server.key;`,
    `    root ${root};`,
    '  }',
    '}',
  ])
  return {
    host,
    port,
    version: nginxVersion(),
    url: (path) => `https://${address(host, port)}${path}`,
    writeFile,
    statuses: () =>
      readSafe(accessLog)
        .split('\n')
        .filter(Boolean)
        .map((line) => Number(line)),
    stop,
  }
}

/**
 * nginx's stream proxy routing TLS connections by the server name they send (SNI), without
 * terminating them: what sits in front of brokers that share one address and port (HAProxy or
 * nginx in front of a cluster, custom domains on AWS IoT Core). A name it does not know goes to
 * a closed port on loopback, so that connection is closed at once.
 */
export interface TestSniRouter {
  host: string
  port: number
  stop(): Promise<void>
}

export async function startSniRouter(options: {
  /** Server name (as sent, compared exactly) to the `host:port` it is passed to. */
  routes: Record<string, { host: string; port: number }>
  host?: string
}): Promise<TestSniRouter> {
  const host = options.host ?? '127.0.0.1'
  assertLoopback(host)
  for (const to of Object.values(options.routes)) assertLoopback(to.host)
  // Before anything is made: fails with the command that installs it.
  const streamModule = binaryOf('nginx-stream')
  const dir = mkdtempSync(join(tmpdir(), 'uplink-nginx-sni-'))
  chmodSync(dir, 0o755)
  const routes = Object.entries(options.routes).map(
    ([name, to]) => `    ${JSON.stringify(name)} ${address(to.host, to.port)};`,
  )
  const { port, stop } = await spawnNginx(
    dir,
    host,
    (port) => [
      'stream {',
      '  map $ssl_preread_server_name $upstream {',
      ...routes,
      // Port 1 on loopback: nothing listens there, so an unknown name is refused at once.
      '    default 127.0.0.1:1;',
      '  }',
      '  server {',
      `    listen ${address(host, port)};`,
      '    ssl_preread on;',
      '    proxy_pass $upstream;',
      '    proxy_connect_timeout 2s;',
      '  }',
      '}',
    ],
    [`load_module ${streamModule};`],
  )
  return { host, port, stop }
}

/** `host:port` as nginx's `listen` and a URL write it (an IPv6 address in brackets). */
const address = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`

/**
 * nginx from `dir` on a free port of `host`: one process as the invoking user (no workers that
 * drop privileges), with the blocks `body` writes for the port and `head` (modules) first.
 * From here on `dir` is its: removed if nginx does not start, and by `stop()` after it.
 */
async function spawnNginx(
  dir: string,
  host: string,
  body: (port: number) => string[],
  head: string[] = [],
): Promise<{ port: number; stop(): Promise<void> }> {
  const remove = () => rmSync(dir, { recursive: true, force: true })
  const { daemon, port } = await withFreePorts(host, 1, async ([p]) => {
    const port = p as number
    const config = join(dir, 'nginx.conf')
    writeFileSync(
      config,
      [
        ...head,
        'master_process off;',
        `pid ${dir}/nginx.pid;`,
        `error_log ${dir}/error.log warn;`,
        'events { worker_connections 64; }',
        ...body(port),
      ].join('\n'),
    )
    const daemon = await spawnDaemon({
      name: 'nginx',
      binary: binaryOf('nginx'),
      args: ['-p', dir, '-c', config, '-e', `${dir}/error.log`, '-g', 'daemon off;'],
      ready: () => accepts(host, port),
    }).catch((err) => {
      throw new Error(`${err}: ${readSafe(join(dir, 'error.log'))}`)
    })
    return { daemon, port }
  }).catch((err) => {
    remove()
    throw err
  })
  return {
    port,
    async stop() {
      await daemon.stop('SIGQUIT')
      remove()
    },
  }
}

function readSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}
