import { mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { sqliteOutbox } from '@uplink/store-sqlite'

const dir = mkdtempSync('/tmp/prof/o-')
const payload = new Uint8Array(200).fill(42)
for (const durability of ['full', 'normal'] as const) {
  const box = sqliteOutbox({ path: join(dir, `${durability}.db`), durability, maxMessages: 1e7 })
  const N = 200_000,
    B = Number(process.argv[2] ?? 1000)
  const t0 = performance.now()
  for (let done = 0; done < N; done += B) {
    await Promise.all(
      Array.from({ length: B }, (_, i) =>
        box.enqueue(
          {
            topic: `telemetry/gw-bench/${i % 16}`,
            payload,
            qos: 1,
            retain: false,
            priority: 'telemetry',
          },
          Date.now(),
        ),
      ),
    )
  }
  const s = (performance.now() - t0) / 1000
  console.log(durability, B, Math.round(N / s), process.cpuUsage())
  await box.close()
}
rmSync(dir, { recursive: true })
