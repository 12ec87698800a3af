import { once } from 'node:events'
import tls from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { listen } from '../src/loopback.js'
import { createTestPki } from '../src/pki.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

async function serve(cert: { key: string; cert: string }): Promise<number> {
  const server = tls.createServer(cert, (s) => s.end('hi'))
  server.on('tlsClientError', () => {})
  const port = await listen(server, '127.0.0.1')
  cleanup.push(() => new Promise<void>((r) => server.close(() => r())))
  return port
}

function handshake(port: number, ca: string, servername: string): Promise<string> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca, servername })
  cleanup.push(() => void socket.destroy())
  return new Promise((resolve) => {
    socket.once('secureConnect', () => resolve('ok'))
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
  })
}

describe('createTestPki', () => {
  const pki = createTestPki()
  const other = createTestPki()

  it('issues certificates that verify against its CA for the names given', async () => {
    const port = await serve(pki.issue(['iot.uplink.test']))
    expect(await handshake(port, pki.ca, 'iot.uplink.test')).toBe('ok')
  })

  it('fails for another name and for another CA', async () => {
    const port = await serve(pki.issue(['iot.uplink.test']))
    expect(await handshake(port, pki.ca, 'evil.uplink.test')).toBe('ERR_TLS_CERT_ALTNAME_INVALID')
    expect(await handshake(port, other.ca, 'iot.uplink.test')).toMatch(/SIGNATURE|UNABLE|VERIFY/)
  })

  it('puts IP addresses in the subject alternative names when asked', async () => {
    const port = await serve(pki.issue([], { ips: ['127.0.0.1'] }))
    const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.ca })
    cleanup.push(() => void socket.destroy())
    await once(socket, 'secureConnect')
    expect(socket.authorized).toBe(true)
  })
})
