import net from 'node:net'
import { type Clock, systemClock, UplinkError } from '@uplink/client'
import EventEmitter from 'eventemitter3'
import {
  decodeRpcMessage,
  encodeRpcMessage,
  FrameSplitter,
  jsonPayload,
  MessageFlags,
  MessageType,
  parseJsonPayload,
  RPC_VERSION,
  type RpcMessage,
} from './eventstream.js'

/**
 * One eventstream RPC connection to the Greengrass nucleus over its unix socket.
 *
 * Why our own client and not `aws-iot-device-sdk-v2`'s greengrasscoreipc: that one runs on the
 * AWS CRT, a native addon (aws-crt 1.33: 44 MB unpacked) whose npm package ships binaries for
 * linux x64 and arm64 (glibc and musl), macOS and Windows, and none for 32-bit ARM: on an armv7l
 * gateway its install script builds it from source, which needs cmake, a C toolchain and a
 * download of the CRT sources, none of which a device has. Under Bun it is a Node-API addon (it
 * loads under Bun 1.4 here, but that is Bun's Node-API emulation, not a supported target).
 * Greengrass IPC itself is small: a connect message carrying the SVCUID, then one stream per
 * operation with JSON payloads. So the framing comes from the maintained Smithy event-stream
 * codec (pure JavaScript, no binary to match the device) and this file holds the RPC layer; the
 * official client stays a dev dependency, as the test that proves the fake nucleus (and so this
 * client's counterpart) speaks the real protocol.
 *
 * Like the CRT client, a connection is connected once: when it closes, the caller builds a new
 * one (see ipc-session.ts).
 */

export interface IpcConnectOptions {
  /** AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT */
  socketPath: string
  /** SVCUID: the nucleus authorizes the component by it. Never logged. */
  authToken: string
  /** For the connect-ack; default 5 s. */
  timeoutMs?: number
  /**
   * For each operation's response (a streaming one's first message); default 10 s. A response
   * the nucleus lost must not leave the caller (the runner's set-up, a stop) waiting forever.
   */
  callTimeoutMs?: number
  clock?: Clock
}

/** A modelled error the nucleus answered with (e.g. aws.greengrass#ResourceNotFoundError). */
export class IpcError extends Error {
  override readonly name = 'IpcError'
  constructor(
    readonly shape: string,
    message: string,
  ) {
    super(message)
  }
}

interface Pending {
  operation: string
  /** Resolves with the first (response) message. */
  respond: (payload: unknown) => void
  fail: (err: Error) => void
  responded: boolean
  onEvent: ((payload: unknown) => void) | undefined
  onEnd: ((err: Error | undefined) => void) | undefined
  /** We sent TerminateStream; events the nucleus sent before it saw that still arrive. */
  terminated?: boolean
}

export interface IpcStream {
  /**
   * Ends the subscription (a TerminateStream message). Events the nucleus had already sent
   * still reach the handler, so a message handed over is never dropped on our side; a
   * request-response call made after close() returns after them (one connection, in order).
   */
  close(): void
}

export type IpcConnectionEvents = {
  close: [error: Error | undefined]
  /**
   * A frame that could not be handled (an event of a shape no operation has, a handler that
   * threw): it is skipped and the frames after it are handled, so one bad frame neither drops
   * the rest of its chunk nor escapes the socket's data handler to crash the host process.
   */
  fault: [error: Error]
}

const SHAPE = 'service-model-type'

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)))
const DEFAULT_CALL_TIMEOUT_MS = 10_000

function responseError(operation: string, message: RpcMessage): Error | undefined {
  const shape = message.headers[SHAPE] ?? ''
  if (message.type === MessageType.ApplicationError || shape.endsWith('Error')) {
    let text = ''
    try {
      const body = parseJsonPayload(message.payload) as { message?: unknown }
      text = typeof body.message === 'string' ? body.message : ''
    } catch {
      text = Buffer.from(message.payload).toString('utf8').slice(0, 200)
    }
    return new IpcError(shape || 'ApplicationError', `${operation}: ${shape} ${text}`.trim())
  }
  if (message.type !== MessageType.ApplicationMessage) {
    return new IpcError('ProtocolError', `${operation}: unexpected message type ${message.type}`)
  }
  return undefined
}

export class IpcConnection extends EventEmitter<IpcConnectionEvents> {
  private readonly streams = new Map<number, Pending>()
  private nextStreamId = 1
  private closed = false

  private constructor(
    private readonly socket: net.Socket,
    private readonly clock: Clock,
    private readonly callTimeoutMs: number,
  ) {
    super()
  }

  static connect(options: IpcConnectOptions): Promise<IpcConnection> {
    const timeoutMs = options.timeoutMs ?? 5_000
    return new Promise((resolve, reject) => {
      const socket = net.connect(options.socketPath)
      const clock = options.clock ?? systemClock
      const connection = new IpcConnection(
        socket,
        clock,
        options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
      )
      const splitter = new FrameSplitter()
      let accepted = false
      const timer = clock.setTimeout(() => {
        socket.destroy()
        reject(
          new UplinkError('CONNECT_TIMEOUT', `Greengrass IPC: no connect-ack in ${timeoutMs} ms`),
        )
      }, timeoutMs)
      socket.on('connect', () => {
        socket.write(
          encodeRpcMessage({
            type: MessageType.Connect,
            flags: 0,
            streamId: 0,
            headers: { ':version': RPC_VERSION, ':content-type': 'application/json' },
            payload: jsonPayload({ authToken: options.authToken }),
          }),
        )
      })
      socket.on('data', (chunk: Buffer) => {
        let frames: Uint8Array[]
        try {
          frames = splitter.push(chunk)
        } catch (err) {
          socket.destroy(err as Error)
          return
        }
        for (const frame of frames) {
          let message: RpcMessage
          try {
            message = decodeRpcMessage(frame)
          } catch (err) {
            socket.destroy(err as Error)
            return
          }
          if (!accepted) {
            clock.clearTimeout(timer)
            if (
              message.type === MessageType.ConnectAck &&
              message.flags & MessageFlags.ConnectionAccepted
            ) {
              accepted = true
              resolve(connection)
            } else {
              socket.destroy()
              reject(
                new UplinkError(
                  'CONNECT_REFUSED',
                  'Greengrass IPC: the nucleus refused the SVCUID',
                ),
              )
              return
            }
          } else connection.receiveContained(message)
        }
      })
      socket.on('error', (err) => {
        if (!accepted) {
          clock.clearTimeout(timer)
          reject(
            new UplinkError('CONNECT_FAILED', `Greengrass IPC: ${err.message}`, { cause: err }),
          )
        }
      })
      socket.on('close', () => {
        if (!accepted) {
          clock.clearTimeout(timer)
          reject(new UplinkError('CONNECT_FAILED', 'Greengrass IPC: the socket closed'))
        }
        connection.closedBySocket()
      })
    })
  }

  get isClosed(): boolean {
    return this.closed
  }

  /** A request-response operation: resolves with the response's JSON. */
  call(operation: string, request: unknown): Promise<unknown> {
    return this.activate(operation, request, undefined, undefined).then((r) => r.response)
  }

  /**
   * A streaming operation: resolves with the initial response once the nucleus accepted it, then
   * calls `onEvent` for every event until the stream ends (`onEnd`).
   */
  async stream(
    operation: string,
    request: unknown,
    onEvent: (event: unknown) => void,
    onEnd?: (err: Error | undefined) => void,
  ): Promise<IpcStream> {
    const { streamId } = await this.activate(operation, request, onEvent, onEnd)
    return {
      close: () => {
        const pending = this.streams.get(streamId)
        if (!pending || pending.terminated || this.closed) return
        pending.terminated = true
        this.send({
          type: MessageType.ApplicationMessage,
          flags: MessageFlags.TerminateStream,
          streamId,
          headers: {},
          payload: new Uint8Array(0),
        })
      },
    }
  }

  close(): void {
    this.socket.destroy()
  }

  private activate(
    operation: string,
    request: unknown,
    onEvent: ((payload: unknown) => void) | undefined,
    onEnd: ((err: Error | undefined) => void) | undefined,
  ): Promise<{ streamId: number; response: unknown }> {
    if (this.closed) {
      return Promise.reject(new UplinkError('CONNECTION_LOST', 'Greengrass IPC connection closed'))
    }
    const streamId = this.nextStreamId++
    return new Promise((resolve, reject) => {
      // No response in time: the operation fails and its stream is forgotten, so a response
      // that comes after all is ignored.
      const timer = this.clock.setTimeout(() => {
        if (this.streams.get(streamId)?.responded !== false) return
        this.streams.delete(streamId)
        reject(new IpcError('Timeout', `${operation}: no response in ${this.callTimeoutMs} ms`))
      }, this.callTimeoutMs)
      this.streams.set(streamId, {
        operation,
        respond: (response) => {
          this.clock.clearTimeout(timer)
          resolve({ streamId, response })
        },
        fail: (err) => {
          this.clock.clearTimeout(timer)
          reject(err)
        },
        responded: false,
        onEvent,
        onEnd,
      })
      this.send({
        type: MessageType.ApplicationMessage,
        flags: 0,
        streamId,
        headers: {
          operation,
          [SHAPE]: `${operation}Request`,
          ':content-type': 'application/json',
        },
        payload: jsonPayload(request ?? {}),
      })
    })
  }

  /** One frame; whatever goes wrong with it is reported and the next frame is handled. */
  private receiveContained(message: RpcMessage): void {
    try {
      this.receive(message)
    } catch (err) {
      this.emit('fault', asError(err))
    }
  }

  private send(message: RpcMessage): void {
    this.socket.write(encodeRpcMessage(message))
  }

  private receive(message: RpcMessage): void {
    if (message.type === MessageType.Ping) {
      this.send({ ...message, type: MessageType.PingResponse, headers: {} })
      return
    }
    if (message.streamId === 0) {
      // A connection-level error from the nucleus: nothing more will work on this connection.
      if (message.type === MessageType.ProtocolError || message.type === MessageType.InternalError)
        this.socket.destroy()
      return
    }
    const pending = this.streams.get(message.streamId)
    if (!pending) return
    const terminated = (message.flags & MessageFlags.TerminateStream) !== 0
    const error = responseError(pending.operation, message)
    let payload: unknown
    let notJson: Error | undefined
    try {
      payload = error ? undefined : parseJsonPayload(message.payload)
    } catch {
      // Only this frame is bad: its call fails (or its event is skipped), the connection stays.
      notJson = new IpcError('ProtocolError', `${pending.operation}: a payload that is not JSON`)
    }
    if (!pending.responded) {
      if (notJson) {
        this.streams.delete(message.streamId)
        pending.fail(notJson)
        return
      }
      pending.responded = true
      if (error) {
        this.streams.delete(message.streamId)
        pending.fail(error)
        return
      }
      pending.respond(payload)
      if (terminated || !pending.onEvent) this.streams.delete(message.streamId)
      return
    }
    if (notJson) throw notJson
    if (error || terminated) {
      this.streams.delete(message.streamId)
      try {
        if (!error && message.payload.length > 0) pending.onEvent?.(payload)
      } finally {
        pending.onEnd?.(error)
      }
      return
    }
    pending.onEvent?.(payload)
  }

  private closedBySocket(): void {
    if (this.closed) return
    this.closed = true
    const lost = new UplinkError('CONNECTION_LOST', 'Greengrass IPC connection closed')
    for (const pending of this.streams.values()) {
      if (!pending.responded) pending.fail(lost)
      else {
        try {
          pending.onEnd?.(lost)
        } catch (err) {
          this.emit('fault', asError(err))
        }
      }
    }
    this.streams.clear()
    this.emit('close', lost)
  }
}
