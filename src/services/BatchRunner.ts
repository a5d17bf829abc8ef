/**
 * How the agent runs a batch: in this process (`programs/inProcessRunner.ts`), or by invoking the
 * deployed Lambda function (`layerLambda`). Either way it answers with the messages that failed,
 * and how the batch's messages ended when it can tell.
 */
import { Context, Effect, Layer, type Option, Schema } from "effect"
import type { QueueMessage } from "../domain/messages.ts"
import type { LambdaRunnerOptions } from "./batchRunner/lambda.ts"

export class BatchRunnerError extends Schema.TaggedError<BatchRunnerError>()("BatchRunnerError", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * How the messages of a batch ended: advanced one step, done, dead-lettered, handed back for a
 * retry (redelivery), or skipped as duplicates. The Lambda handler returns it next to
 * `batchItemFailures` (an event source mapping ignores the extra field).
 */
export const OutcomeCounts = Schema.Struct({
  advanced: Count,
  done: Count,
  deadLettered: Count,
  retried: Count,
  duplicates: Count
})
export type OutcomeCounts = typeof OutcomeCounts.Type

/**
 * What the batch's steps did: each mutation's runs and their milliseconds in all, and the dead
 * letters by reason. The handler returns it as `figures`; its EMF lines say the same.
 */
export const BatchFigures = Schema.Struct({
  steps: Schema.Record(Schema.String, Schema.Struct({ runs: Count, millis: Schema.Number.check(Schema.isGreaterThanOrEqualTo(0)) })),
  deadLetteredBy: Schema.Record(Schema.String, Count)
})
export type BatchFigures = typeof BatchFigures.Type

export interface BatchResult {
  /** The ids of the messages that failed (left for redelivery). */
  readonly failed: ReadonlySet<string>
  /** How the messages ended; none when the runner cannot tell (a deployed function that does not report it). */
  readonly outcomes: Option.Option<OutcomeCounts>
  /** What the steps did; absent when the runner cannot tell. */
  readonly figures?: BatchFigures | undefined
}

export class BatchRunner extends Context.Service<BatchRunner, {
  /** Runs one batch; succeeds with the messages that failed and how the others ended. A failure fails the whole batch. */
  run(messages: ReadonlyArray<QueueMessage>): Effect.Effect<BatchResult, BatchRunnerError>
}>()("pipeline/services/BatchRunner") {
  /**
   * A synchronous `Invoke` of the deployed function per batch, with the SQS event an event source
   * mapping would send; region, endpoint and credentials from the SDK's own conventions.
   */
  static readonly layerLambda = (functionName: string, options?: LambdaRunnerOptions): Layer.Layer<BatchRunner> =>
    Layer.effect(BatchRunner, Effect.flatMap(Effect.promise(() => import("./batchRunner/lambda.ts")), (lambda) => lambda.make(functionName, options)))
}

