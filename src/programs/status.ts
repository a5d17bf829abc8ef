/**
 * A pipeline's state at a glance: its queue's counts and the dead letters with their reasons, and
 * from the transition ledger, where there is one, the last hour's work.
 */
import { Clock, Effect, Option } from "effect"
import { MessageQueue } from "../services/MessageQueue.ts"
import { type LedgerError, ofQueue, TransitionLedger } from "../services/TransitionLedger.ts"
import { countBy, peekDeadLetters } from "./deadLetters.ts"
import { EngineSettings } from "../services/EngineSettings.ts"

export interface Status {
  readonly queue: {
    readonly url: string
    readonly visible: number
    readonly inFlight: number
    readonly delayed: number
    /** Age of the oldest message (in flight or not); null when the queue is empty or does not say (SQS). */
    readonly oldestAgeSeconds: number | null
    /** Why `oldestAgeSeconds` is null, when it is. */
    readonly oldestAgeNote: string | null
  }
  readonly deadLetters: {
    readonly url: string
    readonly count: number
    /** Dead letters by `error.tag` (`unknown` for none), most frequent first. */
    readonly reasons: Record<string, number>
    /** Dead letters by `error.step`. */
    readonly steps: Record<string, number>
    /** How many dead letters the reasons were counted on (all of them unless the DLQ is larger than the peek). */
    readonly peeked: number
  }
  /** From the transition ledger; null without one. */
  readonly lastHour: {
    /** Chains started (first messages claimed). */
    readonly started: number
    /** Steps run, by mutation (their successors claimed). */
    readonly steps: Record<string, number>
    readonly done: number
    readonly deadLettered: number
  } | null
}

const HOUR_MS = 3_600_000

/** SQS's GetQueueAttributes has no such attribute; a receive to look would count against maxReceiveCount. */
const SQS_AGE_NOTE = "not known: SQS does not report it without a receive, which would count against maxReceiveCount (CloudWatch has it: ApproximateAgeOfOldestMessage)"

/** The last hour from the ledger's entries (on DynamoDB, a scan of the table). */
const lastHour = (ledger: TransitionLedger["Service"], queueUrl: string) =>
  Effect.gen(function*() {
    const since = (yield* Clock.currentTimeMillis) - HOUR_MS
    const entries = (yield* ledger.entries(since)).filter(ofQueue(queueUrl))
    const steps: Record<string, number> = {}
    let started = 0
    let done = 0
    let deadLettered = 0
    for (const entry of entries) {
      if (entry.step === 0) started++
      else if (entry.mutation !== undefined) steps[entry.mutation] = (steps[entry.mutation] ?? 0) + 1
      if (entry.ending !== undefined && entry.ending.at >= since) {
        if (entry.ending.tag === "Done") done++
        else deadLettered++
      }
      // dead-lettered, then redriven
      if (entry.earlier !== undefined && entry.earlier.at >= since) deadLettered++
    }
    return { started, steps, done, deadLettered }
  })

/** Dead letters looked at for their reasons: enough for any DLQ a person reads; the count is exact regardless. */
export const STATUS_PEEK_LIMIT = 1000

// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
/** The last hour from the transition ledger; null without one. On DynamoDB a scan of the table, so `status --watch` reads it less often. */
export const ledgerLastHour: Effect.Effect<Status["lastHour"], LedgerError, EngineSettings> = Effect.gen(function*() {
  const ledger = yield* Effect.serviceOption(TransitionLedger)
  const { queueUrl } = yield* EngineSettings
  return Option.isSome(ledger) && ledger.value.enabled ? yield* lastHour(ledger.value, queueUrl) : null
})

export const pipelineStatus = Effect.fn("pipelineStatus")(function*(
  peekLimit: number = STATUS_PEEK_LIMIT,
  lastHourOf: Effect.Effect<Status["lastHour"], LedgerError, EngineSettings> = ledgerLastHour
) {
  const { queueUrl } = yield* EngineSettings
  const queue = yield* MessageQueue
  const attributes = yield* queue.attributes(queueUrl)
  const peek = yield* peekDeadLetters(peekLimit)
  const hour = yield* lastHourOf
  const oldest = attributes.oldestAgeSeconds ?? null
  return {
    queue: {
      url: queueUrl,
      visible: attributes.approximateVisible,
      inFlight: attributes.approximateInFlight,
      delayed: attributes.approximateDelayed,
      oldestAgeSeconds: oldest,
      oldestAgeNote: oldest !== null
        ? null
        : attributes.approximateVisible + attributes.approximateInFlight + attributes.approximateDelayed === 0
        ? "the queue is empty"
        : SQS_AGE_NOTE
    },
    deadLetters: {
      url: peek.deadLetterQueueUrl,
      count: peek.count,
      reasons: countBy(peek.letters, (letter) => letter.reason),
      steps: countBy(peek.letters, (letter) => letter.step ?? "unknown"),
      peeked: peek.letters.length
    },
    lastHour: hour
  } satisfies Status
})
