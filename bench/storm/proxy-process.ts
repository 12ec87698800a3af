/**
 * The fault proxy in front of the primary (testkit's startFaultProxy), in its own process. Each
 * proxied device holds two sockets here (its own and the upstream one), so for a large fleet the
 * proxy is sharded over cluster workers that share one listening port: the process's open-file
 * limit, not the CPU, is what a single proxy runs out of first.
 */
import cluster, { type Worker } from 'node:cluster'
import { type FaultMode, startFaultProxy, type TestFaultProxy } from '@uplink/testkit'
import { cpuSeconds, serve } from './proc.js'

type Message = Record<string, unknown>

if (cluster.isPrimary) {
  let local: TestFaultProxy | undefined
  const workers: Worker[] = []
  let nextId = 1
  const ask = (worker: Worker, message: Message): Promise<Message> =>
    new Promise((resolve, reject) => {
      const id = nextId++
      const timer = setTimeout(() => reject(new Error('proxy shard did not answer')), 30_000)
      const onMessage = (reply: Message) => {
        if (reply.replyTo !== id) return
        clearTimeout(timer)
        worker.off('message', onMessage)
        if (typeof reply.error === 'string') reject(new Error(reply.error))
        else resolve(reply)
      }
      worker.on('message', onMessage)
      worker.send({ ...message, id })
    })
  const all = (message: Message) => Promise.all(workers.map((w) => ask(w, message)))

  serve(
    async (m) => {
      switch (m.type) {
        case 'start': {
          const shards = Math.max(1, Number(m.shards ?? 1))
          const target = m.target as { host: string; port: number }
          const host = String(m.host)
          if (shards === 1) {
            local = await startFaultProxy(target, { host })
            return { port: local.port, shards, cpu: cpuSeconds() }
          }
          cluster.setupPrimary({ execArgv: process.execArgv, serialization: 'advanced' })
          for (let i = 0; i < shards; i++) workers.push(cluster.fork())
          // A worker's messages sent before it listens would be lost: it says when it is ready.
          await Promise.all(
            workers.map(
              (w) =>
                new Promise<void>((resolve, reject) => {
                  const timer = setTimeout(
                    () => reject(new Error('proxy shard did not start')),
                    30_000,
                  )
                  w.on('message', (m: Message) => {
                    if (m.type !== 'ready') return
                    clearTimeout(timer)
                    resolve()
                  })
                }),
            ),
          )
          const ports = await all({ type: 'start', target, host })
          const port = Number(ports[0]?.port)
          if (ports.some((p) => Number(p.port) !== port))
            throw new Error('proxy shards did not share one port')
          return { port, shards, cpu: cpuSeconds() }
        }
        case 'mode': {
          const mode = m.mode as FaultMode
          local?.setMode(mode)
          await all({ type: 'mode', mode })
          return { at: Date.now() }
        }
        case 'stats': {
          const shards = await all({ type: 'stats' })
          const connections =
            (local?.connectionCount ?? 0) + shards.reduce((s, r) => s + Number(r.connections), 0)
          const cpu = cpuSeconds() + shards.reduce((s, r) => s + Number(r.cpu), 0)
          return { connections, cpu }
        }
        case 'stop': {
          const shards = await all({ type: 'stop' })
          await local?.stop()
          const cpu = cpuSeconds() + shards.reduce((s, r) => s + Number(r.cpu), 0)
          for (const w of workers) w.kill()
          return { cpu }
        }
        default:
          throw new Error(`unknown request ${String(m.type)}`)
      }
    },
    () => {
      for (const w of workers) w.kill()
    },
  )
} else {
  let proxy: TestFaultProxy | undefined
  serve(async (m) => {
    switch (m.type) {
      case 'start':
        proxy = await startFaultProxy(m.target as { host: string; port: number }, {
          host: String(m.host),
        })
        return { port: proxy.port }
      case 'mode':
        proxy?.setMode(m.mode as FaultMode)
        return {}
      case 'stats':
        return { connections: proxy?.connectionCount ?? 0, cpu: cpuSeconds() }
      case 'stop':
        await proxy?.stop()
        return { cpu: cpuSeconds() }
      default:
        throw new Error(`unknown request ${String(m.type)}`)
    }
  })
  process.send?.({ type: 'ready' })
}
