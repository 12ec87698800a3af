// A CommonJS consumer: `require` resolves the packages' CommonJS builds.
const client = require('@uplink/client')
const store = require('@uplink/store-sqlite')
const run = require('./run.cjs')

async function main() {
  // The ESM build is a second copy of the client in this process: its errors must still count.
  const esm = await import('@uplink/client')
  const twoCopies =
    esm.UplinkError !== client.UplinkError &&
    client.isUplinkError(new esm.UplinkError('OUTBOX_FULL', 'x'), 'OUTBOX_FULL') &&
    new esm.UplinkError('OUTBOX_FULL', 'x') instanceof client.UplinkError
  await run(client, store, { format: 'cjs', twoCopies })
}
main().catch((err) => {
  console.error(err)
  process.exit(1)
})
