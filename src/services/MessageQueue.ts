/**
 * A message queue with SQS semantics: batches of at most 10, receipt handles, visibility
 * timeouts, receive counts, a dead-letter queue. Implemented by SQS (`queue/sqs.ts`), the embedded
 * SQLite queue (`queue/local.ts`) and an in-memory queue for unit tests (`queue/memory.ts`).
 *
 * Every method takes the queue's URL (for the local queue, its name), so one service serves a
 * queue and its dead-letter queue.
 */
import { Config, Context, Effect, Layer, Option, Schema } from "effect"
import type {
  BatchResult,
  OutgoingMessage,
  QueueAttributes,
  QueueMessage,
  ReceiptEntry,
  ReceiveOptions
} from "../domain/messages.ts"
import { DataDirConfig } from "./DataDir.ts"
import { intSetting, urlSetting } from "./settings.ts"
import type { LocalQueueOptions } from "./queue/local.ts"
import type { MemoryQueueControl, MemoryQueueOptions } from "./queue/memory.ts"

export class QueueError extends Schema.TaggedError<QueueError>()("QueueError", {
  operation: Schema.String,
  queueUrl: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean,
  cause: Schema.Defect()
}) {}

/** `PIPELINE_QUEUE_URL`: the SQS queue; unset means the embedded queue. */
export const QueueUrlSetting = urlSetting("PIPELINE_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/123456789012/thumbnails")
export const QueueUrlConfig = Config.option(QueueUrlSetting)

/** An integer in SQS's range; anything else fails naming the variable and the range. Unset: the queue's own default. */
const OptionalIntBetween = (name: string, minimum: number, maximum: number) =>
  intSetting(name, minimum, maximum).pipe(Config.option, Config.map(Option.getOrUndefined))

/** The embedded queue's settings; on SQS these are the queue's own attributes. */
const LocalQueueConfig = Config.all({
  directory: DataDirConfig,
  visibilityTimeout: OptionalIntBetween("PIPELINE_VISIBILITY_TIMEOUT", 0, 43_200),
  maxReceiveCount: OptionalIntBetween("PIPELINE_MAX_RECEIVE_COUNT", 1, 1000)
})

export class MessageQueue extends Context.Service<MessageQueue, {
  /** Sends any number of messages, 10 per request; per-entry failures are in the result. */
  send(queueUrl: string, messages: ReadonlyArray<OutgoingMessage>): Effect.Effect<BatchResult, QueueError>
  receive(queueUrl: string, options?: ReceiveOptions): Effect.Effect<ReadonlyArray<QueueMessage>, QueueError>
  /** Deletes any number of messages, 10 per request. */
  delete(queueUrl: string, entries: ReadonlyArray<ReceiptEntry>): Effect.Effect<BatchResult, QueueError>
  /** Sets the visibility timeout of received messages, 10 per request; 0 makes them visible now. */
  changeVisibility(
    queueUrl: string,
    entries: ReadonlyArray<ReceiptEntry>,
    seconds: number
  ): Effect.Effect<BatchResult, QueueError>
  attributes(queueUrl: string): Effect.Effect<QueueAttributes, QueueError>
}>()("pipeline/services/MessageQueue") {
  /** Amazon SQS; region, endpoint and credentials from the SDK's own conventions. */
  static readonly layerSqs: Layer.Layer<MessageQueue> = Layer.effect(
    MessageQueue,
    Effect.flatMap(Effect.promise(() => import("./queue/sqs.ts")), (sqs) => sqs.make)
  )

  /** The embedded queue: SQS semantics on one SQLite file in `options.directory`. */
  static readonly layerLocal = (options: LocalQueueOptions): Layer.Layer<MessageQueue, QueueError> =>
    Layer.effect(MessageQueue, Effect.flatMap(Effect.promise(() => import("./queue/local.ts")), (local) => local.make(options)))

  /** The embedded queue as the environment configures it (`PIPELINE_DATA_DIR` and the queue's settings). */
  static readonly layerLocalConfig: Layer.Layer<MessageQueue, QueueError | Config.ConfigError> = Layer.unwrap(
    Effect.map(LocalQueueConfig, (options) => MessageQueue.layerLocal(options))
  )

  /** In memory, for unit tests; `MemoryQueueControl` seeds, inspects and breaks it. */
  static readonly layerMemory = (
    queues: Readonly<Record<string, MemoryQueueOptions>> = {}
  ): Layer.Layer<MessageQueue | MemoryQueueControl> =>
    Layer.effectContext(
      Effect.flatMap(Effect.promise(() => import("./queue/memory.ts")), (memory) =>
        Effect.map(memory.make(queues), ({ control, queue }) =>
          Context.make(MessageQueue, queue).pipe(Context.add(memory.MemoryQueueControl, control))))
    )

  /** SQS when `PIPELINE_QUEUE_URL` is set, otherwise the embedded queue. */
  static readonly layer: Layer.Layer<MessageQueue, QueueError | Config.ConfigError> = Layer.unwrap(
    Effect.map(QueueUrlConfig, (url) => Option.isSome(url) ? MessageQueue.layerSqs : MessageQueue.layerLocalConfig)
  )
}
