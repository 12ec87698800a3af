// Type-checked under bundler resolution (what Vite, esbuild, tsup consumers use).
import { createUplink, isUplinkError, type Uplink, type UplinkError } from '@uplink/client'
import { type SqliteDriver, sqliteOutbox } from '@uplink/store-sqlite'
import { startBroker, type TestBroker } from '@uplink/testkit'

const outbox = sqliteOutbox({ path: 'outbox.db', driver: 'auto' })
const uplink: Uplink = createUplink({ clientId: 'c', endpoints: ['mqtt://127.0.0.1:1883'], outbox })
// on() comes from the EventEmitter base class: it must be the class, not the module.
uplink.on('error', (err: UplinkError) => console.log(err.code))
uplink.on('connect', (e) => console.log(e.endpoint))
const driver: SqliteDriver = outbox.info().driver
const yes: boolean = isUplinkError(new Error(driver), 'OUTBOX_FULL')
const broker: Promise<TestBroker> = startBroker()

export { broker, yes }
