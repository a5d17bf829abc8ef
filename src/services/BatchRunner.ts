/**
 * How the agent runs a batch: in this process (`programs/inProcessRunner.ts`), or by invoking the
 * deployed Lambda function (`layerLambda`). Either way it answers with the messages that failed.
 */
import { Context, Effect, Layer, Schema } from "effect"
import type { QueueMessage } from "../domain/messages.ts"
import type { LambdaRunnerOptions } from "./batchRunner/lambda.ts"

export class BatchRunnerError extends Schema.TaggedError<BatchRunnerError>()("BatchRunnerError", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

export class BatchRunner extends Context.Service<BatchRunner, {
  /** Runs one batch; succeeds with the ids of the messages that failed. A failure fails the whole batch. */
  run(messages: ReadonlyArray<QueueMessage>): Effect.Effect<ReadonlySet<string>, BatchRunnerError>
}>()("pipeline/services/BatchRunner") {
  /**
   * A synchronous `Invoke` of the deployed function per batch, with the SQS event an event source
   * mapping would send; region, endpoint and credentials from the SDK's own conventions.
   */
  static readonly layerLambda = (functionName: string, options?: LambdaRunnerOptions): Layer.Layer<BatchRunner> =>
    Layer.effect(BatchRunner, Effect.flatMap(Effect.promise(() => import("./batchRunner/lambda.ts")), (lambda) => lambda.make(functionName, options)))
}

