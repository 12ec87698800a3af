import { createHash } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import { assertLoopback, listen } from './loopback.js'

/**
 * 500: an error status. hang: the request is accepted and never answered. slow: answered after
 * `delayMs`. malformed: 200 with a body that is not JSON.
 */
export type ConciergeFault = 'none' | '500' | 'hang' | 'slow' | 'malformed'

export interface ConciergeRequest {
  at: number
  path: string
  ifNoneMatch?: string | undefined
  /** Status sent, or 0 for a request left hanging. */
  status: number
}

export interface TestConcierge {
  /** The directive URL: `http(s)://host:port/v1/endpoint`. */
  url: string
  host: string
  port: number
  /** Serves this value as JSON from now on (a new ETag). */
  setBody(body: unknown): void
  /** Serves these exact bytes (e.g. an invalid directive) with a new ETag. */
  setRawBody(text: string, contentType?: string): void
  setFault(mode: ConciergeFault, options?: { delayMs?: number }): void
  requests: ConciergeRequest[]
  readonly requestCount: number
  stop(): Promise<void>
}

export interface ConciergeOptions {
  host?: string
  /** Serve HTTPS with this key and certificate. */
  tls?: { key: string | Buffer; cert: string | Buffer }
  /** Initial directive (JSON-encoded); default an empty object. */
  body?: unknown
}

export async function startConcierge(options: ConciergeOptions = {}): Promise<TestConcierge> {
  const host = options.host ?? '127.0.0.1'
  assertLoopback(host)
  let text = JSON.stringify(options.body ?? {})
  let contentType = 'application/json'
  let fault: ConciergeFault = 'none'
  let delayMs = 1_000
  const requests: ConciergeRequest[] = []
  const etag = () => `"${createHash('sha1').update(text).digest('hex').slice(0, 16)}"`

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const header = req.headers['if-none-match']
    const record: ConciergeRequest = {
      at: Date.now(),
      path: req.url ?? '',
      ifNoneMatch: Array.isArray(header) ? header[0] : header,
      status: 0,
    }
    requests.push(record)
    const answer = (status: number, body?: string, headers: http.OutgoingHttpHeaders = {}) => {
      record.status = status
      res.writeHead(status, headers)
      res.end(body)
    }
    if (fault === 'hang') return
    if (fault === '500') return answer(500, 'internal error', { 'content-type': 'text/plain' })
    if (req.method !== 'GET' || !req.url?.startsWith('/v1/endpoint')) return answer(404)
    const reply = () => {
      if (res.destroyed) return
      if (fault === 'malformed') {
        return answer(200, '{"endpoint": "mqtt://', { 'content-type': 'application/json' })
      }
      const tag = etag()
      if (record.ifNoneMatch === tag) return answer(304, undefined, { etag: tag })
      answer(200, text, { 'content-type': contentType, etag: tag, 'cache-control': 'no-cache' })
    }
    if (fault === 'slow') setTimeout(reply, delayMs)
    else reply()
  }

  const server = options.tls
    ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler)
    : http.createServer(handler)
  server.on('clientError', (_err, socket) => socket.destroy())
  const port = await listen(server, host)
  const urlHost = host.includes(':') ? `[${host}]` : host

  return {
    url: `${options.tls ? 'https' : 'http'}://${urlHost}:${port}/v1/endpoint`,
    host,
    port,
    setBody(body) {
      text = JSON.stringify(body)
      contentType = 'application/json'
    },
    setRawBody(raw, type = 'application/json') {
      text = raw
      contentType = type
    },
    setFault(mode, faultOptions = {}) {
      fault = mode
      if (faultOptions.delayMs !== undefined) delayMs = faultOptions.delayMs
    },
    requests,
    get requestCount() {
      return requests.length
    },
    async stop() {
      const closed = new Promise<void>((r) => server.close(() => r()))
      // Hanging requests would hold close() forever.
      server.closeAllConnections()
      await closed
    },
  }
}
