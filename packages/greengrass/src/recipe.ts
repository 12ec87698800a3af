import { defaultConfiguration, GREENGRASS_DEFAULTS } from './defaults.js'

/**
 * The component recipe, built from the same defaults the runner uses. Keys use the casing of
 * the recipe reference (RecipeFormatVersion, Manifests, Platform with lower-case os /
 * architecture / runtime, Lifecycle with lower-case steps, Artifacts with Uri / Unarchive /
 * Permission), which Greengrass nucleus lite requires and the classic nucleus accepts.
 */

export const ARTIFACT_ZIP = 'uplink-greengrass.zip'
/** Greengrass unpacks a ZIP into {artifacts:decompressedPath}/<zip name without .zip>/. */
const UNPACKED = '{artifacts:decompressedPath}/uplink-greengrass'

/** What GDK replaces at publish time: BUCKET_NAME (and COMPONENT_NAME / _VERSION in a template). */
export function gdkArtifactUri(name: string, version: string): string {
  return `s3://BUCKET_NAME/${name}/${version}/${ARTIFACT_ZIP}`
}

/** Local pub/sub the component needs: subscribe to its forwarding filters, publish commands and status. */
export function accessControl(name: string): Record<string, unknown> {
  const forward = GREENGRASS_DEFAULTS.forward.map((r) => r.localTopic)
  const commands = GREENGRASS_DEFAULTS.commands.map((r) => r.localTopic.replace('{suffix}', '*'))
  return {
    'aws.greengrass.ipc.pubsub': {
      [`${name}:pubsub:1`]: {
        policyDescription: 'Receive what other components publish for the cloud',
        operations: ['aws.greengrass#SubscribeToTopic'],
        resources: forward,
      },
      [`${name}:pubsub:2`]: {
        policyDescription: 'Deliver cloud commands and publish status locally',
        operations: ['aws.greengrass#PublishToTopic'],
        resources: [...commands, GREENGRASS_DEFAULTS.status.topic],
      },
    },
  }
}

const PLATFORMS = [
  { os: 'linux', architecture: 'amd64', runtime: '*' },
  { os: 'linux', architecture: 'aarch64', runtime: '*' },
  // 32-bit ARM: better-sqlite3 has no binary here, the outbox falls back to node:sqlite.
  { os: 'linux', architecture: 'arm', 'architecture.detail': 'armv7l', runtime: '*' },
]

export function componentRecipe(options: {
  name: string
  version: string
  artifactUri?: string
}): Record<string, unknown> {
  const { name, version } = options
  const uri = options.artifactUri ?? gdkArtifactUri(name, version)
  return {
    RecipeFormatVersion: '2020-01-25',
    ComponentName: name,
    ComponentVersion: version,
    ComponentType: 'aws.greengrass.generic',
    ComponentDescription:
      "Uplink: carries other components' data to AWS IoT Core across regions (failover, DNS on every connect, a durable SQLite outbox) over local pub/sub topics.",
    ComponentPublisher: 'Uplink',
    ComponentConfiguration: {
      DefaultConfiguration: { ...defaultConfiguration(), accessControl: accessControl(name) },
    },
    Manifests: PLATFORMS.map((Platform) => ({
      Platform,
      Lifecycle: {
        run: {
          Script: `node ${UNPACKED}/dist/bin.js --work {work:path}`,
          RequiresPrivilege: false,
        },
      },
      Artifacts: [{ Uri: uri, Unarchive: 'ZIP', Permission: { Read: 'OWNER', Execute: 'NONE' } }],
    })),
  }
}
