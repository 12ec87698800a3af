/** A JSON object as the nucleus and the recipe give it: configuration, events. */
export type Json = Record<string, unknown>

/** A JSON object, not null and not an array. */
export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
