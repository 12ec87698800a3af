// The same suite on Bun's own test runner and bun:sqlite: pnpm test:bun
import { afterEach, describe, expect, it } from 'bun:test'
import { defineOutboxSuite } from './suite.js'

defineOutboxSuite({ describe, it, afterEach, expect })
