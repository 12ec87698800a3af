import { provision } from './provision.js'

/** vitest globalSetup of `pnpm test:interop`: every server the interop suite runs against. */
export default function setup(): void {
  provision('pnpm test:interop', [
    'mosquitto',
    'dnsmasq',
    'unbound',
    'unbound-control',
    'nginx',
    'nginx-stream',
    'rabbitmq',
    'openssl',
  ])
}
