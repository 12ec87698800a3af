import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  statfsSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { dirname } from 'node:path'
import type { Clock } from '@uplink/client'
import type { Database } from './driver.js'

/**
 * Disk space for an outbox on a small or full volume. Three things keep a full disk from being
 * full for good:
 *
 * - the WAL is bounded (`journal_size_limit`) and emptied with a TRUNCATE checkpoint when the
 *   outbox drains, so the space the log took goes back to the volume instead of staying claimed;
 * - new files use incremental auto-vacuum, so pages freed by deletes can be handed back too;
 * - a reserve file (`<path>-reserve`) holds some space aside while there is room: when a delete
 *   of acknowledged messages meets a full disk it is given up, so the delete can always commit,
 *   and taken again once space is back.
 */
export class Space {
  private readonly reservePath: string
  /** Whether the reserve was given up and the disk has been full since. */
  pressure = false
  private lastTruncate = 0

  constructor(
    private readonly db: Database,
    path: string,
    private readonly reserveBytes: number,
    private readonly clock: Clock,
  ) {
    this.reservePath = `${path}-reserve`
  }

  /** Takes the reserve if it is not held; quietly does nothing where there is no room for it. */
  ensureReserve(): boolean {
    if (this.reserveBytes === 0) return true
    if (existsSync(this.reservePath)) return true
    let fd: number | undefined
    try {
      fd = openSync(this.reservePath, 'w')
      // Written, not truncated up to size: a sparse file would hold no space at all.
      const chunk = Buffer.alloc(Math.min(this.reserveBytes, 64 * 1024))
      for (let at = 0; at < this.reserveBytes; at += chunk.length) {
        writeSync(fd, chunk, 0, Math.min(chunk.length, this.reserveBytes - at))
      }
      fsyncSync(fd)
      return true
    } catch {
      this.release()
      return false
    } finally {
      if (fd !== undefined) closeSync(fd)
    }
  }

  /** Gives the reserve back to the volume. */
  release(): void {
    try {
      unlinkSync(this.reservePath)
    } catch {
      // Not there: nothing to give back.
    }
  }

  /**
   * Hands space back: freed pages (incrementally vacuumed files) and the WAL (checkpointed and
   * truncated to nothing). Errors are left to the caller's next statement to meet.
   */
  reclaim(): void {
    try {
      if (Number(this.db.pragma('auto_vacuum')) === 2) this.db.pragma('incremental_vacuum')
      this.db.pragma('wal_checkpoint(TRUNCATE)')
      this.lastTruncate = this.clock.now()
    } catch {
      // Still no room: the next write reports it.
    }
  }

  /** The outbox has drained: give the WAL back (at most once a second) and retake the reserve. */
  drained(): void {
    if (!this.pressure && this.clock.now() - this.lastTruncate < 1_000) return
    this.reclaim()
    if (this.ensureReserve()) this.pressure = false
  }

  /**
   * Runs a write; on a full disk hands back what it can (`free`, the caller's own; then the WAL
   * and freed pages) and tries once more. A delete of acknowledged messages may also spend the
   * reserve, since deleting is what makes room; a store never does, or nothing would be left for
   * the deletes.
   */
  withRoom<T>(
    write: () => T,
    isFull: (err: unknown) => boolean,
    isDelete: boolean,
    free?: () => void,
  ): T {
    try {
      return write()
    } catch (err) {
      if (!isFull(err)) throw err
      if (isDelete) {
        this.release()
        this.pressure = true
      }
      free?.()
      this.reclaim()
      return write()
    }
  }
}

/**
 * How many WAL pages to let gather before a checkpoint: SQLite's 1 000 (4 MiB), or, on a volume
 * with less room, an eighth of its free space, so that the log never holds most of a small disk
 * with data it has not moved into the database (a checkpoint needs room to run).
 */
export function autocheckpointPages(path: string, pageSize: number): number {
  try {
    const fs = statfsSync(dirname(path))
    const free = Number(fs.bavail) * Number(fs.bsize)
    return Math.max(16, Math.min(1_000, Math.floor(free / 8 / pageSize)))
  } catch {
    return 1_000
  }
}
