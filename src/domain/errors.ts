/**
 * The two kinds of failure the engine acts on.
 *
 * Retryable: worth another attempt (network, throttling, 5xx, a mutation saying "try again").
 * The engine retries in process for a bounded time, then leaves the message to SQS redelivery.
 *
 * Permanent: can never succeed (bad body, schema violation, unknown state, step limit, a
 * mutation's permanent error). The message goes to the dead-letter queue with its reason.
 *
 * Any error with `retryable: true` is retryable; every other error is permanent.
 */
import { Cause, Schema } from "effect"

/** What the engine needs to know about any failure: a tag, a message, and its kind. */
export interface StepFailure {
  readonly _tag: string
  readonly message: string
  readonly retryable?: boolean | undefined
}

export const isRetryable = (error: StepFailure): boolean => error.retryable === true

/** The message body is not JSON. */
export class MalformedBody extends Schema.TaggedError<MalformedBody>()("MalformedBody", {
  message: Schema.String
}) {}

/** The body is JSON but not a valid state record for this pipeline. */
export class SchemaViolation extends Schema.TaggedError<SchemaViolation>()("SchemaViolation", {
  message: Schema.String
}) {}

/** The router cannot tell what to do with this record. */
export class UnknownState extends Schema.TaggedError<UnknownState>()("UnknownState", {
  message: Schema.String
}) {}

/** The chain has taken more steps than allowed: a router that never says done. */
export class StepLimitReached extends Schema.TaggedError<StepLimitReached>()("StepLimitReached", {
  message: Schema.String,
  step: Schema.Number,
  maxSteps: Schema.Number
}) {}

/** A mutation's own "try again later". */
export class RetryableError extends Schema.TaggedError<RetryableError>()("RetryableError", {
  message: Schema.String
}) {
  readonly retryable = true
}

/** A mutation's own "this record can never get through this step". */
export class PermanentError extends Schema.TaggedError<PermanentError>()("PermanentError", {
  message: Schema.String
}) {}

/**
 * A defect (a thrown exception) in author code. Not known to be permanent, so it is left to SQS
 * redelivery; on its last allowed receive it is dead-lettered with this reason.
 */
export class Defect extends Schema.TaggedError<Defect>()("Defect", {
  message: Schema.String
}) {
  readonly retryable = true

  static fromCause(cause: Cause.Cause<unknown>): Defect {
    const squashed = Cause.squash(cause)
    return new Defect({ message: squashed instanceof Error ? `${squashed.name}: ${squashed.message}` : String(squashed) })
  }
}
