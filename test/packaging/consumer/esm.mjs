// An ESM consumer: `import` resolves the packages' ESM builds (Node), or Bun's own loader.
import * as client from '@uplink/client'
import * as store from '@uplink/store-sqlite'
import run from './run.cjs'

await run(client, store, { format: 'esm' })
