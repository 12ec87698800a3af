/**
 * The client side of the accept-rate probe (probe.ts): raw MQTT CONNECTs from a device worker,
 * as little client work per connection as possible.
 */
import net from 'node:net'
import tls from 'node:tls'
import { PROBE_PREFIX } from './payload.js'
import type { TargetAuth } from './target.js'

/** An MQTT 3.1.1 CONNECT, clean session, keepalive 60 s, with the target's login if any. */
function connectPacket(clientId: string, auth: TargetAuth | undefined): Buffer {
  const str = (v: string) => {
    const b = Buffer.from(v)
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
  }
  const flags =
    0x02 | (auth?.username !== undefined ? 0x80 : 0) | (auth?.password !== undefined ? 0x40 : 0)
  const body = Buffer.concat([
    Buffer.from([0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, flags, 0x00, 0x3c]),
    str(clientId),
    ...(auth?.username !== undefined ? [str(auth.username)] : []),
    ...(auth?.password !== undefined ? [str(auth.password)] : []),
  ])
  // The remaining length, as MQTT's variable-length integer.
  const len: number[] = []
  let n = body.length
  do {
    len.push((n % 128) | (n >= 128 ? 0x80 : 0))
    n = Math.floor(n / 128)
  } while (n > 0)
  return Buffer.concat([Buffer.from([0x10, ...len]), body])
}

/**
 * Opens `n` raw MQTT connections (a pre-built CONNECT on a bare socket, the least client work
 * possible), at most `window` awaiting their CONNACK at a time, and times them: the broker's
 * accept rate, before the storm. The window keeps the burst inside the listen backlog (Node's
 * default is 511): a burst beyond it loses SYNs to the kernel, and the 1 s SYN retransmit would
 * measure TCP's timer instead of the broker.
 */
export function probeConnects(
  host: string,
  port: number,
  n: number,
  window: number,
  tag: string,
  timeoutMs: number,
  target: { secure: boolean; auth: TargetAuth } | undefined,
): Promise<{ ok: number; failed: number; firstSentAt: number; lastAckAt: number }> {
  return new Promise((resolve) => {
    const sockets: net.Socket[] = []
    let started = 0
    let done = 0
    let ok = 0
    let lastAckAt = 0
    const firstSentAt = Date.now()
    let finished = false
    const finish = () => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      const bye = Buffer.from([0xe0, 0x00])
      // Answer only once every probe socket has closed: the devices' memory baseline is taken
      // right after the probe, and 2 000 sockets a round still closing (a timer holding each)
      // were counted in it, some runs and not others: up to 5.7 MB, 2.9 KiB a device of 2 000
      // taken off the heap growth of whichever client's probe had not finished closing.
      const closing = sockets.map(
        (s) =>
          new Promise<void>((closed) => {
            if (s.closed) return closed()
            const force = setTimeout(() => s.destroy(), 1_000)
            s.once('close', () => {
              clearTimeout(force)
              closed()
            })
            if (!s.destroyed) s.end(bye)
          }),
      )
      void Promise.all(closing).then(() => {
        sockets.length = 0
        resolve({ ok, failed: n - ok, firstSentAt, lastAckAt })
      })
    }
    const timer = setTimeout(finish, timeoutMs)
    const open = () => {
      const i = started++
      const connect = connectPacket(`${PROBE_PREFIX}${tag}-${i}`, target?.auth)
      const socket: net.Socket = target?.secure
        ? tls.connect({
            host,
            port,
            servername: net.isIP(host) ? undefined : host,
            ...target.auth.tls,
          })
        : net.connect({ host, port })
      sockets.push(socket)
      let settled = false
      const once = (success: boolean) => {
        if (settled) return
        settled = true
        done++
        if (success) {
          ok++
          lastAckAt = Date.now()
        }
        if (done === n) finish()
        else if (started < n && !finished) open()
      }
      socket.on(target?.secure ? 'secureConnect' : 'connect', () => socket.write(connect))
      socket.once('data', (data: Buffer) => once(data[0] === 0x20 && data[3] === 0))
      socket.on('error', () => once(false))
      socket.on('close', () => once(false))
    }
    for (let k = 0; k < Math.min(window, n); k++) open()
    if (n === 0) finish()
  })
}
