import { type IpcConnection, IpcError, type IpcStream } from './ipc-connection.js'
import { isObject, type Json } from './json.js'

/**
 * The Greengrass IPC operations the component uses, with the shapes of the
 * aws.greengrass service model (aws-iot-device-sdk-v2, greengrasscoreipc/model.ts).
 */

const op = (name: string) => `aws.greengrass#${name}`

export interface ValidateConfigurationEvent {
  deploymentId: string
  configuration: Record<string, unknown>
}

export interface ComponentUpdateEvent {
  kind: 'pre' | 'post'
  deploymentId: string
  isGgcRestarting?: boolean
}

export type ComponentState = 'RUNNING' | 'ERRORED'

/** A message from local pub/sub: binary payloads as bytes, JSON ones as their JSON text. */
export interface LocalMessage {
  topic: string
  payload: Buffer
}

/**
 * An event's member, if it is an object. Events come from the nucleus and are checked, not
 * cast: an event of a shape the model does not have throws a MalformedEvent (which the
 * connection reports and skips) instead of a TypeError. It names the shape, never the payload.
 */
function member(event: unknown, operation: string, key: string): Json | undefined {
  if (!isObject(event)) throw malformed(operation, 'an event that is not an object')
  const v = event[key]
  if (v === undefined) return undefined
  if (!isObject(v)) throw malformed(operation, `${key} that is not an object`)
  return v
}

function malformed(operation: string, what: string): IpcError {
  return new IpcError('MalformedEvent', `${operation}: ${what}, skipped`)
}

const optionalString = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)

function leaf(value: unknown, keyPath: string[]): unknown {
  // For a key path that ends at a leaf the nucleus answers { <last key>: value }.
  const last = keyPath[keyPath.length - 1]
  if (last !== undefined && value && typeof value === 'object' && last in value) {
    return (value as Record<string, unknown>)[last]
  }
  return value
}

export async function getConfiguration(
  ipc: IpcConnection,
  keyPath: string[] = [],
  componentName?: string,
): Promise<unknown> {
  const request = componentName === undefined ? { keyPath } : { componentName, keyPath }
  const response = (await ipc.call(op('GetConfiguration'), request)) as { value?: unknown }
  return keyPath.length === 0 ? (response.value ?? {}) : leaf(response.value, keyPath)
}

export function subscribeToConfigurationUpdate(
  ipc: IpcConnection,
  onUpdate: (keyPath: string[]) => void,
  onEnd?: (err: Error | undefined) => void,
): Promise<IpcStream> {
  return ipc.stream(
    op('SubscribeToConfigurationUpdate'),
    { keyPath: [] },
    (event) => {
      const e = member(event, 'SubscribeToConfigurationUpdate', 'configurationUpdateEvent')
      if (!e) return
      const keyPath = Array.isArray(e.keyPath) ? e.keyPath.filter((k) => typeof k === 'string') : []
      onUpdate(keyPath)
    },
    onEnd,
  )
}

export function subscribeToValidateConfigurationUpdates(
  ipc: IpcConnection,
  onValidate: (event: ValidateConfigurationEvent) => void,
  onEnd?: (err: Error | undefined) => void,
): Promise<IpcStream> {
  return ipc.stream(
    op('SubscribeToValidateConfigurationUpdates'),
    {},
    (event) => {
      const name = 'SubscribeToValidateConfigurationUpdates'
      const e = member(event, name, 'validateConfigurationUpdateEvent')
      if (!e) return
      const deploymentId = optionalString(e.deploymentId)
      if (!deploymentId) throw malformed(name, 'an event without a deploymentId')
      // A configuration that is not an object is the validator's to refuse, by name.
      onValidate({
        deploymentId,
        configuration: (e.configuration ?? {}) as Record<string, unknown>,
      })
    },
    onEnd,
  )
}

export async function sendConfigurationValidityReport(
  ipc: IpcConnection,
  deploymentId: string,
  status: 'ACCEPTED' | 'REJECTED',
  message?: string,
): Promise<void> {
  await ipc.call(op('SendConfigurationValidityReport'), {
    configurationValidityReport: { status, deploymentId, ...(message ? { message } : {}) },
  })
}

export async function updateState(ipc: IpcConnection, state: ComponentState): Promise<void> {
  await ipc.call(op('UpdateState'), { state })
}

export function subscribeToComponentUpdates(
  ipc: IpcConnection,
  onUpdate: (event: ComponentUpdateEvent) => void,
  onEnd?: (err: Error | undefined) => void,
): Promise<IpcStream> {
  return ipc.stream(
    op('SubscribeToComponentUpdates'),
    {},
    (event) => {
      const name = 'SubscribeToComponentUpdates'
      const pre = member(event, name, 'preUpdateEvent')
      const post = member(event, name, 'postUpdateEvent')
      const e = pre ?? post
      if (!e) return
      const deploymentId = optionalString(e.deploymentId)
      if (!deploymentId) throw malformed(name, 'an event without a deploymentId')
      if (pre) onUpdate({ kind: 'pre', deploymentId, isGgcRestarting: e.isGgcRestarting === true })
      else onUpdate({ kind: 'post', deploymentId })
    },
    onEnd,
  )
}

export async function deferComponentUpdate(
  ipc: IpcConnection,
  deploymentId: string,
  recheckAfterMs: number,
  message: string,
): Promise<void> {
  await ipc.call(op('DeferComponentUpdate'), { deploymentId, message, recheckAfterMs })
}

export async function publishToTopic(
  ipc: IpcConnection,
  topic: string,
  payload: Uint8Array | { json: unknown },
): Promise<void> {
  const publishMessage =
    payload instanceof Uint8Array
      ? { binaryMessage: { message: Buffer.from(payload).toString('base64') } }
      : { jsonMessage: { message: payload.json } }
  await ipc.call(op('PublishToTopic'), { topic, publishMessage })
}

export function subscribeToTopic(
  ipc: IpcConnection,
  topic: string,
  onMessage: (message: LocalMessage) => void,
  onEnd?: (err: Error | undefined) => void,
): Promise<IpcStream> {
  return ipc.stream(
    op('SubscribeToTopic'),
    // Not our own publishes (commands, status) back to us.
    { topic, receiveMode: 'RECEIVE_MESSAGES_FROM_OTHERS' },
    (event) => {
      const name = 'SubscribeToTopic'
      const binary = member(event, name, 'binaryMessage')
      const json = member(event, name, 'jsonMessage')
      const e = binary ?? json
      if (!e) return
      const context = e.context === undefined ? {} : member(e, name, 'context')
      const from = optionalString(context?.topic) ?? topic
      if (binary) {
        const message = binary.message ?? ''
        if (typeof message !== 'string')
          throw malformed(name, 'a binaryMessage whose message is not base64 text')
        onMessage({ topic: from, payload: Buffer.from(message, 'base64') })
      } else {
        onMessage({ topic: from, payload: Buffer.from(JSON.stringify(json?.message ?? null)) })
      }
    },
    onEnd,
  )
}
