import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { locate, SERVERS, type ServerName } from '../../packages/testkit/src/servers.js'

/**
 * Makes sure the third-party servers a suite starts are installed. On Debian or Ubuntu as root
 * it installs the missing ones (apt-get update once, then apt-get install) and says so; anywhere
 * else it fails with the one command that fixes it. It never lets a suite skip a server.
 */
export function provision(suite: string, needed: ServerName[]): void {
  const missing = needed.filter((name) => !locate(name))
  if (missing.length === 0) return
  const packages = [...new Set(missing.map((name) => SERVERS[name].debian))]
  const what = `${suite} needs ${missing.map((n) => SERVERS[n].binary).join(', ')}`
  const debian = existsSync('/etc/debian_version') && existsSync('/usr/bin/apt-get')
  const root = process.getuid?.() === 0
  if (!debian || !root) {
    const command = `${root ? '' : 'sudo '}apt-get install -y ${packages.join(' ')}`
    throw new Error(
      debian
        ? `${what}, not installed. Install them with: ${command}`
        : `${what}, not installed, and this is not Debian or Ubuntu: install the equivalent of the Debian packages ${packages.join(' ')} (on Debian: ${command})`,
    )
  }
  console.log(`\n[provision] ${what}: installing Debian packages ${packages.join(' ')} (as root)`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  // Another apt-get (unattended upgrades, a parallel install) may hold the lock for a while.
  const lock = ['-o', 'DPkg::Lock::Timeout=300']
  execFileSync('apt-get', [...lock, 'update', '-qq'], { stdio: 'inherit', env })
  execFileSync('apt-get', [...lock, 'install', '-y', '-qq', ...packages], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env,
  })
  const still = missing.filter((name) => !locate(name))
  if (still.length) {
    throw new Error(
      `apt-get installed ${packages.join(' ')} but ${still.join(', ')} is still missing`,
    )
  }
  console.log(`[provision] installed ${packages.join(' ')}\n`)
}
