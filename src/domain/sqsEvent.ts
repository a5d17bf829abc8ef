/**
 * The Lambda side of SQS, as data: the event an event source mapping hands to a function, the
 * original design's single raw message, and the partial batch response the function answers with.
 */
import { Schema } from "effect"
import type { QueueMessage, TypedAttribute } from "./messages.ts"

const EventRecord = Schema.Struct({
  messageId: Schema.String,
  receiptHandle: Schema.String,
  body: Schema.String,
  attributes: Schema.optionalKey(Schema.Struct({ ApproximateReceiveCount: Schema.optionalKey(Schema.String) })),
  messageAttributes: Schema.optionalKey(
    Schema.Record(
      Schema.String,
      // a binary attribute's value comes base64-encoded
      Schema.Struct({ stringValue: Schema.optionalKey(Schema.NullOr(Schema.String)), binaryValue: Schema.optionalKey(Schema.NullOr(Schema.String)), dataType: Schema.String })
    )
  )
})

/** What an event source mapping sends (`{ Records: [...] }`). */
export const SqsEvent = Schema.Struct({ Records: Schema.Array(EventRecord) })

/** The original design's event: one message as ReceiveMessage returns it. */
export const RawMessage = Schema.Struct({
  MessageId: Schema.String,
  ReceiptHandle: Schema.String,
  Body: Schema.String,
  MD5OfBody: Schema.optionalKey(Schema.String),
  Attributes: Schema.optionalKey(Schema.Struct({ ApproximateReceiveCount: Schema.optionalKey(Schema.String) })),
  MessageAttributes: Schema.optionalKey(
    Schema.Record(Schema.String, Schema.Struct({ StringValue: Schema.optionalKey(Schema.String), DataType: Schema.String }))
  )
})

export const HandlerEvent = Schema.Union([SqsEvent, RawMessage])

/** ReportBatchItemFailures: the messages to leave for redelivery. `null` and `{}` mean none. */
export const BatchResponse = Schema.NullOr(Schema.Struct({
  batchItemFailures: Schema.optionalKey(Schema.NullOr(Schema.Array(Schema.Struct({ itemIdentifier: Schema.String }))))
}))

export interface BatchResponse {
  readonly batchItemFailures: ReadonlyArray<{ readonly itemIdentifier: string }>
}

export const batchResponse = (failedMessageIds: Iterable<string>): BatchResponse => ({
  batchItemFailures: Array.from(failedMessageIds, (id) => ({ itemIdentifier: id }))
})

const stringValues = (attributes: Readonly<Record<string, { readonly [k: string]: string | null | undefined }>> | undefined, key: string) =>
  Object.fromEntries(
    Object.entries(attributes ?? {}).flatMap(([name, value]) => typeof value[key] === "string" ? [[name, value[key]]] : [])
  ) as Record<string, string>

/** An event record's attributes whose data type is not `String`, binary ones decoded, as a dead letter sends them again. */
const typedAttributes = (
  attributes: Readonly<Record<string, { readonly dataType: string; readonly stringValue?: string | null; readonly binaryValue?: string | null }>> | undefined
): { readonly typedAttributes?: Record<string, TypedAttribute> } => {
  const typed = Object.entries(attributes ?? {}).filter(([, value]) => value.dataType !== "String")
  if (typed.length === 0) return {}
  return {
    typedAttributes: Object.fromEntries(typed.map(([name, value]) => [name, {
      dataType: value.dataType,
      ...(typeof value.stringValue === "string" ? { stringValue: value.stringValue } : {}),
      ...(typeof value.binaryValue === "string" ? { binaryValue: Uint8Array.from(atob(value.binaryValue), (c) => c.charCodeAt(0)) } : {})
    }]))
  }
}

const receiveCount = (text: string | undefined) => Math.max(1, Number(text ?? "1") || 1)

/** The messages of an event, as the queue would have returned them. */
export const messagesOf = (event: typeof HandlerEvent.Type): ReadonlyArray<QueueMessage> =>
  "Records" in event
    ? event.Records.map((record) => ({
      messageId: record.messageId,
      receiptHandle: record.receiptHandle,
      body: record.body,
      attributes: stringValues(record.messageAttributes, "stringValue"),
      ...typedAttributes(record.messageAttributes),
      receiveCount: receiveCount(record.attributes?.ApproximateReceiveCount)
    }))
    : [{
      messageId: event.MessageId,
      receiptHandle: event.ReceiptHandle,
      body: event.Body,
      attributes: stringValues(event.MessageAttributes, "StringValue"),
      receiveCount: receiveCount(event.Attributes?.ApproximateReceiveCount)
    }]

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
