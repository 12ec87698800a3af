import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src/index.ts'],
  // ESM only: aedes is ESM-only, and a CommonJS build would require() it.
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node22',
})
