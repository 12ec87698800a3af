import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** What a power cut threw away. */
export interface CutReport {
  /** Unsynced 4 KiB pages of file data. */
  pages: number
  /** Unsynced size changes (growth or truncation), one per file. */
  sizes: number
  /** Unsynced directory entries (created, removed or renamed names). */
  entries: number
  /** Handles open at the cut, dead from then on. */
  handles: number
}

export interface PowerLossFsStats {
  writes: number
  fsyncs: number
  dirsyncs: number
  cuts: number
  /** Exceptions inside the filesystem itself (answered EIO, traceback on stderr): must be 0. */
  bugs: number
  /** File fsyncs by the path the file had then, from the mount's root ('/outbox.db-wal'). */
  fsyncsByPath: Record<string, number>
}

export interface PowerLossFs {
  /** Where the filesystem is mounted: a fresh, empty directory. */
  mountpoint: string
  /**
   * The power cut: every write, truncate and directory entry not made durable by an fsync (of
   * the file for data, of the directory for names) is forgotten, and every handle open at that
   * moment fails with EIO from then on. The mount stays up: what opens next sees what a disk
   * would hold after the power came back. `keep` (0..1, default 0) lets each unsynced page, size
   * change and name survive with that probability, drawn from `seed`: a disk that wrote part of
   * its cache, in its own order, before dying.
   */
  cut(options?: { keep?: number; seed?: number }): Promise<CutReport>
  /**
   * Arms the cut to happen at the `afterOps`-th operation from now that changes what the disk
   * holds (a write, truncate, fsync, directory fsync, create, unlink or rename), which fails with
   * EIO: so it lands inside a commit. Every process with a file open on the filesystem (other
   * than this one) is SIGKILLed first, as the machine would die with its disk. Resolves once it
   * fired, with what was lost; `keep` and `seed` as for cut(). Re-arming or cut() disarms.
   */
  armCut(options: { afterOps: number; keep?: number; seed?: number }): Promise<CutReport>
  stats(): Promise<PowerLossFsStats>
  /** Unmounts (lazily, so a process still holding a file cannot keep it up) and cleans up. */
  stop(): Promise<void>
}

/** The filesystem's script: `fuse/` beside `src/` and `dist/`. */
function script(): string {
  // The CommonJS build has no import.meta, but __dirname (Bun and vitest have both).
  const here = typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url))
  return join(here, '..', 'fuse', 'powerloss_fs.py')
}
// Debian's python3-fusepy is in the system interpreter's dist-packages, which a python3 from
// pyenv or a venv first on PATH does not see.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'

function keepAndSeed(options: { keep?: number; seed?: number }): string {
  const keep = options.keep ?? 0
  if (!(keep >= 0 && keep <= 1)) throw new RangeError('keep must be from 0 to 1')
  return `${keep} ${Math.floor(options.seed ?? 0)}`
}

function isMounted(path: string): boolean {
  try {
    return readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .some((line) => line.split(' ')[1] === path)
  } catch {
    return false
  }
}

function forceUnmount(path: string): void {
  if (!isMounted(path)) return
  spawnSync('fusermount', ['-u', '-z', path], { stdio: 'ignore' })
  if (isMounted(path)) spawnSync('umount', ['-l', path], { stdio: 'ignore' })
}

/**
 * Mounts a FUSE filesystem (packages/testkit/fuse/powerloss_fs.py, Python with Debian's
 * python3-fusepy; needs /dev/fuse and root or fusermount) under a new temporary directory, over
 * a backing directory next to it that holds only what was synced. See that file for the exact
 * semantics (strict POSIX: a name is durable only once its directory was fsynced).
 *
 * Always unmounted: by stop(), by this process exiting, and by the filesystem itself when its
 * standard input closes, so a test runner killed outright leaves no mount behind.
 */
export async function startPowerLossFs(): Promise<PowerLossFs> {
  if (!existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: this needs FUSE')
  const dir = mkdtempSync(join(tmpdir(), 'uplink-powerloss-'))
  const backing = join(dir, 'backing')
  const mountpoint = join(dir, 'mnt')
  mkdirSync(backing)
  mkdirSync(mountpoint)
  const child: ChildProcess = spawn(PYTHON, [script(), backing, mountpoint], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stderr = ''
  // Passed on: the filesystem says nothing there unless something went wrong.
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
    process.stderr.write(chunk)
  })
  // Answers come one line per command, in order.
  // An armed cut answers again, unasked, when it fires.
  const waiting: Array<(answer: Record<string, unknown>) => void> = []
  let fired: ((report: CutReport) => void) | undefined
  let rest = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split('\n')
    rest = lines.pop() ?? ''
    for (const line of lines) {
      const answer = JSON.parse(line) as Record<string, unknown>
      if ('fired' in answer) fired?.(answer.fired as CutReport)
      else waiting.shift()?.(answer)
    }
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const failed = exited.then(() => {
    throw new Error(`powerloss_fs exited: ${stderr.trim() || 'no output'}`)
  })
  failed.catch(() => {})
  const answer = () =>
    Promise.race([new Promise<Record<string, unknown>>((resolve) => waiting.push(resolve)), failed])
  const command = (line: string) => {
    const next = answer()
    child.stdin?.write(`${line}\n`)
    return next
  }

  let stopped = false
  const onExit = () => {
    child.kill('SIGKILL')
    forceUnmount(mountpoint)
  }
  process.once('exit', onExit)
  const stop = async () => {
    if (stopped) return
    stopped = true
    process.off('exit', onExit)
    child.stdin?.end('stop\n')
    const timeout = new Promise<'timeout'>((r) => setTimeout(r, 5_000, 'timeout').unref())
    if ((await Promise.race([exited, timeout])) === 'timeout') child.kill('SIGKILL')
    forceUnmount(mountpoint)
    rmSync(dir, { recursive: true, force: true })
  }

  const ready = await Promise.race([
    answer(),
    new Promise<'timeout'>((r) => setTimeout(r, 10_000, 'timeout').unref()),
  ]).catch((err: Error) => err)
  if (ready instanceof Error || ready === 'timeout' || !isMounted(mountpoint)) {
    await stop()
    throw ready instanceof Error ? ready : new Error(`powerloss_fs did not mount: ${stderr}`)
  }

  return {
    mountpoint,
    async cut(options = {}) {
      return (await command(`cut ${keepAndSeed(options)}`)).cut as CutReport
    },
    async armCut(options) {
      const n = Math.floor(options.afterOps)
      if (!(n >= 1)) throw new RangeError('armCut: afterOps must be 1 or more')
      const done = new Promise<CutReport>((resolve) => {
        fired = resolve
      })
      await command(`arm ${n} ${keepAndSeed(options)}`)
      return Promise.race([done, failed])
    },
    async stats() {
      return (await command('stats')).stats as PowerLossFsStats
    },
    stop,
  }
}
