import type { Outbox } from '@uplink/client'

/**
 * The outbox as an Uplink client sees it, minus close(): a reconfiguration stops one client and
 * starts the next on the same open outbox, so nothing stored is lost or read twice, and the
 * file's exclusive lock never changes hands. The runner closes the real outbox itself.
 */
export function keptOpen(outbox: Outbox): Outbox {
  return {
    enqueue: (input, now) => outbox.enqueue(input, now),
    take: (limit, now) => outbox.take(limit, now),
    ack: (id) => outbox.ack(id),
    release: (ids) => outbox.release(ids),
    head: () => outbox.head(),
    stats: () => outbox.stats(),
    setListener: (listener) => outbox.setListener(listener),
    close: async () => {},
  }
}
