import { EventStreamCodec, type Message, type MessageHeaders } from '@smithy/eventstream-codec'
import { fromUtf8, toUtf8 } from '@smithy/util-utf8'

/**
 * Event-stream framing for Greengrass IPC. The byte format (prelude: total length, headers
 * length, prelude CRC32; headers; payload; message CRC32) is the one AWS uses for every event
 * stream, so we keep the maintained Smithy codec for it and write only the RPC layer on top
 * (ipc-connection.ts). The RPC layer's own headers are those of the AWS CRT's eventstream RPC:
 * `:message-type`, `:message-flags` and `:stream-id` on every message, `operation` on the first
 * message of a stream, `:version` on the connect message.
 */

/** `:message-type` values, as the AWS CRT numbers them. */
export const MessageType = {
  ApplicationMessage: 0,
  ApplicationError: 1,
  Ping: 2,
  PingResponse: 3,
  Connect: 4,
  ConnectAck: 5,
  ProtocolError: 6,
  InternalError: 7,
} as const

/** `:message-flags` bits. */
export const MessageFlags = { ConnectionAccepted: 1, TerminateStream: 2 } as const

/** The eventstream RPC protocol version the nucleus speaks. */
export const RPC_VERSION = '0.1.0'

export interface RpcMessage {
  type: number
  flags: number
  streamId: number
  /** The other headers, as strings (operation, service-model-type, :content-type, :version). */
  headers: Record<string, string>
  payload: Uint8Array
}

const codec = new EventStreamCodec(toUtf8, fromUtf8)

/** The prelude is 12 bytes and a message at least 16; the CRT refuses messages over 16 MiB. */
const PRELUDE_BYTES = 12
export const MAX_MESSAGE_BYTES = 16 * 2 ** 20

export function encodeRpcMessage(message: RpcMessage): Uint8Array {
  const headers: MessageHeaders = {
    ':message-type': { type: 'integer', value: message.type },
    ':message-flags': { type: 'integer', value: message.flags },
    ':stream-id': { type: 'integer', value: message.streamId },
  }
  for (const [name, value] of Object.entries(message.headers)) {
    headers[name] = { type: 'string', value }
  }
  return codec.encode({ headers, body: message.payload })
}

function intHeader(message: Message, name: string): number {
  const h = message.headers[name]
  if (!h) return 0
  if (h.type === 'integer' || h.type === 'short' || h.type === 'byte') return h.value
  throw new Error(`header ${name} is not an integer`)
}

export function decodeRpcMessage(frame: Uint8Array): RpcMessage {
  const message = codec.decode(frame)
  const headers: Record<string, string> = {}
  for (const [name, h] of Object.entries(message.headers)) {
    if (h.type === 'string') headers[name] = h.value
  }
  return {
    type: intHeader(message, ':message-type'),
    flags: intHeader(message, ':message-flags'),
    streamId: intHeader(message, ':stream-id'),
    headers,
    payload: message.body,
  }
}

/**
 * Splits a byte stream into whole frames by the prelude's total length (the codec checks the
 * CRCs when it decodes one). A length outside 16 bytes .. MAX_MESSAGE_BYTES is a protocol error:
 * the caller drops the connection rather than buffer without bound.
 */
export class FrameSplitter {
  private buffer: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): Uint8Array[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    const frames: Uint8Array[] = []
    while (this.buffer.length >= PRELUDE_BYTES) {
      const total = this.buffer.readUInt32BE(0)
      if (total < 16 || total > MAX_MESSAGE_BYTES) {
        throw new Error(`event-stream message of ${total} bytes`)
      }
      if (this.buffer.length < total) break
      frames.push(this.buffer.subarray(0, total))
      this.buffer = this.buffer.subarray(total)
    }
    return frames
  }
}

export function jsonPayload(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value))
}

export function parseJsonPayload(payload: Uint8Array): unknown {
  if (payload.length === 0) return {}
  return JSON.parse(Buffer.from(payload).toString('utf8'))
}
