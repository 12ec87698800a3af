/**
 * `pnpm greengrass:build`: the Greengrass Development Kit's custom-build layout, so that
 * `gdk component publish` (or `aws greengrassv2 create-component-version`) works from it:
 *
 *   packages/greengrass/greengrass-build/recipes/recipe.json
 *   packages/greengrass/greengrass-build/artifacts/<name>/<version>/uplink-greengrass.zip
 *
 * The ZIP holds the runner and its production dependencies only (`pnpm deploy --prod`), laid
 * out as an npm package: dist/bin.js, package.json, node_modules/. Run after `pnpm build`.
 * `--bucket NAME` writes that bucket into the artifact URI instead of GDK's BUCKET_NAME.
 */
import { execFileSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ARTIFACT_ZIP, componentRecipe } from '../src/recipe.js'

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const root = resolve(pkgDir, '../..')
const gdk = JSON.parse(readFileSync(join(pkgDir, 'gdk-config.json'), 'utf8'))
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
const [name, component] = Object.entries(gdk.component)[0] as [string, { version: string }]
if (component.version !== pkg.version) {
  throw new Error(
    `gdk-config.json says ${component.version}, package.json ${pkg.version}: make them one`,
  )
}
const version = pkg.version as string
const bucketAt = process.argv.indexOf('--bucket')
const bucket = bucketAt >= 0 ? process.argv[bucketAt + 1] : undefined

for (const built of ['greengrass', 'client', 'store-sqlite']) {
  statSync(join(root, 'packages', built, 'dist', 'index.js')) // throws if `pnpm build` was not run
}
const out = join(pkgDir, 'greengrass-build')
rmSync(out, { recursive: true, force: true })
const artifacts = join(out, 'artifacts', name, version)
mkdirSync(artifacts, { recursive: true })
mkdirSync(join(out, 'recipes'), { recursive: true })

const stage = mkdtempSync(join(tmpdir(), 'uplink-gg-stage-'))
try {
  const app = join(stage, 'uplink-greengrass')
  execFileSync(
    'pnpm',
    [
      '--config.node-linker=hoisted',
      '--filter',
      '@uplink/greengrass',
      'deploy',
      '--prod',
      '--legacy',
      app,
    ],
    {
      cwd: root,
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  )
  // A flat node_modules (hoisted): no symlinks, which not every unzip on a device restores.
  // The .bin links are for shells, not for the runner.
  rmSync(join(app, 'node_modules/.bin'), { recursive: true, force: true })
  const symlinks = execFileSync('find', [app, '-type', 'l'], { encoding: 'utf8' }).trim()
  if (symlinks) throw new Error(`the staged component has symlinks:\n${symlinks}`)
  // Production dependencies only: no dev dependency of any workspace package may be in it.
  for (const dev of ['aws-iot-device-sdk-v2', 'aws-crt', '@uplink/testkit', 'vitest', 'tsx']) {
    if (existsSync(join(app, 'node_modules', dev))) throw new Error(`${dev} is in the component`)
  }
  for (const needed of [
    '@uplink/client',
    '@uplink/store-sqlite',
    'better-sqlite3',
    '@smithy/eventstream-codec',
  ]) {
    if (!existsSync(join(app, 'node_modules', needed))) throw new Error(`${needed} is missing`)
  }
  // better-sqlite3's build leftovers (objects, the SQLite sources, a test extension): not run.
  {
    const m = join(app, 'node_modules/better-sqlite3')
    for (const junk of [
      'deps',
      'src',
      'build/Release/obj.target',
      'build/Release/obj',
      'build/Release/test_extension.node',
      'build/Release/.deps',
    ]) {
      rmSync(join(m, junk), { recursive: true, force: true })
    }
  }
  execFileSync('zip', ['-q', '-r', '-X', join(artifacts, ARTIFACT_ZIP), '.'], { cwd: app })
} finally {
  rmSync(stage, { recursive: true, force: true })
}

const artifactUri = `s3://${bucket ?? 'BUCKET_NAME'}/${name}/${version}/${ARTIFACT_ZIP}`
const recipe = componentRecipe({ name, version, artifactUri })
writeFileSync(join(out, 'recipes', 'recipe.json'), `${JSON.stringify(recipe, null, 2)}\n`)
// The package's own copy (GDK's BUCKET_NAME in the URI), kept equal by test/recipe.test.ts.
const shipped = componentRecipe({ name, version })
writeFileSync(join(pkgDir, 'recipe.json'), `${JSON.stringify(shipped, null, 2)}\n`)
const size = statSync(join(artifacts, ARTIFACT_ZIP)).size
process.stdout.write(
  `${name} ${version}: ${join('greengrass-build/artifacts', name, version, ARTIFACT_ZIP)} (${(size / 2 ** 20).toFixed(1)} MiB), greengrass-build/recipes/recipe.json\n`,
)
