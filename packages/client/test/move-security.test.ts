import tls from 'node:tls'
import { createTestPki, startBroker, startConcierge } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink, type UplinkError } from '../src/index.js'
import { nextEvent } from './support/events.js'

const cleanup: Array<() => Promise<unknown> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/**
 * A device on a TLS broker whose concierge names `endpoint`: a second broker, on the same
 * allowed host, that records every login it is offered.
 */
async function deviceAskedToMove(endpoint: (port: number) => unknown, second: 'plain' | 'tls') {
  const legit = createTestPki('Legit CA')
  const attacker = createTestPki('Attacker CA')
  const home = await startBroker({ tls: legit.issue(['localhost']) })
  const other = await startBroker(second === 'tls' ? { tls: attacker.issue(['localhost']) } : {})
  cleanup.push(
    () => home.stop(),
    () => other.stop(),
  )
  const logins: string[] = []
  other.aedes.authenticate = (_client, username, password, done) => {
    logins.push(`${username}:${password?.toString()}`)
    done(null, true)
  }
  const concierge = await startConcierge({ body: { endpoint: endpoint(other.port), epoch: 1 } })
  cleanup.push(() => concierge.stop())
  const uplink = createUplink({
    clientId: 'gw-move-security',
    endpoints: [`mqtts://localhost:${home.port}`],
    tls: { ca: legit.ca },
    username: 'gw',
    password: 'move-secret-5531',
    concierge: { url: concierge.url, allowedHosts: [] },
    failover: { minStayMs: 0 },
  })
  cleanup.push(() => uplink.stop())
  const refused = nextEvent(uplink, 'error', (e: UplinkError) => e.code.startsWith('DIRECTIVE_'))
  const connected = nextEvent(uplink, 'connect')
  await uplink.start()
  await connected
  return { refused: await refused, home, other, logins, uplink }
}

describe('where a directive may not send a device', () => {
  it('a device configured for mqtts:// refuses a directive naming mqtt:// on an allowed host: the plaintext broker never sees its login', async () => {
    const run = await deviceAskedToMove((port) => `mqtt://localhost:${port}`, 'plain')
    expect(run.refused.code).toBe('DIRECTIVE_REFUSED')
    expect(run.refused.message).toContain('without TLS')
    expect(run.other.connectCount).toBe(0)
    expect(run.logins).toEqual([])
    expect(run.uplink.stats().endpoint).toBe(`mqtts://localhost:${run.home.port}`)
  })

  it('a directive that brings its own TLS settings (a CA of its choosing) is invalid: the broker with that CA never sees the login', async () => {
    const run = await deviceAskedToMove(
      (port) => ({ url: `mqtts://localhost:${port}`, tls: { ca: 'chosen by the directive' } }),
      'tls',
    )
    expect(run.refused.code).toBe('DIRECTIVE_INVALID')
    expect(run.refused.message).toContain('URL string')
    expect(run.other.connectCount).toBe(0)
    expect(run.logins).toEqual([])
  })
})

describe('a host name written with the root dot', () => {
  it('goes out as SNI without the dot, as RFC 6066 has it', async () => {
    const pki = createTestPki()
    const issued = pki.issue(['localhost'])
    const names: string[] = []
    const context = tls.createSecureContext({ key: issued.key, cert: issued.cert })
    const server = tls.createServer(
      {
        key: issued.key,
        cert: issued.cert,
        SNICallback: (name, done) => {
          names.push(name)
          done(null, context)
        },
      },
      (socket) => socket.destroy(),
    )
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanup.push(() => new Promise((resolve) => server.close(resolve)))
    const { port } = server.address() as { port: number }
    const uplink = createUplink({
      clientId: 'gw-sni-dot',
      endpoints: [`mqtts://LocalHost.:${port}`],
      tls: { ca: pki.ca },
    })
    cleanup.push(() => uplink.stop())
    const reconnecting = nextEvent(uplink, 'reconnecting')
    await uplink.start()
    expect((await reconnecting).endpoint).toBe(`mqtts://localhost:${port}`)
    expect(names).toEqual(['localhost'])
  })
})
