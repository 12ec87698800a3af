import { provision } from './provision.js'

/**
 * vitest globalSetup of `pnpm test`: Mosquitto for the MQTT 5 tests, dnsmasq for the README's
 * AAAA-refusing DNS server, openssl for the test PKI, FUSE and fusepy for the power-loss
 * filesystem.
 */
export default function setup(): void {
  provision('pnpm test', ['mosquitto', 'dnsmasq', 'openssl', 'fusermount', 'fusepy'])
}
