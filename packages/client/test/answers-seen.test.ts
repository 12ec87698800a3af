import { describe, expect, it } from 'vitest'
import { AnswersSeen } from '../src/answers-seen.js'

const H = 'broker.example'

describe('AnswersSeen: news is an address no attempt of this ladder was given', () => {
  it('the first answer of a ladder is never news; one naming an untried address is', () => {
    const seen = new AnswersSeen()
    expect(seen.attempted(H, ['10.0.0.1'], 5, 0)).toBe(false)
    expect(seen.attempted(H, ['10.0.0.1'], 5, 1_000)).toBe(false)
    expect(seen.probed(H, ['10.0.0.1'], 5, 2_000)).toBe(false)
    expect(seen.probed(H, ['10.0.0.2'], 5, 3_000)).toBe(true)
    expect(seen.attempted(H, ['10.0.0.2'], 5, 4_000)).toBe(true)
  })

  it('after forget() (its set let go) the next ladder starts afresh and compares only with its own attempts', () => {
    const seen = new AnswersSeen()
    seen.attempted(H, ['10.0.0.1'], 5, 0)
    seen.forget()
    // Nothing known: no probe is due and no probe answer is news.
    expect(seen.dueAt(H, 1_000)).toBeUndefined()
    expect(seen.probed(H, ['10.0.0.9'], 5, 1_000)).toBe(false)
    // The first attempt of the new ladder is not news, even with an address the old one never had.
    expect(seen.attempted(H, ['10.0.0.2'], 5, 2_000)).toBe(false)
    expect(seen.dueAt(H, 1_000)).toBe(7_000)
    // 10.0.0.1 was tried by the forgotten ladder only: news to this one.
    expect(seen.probed(H, ['10.0.0.1'], 5, 8_000)).toBe(true)
    expect(seen.probed(H, ['10.0.0.2'], 5, 9_000)).toBe(false)
  })

  it('another host starts afresh too', () => {
    const seen = new AnswersSeen()
    seen.attempted(H, ['10.0.0.1'], 5, 0)
    expect(seen.attempted('other.example', ['10.0.0.2'], 5, 1_000)).toBe(false)
    expect(seen.probed(H, ['10.0.0.3'], 5, 2_000)).toBe(false)
    expect(seen.probed('other.example', ['10.0.0.1'], 5, 2_000)).toBe(true)
  })
})
