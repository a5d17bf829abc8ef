/**
 * Transition metadata carried as message attributes: the step number, a trace id shared by the
 * whole chain, and a deterministic transition id (a hash of the record's id and its new state).
 * Two more tell the transition ledger a message's history: the mutation that made its state
 * (`pipeline.mutation`, on every successor) and the record's id (`pipeline.record_id`, on the first
 * message of a chain that knows it, so the ledger indexes each chain once by it).
 */
import { createHash, randomUUID } from "node:crypto"

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

/** JSON with object keys sorted, so equal states hash equally whatever their key order. */
export const canonicalJson = (value: unknown): string =>
  JSON.stringify(value, (_key, inner: unknown) =>
    inner !== null && typeof inner === "object" && !Array.isArray(inner)
      // the default sort orders by UTF-16 code units, the same on every engine
      ? Object.fromEntries(Object.keys(inner).sort().map((key) => [key, (inner as Record<string, unknown>)[key]]))
      : inner)

export const transitionId = (recordId: string, encodedState: unknown): string =>
  createHash("sha256").update(recordId).update("\u0000").update(canonicalJson(encodedState)).digest("hex")

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
