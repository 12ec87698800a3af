import { afterEach, describe, expect, it } from 'vitest'
import { defineOutboxSuite } from './suite.js'

defineOutboxSuite({ describe, it, afterEach, expect })
