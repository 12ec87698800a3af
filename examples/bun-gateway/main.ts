/** The Bun entry point: the same gateway, its outbox on Bun's built-in bun:sqlite. */
import { runGateway } from '../node-gateway/gateway.js'

await runGateway('bun:sqlite')
