export {
  type ComponentSettings,
  type DeviceEnv,
  type OutboxSettings,
  parseComponentConfig,
} from './config.js'
export { defaultConfiguration, GREENGRASS_DEFAULTS } from './defaults.js'
export {
  IpcConnection,
  type IpcConnectOptions,
  IpcError,
  type IpcStream,
} from './ipc-connection.js'
export * from './ipc-operations.js'
export { ARTIFACT_ZIP, accessControl, componentRecipe, gdkArtifactUri } from './recipe.js'
export type { CommandRule, ForwardRule } from './rules.js'
export {
  GreengrassRunner,
  type GreengrassRunnerOptions,
  type RunnerCounts,
  type RunnerStatus,
  runGreengrassComponent,
} from './runner.js'
