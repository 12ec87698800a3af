// Type-checked as a CommonJS consumer (node16, nodenext): require() gets the .d.cts declarations.
import { createUplink, isUplinkError, type Uplink, type UplinkError } from '@uplink/client'
import { type SqliteDriver, sqliteOutbox } from '@uplink/store-sqlite'

const outbox = sqliteOutbox({ path: 'outbox.db' })
const uplink: Uplink = createUplink({ clientId: 'c', endpoints: ['mqtt://127.0.0.1:1883'], outbox })
uplink.on('error', (err: UplinkError) => console.log(err.code))
uplink.on('connect', (e) => console.log(e.endpoint))
const driver: SqliteDriver = outbox.info().driver
export const yes: boolean = isUplinkError(new Error(driver), 'OUTBOX_FULL')
