import { startPubrelResponder, waitFor } from '@uplink/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { createUplink } from '../src/index.js'

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

describe('an inbound QoS 2 message whose link is lost between PUBREC and PUBREL', () => {
  it('is delivered when the PUBREL comes on the next connection (it was completed at the broker and lost)', async () => {
    const broker = await startPubrelResponder({ topic: 'cmd/gw-q2/reboot', payload: 'now' })
    cleanup.push(() => broker.stop())
    const uplink = createUplink({
      clientId: 'gw-q2',
      endpoints: [broker.url],
      backoff: { initialMs: 20, maxMs: 50 },
    })
    cleanup.push(() => uplink.stop({ timeoutMs: 200 }))
    uplink.on('error', () => {})
    const got: string[] = []
    await uplink.subscribe('cmd/gw-q2/#', (t, p) => got.push(`${t}=${p}`), { qos: 2 })
    await uplink.start()
    await waitFor(() => broker.log.includes('2 pubcomp 7'), 'the PUBCOMP on the second connection')
    expect(broker.log.filter((l) => l.startsWith('1 ')).map((l) => l.replace(/ \d+$/, ''))).toEqual(
      ['1 connect', '1 subscribe', '1 pubrec'],
    )
    await waitFor(() => got.length === 1, 'the message')
    expect(got).toEqual(['cmd/gw-q2/reboot=now'])
  })
})
