/**
 * What every consumer does once it has loaded the packages its own way (import, require, Bun):
 * publishes `count` messages through a SQLite outbox to the broker, waits until the outbox is
 * empty, stops, and prints one JSON line for the test. Args: <broker url> <outbox path> <count> <id>
 */
module.exports = async function run(client, store, extra = {}) {
  const [url, path, count, id] = process.argv.slice(2)
  const outbox = store.sqliteOutbox({ path })
  const uplink = client.createUplink({ clientId: id, endpoints: [url], outbox })
  await uplink.start()
  for (let i = 0; i < Number(count); i++) {
    await uplink.publish(`consumer/${id}`, JSON.stringify({ id, i }), { qos: 1 })
  }
  const deadline = Date.now() + 20_000
  while (uplink.stats().outbox.messages > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20))
  }
  await uplink.stop({ timeoutMs: 5_000 })
  let invalid
  try {
    store.sqliteOutbox({ path: '' })
  } catch (err) {
    invalid = client.isUplinkError(err, 'INVALID_OPTIONS')
  }
  const info = outbox.info()
  const result = {
    driver: info.driver,
    runtime: info.runtime,
    left: uplink.stats().outbox.messages,
  }
  process.stdout.write(`${JSON.stringify({ ...result, invalid, ...extra })}\n`)
}
