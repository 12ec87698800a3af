/**
 * Resolved option groups (backoff, dns, failover, session, and endpoints without TLS settings)
 * shared by every client that resolved
 * them to the same values. A fleet-sized process (a gateway with a client per device, the storm
 * bench) gives thousands of clients the same options, and each kept its own copy of every group:
 * a few hundred bytes a device. Options are still validated, and their defaults filled in from
 * DEFAULTS, once per client; only the result is shared. Shared means frozen, deeply: nothing may
 * change a group one client holds under the others. The copy is made from the values (plain data
 * only), so a caller's own arrays are never frozen.
 */

/** Distinct groups kept: a process with more distinct configurations just stops sharing. */
const MAX_SHARED = 256
const groups = new Map<string, unknown>()

export function shared<T extends object>(group: string, value: T): Readonly<T> {
  const key = `${group}:${JSON.stringify(value)}`
  const hit = groups.get(key)
  if (hit !== undefined) return hit as T
  const copy = deepFreeze(JSON.parse(key.slice(group.length + 1)) as T)
  if (groups.size < MAX_SHARED) groups.set(key, copy)
  return copy
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}
