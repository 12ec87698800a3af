/**
 * A simulated temperature sensor: a seeded random walk around 25 °C, so a run can be replayed.
 * Swap it for the real driver (Modbus, I2C, ...) on a device.
 */
export function simulatedSensor(seed: number): () => number {
  let state = seed >>> 0 || 1
  let value = 25
  return () => {
    // xorshift32: small, deterministic, good enough for a demo signal.
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    value += ((state >>> 0) / 2 ** 32 - 0.5) * 2
    return Math.round(value * 100) / 100
  }
}
