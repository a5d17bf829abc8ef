/**
 * A pipeline's states and transitions as a Mermaid `stateDiagram-v2` (`diagram`).
 *
 * The router is a function, so a pipeline's mutations cannot be listed without running it on
 * records. The diagram says only what is known:
 * - declared: the router's answer for the pipeline's initial record (a pure call, nothing is run);
 * - observed: the transitions the transition ledger saw, with their counts. A state is named by the
 *   mutation that made it (`produced` for a chain's first message), a transition by the mutation
 *   that left it; a record done leaves to `[*]`, a dead letter to `dead_letters` with its reason
 *   and stage. Steps claimed with nothing after them yet are noted as in flight.
 */
import { Effect, Option, Schema } from "effect"
import type { AnyPipeline } from "../domain/Pipeline.ts"
import { EngineSettings } from "../services/EngineSettings.ts"
import { type Entry, ofQueue, sortEntries, TransitionLedger } from "../services/TransitionLedger.ts"
import { chainsOf } from "./trace.ts"

export const START = "produced"
export const DONE = "[*]"
export const DEAD_LETTERS = "dead_letters"

export interface DiagramTransition {
  /** A state: `produced`, or the mutation that made it. */
  readonly from: string
  /** A state, `[*]` (done) or `dead_letters`. */
  readonly to: string
  /** The mutation run, `done`, or a dead letter's `reason at stage` (as `dlq list` says it). */
  readonly label: string
  /** Times the ledger saw it; null for a transition only declared. */
  readonly count: number | null
}

export interface Diagram {
  readonly pipeline: string
  /** Whether a transition ledger was read (false: only what the pipeline declares). */
  readonly ledger: boolean
  readonly transitions: ReadonlyArray<DiagramTransition>
  /** Steps claimed with nothing after them yet, by state. */
  readonly inFlight: Record<string, number>
  /** Steps claimed before the ledger kept mutations, left out. */
  readonly unlabelled: number
  readonly mermaid: string
}

/** The router's answer for the initial record: decoded by the schema where it can be, else as written. */
const declaredFirst = (pipeline: AnyPipeline): DiagramTransition | undefined => {
  try {
    const initial = pipeline.initialRecord("example")
    const decoded = Schema.decodeUnknownResult(pipeline.schema)(initial)
    const route = pipeline.router(decoded._tag === "Success" ? decoded.success : initial)
    if (route._tag === "Done") return { from: START, to: DONE, label: "done", count: null }
    if (route._tag === "UnknownState") return undefined
    return { from: START, to: route.name, label: route.name, count: null }
  } catch {
    return undefined
  }
}

/** Transitions observed in ledger entries (ordered by chain and step). */
export const observed = (entries: ReadonlyArray<Entry>) => {
  const counts = new Map<string, DiagramTransition>()
  const inFlight: Record<string, number> = {}
  let unlabelled = 0
  const add = (from: string, to: string, label: string) => {
    const key = JSON.stringify([from, to, label])
    const seen = counts.get(key)
    counts.set(key, { from, to, label, count: (seen?.count ?? 0) + 1 })
  }
  for (const chain of chainsOf(entries)) {
    for (const step of chain.steps) {
      const state = step.step === 0 ? START : step.madeBy
      if (state === null) {
        unlabelled++
        continue
      }
      // a dead letter since redriven was a transition to the dead-letter queue all the same
      if (step.redriven !== null) add(state, DEAD_LETTERS, `${step.redriven.reason.tag} at ${step.redriven.reason.stage ?? "?"}`)
      if (step.outcome === "done") add(state, DONE, "done")
      else if (step.outcome === "dead-lettered") add(state, DEAD_LETTERS, `${step.reason?.tag ?? "unknown"} at ${step.reason?.stage ?? "?"}`)
      else if (step.outcome === "advanced" && step.mutation !== null) add(state, step.mutation, step.mutation)
      else if (step.outcome === "in-flight") inFlight[state] = (inFlight[state] ?? 0) + 1
    }
  }
  return { transitions: [...counts.values()], inFlight, unlabelled }
}

/** Mermaid state ids: letters, digits and `_`. */
const stateId = (state: string) => state === DONE ? DONE : state === START || state === DEAD_LETTERS ? state : `after_${state.replace(/[^A-Za-z0-9_]/g, "_")}`

export const mermaid = (pipeline: string, transitions: ReadonlyArray<DiagramTransition>, inFlight: Record<string, number>, ledger: boolean) => {
  const states = new Set<string>()
  for (const t of transitions) for (const state of [t.from, t.to]) if (state !== DONE) states.add(state)
  const lines = [
    `%% pipeline ${pipeline}: a state is named by the mutation that made it; counts are transitions`,
    ledger ? "%% the transition ledger saw (kept 14 days); a transition without a count is only declared" : "%% no transition ledger: only what the pipeline declares",
    "stateDiagram-v2",
    ...[...states].map((state) =>
      `    state "${state === START ? "produced" : state === DEAD_LETTERS ? "dead-letter queue" : `after ${state}`}" as ${stateId(state)}`
    ),
    `    [*] --> ${START}`,
    ...transitions.map((t) => `    ${stateId(t.from)} --> ${stateId(t.to)} : ${t.label}${t.count === null ? "" : ` (${t.count})`}`),
    ...Object.entries(inFlight).map(([state, n]) => `    note right of ${stateId(state)} : ${n} in flight`)
  ]
  return lines.join("\n")
}

/** The diagram of `pipeline`: declared and, where there is a ledger, observed. */
// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const pipelineDiagram = Effect.fn("pipelineDiagram")(function*(pipeline: AnyPipeline) {
  const ledger = yield* TransitionLedger
  // every entry of the pipeline's queue (a ledger may serve several): on DynamoDB a scan of the table
  const settings = yield* Effect.serviceOption(EngineSettings)
  const ofThisQueue = Option.isSome(settings) ? ofQueue(settings.value.queueUrl) : () => true
  const seen = ledger.enabled
    ? observed(sortEntries((yield* ledger.entries(0)).filter(ofThisQueue)))
    : { transitions: [], inFlight: {}, unlabelled: 0 }
  const first = declaredFirst(pipeline)
  const declared = first !== undefined && !seen.transitions.some((t) => t.from === first.from && t.to === first.to) ? [first] : []
  const transitions = [...declared, ...seen.transitions].sort((a, b) =>
    (a.from === START ? 0 : 1) - (b.from === START ? 0 : 1) || (b.count ?? Infinity) - (a.count ?? Infinity)
  )
  return {
    pipeline: pipeline.name,
    ledger: ledger.enabled,
    transitions,
    inFlight: seen.inFlight,
    unlabelled: seen.unlabelled,
    mermaid: mermaid(pipeline.name, transitions, seen.inFlight, ledger.enabled)
  } satisfies Diagram
})
