import type { IpcConnection, IpcStream } from './ipc-connection.js'

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
      const e = (event as { configurationUpdateEvent?: { keyPath?: string[] } })
        .configurationUpdateEvent
      if (e) onUpdate(e.keyPath ?? [])
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
      const e = (
        event as { validateConfigurationUpdateEvent?: Partial<ValidateConfigurationEvent> }
      ).validateConfigurationUpdateEvent
      if (e?.deploymentId)
        onValidate({ deploymentId: e.deploymentId, configuration: e.configuration ?? {} })
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
      const e = event as {
        preUpdateEvent?: { deploymentId: string; isGgcRestarting?: boolean }
        postUpdateEvent?: { deploymentId: string }
      }
      if (e.preUpdateEvent) onUpdate({ kind: 'pre', ...e.preUpdateEvent })
      else if (e.postUpdateEvent) onUpdate({ kind: 'post', ...e.postUpdateEvent })
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
      const e = event as {
        binaryMessage?: { message?: string; context?: { topic?: string } }
        jsonMessage?: { message?: unknown; context?: { topic?: string } }
      }
      if (e.binaryMessage) {
        onMessage({
          topic: e.binaryMessage.context?.topic ?? topic,
          payload: Buffer.from(e.binaryMessage.message ?? '', 'base64'),
        })
      } else if (e.jsonMessage) {
        onMessage({
          topic: e.jsonMessage.context?.topic ?? topic,
          payload: Buffer.from(JSON.stringify(e.jsonMessage.message ?? null)),
        })
      }
    },
    onEnd,
  )
}
