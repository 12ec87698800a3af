import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { isUplinkError, toUplinkError, UplinkError } from '../src/errors.js'

// A second, separately evaluated copy of the module: what npm's nested install or loading both
// the ESM and the CommonJS build gives a process.
const specifier = '../src/errors.js?second-copy'
const second: typeof import('../src/errors.js') = await import(specifier)

describe('UplinkError identity', () => {
  it('is a separate class in the second copy (the premise of the tests below)', () => {
    expect(second.UplinkError).not.toBe(UplinkError)
  })

  it('an error from another copy is instanceof UplinkError and isUplinkError, with its code', () => {
    const foreign = new second.UplinkError('OUTBOX_FULL', 'full')
    expect(foreign instanceof UplinkError).toBe(true)
    expect(isUplinkError(foreign)).toBe(true)
    expect(isUplinkError(foreign, 'OUTBOX_FULL')).toBe(true)
    expect(isUplinkError(foreign, 'OUTBOX_LOCKED')).toBe(false)
    expect(second.isUplinkError(new UplinkError('STOPPED', 'stopped'), 'STOPPED')).toBe(true)
    // toUplinkError keeps it as it is rather than wrapping it as a cause.
    expect(toUplinkError(foreign, 'OUTBOX_ERROR')).toBe(foreign)
  })

  it('plain errors and look-alikes without the brand are not UplinkErrors', () => {
    expect(new Error('x') instanceof UplinkError).toBe(false)
    expect(isUplinkError({ name: 'UplinkError', code: 'OUTBOX_FULL', message: 'x' })).toBe(false)
    expect(isUplinkError(null)).toBe(false)
    expect(isUplinkError('OUTBOX_FULL')).toBe(false)
  })

  it('the brand is not an own property: inspect and JSON show only code and message', () => {
    const err = new UplinkError('OUTBOX_FULL', 'full')
    expect(Object.getOwnPropertySymbols(err)).toEqual([])
    expect(inspect(err)).not.toContain('uplink.error')
  })
})
