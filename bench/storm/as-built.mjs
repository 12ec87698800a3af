/**
 * Module hooks for the device workers: the workspace's own TypeScript (the packages' sources and
 * the bench's) is compiled as the packages' build compiles it (esbuild, as tsup runs it: no `keepNames`), not as tsx
 * compiles it. tsx keeps every function's name with a `__name(fn, 'name')` call around each one,
 * which gives every closure a property store of its own and costs a `defineProperty` each time
 * one is made: memory per device and CPU that the published package does not have, while the
 * MQTT.js baseline runs its published JavaScript; the bench's own files (the same for both
 * clients) are compiled alike. Resolution is left to tsx. `--import` this after tsx: hooks
 * registered later run first.
 */
import { readFileSync } from 'node:fs'
import * as nodeModule from 'node:module'
import { fileURLToPath } from 'node:url'
import { transformSync } from 'esbuild'

/** The workspace's TypeScript: not a dependency's. */
const SOURCE = /^file:(?!.*\/node_modules\/).*\.ts$/

// Node before 22.15 has no registerHooks: tsx's compilation is all there is there.
nodeModule.registerHooks?.({
  load(url, context, nextLoad) {
    if (!SOURCE.test(url)) return nextLoad(url, context)
    const path = fileURLToPath(url)
    const { code } = transformSync(readFileSync(path, 'utf8'), {
      loader: 'ts',
      format: 'esm',
      target: 'node22',
      sourcefile: path,
      sourcemap: 'inline',
      tsconfigRaw: {
        compilerOptions: { verbatimModuleSyntax: true, useDefineForClassFields: true },
      },
    })
    return { format: 'module', source: code, shortCircuit: true }
  },
})
