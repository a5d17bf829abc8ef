/**
 * A record's history, step by step, from the transition ledger (`trace ID`).
 *
 * The ledger keeps one entry per place of a chain: the message that claimed it, when, and the
 * mutation that made that message's state; endings (done, dead-lettered) are written apart. So a
 * step's outcome is read, not guessed: its ending if it has one, else `advanced` when the next
 * step was claimed (whose entry names the mutation this step ran), else `in-flight` (claimed, and
 * nothing after it yet: running, waiting for a retry, or its successor not yet received). A step
 * redriven from the dead-letter queue shows the dead-lettered attempt it replaced.
 */
import { Effect, Schema } from "effect"
import { type Entry, TransitionLedger } from "../services/TransitionLedger.ts"

export class NoLedger extends Schema.TaggedError<NoLedger>()("NoLedger", { message: Schema.String }) {}
export class TraceNotFound extends Schema.TaggedError<TraceNotFound>()("TraceNotFound", { message: Schema.String }) {}

export type StepOutcome = "advanced" | "done" | "dead-lettered" | "in-flight"

export interface TracedStep {
  readonly step: number
  /** The mutation this step ran: the next step's, or where a dead letter failed; null when done or not known yet. */
  readonly mutation: string | null
  /** The mutation that made this step's state; null for a chain's first message. */
  readonly madeBy: string | null
  readonly messageId: string
  /** When the message claimed its place (ISO 8601). */
  readonly at: string
  readonly outcome: StepOutcome
  /** When it was done or dead-lettered (ISO 8601). */
  readonly endedAt: string | null
  /** A dead letter's `error.tag`, message and stage (the mutation, or `decode` / `route`). */
  readonly reason: { readonly tag: string; readonly message: string | null; readonly stage: string | null } | null
  /** Copies of this step's message skipped as duplicates. */
  readonly duplicatesSkipped: number
  /** The dead-lettered attempt at this step that a redrive's message replaced (the latest only). */
  readonly redriven: {
    readonly messageId: string
    readonly deadLetteredAt: string
    readonly reason: { readonly tag: string; readonly message: string | null; readonly stage: string | null }
  } | null
}

export interface TracedChain {
  readonly traceId: string
  readonly recordId: string | null
  readonly steps: ReadonlyArray<TracedStep>
}

export interface Trace {
  readonly id: string
  readonly chains: ReadonlyArray<TracedChain>
}

const iso = (ms: number) => new Date(ms).toISOString()

/** The chain of one trace's entries (ordered by step). */
export const chainOf = (entries: ReadonlyArray<Entry>): TracedChain => {
  const byStep = new Map(entries.map((entry) => [entry.step, entry]))
  return {
    traceId: entries[0]!.traceId,
    recordId: entries.find((entry) => entry.recordId !== undefined)?.recordId ?? null,
    steps: entries.map((entry): TracedStep => {
      const next = byStep.get(entry.step + 1)
      const ending = entry.ending
      const outcome: StepOutcome = ending?.tag === "Done"
        ? "done"
        : ending?.tag === "DeadLettered"
        ? "dead-lettered"
        : next !== undefined
        ? "advanced"
        : "in-flight"
      return {
        step: entry.step,
        mutation: outcome === "dead-lettered" ? ending?.stage ?? null : outcome === "advanced" ? next?.mutation ?? null : null,
        madeBy: entry.mutation ?? null,
        messageId: entry.messageId,
        at: iso(entry.claimedAt),
        outcome,
        endedAt: ending === undefined ? null : iso(ending.at),
        reason: ending?.tag === "DeadLettered"
          ? { tag: ending.reason ?? "unknown", message: ending.message ?? null, stage: ending.stage ?? null }
          : null,
        duplicatesSkipped: entry.duplicatesSkipped,
        redriven: entry.earlier === undefined ? null : {
          messageId: entry.earlier.messageId,
          deadLetteredAt: iso(entry.earlier.at),
          reason: { tag: entry.earlier.reason ?? "unknown", message: entry.earlier.message ?? null, stage: entry.earlier.stage ?? null }
        }
      }
    })
  }
}

/** Entries (ordered by chain, then step) as chains. */
export const chainsOf = (entries: ReadonlyArray<Entry>): ReadonlyArray<TracedChain> => {
  const chains: Array<Array<Entry>> = []
  for (const entry of entries) {
    const last = chains.at(-1)
    if (last !== undefined && last[0]!.traceId === entry.traceId) last.push(entry)
    else chains.push([entry])
  }
  return chains.map(chainOf)
}

/** The history of `id`, a trace id or a record id; fails when the ledger knows neither. */
// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const traceRecord = Effect.fn("traceRecord")(function*(id: string) {
  const ledger = yield* TransitionLedger
  if (!ledger.enabled) {
    return yield* new NoLedger({
      message: "no transition ledger, so no history: on SQS set PIPELINE_LEDGER_TABLE (the stack's LedgerTableName), and PIPELINE_LEDGER must not be off"
    })
  }
  const chains = chainsOf(yield* ledger.history(id))
  if (chains.length === 0) {
    return yield* new TraceNotFound({ message: `no record or trace ${id} in the transition ledger (claims are kept 14 days)` })
  }
  return { id, chains } satisfies Trace
})
