import { inspect } from 'node:util'

/**
 * One log line: `event key=value ...`, values quoted when they hold spaces. Fields come from the
 * client's events, which carry endpoints, codes and counts, never credentials.
 */
export function logLine(event: string, fields: Record<string, unknown>): string {
  const parts = [new Date().toISOString(), event]
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue
    const text =
      typeof value === 'string' ? value : inspect(value, { breakLength: Number.POSITIVE_INFINITY })
    parts.push(`${key}=${/[\s"]/.test(text) ? JSON.stringify(text) : text}`)
  }
  return parts.join(' ')
}
