/**
 * The packages as a user gets them: every workspace package packed (`pnpm pack`, after
 * `pnpm build`), linted on the tarballs (publint, are-the-types-wrong), installed in a fresh
 * project outside the workspace by each runtime's own package manager (npm on Node 22, 24 and
 * 26, `bun add` on Bun) with no compiler reachable, then run as an ESM consumer, a CommonJS
 * consumer and on Bun, each publishing through a SQLite outbox to a real broker; and the
 * declarations type-checked under node16, nodenext and bundler resolution.
 * Run with `pnpm test:packaging` (it needs the registry for the packages' own dependencies).
 */
import { execFile, execFileSync } from 'node:child_process'
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { startBroker, type TestBroker } from '@uplink/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CONSUMER = fileURLToPath(new URL('./consumer', import.meta.url))
const PACKAGES = ['client', 'store-sqlite', 'testkit']
const NODE_LINES = [22, 24, 26]
const MESSAGES = 20
// Installs fetch the packages' dependencies from the registry: generous, but bounded.
const INSTALL_MS = 180_000

const work = mkdtempSync(join(tmpdir(), 'uplink-packaging-'))
let tarballs: string[] = []
let broker: TestBroker
/** The project installed on each Node line, by major. */
const projects = new Map<number, string>()

/** PATH with no compiler on it: only the runtime's own directory and a shell. */
function noCompiler(runtimeBin: string): NodeJS.ProcessEnv {
  const bin = join(work, 'no-compiler-bin')
  mkdirSync(bin, { recursive: true })
  try {
    symlinkSync('/bin/sh', join(bin, 'sh'))
  } catch {}
  // The rest of the environment stays (proxy and CA settings for the registry), but nothing of
  // the workspace's: pnpm's NODE_PATH would let the consumer find the workspace's packages, and
  // its npm_config_* would steer npm.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([key]) => !/^(npm_|pnpm_|NODE_PATH$|NODE_OPTIONS$|VITEST)/i.test(key),
    ),
  )
  return { ...env, PATH: `${runtimeBin}:${bin}`, CC: '/bin/false', CXX: '/bin/false' }
}

/** The directory of a Node line's binary, npm and pnpm (installed by .ci/use-node). */
function nodeBin(major: number): string {
  return execFileSync(join(ROOT, '.ci/use-node'), [String(major)], { encoding: 'utf8' }).trim()
}

/** A fresh project outside the workspace holding the consumer files. */
function project(name: string): string {
  const dir = join(work, name)
  cpSync(CONSUMER, dir, { recursive: true })
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: `consumer-${name}`, private: true }),
  )
  return dir
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout = 60_000) {
  return execFileSync(cmd, args, {
    cwd,
    env,
    encoding: 'utf8',
    timeout,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

interface Outcome {
  driver: string
  runtime: string
  left: number
  invalid: boolean
  format?: string
  twoCopies?: boolean
}

/**
 * Runs a consumer and checks the broker got all its messages. Asynchronously: the broker lives
 * in this process, and a synchronous wait would keep it from answering.
 */
async function consume(
  cmd: string,
  script: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
  id: string,
): Promise<Outcome> {
  const args = [script, broker.url, join(cwd, `${id}.db`), String(MESSAGES), id]
  const { stdout: out } = await promisify(execFile)(cmd, args, {
    cwd,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  })
  const outcome = JSON.parse(out.trim().split('\n').pop() as string) as Outcome
  const got = new Set(
    broker.publishes.filter((p) => p.topic === `consumer/${id}`).map((p) => String(p.payload)),
  )
  expect(got.size).toBe(MESSAGES)
  expect(outcome.left).toBe(0)
  expect(outcome.invalid).toBe(true)
  return outcome
}

beforeAll(async () => {
  broker = await startBroker()
  const dest = join(work, 'tarballs')
  for (const name of PACKAGES) {
    execFileSync('pnpm', ['pack', '--pack-destination', dest], {
      cwd: join(ROOT, 'packages', name),
      stdio: 'ignore',
    })
  }
  tarballs = readdirSync(dest).map((f) => join(dest, f))
}, 120_000)

afterAll(async () => {
  await broker?.stop()
  rmSync(work, { recursive: true, force: true })
})

describe('the packed tarballs', () => {
  it('pack one tarball per package, with no src/ and a LICENSE and README each', () => {
    expect(tarballs).toHaveLength(PACKAGES.length)
    for (const tgz of tarballs) {
      const files = run('tar', ['-tzf', tgz], work, process.env).split('\n')
      expect(files).toContain('package/LICENSE')
      expect(files).toContain('package/README.md')
      expect(files.some((f) => f.startsWith('package/src/'))).toBe(false)
      const manifest = JSON.parse(
        run('tar', ['-xzOf', tgz, 'package/package.json'], work, process.env),
      )
      // The workspace-only condition names src/, which is not published.
      expect(JSON.stringify(manifest.exports)).not.toContain('uplink-source')
      expect(JSON.stringify(manifest)).not.toContain('workspace:')
    }
  })

  it('pass publint --strict and are-the-types-wrong', () => {
    const bin = join(ROOT, 'node_modules/.bin')
    for (const tgz of tarballs) {
      run(join(bin, 'publint'), ['run', '--strict', tgz], work, process.env)
      // testkit is ESM-only on purpose (aedes is): its CommonJS resolution is not asked for.
      const profile = tgz.includes('testkit') ? ['--profile', 'esm-only'] : []
      run(join(bin, 'attw'), [...profile, '--format', 'ascii', tgz], work, process.env)
    }
  })
})

describe.each(NODE_LINES)('installed with npm on Node %i, no compiler reachable', (major) => {
  let dir: string
  let env: NodeJS.ProcessEnv
  beforeAll(() => {
    const bin = nodeBin(major)
    env = noCompiler(bin)
    dir = project(`node${major}`)
    // @types/node for the declaration check below (Node 24 only).
    const extra = major === 24 ? ['@types/node@^22'] : []
    run('npm', ['install', '--no-fund', '--no-audit', ...tarballs, ...extra], dir, env, INSTALL_MS)
    projects.set(major, dir)
  }, INSTALL_MS)

  it('an ESM consumer publishes through the better-sqlite3 outbox to a broker', async () => {
    const outcome = await consume(join(nodeBin(major), 'node'), 'esm.mjs', dir, env, `esm-${major}`)
    expect(outcome).toMatchObject({ driver: 'better-sqlite3', runtime: 'node', format: 'esm' })
  })

  it('a CommonJS consumer does the same, and errors of the ESM copy count as UplinkErrors', async () => {
    const outcome = await consume(join(nodeBin(major), 'node'), 'cjs.cjs', dir, env, `cjs-${major}`)
    expect(outcome).toMatchObject({ driver: 'better-sqlite3', format: 'cjs', twoCopies: true })
  })
})

describe('the installed declarations (Node 24 project)', () => {
  it.each(['node16', 'nodenext', 'bundler'])(
    // node16 and nodenext check an .mts and a .cts file (import and require); bundler a .ts file.
    'type-check a consumer under %s resolution',
    (mode) => {
      const tsc = join(ROOT, 'node_modules/typescript/bin/tsc')
      const dir = projects.get(24) as string
      run(
        join(nodeBin(24), 'node'),
        [tsc, '-p', `tsconfig.${mode}.json`],
        dir,
        noCompiler(nodeBin(24)),
      )
    },
  )
})

describe('installed without optional dependencies (no better-sqlite3)', () => {
  it(
    'falls back to node:sqlite on Node 22',
    async () => {
      const bin = nodeBin(22)
      const env = noCompiler(bin)
      const dir = project('node22-no-optional')
      run(
        'npm',
        ['install', '--no-fund', '--no-audit', '--omit=optional', ...tarballs],
        dir,
        env,
        INSTALL_MS,
      )
      const outcome = await consume(join(bin, 'node'), 'esm.mjs', dir, env, 'no-optional-22')
      expect(outcome).toMatchObject({ driver: 'node:sqlite', runtime: 'node' })
    },
    INSTALL_MS,
  )
})

describe('a better-sqlite3 whose binary cannot load (a platform without a prebuilt one)', () => {
  it('falls back to node:sqlite on Node 26', async () => {
    const bin = nodeBin(26)
    const env = noCompiler(bin)
    const dir = join(work, 'node26-broken-binary')
    cpSync(projects.get(26) as string, dir, { recursive: true })
    const prebuilds = join(dir, 'node_modules/better-sqlite3/prebuilds')
    for (const file of readdirSync(prebuilds))
      writeFileSync(join(prebuilds, file), 'not an ELF file')
    const outcome = await consume(join(bin, 'node'), 'esm.mjs', dir, env, 'broken-binary-26')
    expect(outcome).toMatchObject({ driver: 'node:sqlite', runtime: 'node' })
  })
})

describe('installed with bun add, no compiler reachable', () => {
  it(
    'a Bun consumer publishes through the bun:sqlite outbox to a broker',
    async () => {
      const bunBin = join(work, 'bun-bin')
      mkdirSync(bunBin, { recursive: true })
      symlinkSync(join(ROOT, 'node_modules/bun/bin/bun.exe'), join(bunBin, 'bun'))
      const env = noCompiler(bunBin)
      const dir = project('bun')
      run('bun', ['add', ...tarballs], dir, env, INSTALL_MS)
      const outcome = await consume(join(bunBin, 'bun'), 'esm.mjs', dir, env, 'bun')
      expect(outcome).toMatchObject({ driver: 'bun:sqlite', runtime: 'bun' })
    },
    INSTALL_MS,
  )
})
