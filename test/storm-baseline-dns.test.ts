/**
 * The storm's baseline devices resolve through shared c-ares resolvers: what a burst of their
 * answers does to them while their worker is too busy to read, as it is in a fleet's storm.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { DEVICES_PER_RESOLVER } from '../bench/storm/config.js'
import { baselineResolver } from '../bench/storm/devices.js'

// A DNS server in its own process, so that it answers while this one is blocked: every A
// question gets 127.0.0.9.
const SERVER = `
  const dgram = require('node:dgram')
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 * 2 ** 20 })
  s.on('message', (q, from) => {
    const head = q.subarray(0, q.indexOf(0, 12) + 5)
    const a = Buffer.alloc(head.length + 16)
    head.copy(a)
    a.writeUInt16BE(0x8180, 2)
    a.writeUInt16BE(1, 6)
    Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 127, 0, 0, 9]).copy(a, head.length)
    s.send(a, from.port, from.address)
  })
  s.bind(0, '127.0.0.1', () => process.stdout.write('port ' + s.address().port + '\\n'))
`

/**
 * Datagrams the kernel dropped for a full receive buffer on this process's UDP sockets, from
 * /proc/net/udp (its last column), matched to this process by socket inode.
 */
function udpDropsOfThisProcess(): number {
  const inodes = new Set<string>()
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const link = readlinkSync(`/proc/self/fd/${fd}`)
      if (link.startsWith('socket:[')) inodes.add(link.slice(8, -1))
    } catch {}
  }
  let drops = 0
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f.length > 12 && inodes.has(f[9] as string)) drops += Number(f[f.length - 1])
  }
  return drops
}

let server: ChildProcess | undefined
afterEach(() => {
  server?.kill()
  server = undefined
})

describe('storm baseline DNS', () => {
  it('a resolver serves at most DEVICES_PER_RESOLVER consecutive devices of one server', () => {
    const s = '127.0.0.1:5300'
    expect(baselineResolver(s, 0)).toBe(baselineResolver(s, DEVICES_PER_RESOLVER - 1))
    expect(baselineResolver(s, DEVICES_PER_RESOLVER)).not.toBe(baselineResolver(s, 0))
    expect(baselineResolver('127.0.0.1:5301', 0)).not.toBe(baselineResolver(s, 0))
  })

  it('2 000 devices asking at once while their process cannot read lose none of their answers', async () => {
    server = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] })
    const [first] = (await once(server.stdout as NodeJS.EventEmitter, 'data')) as [Buffer]
    const port = Number(/port (\d+)/.exec(first.toString())?.[1])
    const devices = 2_000
    // A fresh server address: resolvers made by an earlier test are not reused.
    const at = `127.0.0.1:${port}`
    const answers = Array.from(
      { length: devices },
      (_, i) =>
        new Promise<string[]>((resolve, reject) =>
          baselineResolver(at, i).resolve4('burst.test', (err, a) =>
            err ? reject(err) : resolve(a),
          ),
        ),
    )
    // The worker busy, as in a storm: the answers wait in the resolvers' receive buffers. One
    // resolver for all (the kernel's default 208 KiB buffer) kept some 200 and lost the rest,
    // each lost one asked again after c-ares' 2 s timeout (and lost again: ETIMEOUT).
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500)
    // Read before the loop runs again: c-ares closes a socket once its queries are answered.
    expect(udpDropsOfThisProcess()).toBe(0)
    for (const a of await Promise.all(answers)) expect(a).toEqual(['127.0.0.9'])
  })
})
