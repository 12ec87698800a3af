/**
 * A progress bar on stderr, redrawn in place on a terminal; elsewhere (CI logs) one line per
 * phase. Disabled entirely for the smoke test.
 */
export class Progress {
  private readonly tty: boolean
  private phaseText = ''
  private lastDraw = 0
  private drawn = false
  private readonly started = Date.now()

  constructor(
    private readonly enabled: boolean,
    private readonly label: string,
  ) {
    this.tty = enabled && process.stderr.isTTY === true
  }

  phase(text: string): void {
    if (!this.enabled) return
    this.phaseText = text
    if (this.tty) this.draw(`${text}…`)
    else process.stderr.write(`[${this.elapsed()}] ${this.label}: ${text}\n`)
  }

  /** `total` 0: a count without a bar. */
  update(done: number, total: number, text: string): void {
    if (!this.tty) return
    const now = Date.now()
    if (now - this.lastDraw < 200) return
    this.lastDraw = now
    if (total <= 0) {
      this.draw(`${this.phaseText}: ${done} ${text}`)
      return
    }
    const width = 30
    const fill = Math.max(0, Math.min(width, Math.round((done / total) * width)))
    const bar = `${'█'.repeat(fill)}${'░'.repeat(width - fill)}`
    const pct = ((done / total) * 100).toFixed(0).padStart(3)
    this.draw(`${this.phaseText} ${bar} ${pct}% ${done}/${total} ${text}`)
  }

  done(line?: string): void {
    if (!this.enabled) return
    if (this.tty && this.drawn) process.stderr.write('\r\x1b[2K')
    this.drawn = false
    if (line) process.stderr.write(`[${this.elapsed()}] ${line}\n`)
  }

  private draw(text: string): void {
    const line = `[${this.elapsed()}] ${this.label}: ${text}`
    const columns = process.stderr.columns ?? 120
    process.stderr.write(`\r\x1b[2K${line.slice(0, columns - 1)}`)
    this.drawn = true
  }

  private elapsed(): string {
    return `${((Date.now() - this.started) / 1000).toFixed(1).padStart(5)}s`
  }
}
