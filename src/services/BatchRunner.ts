/**
 * How the agent runs a batch: through the handler in this process, or by invoking the deployed
 * Lambda function (`LambdaRunner.ts`). Either way the handler sees an SQS event and answers with
 * the messages that failed.
 */
import { Context, Effect, Layer, Schema } from "effect"
import type { AnyPipeline } from "../domain/Pipeline.ts"
import { handleEvent } from "../lambda/handler.ts"
import type { QueueMessage } from "./MessageQueue.ts"

export class BatchRunnerError extends Schema.TaggedError<BatchRunnerError>()("BatchRunnerError", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

export class BatchRunner extends Context.Service<BatchRunner, {
  /** Runs one batch; succeeds with the ids of the messages that failed. A failure fails the whole batch. */
  run(messages: ReadonlyArray<QueueMessage>): Effect.Effect<ReadonlySet<string>, BatchRunnerError>
}>()("pipeline/programs/BatchRunner") {}

/** The SQS event an event source mapping would hand to Lambda for these messages. */
export const toSqsEvent = (messages: ReadonlyArray<QueueMessage>, queueArn = "arn:aws:sqs:local:000000000000:pipeline") => ({
  Records: messages.map((message) => ({
    messageId: message.messageId,
    receiptHandle: message.receiptHandle,
    body: message.body,
    attributes: { ApproximateReceiveCount: String(message.receiveCount) },
    messageAttributes: Object.fromEntries(
      Object.entries(message.attributes).map(([name, value]) => [name, { stringValue: value, dataType: "String" }])
    ),
    eventSource: "aws:sqs",
    eventSourceARN: queueArn
  }))
})

/** Runs batches through the Lambda handler in this process, on this process's services. */
export const inProcessRunner = (pipeline: AnyPipeline) =>
  Layer.effect(
    BatchRunner,
    Effect.gen(function*() {
      const handle = handleEvent(pipeline)
      const context = yield* Effect.context<Effect.Services<ReturnType<typeof handle>>>()
      return BatchRunner.of({
        run: (messages) =>
          handle(toSqsEvent(messages)).pipe(
            Effect.map((response) => new Set(response.batchItemFailures.map((item) => item.itemIdentifier))),
            Effect.mapError((error) => new BatchRunnerError({ message: error.message, cause: error })),
            Effect.catchDefect((cause) =>
              Effect.fail(new BatchRunnerError({ message: `the handler died: ${String(cause)}`, cause }))
            ),
            Effect.provideContext(context)
          )
      })
    })
  )
