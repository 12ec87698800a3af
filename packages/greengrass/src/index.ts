export {
  IpcConnection,
  type IpcConnectOptions,
  IpcError,
  type IpcStream,
} from './ipc-connection.js'
export * from './ipc-operations.js'
