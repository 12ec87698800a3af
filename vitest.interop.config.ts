import { defineConfig } from 'vitest/config'

// `pnpm test:interop`: the client against servers nobody here wrote (Mosquitto, dnsmasq,
// unbound, nginx, RabbitMQ from Debian), each started by its test on loopback.
export default defineConfig({
  resolve: { conditions: ['uplink-source'] },
  ssr: { resolve: { conditions: ['uplink-source'] } },
  test: {
    include: ['test/interop/**/*.test.ts'],
    globalSetup: ['test/provision/interop.ts'],
    testTimeout: 30_000,
    // A RabbitMQ node takes 10-15 s to boot on a loaded 2-core machine.
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
