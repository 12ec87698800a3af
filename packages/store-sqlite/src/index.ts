export { DRIVERS, runtime, type SqliteDriver } from './driver.js'
export { SQLITE_DEFAULTS, type SqliteOutboxOptions } from './options.js'
export { type SqliteOutbox, sqliteOutbox } from './sqlite-outbox.js'
