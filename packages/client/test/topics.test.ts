import { describe, expect, it } from 'vitest'
import { toPayload, topicMatches, validateFilter, validateTopic } from '../src/topics.js'

describe('topics', () => {
  it('validates publish topics', () => {
    expect(validateTopic('telemetry/gw-1')).toBe('telemetry/gw-1')
    for (const bad of ['', 'a/+', 'a/#', 'a\u0000b', 42, 'x'.repeat(70_000)]) {
      expect(() => validateTopic(bad)).toThrow(expect.objectContaining({ code: 'INVALID_TOPIC' }))
    }
  })

  it('validates filters', () => {
    for (const ok of ['a/b', 'a/+/c', 'a/#', '#', '+', '+/+']) expect(validateFilter(ok)).toBe(ok)
    for (const bad of ['', 'a/#/b', 'a+', 'a/b#', '##']) {
      expect(() => validateFilter(bad)).toThrow(expect.objectContaining({ code: 'INVALID_TOPIC' }))
    }
  })

  it('matches topics against filters', () => {
    expect(topicMatches('cmd/gw/#', 'cmd/gw/reboot/now')).toBe(true)
    expect(topicMatches('cmd/gw/#', 'cmd/gw')).toBe(true)
    expect(topicMatches('cmd/+/reboot', 'cmd/gw/reboot')).toBe(true)
    expect(topicMatches('cmd/+/reboot', 'cmd/gw/x/reboot')).toBe(false)
    expect(topicMatches('cmd/gw', 'cmd/gw/x')).toBe(false)
    expect(topicMatches('#', '$SYS/x')).toBe(false)
  })

  it('a shared subscription ($share/{group}/{filter}) matches what its filter matches, and must name its group and filter', () => {
    expect(topicMatches('$share/workers/cmd/+/reboot', 'cmd/gw/reboot')).toBe(true)
    expect(topicMatches('$share/workers/#', 'cmd/gw')).toBe(true)
    expect(topicMatches('$share/workers/cmd/gw', 'cmd/other')).toBe(false)
    expect(topicMatches('$share/workers/#', '$SYS/x')).toBe(false)
    expect(validateFilter('$share/workers/cmd/#')).toBe('$share/workers/cmd/#')
    for (const bad of ['$share/workers', '$share//cmd', '$share/+/cmd', '$share/#']) {
      expect(() => validateFilter(bad)).toThrow(expect.objectContaining({ code: 'INVALID_TOPIC' }))
    }
  })

  it('turns payloads into bytes and bounds their size', () => {
    expect(toPayload('hé', 10)).toEqual(Buffer.from('hé'))
    expect(() => toPayload({}, 10)).toThrow(expect.objectContaining({ code: 'INVALID_PAYLOAD' }))
    expect(() => toPayload(new Uint8Array(11), 10)).toThrow(
      expect.objectContaining({ code: 'INVALID_PAYLOAD' }),
    )
  })
})
