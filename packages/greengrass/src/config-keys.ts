import { DEFAULTS, type KeyTree, UplinkError } from '@uplink/client'
import { defaultConfiguration, GREENGRASS_DEFAULTS } from './defaults.js'
import { isObject, type Json } from './json.js'

/**
 * The shape of the component's configuration: which keys exist at every level and which are
 * groups. It is read off the recipe's DefaultConfiguration (every option is there with its
 * default), so a new option cannot be forgotten here, and unknown keys are refused with the
 * client's own check (checkKeys: the full field path and the nearest valid name). A typo such
 * as `outbox.maxMessage` or an endpoint's `certPath` would otherwise leave the default in force
 * without a word.
 */

/** The keys of a default value, nested: an object is a group, anything else a leaf. */
function treeOf(value: Json): KeyTree {
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, isObject(v) ? treeOf(v) : true]),
  )
}

const defaults = treeOf(defaultConfiguration())

export const CONFIG_KEYS: KeyTree = {
  ...defaults,
  // The nucleus's own key, in the same configuration: its contents are the nucleus's to check.
  accessControl: true,
  // presence is handed to createUplink as it is, so its other options (as in Options) work.
  presence: { ...(defaults.presence as KeyTree), ...treeOf(DEFAULTS.presence) },
}

/** An endpoint given as an object rather than a URL. */
export const ENDPOINT_KEYS: KeyTree = {
  url: true,
  certificatePath: true,
  privateKeyPath: true,
  rootCaPath: true,
}
export const FORWARD_RULE_KEYS: KeyTree = treeOf({ ...GREENGRASS_DEFAULTS.forward[0] })
export const COMMAND_RULE_KEYS: KeyTree = treeOf({ ...GREENGRASS_DEFAULTS.commands[0] })

/**
 * Every group the defaults hold as an object must be one in the merged configuration: a group
 * set to null, a string or a list is refused by name instead of surfacing as a TypeError later.
 */
export function checkGroups(value: Json, shape: Json = defaultConfiguration(), prefix = ''): void {
  for (const [key, d] of Object.entries(shape)) {
    if (!isObject(d)) continue
    const field = `${prefix}${key}`
    const v = value[key]
    if (!isObject(v))
      throw new UplinkError('INVALID_OPTIONS', `${field} must be an object`, { details: { field } })
    checkGroups(v, d, `${field}.`)
  }
}
