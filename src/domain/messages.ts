/**
 * What a queue carries and answers, as data: messages received and sent, per-entry results, a
 * queue's attributes. The `MessageQueue` service speaks these; so do the Lambda event and the engine.
 */
import { Array as Arr, type Option } from "effect"

/** SQS's limit of entries per batch request (and messages per receive). */
export const MAX_BATCH = 10

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
  /**
   * Seconds since the oldest message in the queue was sent, where the queue knows it without a
   * receive (the local queue; SQS reports it only to CloudWatch); undefined where not known, and
   * for an empty queue.
   */
  readonly oldestAgeSeconds?: number | undefined
}

export const isFifo = (queueUrl: string): boolean => queueUrl.endsWith(".fifo")

/** Splits a list into request-sized chunks. */
export const chunks = <A>(items: ReadonlyArray<A>, size = MAX_BATCH): Array<Array<A>> => Arr.chunksOf(items, size)
