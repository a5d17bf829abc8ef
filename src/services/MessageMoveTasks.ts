/**
 * SQS's own dead-letter redrive: `StartMessageMoveTask` and `ListMessageMoveTasks`. Only SQS has
 * it, so it is a service of its own that only the SQS backends provide; without it a redrive
 * goes by receive, send and delete (`src/programs/deadLetters.ts`).
 *
 * A move task runs inside SQS, in the background: it moves messages unchanged (attributes
 * included, so their `error.*` attributes go along) and works on standard queues only.
 */
import {
  GetQueueAttributesCommand,
  ListMessageMoveTasksCommand,
  SQSClient,
  StartMessageMoveTaskCommand
} from "@aws-sdk/client-sqs"
import { Context, Effect, Layer } from "effect"
import { awsErrorMessage, hasConfiguredEndpoint, isRetryableAwsError } from "./awsSdk.ts"
import { QueueError } from "./MessageQueue.ts"

export interface MoveTask {
  readonly taskHandle: string | undefined
  /** RUNNING, COMPLETED, CANCELLING, CANCELLED or FAILED. */
  readonly status: string
  readonly sourceArn: string
  readonly destinationArn: string | undefined
  readonly moved: number
  /** The messages in the source queue when the task started. */
  readonly toMove: number | undefined
  readonly startedAt: Date | undefined
  readonly failureReason: string | undefined
}

export class MessageMoveTasks extends Context.Service<MessageMoveTasks, {
  /** Starts moving every message of `deadLetterQueueUrl` to `destinationQueueUrl`; returns the task handle. */
  start(deadLetterQueueUrl: string, destinationQueueUrl: string, perSecond?: number): Effect.Effect<string, QueueError>
  /** The dead-letter queue's recent move tasks, newest first. */
  list(deadLetterQueueUrl: string): Effect.Effect<ReadonlyArray<MoveTask>, QueueError>
}>()("pipeline/services/MessageMoveTasks") {
  static readonly layerSqs: Layer.Layer<MessageMoveTasks> = Layer.effect(
    MessageMoveTasks,
    Effect.gen(function*() {
      // same endpoint rule as SqsQueue: a configured endpoint wins over the queue URL's host
      const client = yield* Effect.acquireRelease(
        Effect.sync(() => new SQSClient(hasConfiguredEndpoint("SQS") ? { useQueueUrlAsEndpoint: false } : {})),
        (client) => Effect.sync(() => client.destroy())
      )
      const call = <A>(operation: string, queueUrl: string, request: (signal: AbortSignal) => Promise<A>) =>
        Effect.tryPromise({
          try: request,
          catch: (cause) =>
            new QueueError({ operation, queueUrl, message: awsErrorMessage(cause), retryable: isRetryableAwsError(cause), cause })
        })
      const arnOf = (queueUrl: string) =>
        call("GetQueueAttributes", queueUrl, (abortSignal) =>
          client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }), { abortSignal })).pipe(
            Effect.map((output) => output.Attributes?.["QueueArn"] ?? "")
          )
      return MessageMoveTasks.of({
        start: Effect.fn("MessageMoveTasks.start")(function*(deadLetterQueueUrl, destinationQueueUrl, perSecond) {
          const sourceArn = yield* arnOf(deadLetterQueueUrl)
          // the destination is named: "their original source" is unknown for messages the engine sent to the DLQ itself
          const destinationArn = yield* arnOf(destinationQueueUrl)
          const output = yield* call("StartMessageMoveTask", deadLetterQueueUrl, (abortSignal) =>
            client.send(new StartMessageMoveTaskCommand({
              SourceArn: sourceArn,
              DestinationArn: destinationArn,
              ...(perSecond === undefined ? {} : { MaxNumberOfMessagesPerSecond: perSecond })
            }), { abortSignal }))
          return output.TaskHandle ?? ""
        }),
        list: Effect.fn("MessageMoveTasks.list")(function*(deadLetterQueueUrl) {
          const sourceArn = yield* arnOf(deadLetterQueueUrl)
          const output = yield* call("ListMessageMoveTasks", deadLetterQueueUrl, (abortSignal) =>
            client.send(new ListMessageMoveTasksCommand({ SourceArn: sourceArn, MaxResults: 10 }), { abortSignal }))
          return (output.Results ?? []).map((task): MoveTask => ({
            taskHandle: task.TaskHandle,
            status: task.Status ?? "UNKNOWN",
            sourceArn: task.SourceArn ?? sourceArn,
            destinationArn: task.DestinationArn,
            moved: task.ApproximateNumberOfMessagesMoved ?? 0,
            toMove: task.ApproximateNumberOfMessagesToMove,
            startedAt: task.StartedTimestamp === undefined ? undefined : new Date(task.StartedTimestamp),
            failureReason: task.FailureReason
          }))
        })
      })
    })
  )
}
