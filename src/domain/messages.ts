/**
 * What a queue carries and answers, as data: messages received and sent, per-entry results, a
 * queue's attributes. The `MessageQueue` service speaks these; so do the Lambda event and the engine.
 */
import { Array as Arr, type Option } from "effect"

/** SQS's limit of entries per batch request (and messages per receive). */
export const MAX_BATCH = 10

/**
 * A message attribute with its SQS data type, for the ones that are not plain strings: binary
 * (`Binary`, bytes) or typed text (`Number`, `String.custom`, ...). Carried to a dead letter as sent.
 */
export interface TypedAttribute {
  readonly dataType: string
  readonly stringValue?: string | undefined
  readonly binaryValue?: Uint8Array | undefined
}

export interface QueueMessage {
  readonly messageId: string
  readonly receiptHandle: string
  readonly body: string
  /** Message attributes, string-valued (typed text ones too, as text). */
  readonly attributes: Readonly<Record<string, string>>
  /** The attributes whose data type is not `String`, binary ones included, as received (SQS only). */
  readonly typedAttributes?: Readonly<Record<string, TypedAttribute>> | undefined
  /** How many times this message has been received, this time included. */
  readonly receiveCount: number
}

export interface OutgoingMessage {
  /** Unique within one call; results refer to it. */
  readonly id: string
  readonly body: string
  readonly attributes?: Readonly<Record<string, string>> | undefined
  /** Attributes sent with their own data type (binary ones); a name here wins over `attributes`. SQS only. */
  readonly typedAttributes?: Readonly<Record<string, TypedAttribute>> | undefined
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

/** SQS's limits: attributes a message, and bytes of a message's body and attributes together (its default maximum size). */
export const MAX_MESSAGE_ATTRIBUTES = 10
export const MAX_MESSAGE_BYTES = 262_144

const encoder = new TextEncoder()
const utf8Bytes = (text: string) => encoder.encode(text).byteLength
/** What SQS counts of an attribute: its name, its data type and its value. */
const attributeBytes = (name: string, value: string | TypedAttribute) =>
  typeof value === "string"
    ? utf8Bytes(name) + 6 + utf8Bytes(value)
    : utf8Bytes(name) + utf8Bytes(value.dataType) + (value.binaryValue?.byteLength ?? 0) + utf8Bytes(value.stringValue ?? "")

/**
 * The attributes of a message that fit SQS's limits with its body: `required` always, then the
 * others (`optional`, with the typed ones of `typed` as they were sent) in order while they fit.
 */
export const fitAttributes = (
  body: string,
  required: Readonly<Record<string, string>>,
  optional: Readonly<Record<string, string>>,
  typed: Readonly<Record<string, TypedAttribute>> = {}
): Pick<OutgoingMessage, "attributes" | "typedAttributes"> => {
  const attributes: Record<string, string> = { ...required }
  const typedAttributes: Record<string, TypedAttribute> = {}
  let count = Object.keys(attributes).length
  let bytes = utf8Bytes(body) + Object.entries(attributes).reduce((sum, [name, value]) => sum + attributeBytes(name, value), 0)
  for (const name of new Set([...Object.keys(optional), ...Object.keys(typed)])) {
    if (Object.hasOwn(required, name)) continue
    const value = typed[name] ?? optional[name]!
    const size = attributeBytes(name, value)
    if (count + 1 > MAX_MESSAGE_ATTRIBUTES || bytes + size > MAX_MESSAGE_BYTES) continue
    count += 1
    bytes += size
    if (typeof value === "string") attributes[name] = value
    else typedAttributes[name] = value
  }
  return Object.keys(typedAttributes).length === 0 ? { attributes } : { attributes, typedAttributes }
}
