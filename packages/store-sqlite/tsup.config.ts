import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node22',
  // import.meta.url (for createRequire) in the CommonJS build too.
  shims: true,
  // Loaded at run time by name: better-sqlite3 on Node, bun:sqlite on Bun.
  external: ['better-sqlite3', 'bun:sqlite'],
})
