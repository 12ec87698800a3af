import { afterEach, describe, expect, it } from 'vitest'
import { startConcierge, type TestConcierge } from '../src/concierge.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

async function started(body?: unknown): Promise<TestConcierge> {
  const concierge = await startConcierge({ body })
  cleanup.push(() => concierge.stop())
  return concierge
}

describe('startConcierge', () => {
  it('serves the directive as JSON with an ETag, 304 when unchanged', async () => {
    const concierge = await started({ endpoint: 'mqtt://a', epoch: 1 })
    const first = await fetch(concierge.url)
    expect(first.status).toBe(200)
    expect(await first.json()).toEqual({ endpoint: 'mqtt://a', epoch: 1 })
    const etag = first.headers.get('etag')
    expect(etag).toBeTruthy()
    const again = await fetch(concierge.url, { headers: { 'if-none-match': etag as string } })
    expect(again.status).toBe(304)
    concierge.setBody({ endpoint: 'mqtt://b', epoch: 2 })
    const changed = await fetch(concierge.url, { headers: { 'if-none-match': etag as string } })
    expect(changed.status).toBe(200)
    expect(changed.headers.get('etag')).not.toBe(etag)
    expect(await changed.json()).toEqual({ endpoint: 'mqtt://b', epoch: 2 })
    expect(concierge.requests.map((r) => r.status)).toEqual([200, 304, 200])
    expect(concierge.requests[1]?.ifNoneMatch).toBe(etag)
    expect(concierge.requestCount).toBe(3)
  })

  it('fault 500', async () => {
    const concierge = await started({ epoch: 1 })
    concierge.setFault('500')
    expect((await fetch(concierge.url)).status).toBe(500)
  })

  it('fault malformed: 200 with a body that is not JSON', async () => {
    const concierge = await started({ epoch: 1 })
    concierge.setFault('malformed')
    const res = await fetch(concierge.url)
    expect(res.status).toBe(200)
    await expect(res.json()).rejects.toThrow()
  })

  it('fault hang: no answer at all', async () => {
    const concierge = await started({ epoch: 1 })
    concierge.setFault('hang')
    const res = fetch(concierge.url, { signal: AbortSignal.timeout(300) })
    await expect(res).rejects.toThrow(/abort|timeout/i)
    expect(concierge.requests[0]?.status).toBe(0)
  })

  it('fault slow: answers after the delay', async () => {
    const concierge = await started({ epoch: 7 })
    concierge.setFault('slow', { delayMs: 250 })
    const t0 = performance.now()
    const res = await fetch(concierge.url)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(240)
    expect(await res.json()).toEqual({ epoch: 7 })
  })

  it('setRawBody serves exact bytes', async () => {
    const concierge = await started()
    concierge.setRawBody('{"epoch": "nope"}')
    expect(await (await fetch(concierge.url)).text()).toBe('{"epoch": "nope"}')
  })
})
