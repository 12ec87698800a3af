import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ManualClock } from '@uplink/client'
import { waitFor } from '@uplink/testkit'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  decodeRpcMessage,
  encodeRpcMessage,
  FrameSplitter,
  jsonPayload,
  MessageFlags,
  MessageType,
  type RpcMessage,
} from '../src/eventstream.js'
import { IpcConnection, IpcError } from '../src/ipc-connection.js'
import { getConfiguration, type LocalMessage, subscribeToTopic } from '../src/ipc-operations.js'

/**
 * A nucleus that misbehaves on purpose, over a real unix socket: the testkit's fake nucleus
 * only sends well-formed frames, and these tests are about the ones a buggy or newer nucleus
 * might send. It accepts any connect, answers SubscribeToTopic, and hands every other request
 * to `onRequest`, which writes whatever frames it likes.
 */
const dir = mkdtempSync(join(tmpdir(), 'uplink-ipc-faults-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const END = MessageFlags.TerminateStream
type Peer = { socket: net.Socket; subscription: number }
let sockets = 0

async function misbehavingNucleus(onRequest: (peer: Peer, request: RpcMessage) => void) {
  const socketPath = join(dir, `ipc-${++sockets}.socket`)
  const server = net.createServer((socket) => {
    const peer: Peer = { socket, subscription: 0 }
    const splitter = new FrameSplitter()
    socket.on('error', () => {})
    socket.on('data', (chunk) => {
      for (const frame of splitter.push(chunk)) {
        const m = decodeRpcMessage(frame)
        if (m.type === MessageType.Connect) {
          socket.write(frameOf(0, {}, MessageType.ConnectAck, MessageFlags.ConnectionAccepted))
        } else if (m.headers.operation === 'aws.greengrass#SubscribeToTopic') {
          peer.subscription = m.streamId
          socket.write(frameOf(m.streamId, {}))
        } else if (m.headers.operation) onRequest(peer, m)
      }
    })
  })
  await new Promise<void>((r) => server.listen(socketPath, r))
  cleanup.push(() => new Promise((r) => server.close(r)))
  return socketPath
}

function frameOf(
  streamId: number,
  payload: unknown,
  type: number = MessageType.ApplicationMessage,
  flags = 0,
): Uint8Array {
  const body = payload instanceof Uint8Array ? payload : jsonPayload(payload)
  return encodeRpcMessage({ type, flags, streamId, headers: {}, payload: body })
}

async function connect(socketPath: string, extra: { clock?: ManualClock } = {}) {
  const ipc = await IpcConnection.connect({ socketPath, authToken: 'svcuid', ...extra })
  cleanup.push(() => ipc.close())
  const faults: string[] = []
  ipc.on('fault', (err) => faults.push(err.message))
  return { ipc, faults }
}

describe('our IPC client against frames a nucleus should not send', () => {
  it('skips malformed events (JSON null, a binary message that is not text) and still handles the frames after them in the same chunk', async () => {
    const good = { binaryMessage: { message: 'b2s=', context: { topic: 'uplink/out/ok' } } }
    const socketPath = await misbehavingNucleus((peer, request) => {
      const sub = peer.subscription
      peer.socket.write(
        Buffer.concat([
          frameOf(sub, Buffer.from('null')),
          frameOf(sub, { binaryMessage: { message: 42, context: { topic: 'uplink/out/x' } } }),
          frameOf(sub, good),
          frameOf(request.streamId, { value: { a: 1 } }, MessageType.ApplicationMessage, END),
        ]),
      )
    })
    const { ipc, faults } = await connect(socketPath)
    const got: LocalMessage[] = []
    await subscribeToTopic(ipc, 'uplink/out/#', (m) => got.push(m))
    // The call answered after the bad frames, in the same write, still settles.
    expect(await getConfiguration(ipc)).toEqual({ a: 1 })
    expect(got).toEqual([{ topic: 'uplink/out/ok', payload: Buffer.from('ok') }])
    expect(faults).toEqual([
      'SubscribeToTopic: an event that is not an object, skipped',
      'SubscribeToTopic: a binaryMessage whose message is not base64 text, skipped',
    ])
    expect(ipc.isClosed).toBe(false)
  })

  it('fails a call whose response is not JSON without closing the connection', async () => {
    let calls = 0
    const socketPath = await misbehavingNucleus((peer, request) => {
      const body = ++calls === 1 ? Buffer.from('{not json') : jsonPayload({ value: { b: 2 } })
      peer.socket.write(frameOf(request.streamId, body, MessageType.ApplicationMessage, END))
    })
    const { ipc } = await connect(socketPath)
    const err = await getConfiguration(ipc).catch((e: IpcError) => e)
    expect(err).toBeInstanceOf(IpcError)
    expect((err as IpcError).shape).toBe('ProtocolError')
    expect(await getConfiguration(ipc)).toEqual({ b: 2 })
  })

  it('fails a call with a Timeout once callTimeoutMs passes on its clock, and ignores the response that comes too late', async () => {
    const unanswered: Array<{ peer: Peer; request: RpcMessage }> = []
    const socketPath = await misbehavingNucleus((peer, request) => {
      if (unanswered.length === 0) unanswered.push({ peer, request })
      else peer.socket.write(frameOf(request.streamId, { value: { c: 3 } }, 0, END))
    })
    const clock = new ManualClock()
    const ipc = await IpcConnection.connect({
      socketPath,
      authToken: 'svcuid',
      callTimeoutMs: 3_000,
      clock,
    })
    cleanup.push(() => ipc.close())
    const faults: string[] = []
    ipc.on('fault', (e) => faults.push(e.message))
    const settled: unknown[] = []
    const call = getConfiguration(ipc).then(
      (v) => settled.push(v),
      (e) => settled.push(e),
    )
    await waitFor(() => unanswered.length === 1, 'the request at the nucleus')
    await clock.advance(2_999)
    expect(settled).toEqual([])
    await clock.advance(1)
    await call
    expect(settled[0]).toBeInstanceOf(IpcError)
    expect((settled[0] as IpcError).shape).toBe('Timeout')
    expect((settled[0] as Error).message).toBe(
      'aws.greengrass#GetConfiguration: no response in 3000 ms',
    )
    // The lost response turns up after all: its call is gone, so it changes nothing.
    const late = unanswered[0] as { peer: Peer; request: RpcMessage }
    late.peer.socket.write(frameOf(late.request.streamId, { value: { late: true } }, 0, END))
    expect(await getConfiguration(ipc)).toEqual({ c: 3 })
    expect(faults).toEqual([])
    expect(clock.pending()).toBe(0)
  })
})
