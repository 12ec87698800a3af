import { inspect } from 'node:util'
import { backoffDelay, type Clock, type RandomSource, systemClock } from '@uplink/client'
import { GREENGRASS_DEFAULTS } from './defaults.js'
import { IpcConnection, type IpcConnectOptions } from './ipc-connection.js'

/**
 * Keeps one IPC connection to the nucleus. A connection is connected once, so when it drops (a
 * nucleus restart, a crash of its IPC server) this builds a new one with capped, jittered
 * backoff and hands it to `ready` to set up its subscriptions again. `ready` failing (say, a
 * GetConfiguration that the nucleus refuses while it starts) counts as a failed attempt.
 */
export class IpcSession {
  private connection: IpcConnection | undefined
  private stopped = false
  private wake: (() => void) | undefined
  private loop: Promise<void> | undefined

  constructor(
    private readonly connect: IpcConnectOptions,
    private readonly ready: (ipc: IpcConnection) => Promise<void>,
    private readonly onError: (err: Error) => void,
    private readonly clock: Clock = systemClock,
    private readonly random: RandomSource = Math.random,
  ) {}

  /** Never the SVCUID. */
  [inspect.custom](): string {
    return `IpcSession { socket: ${this.connect.socketPath}, connected: ${this.current !== undefined} }`
  }

  get current(): IpcConnection | undefined {
    return this.connection && !this.connection.isClosed ? this.connection : undefined
  }

  start(): void {
    this.loop ??= this.run()
  }

  private async run(): Promise<void> {
    let failures = 0
    let previous = 0
    while (!this.stopped) {
      if (failures > 0) {
        previous = backoffDelay(failures, GREENGRASS_DEFAULTS.ipcBackoff, this.random, previous)
        await this.sleep(previous)
        if (this.stopped) return
      }
      let ipc: IpcConnection
      try {
        ipc = await IpcConnection.connect(this.connect)
      } catch (err) {
        failures++
        this.onError(err as Error)
        continue
      }
      if (this.stopped) {
        ipc.close()
        return
      }
      const closed = new Promise<void>((resolve) => ipc.once('close', () => resolve()))
      // A frame the connection skipped (a malformed event, a handler that threw): logged.
      ipc.on('fault', (err) => this.onError(err))
      this.connection = ipc
      try {
        await this.ready(ipc)
        failures = 0
      } catch (err) {
        failures++
        this.onError(err as Error)
        ipc.close()
      }
      await closed
      this.connection = undefined
      if (failures === 0) failures = 1
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(() => {
        this.wake = undefined
        resolve()
      }, ms)
      this.wake = () => {
        this.clock.clearTimeout(timer)
        resolve()
      }
    })
  }

  /** Closes the connection and ends the loop; an attempt under way ends by its own timeout. */
  stop(): void {
    this.stopped = true
    this.wake?.()
    this.connection?.close()
  }
}
