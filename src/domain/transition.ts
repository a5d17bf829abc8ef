/**
 * Transition metadata carried as message attributes: the step number, a trace id shared by the
 * whole chain, and a deterministic transition id (a hash of the record's id and its new state).
 * Two more tell the transition ledger a message's history: the mutation that made its state
 * (`pipeline.mutation`, on every successor) and the record's id (`pipeline.record_id`, on the first
 * message of a chain that knows it, so the ledger indexes each chain once by it).
 */
import { hash, randomUUID } from "node:crypto"

export const Attribute = {
  step: "pipeline.step",
  traceId: "pipeline.trace_id",
  transitionId: "pipeline.transition_id",
  mutation: "pipeline.mutation",
  recordId: "pipeline.record_id"
} as const

export interface Transition {
  readonly step: number
  readonly traceId: string
  readonly transitionId: string
}

/**
 * The definition of canonical JSON (and so of every transition id ever sent): `JSON.stringify` with
 * each object rebuilt with its keys sorted. Used as is for anything but plain JSON data.
 */
const sortedJson = (value: unknown): string =>
  JSON.stringify(value, (_key, inner: unknown) =>
    inner !== null && typeof inner === "object" && !Array.isArray(inner)
      // the default sort orders by UTF-16 code units, the same on every engine
      ? Object.fromEntries(Object.keys(inner).sort().map((key) => [key, (inner as Record<string, unknown>)[key]]))
      : inner)

/** Thrown by `sortedCopy` for a value it leaves to `sortedJson`. */
const notPlain = Symbol("notPlain")
/** Deeper than this is taken for a cycle, which `sortedJson` reports as it always did. */
const MAX_DEPTH = 64

/**
 * Sorts keys as `sort()` does (by UTF-16 code units, which is what `<` compares), in place; by
 * insertion for the few keys a record has, where `sort()`'s set-up costs more than the sorting.
 */
const sortKeys = (keys: Array<string>): Array<string> => {
  if (keys.length > 16) return keys.sort()
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i]!
    let j = i - 1
    for (; j >= 0 && keys[j]! > key; j--) keys[j + 1] = keys[j]!
    keys[j + 1] = key
  }
  return keys
}

/**
 * The objects `sortedJson`'s replacer would make, made in one pass before a single plain
 * `JSON.stringify` (a replacer call a value costs more than the copy): for plain objects, arrays
 * and what they hold. Anything else, where the two might differ (toJSON, class instances, boxed
 * primitives, a `__proto__` key, which an assignment would not copy), is thrown back to `sortedJson`.
 */
const sortedCopy = (value: unknown, depth: number): unknown => {
  if (value === null || typeof value !== "object") return value
  if (depth > MAX_DEPTH || typeof (value as { toJSON?: unknown }).toJSON === "function") throw notPlain
  if (Array.isArray(value)) return value.map((item) => sortedCopy(item, depth + 1))
  const prototype = Object.getPrototypeOf(value)
  if (prototype !== Object.prototype && prototype !== null) throw notPlain
  const copy: Record<string, unknown> = {}
  for (const key of sortKeys(Object.keys(value))) {
    if (key === "__proto__") throw notPlain
    copy[key] = sortedCopy((value as Record<string, unknown>)[key], depth + 1)
  }
  return copy
}

/** JSON with object keys sorted, so equal states hash equally whatever their key order. */
export const canonicalJson = (value: unknown): string => {
  let copy: unknown
  try {
    copy = sortedCopy(value, 0)
  } catch (error) {
    if (error === notPlain) return sortedJson(value)
    throw error
  }
  return JSON.stringify(copy)
}

/**
 * SHA-256 of the record id, a NUL and the state's canonical JSON, in UTF-8. One call of the one-shot
 * `hash` on the text run together: the same bytes as three updates (a NUL is not half of a
 * surrogate pair, so nothing encodes differently joined), without a Hash object a transition.
 */
export const transitionId = (recordId: string, encodedState: unknown): string =>
  hash("sha256", `${recordId}\u0000${canonicalJson(encodedState)}`, "hex")

export const initialTransition = (recordId: string, encodedState: unknown): Transition => ({
  step: 0,
  traceId: randomUUID(),
  transitionId: transitionId(recordId, encodedState)
})

export const nextTransition = (current: Transition, recordId: string, encodedState: unknown): Transition => ({
  step: current.step + 1,
  traceId: current.traceId,
  transitionId: transitionId(recordId, encodedState)
})

export const toAttributes = (transition: Transition): Record<string, string> => ({
  [Attribute.step]: String(transition.step),
  [Attribute.traceId]: transition.traceId,
  [Attribute.transitionId]: transition.transitionId
})

/**
 * Reads the metadata of a received message. A message sent without it (by hand, by another tool)
 * starts a chain: step 0, its message id as the trace id.
 */
export const fromAttributes = (attributes: Readonly<Record<string, string>>, messageId: string): Transition => {
  const step = Number(attributes[Attribute.step])
  return {
    step: Number.isSafeInteger(step) ? Math.max(step, 0) : 0,
    traceId: attributes[Attribute.traceId] ?? messageId,
    transitionId: attributes[Attribute.transitionId] ?? ""
  }
}

/** On a FIFO queue: a record's messages form one group (its id, or its chain's), deduplicated by transition. */
export const fifoFields = (recordId: string, transition: Transition) => ({
  groupId: recordId === "" ? transition.traceId : recordId,
  deduplicationId: transition.transitionId
})
