/**
 * What a backing-off device has learnt from DNS since its ladder started: every address its
 * attempts were given for the host (all of them failed, or it would not be waiting), and when
 * the newest answer runs out. A probe's answer is news only when it names an address outside
 * that set: a record that lost an address, or one that rotates a subset of a pool (round-robin
 * DNS), offers nothing the last attempts did not try, and must not cut the ladder short.
 */
export class AnswersSeen {
  private host: string | undefined
  /**
   * Made by an attempt's answer and let go by forget(). An array of exactly the addresses, not a
   * Set (a name has a few, and a Set's table was some 150 B a device in a fleet-sized process,
   * where every connected device keeps the answers of the ladder that got it there), nor one
   * grown by push (which reserves room for 17).
   */
  private tried: readonly string[] | undefined
  private askedAt = 0
  private ttlMs = 0

  /**
   * An attempt's answer: its addresses join the tried set; its TTL sets the next probe. True
   * when earlier attempts of this ladder were given addresses and this answer names another:
   * news, learnt by the attempt itself rather than by a probe.
   */
  attempted(host: string, addresses: readonly string[], ttlSeconds: number, now: number): boolean {
    if (host !== this.host) this.forget()
    const news = (this.tried?.length ?? 0) > 0 && this.namesUntried(addresses)
    this.host = host
    const tried = this.tried
    if (!tried) this.tried = addresses.slice()
    else {
      const untried = addresses.filter((a) => !tried.includes(a))
      if (untried.length > 0) this.tried = tried.concat(untried)
    }
    this.asked(now, ttlSeconds)
    return news
  }

  /** A probe's answer: true when it names an address no attempt was given. */
  probed(host: string, addresses: readonly string[], ttlSeconds: number, now: number): boolean {
    if (host !== this.host) return false
    this.asked(now, ttlSeconds)
    return this.namesUntried(addresses)
  }

  private namesUntried(addresses: readonly string[]): boolean {
    const tried = this.tried
    return addresses.some((a) => !tried?.includes(a))
  }

  /** A probe that got no answer: nothing learnt, ask again after the floor. */
  unanswered(now: number): void {
    this.asked(now, 0)
  }

  /**
   * When `host` is worth asking again: once the answer's TTL has run out, and never sooner than
   * `floorMs` after the last question. Undefined when nothing is known of it to compare with.
   */
  dueAt(host: string, floorMs: number): number | undefined {
    return host === this.host ? this.askedAt + Math.max(this.ttlMs, floorMs) : undefined
  }

  /** A fresh ladder: what failed before says nothing about what comes next. */
  forget(): void {
    this.host = undefined
    this.tried = undefined
  }

  private asked(now: number, ttlSeconds: number): void {
    this.askedAt = now
    this.ttlMs = ttlSeconds * 1_000
  }
}
