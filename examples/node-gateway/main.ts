/** The Node entry point: better-sqlite3 when installed, else Node's built-in node:sqlite. */
import { runGateway } from './gateway.js'

await runGateway('auto')
