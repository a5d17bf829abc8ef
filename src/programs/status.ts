/**
 * A pipeline's state at a glance: its queue's counts and the dead letters with their reasons.
 */
import { Effect } from "effect"
import { MessageQueue } from "../services/MessageQueue.ts"
import { countBy, peekDeadLetters } from "./deadLetters.ts"
import { EngineSettings } from "../services/EngineSettings.ts"

export interface Status {
  readonly queue: {
    readonly url: string
    readonly visible: number
    readonly inFlight: number
    readonly delayed: number
    /** Age of the oldest message; null until the MessageQueue service reports it (SQS has it in CloudWatch only, not in GetQueueAttributes). */
    readonly oldestAgeSeconds: number | null
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
}

/** Dead letters looked at for their reasons: enough for any DLQ a person reads; the count is exact regardless. */
export const STATUS_PEEK_LIMIT = 1000

// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const pipelineStatus = Effect.fn("pipelineStatus")(function*(peekLimit: number = STATUS_PEEK_LIMIT) {
  const { queueUrl } = yield* EngineSettings
  const queue = yield* MessageQueue
  const attributes = yield* queue.attributes(queueUrl)
  const peek = yield* peekDeadLetters(peekLimit)
  return {
    queue: {
      url: queueUrl,
      visible: attributes.approximateVisible,
      inFlight: attributes.approximateInFlight,
      delayed: attributes.approximateDelayed,
      oldestAgeSeconds: null
    },
    deadLetters: {
      url: peek.deadLetterQueueUrl,
      count: peek.count,
      reasons: countBy(peek.letters, (letter) => letter.reason),
      steps: countBy(peek.letters, (letter) => letter.step ?? "unknown"),
      peeked: peek.letters.length
    }
  } satisfies Status
})
