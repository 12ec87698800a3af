/**
 * Runs the built component ZIP as a device would: unpacked in a temp dir, started with plain
 * `node` (no tsx, no workspace) and the nucleus's environment, against the testkit's fake
 * nucleus and an aedes broker. Passes once it reports RUNNING, forwards one local message, and
 * exits 0 on SIGTERM. Proves the ZIP carries every production dependency it needs.
 * Run after `pnpm greengrass:build`: `pnpm exec tsx packages/greengrass/scripts/smoke-artifact.ts`.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startBroker, startGreengrassNucleus, waitFor } from '@uplink/testkit'
import { IpcConnection } from '../src/ipc-connection.js'
import { publishToTopic } from '../src/ipc-operations.js'
import { ARTIFACT_ZIP, accessControl } from '../src/recipe.js'

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const gdk = JSON.parse(readFileSync(join(pkgDir, 'gdk-config.json'), 'utf8'))
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
const name = Object.keys(gdk.component)[0] as string
const zip = join(pkgDir, 'greengrass-build/artifacts', name, pkg.version, ARTIFACT_ZIP)

const dir = mkdtempSync(join(tmpdir(), 'uplink-gg-smoke-'))
const unpacked = join(dir, 'uplink-greengrass')
execFileSync('unzip', ['-q', zip, '-d', unpacked])
const broker = await startBroker()
const nucleus = await startGreengrassNucleus({ thingName: 'smoke' })
const { env } = nucleus.addComponent(name, {
  accessControl: accessControl(name),
  endpoints: [broker.url],
})
const sensor = nucleus.addComponent('com.example.Sensor', {
  accessControl: {
    'aws.greengrass.ipc.pubsub': { p: { operations: ['*'], resources: ['uplink/*'] } },
  },
})
// As the recipe's run step: node {artifacts:decompressedPath}/uplink-greengrass/dist/bin.js --work {work:path}
const child = spawn('node', [join(unpacked, 'dist/bin.js'), '--work', join(dir, 'work')], {
  cwd: dir,
  env: { PATH: process.env.PATH ?? '', ...env },
  stdio: ['ignore', 'inherit', 'inherit'],
})
const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
try {
  await waitFor(() => nucleus.states.some((s) => s.state === 'RUNNING'), 'RUNNING', 20_000)
  const ipc = await IpcConnection.connect({
    socketPath: nucleus.socketPath,
    authToken: sensor.env.SVCUID as string,
  })
  await publishToTopic(ipc, 'uplink/out/smoke', Buffer.from('hello'))
  await waitFor(
    () => broker.publishes.some((p) => p.topic === 'dt/smoke/smoke'),
    'the message at the broker',
    10_000,
  )
  ipc.close()
  child.kill('SIGTERM')
  const code = await exited
  if (code !== 0) throw new Error(`exit code ${code} after SIGTERM`)
  process.stdout.write(
    `smoke: ${ARTIFACT_ZIP} ran from its unpacked ZIP: RUNNING, forwarded, stopped cleanly\n`,
  )
} finally {
  if (child.exitCode === null) child.kill('SIGKILL')
  await nucleus.stop()
  await broker.stop()
  rmSync(dir, { recursive: true, force: true })
}
