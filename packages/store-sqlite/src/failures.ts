import { UplinkError, type UplinkErrorCode } from '@uplink/client'
import { sqliteCode } from './driver.js'

/** An SQLite failure as the UplinkError a caller can act on. */
export function translate(err: unknown, path: string, doing: string): UplinkError {
  if (err instanceof UplinkError) return err
  const code = sqliteCode(err)
  const text = err instanceof Error ? err.message : String(err)
  const as: UplinkErrorCode =
    code === 'SQLITE_FULL'
      ? 'OUTBOX_DISK_FULL'
      : code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB'
        ? 'OUTBOX_CORRUPT'
        : 'OUTBOX_ERROR'
  const message =
    as === 'OUTBOX_DISK_FULL'
      ? `no space left for ${path} while ${doing}; nothing stored was lost`
      : `${doing} in ${path} failed: ${text}`
  return new UplinkError(as, message, { cause: err })
}

export const isFull = (err: unknown): boolean => sqliteCode(err) === 'SQLITE_FULL'
