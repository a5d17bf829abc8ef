/**
 * A message queue with SQS semantics: batches of at most 10, receipt handles, visibility
 * timeouts, receive counts, a dead-letter queue. Implemented by SQS (`SqsQueue.ts`), the embedded
 * SQLite queue (`LocalQueue.ts`) and an in-memory queue for unit tests (`MemoryQueue.ts`).
 *
 * Every method takes the queue's URL (for the local queue, its name), so one service serves a
 * queue and its dead-letter queue.
 */
import { Context, type Effect, type Option, Schema } from "effect"

export interface QueueMessage {
  readonly messageId: string
  readonly receiptHandle: string
  readonly body: string
  /** Message attributes, string-valued. */
  readonly attributes: Readonly<Record<string, string>>
  /** How many times this message has been received, this time included. */
  readonly receiveCount: number
}

export interface OutgoingMessage {
  /** Unique within one call; results refer to it. */
  readonly id: string
  readonly body: string
  readonly attributes?: Readonly<Record<string, string>> | undefined
  /** FIFO queues only. */
  readonly groupId?: string | undefined
  /** FIFO queues only. */
  readonly deduplicationId?: string | undefined
  readonly delaySeconds?: number | undefined
}

export interface EntryFailure {
  readonly id: string
  readonly code: string
  readonly message: string
  /** True when the entry itself is wrong and resending it cannot help. */
  readonly senderFault: boolean
}

/** The outcome of a batch call, entry by entry. */
export interface BatchResult {
  readonly successful: ReadonlyArray<string>
  readonly failed: ReadonlyArray<EntryFailure>
}

export interface ReceiptEntry {
  readonly id: string
  readonly receiptHandle: string
}

export interface ReceiveOptions {
  /** 1 to 10; default 10. */
  readonly maxMessages?: number | undefined
  /** Long-poll wait, 0 to 20 seconds; default 0. */
  readonly waitSeconds?: number | undefined
  /** Overrides the queue's visibility timeout for these messages. */
  readonly visibilityTimeout?: number | undefined
}

export interface QueueAttributes {
  readonly visibilityTimeout: number
  readonly approximateVisible: number
  readonly approximateInFlight: number
  readonly approximateDelayed: number
  readonly fifo: boolean
  /** The redrive target, if the queue has one. */
  readonly deadLetterQueueUrl: Option.Option<string>
  /** Receives a message may have before the queue's redrive moves it to `deadLetterQueueUrl`. */
  readonly maxReceiveCount: Option.Option<number>
}

export class QueueError extends Schema.TaggedError<QueueError>()("QueueError", {
  operation: Schema.String,
  queueUrl: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean,
  cause: Schema.Defect()
}) {}

export const MAX_BATCH = 10

export class Queue extends Context.Service<Queue, {
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
}>()("pipeline/services/Queue") {}

export const isFifo = (queueUrl: string): boolean => queueUrl.endsWith(".fifo")

/** Splits a list into request-sized chunks. */
export const chunks = <A>(items: ReadonlyArray<A>, size = MAX_BATCH): Array<Array<A>> => {
  const result: Array<Array<A>> = []
  for (let i = 0; i < items.length; i += size) result.push(items.slice(i, i + size))
  return result
}
