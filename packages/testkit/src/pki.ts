import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface IssuedCert {
  key: string
  cert: string
}

export interface TestPki {
  /** The CA certificate (PEM) that clients trust. */
  ca: string
  /** A server certificate for these DNS names (and IP addresses), signed by this CA; with
   * `usage: 'client'`, a client certificate whose CN is `names[0]` (a device's identity). */
  issue(
    names: string[],
    options?: { ips?: string[]; days?: number; usage?: 'server' | 'client' },
  ): IssuedCert
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

/**
 * A throwaway certificate authority made with the openssl CLI (EC P-256: fast to generate), so
 * TLS tests verify real chains and real names instead of turning verification off.
 */
export function createTestPki(commonName = 'Uplink Test CA'): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'uplink-pki-'))
  try {
    openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'])
    openssl(dir, [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-sha256',
      '-days',
      '30',
      '-subj',
      `/CN=${commonName}`,
      '-out',
      'ca.pem',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ])
    const caKey = readFileSync(join(dir, 'ca.key'), 'utf8')
    const ca = readFileSync(join(dir, 'ca.pem'), 'utf8')
    rmSync(dir, { recursive: true, force: true })
    let serial = 1
    return {
      ca,
      issue(names, options = {}) {
        const work = mkdtempSync(join(tmpdir(), 'uplink-pki-'))
        try {
          writeFileSync(join(work, 'ca.key'), caKey)
          writeFileSync(join(work, 'ca.pem'), ca)
          const ips = options.ips ?? []
          for (const ip of ips) if (!isIP(ip)) throw new Error(`not an IP address: ${ip}`)
          const san = [...names.map((n) => `DNS:${n}`), ...ips.map((ip) => `IP:${ip}`)].join(',')
          writeFileSync(
            join(work, 'ext.cnf'),
            [
              `subjectAltName=${san}`,
              'basicConstraints=critical,CA:FALSE',
              'keyUsage=critical,digitalSignature,keyEncipherment',
              `extendedKeyUsage=${options.usage === 'client' ? 'clientAuth' : 'serverAuth'}`,
            ].join('\n'),
          )
          openssl(work, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'srv.key'])
          openssl(work, [
            'req',
            '-new',
            '-key',
            'srv.key',
            '-subj',
            `/CN=${names[0] ?? ips[0] ?? 'server'}`,
            '-out',
            'srv.csr',
          ])
          openssl(work, [
            'x509',
            '-req',
            '-in',
            'srv.csr',
            '-CA',
            'ca.pem',
            '-CAkey',
            'ca.key',
            '-set_serial',
            String(serial++),
            '-days',
            String(options.days ?? 30),
            '-sha256',
            '-extfile',
            'ext.cnf',
            '-out',
            'srv.pem',
          ])
          return {
            key: readFileSync(join(work, 'srv.key'), 'utf8'),
            cert: readFileSync(join(work, 'srv.pem'), 'utf8'),
          }
        } finally {
          rmSync(work, { recursive: true, force: true })
        }
      },
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}
