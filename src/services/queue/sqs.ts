/**
 * The `MessageQueue` service on Amazon SQS, through @aws-sdk/client-sqs.
 *
 * Region, endpoint and credentials come from the SDK's own conventions (AWS_REGION,
 * AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_SQS, the default credential chain); nothing is read from
 * the project's Config.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type BatchResultErrorEntry,
  type MessageAttributeValue,
  type SendMessageBatchRequestEntry,
  SQSClient
} from "@aws-sdk/client-sqs"
import { Effect, Option, Record as Rec, Schema } from "effect"
import { type BatchResult, chunks, type EntryFailure, type OutgoingMessage, type QueueAttributes, type QueueMessage, type ReceiptEntry, type ReceiveOptions, type TypedAttribute } from "../../domain/messages.ts"
import { MessageQueue, QueueError } from "../MessageQueue.ts"
import { awsErrorMessage, hasConfiguredEndpoint, isRetryableAwsError } from "../awsSdk.ts"

/** Batch requests of one call that may be in flight at once. */
const CHUNK_CONCURRENCY = 4

interface SqsEntryFailure {
  readonly Id?: string | undefined
  readonly Code?: string | undefined
  readonly Message?: string | undefined
  readonly SenderFault?: boolean | undefined
}

/**
 * Entries go to SQS with their index in the chunk as `Id` (SQS wants `[A-Za-z0-9_-]{1,80}`, the
 * caller's ids may be anything), and the results are mapped back to the caller's ids here.
 */
const toBatchResult = (
  ids: ReadonlyArray<string>,
  successful: ReadonlyArray<{ readonly Id?: string | undefined }> | undefined,
  failedEntries: ReadonlyArray<SqsEntryFailure | BatchResultErrorEntry> | undefined
): BatchResult => {
  const failures = new Map<string, SqsEntryFailure>()
  for (const entry of failedEntries ?? []) if (entry.Id !== undefined) failures.set(entry.Id, entry)
  const succeeded = new Set<string>()
  for (const entry of successful ?? []) if (entry.Id !== undefined) succeeded.add(entry.Id)
  const ok: Array<string> = []
  const failed: Array<EntryFailure> = []
  ids.forEach((id, index) => {
    const failure = failures.get(String(index))
    if (failure !== undefined) {
      failed.push({
        id,
        code: failure.Code ?? "Unknown",
        message: failure.Message ?? "",
        senderFault: failure.SenderFault ?? false
      })
    } else if (succeeded.has(String(index))) {
      ok.push(id)
    } else {
      failed.push({
        id,
        code: "MissingFromResponse",
        message: "SQS reported this entry neither as successful nor as failed",
        senderFault: false
      })
    }
  })
  return { successful: ok, failed }
}

/**
 * A chunk whose request failed as a whole: each of its entries failed for that reason. The call
 * still reports the chunks that went through, so a retry resends only this one.
 */
const chunkFailed = (ids: ReadonlyArray<string>) => (error: QueueError): Effect.Effect<BatchResult> =>
  Effect.succeed({
    successful: [],
    failed: ids.map((id) => ({ id, code: "RequestFailed", message: error.message, senderFault: !error.retryable }))
  })

const mergeResults = (results: ReadonlyArray<BatchResult>): BatchResult => ({
  successful: results.flatMap((result) => result.successful),
  failed: results.flatMap((result) => result.failed)
})

/** Our attributes as SQS message attributes (none at all when empty), typed ones with their own data type, and back. */
const toMessageAttributes = (
  attributes: Readonly<Record<string, string>> | undefined,
  typed: Readonly<Record<string, TypedAttribute>> | undefined = {}
): Record<string, MessageAttributeValue> | undefined => {
  const all: Record<string, MessageAttributeValue> = Rec.map(attributes ?? {}, (value): MessageAttributeValue => ({ DataType: "String", StringValue: value }))
  for (const [name, value] of Object.entries(typed)) {
    all[name] = {
      DataType: value.dataType,
      ...(value.stringValue !== undefined ? { StringValue: value.stringValue } : {}),
      ...(value.binaryValue !== undefined ? { BinaryValue: value.binaryValue } : {})
    }
  }
  return Rec.isEmptyReadonlyRecord(all) ? undefined : all
}

/** String-valued attributes are ours; every one whose data type is not `String` (binary ones too) is also kept as sent, for a dead letter. */
const fromMessageAttributes = (
  attributes: Readonly<Record<string, MessageAttributeValue>> | undefined
): Record<string, string> => Rec.getSomes(Rec.map(attributes ?? {}, (value) => Option.fromUndefinedOr(value.StringValue)))

const typedFromMessageAttributes = (
  attributes: Readonly<Record<string, MessageAttributeValue>> | undefined
): Record<string, TypedAttribute> | undefined => {
  const typed = Object.entries(attributes ?? {}).filter(([, value]) => value.DataType !== undefined && value.DataType !== "String")
  return typed.length === 0 ? undefined : Object.fromEntries(typed.map(([name, value]) => [name, {
    dataType: value.DataType!,
    stringValue: value.StringValue,
    binaryValue: value.BinaryValue
  }]))
}

const toEntry = (message: OutgoingMessage, index: number): SendMessageBatchRequestEntry => {
  const entry: SendMessageBatchRequestEntry = { Id: String(index), MessageBody: message.body }
  const attributes = toMessageAttributes(message.attributes, message.typedAttributes)
  if (attributes !== undefined) entry.MessageAttributes = attributes
  if (message.groupId !== undefined) entry.MessageGroupId = message.groupId
  if (message.deduplicationId !== undefined) entry.MessageDeduplicationId = message.deduplicationId
  if (message.delaySeconds !== undefined) entry.DelaySeconds = message.delaySeconds
  return entry
}

const toInt = (value: string | undefined): number => {
  const n = Number(value)
  return Number.isFinite(n) ? n : 0
}

/** A queue's RedrivePolicy attribute; `maxReceiveCount` is read leniently below. */
const RedrivePolicy = Schema.fromJsonString(
  Schema.Struct({ deadLetterTargetArn: Schema.String, maxReceiveCount: Schema.optionalKey(Schema.Unknown) })
)

/** `arn:PARTITION:sqs:REGION:ACCOUNT:NAME` -> its account and name. */
const parseQueueArn = (arn: string): Option.Option<{ readonly account: string; readonly name: string }> => {
  const parts = arn.split(":")
  if (parts.length !== 6 || parts[0] !== "arn" || parts[2] !== "sqs") return Option.none()
  const [, , , , account, name] = parts as [string, string, string, string, string, string]
  return account !== "" && name !== "" ? Option.some({ account, name }) : Option.none()
}

/** Amazon SQS: one client, destroyed with the layer's scope. */
export const make = Effect.gen(function*() {
  // SDK (middleware-sdk-sqs queueUrlMiddleware): requests go to the QueueUrl's host unless the client has `endpoint` or `useQueueUrlAsEndpoint: false`; AWS_ENDPOINT_URL(_SQS) does not count.
  const client = yield* Effect.acquireRelease(
    Effect.sync(() => new SQSClient(hasConfiguredEndpoint("SQS") ? { useQueueUrlAsEndpoint: false } : {})),
    (client) => Effect.sync(() => client.destroy())
  )

  const call = <A>(
    operation: string,
    queueUrl: string,
    request: (signal: AbortSignal) => Promise<A>
  ): Effect.Effect<A, QueueError> =>
    Effect.tryPromise({
      try: request,
      catch: (cause) =>
        new QueueError({
          operation,
          queueUrl,
          message: awsErrorMessage(cause),
          retryable: isRetryableAwsError(cause),
          cause
        })
    })

  /**
   * A batch operation: 10 entries a request, a few requests at once, answered entry by entry (a
   * request that fails as a whole fails each of its entries).
   */
  const inBatches = <Entry extends { readonly id: string }>(
    operation: string,
    queueUrl: string,
    entries: ReadonlyArray<Entry>,
    request: (
      chunk: ReadonlyArray<Entry>,
      signal: AbortSignal
    ) => Promise<{ readonly Successful?: ReadonlyArray<{ Id?: string | undefined }> | undefined; readonly Failed?: ReadonlyArray<BatchResultErrorEntry> | undefined }>
  ): Effect.Effect<BatchResult> =>
    Effect.forEach(
      chunks(entries),
      (chunk) => {
        const ids = chunk.map((entry) => entry.id)
        return call(operation, queueUrl, (signal) => request(chunk, signal)).pipe(
          Effect.map((output) => toBatchResult(ids, output.Successful, output.Failed)),
          Effect.catch(chunkFailed(ids))
        )
      },
      { concurrency: CHUNK_CONCURRENCY }
    ).pipe(Effect.map(mergeResults))

  const send = Effect.fn("SqsQueue.send")((queueUrl: string, messages: ReadonlyArray<OutgoingMessage>) =>
    inBatches("SendMessageBatch", queueUrl, messages, (chunk, abortSignal) =>
      client.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: chunk.map(toEntry) }), { abortSignal }))
  )

  const receive = Effect.fn("SqsQueue.receive")(function*(queueUrl: string, options?: ReceiveOptions) {
    const output = yield* call("ReceiveMessage", queueUrl, (abortSignal) =>
      client.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: options?.maxMessages ?? 10,
          WaitTimeSeconds: options?.waitSeconds ?? 0,
          ...(options?.visibilityTimeout !== undefined ? { VisibilityTimeout: options.visibilityTimeout } : {}),
          MessageAttributeNames: ["All"],
          MessageSystemAttributeNames: ["ApproximateReceiveCount"]
        }),
        { abortSignal }
      ))
    return (output.Messages ?? []).map((message): QueueMessage => {
      const receiveCount = Number(message.Attributes?.ApproximateReceiveCount)
      return {
        messageId: message.MessageId ?? "",
        receiptHandle: message.ReceiptHandle ?? "",
        body: message.Body ?? "",
        attributes: fromMessageAttributes(message.MessageAttributes),
        ...(typedFromMessageAttributes(message.MessageAttributes) === undefined ? {} : { typedAttributes: typedFromMessageAttributes(message.MessageAttributes) }),
        // we asked for it, so it is there; a message in hand has been received at least once
        receiveCount: Number.isInteger(receiveCount) && receiveCount > 0 ? receiveCount : 1
      }
    })
  })

  const delete_ = Effect.fn("SqsQueue.delete")((queueUrl: string, entries: ReadonlyArray<ReceiptEntry>) =>
    inBatches("DeleteMessageBatch", queueUrl, entries, (chunk, abortSignal) =>
      client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((entry, index) => ({ Id: String(index), ReceiptHandle: entry.receiptHandle }))
        }),
        { abortSignal }
      ))
  )

  const changeVisibility = Effect.fn("SqsQueue.changeVisibility")((
    queueUrl: string,
    entries: ReadonlyArray<ReceiptEntry>,
    seconds: number
  ) =>
    inBatches("ChangeMessageVisibilityBatch", queueUrl, entries, (chunk, abortSignal) =>
      client.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((entry, index) => ({ Id: String(index), ReceiptHandle: entry.receiptHandle, VisibilityTimeout: seconds }))
        }),
        { abortSignal }
      ))
  )

  const attributes = Effect.fn("SqsQueue.attributes")(function*(queueUrl: string) {
    const output = yield* call("GetQueueAttributes", queueUrl, (abortSignal) =>
      client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["All"] }), { abortSignal }))
    const attrs = output.Attributes ?? {}
    let deadLetterQueueUrl = Option.none<string>()
    let maxReceiveCount = Option.none<number>()
    const redrivePolicy = attrs.RedrivePolicy
    if (redrivePolicy !== undefined && redrivePolicy !== "") {
      const unreadable = (detail: string, cause: unknown) =>
        new QueueError({
          operation: "GetQueueAttributes",
          queueUrl,
          message: `Unreadable RedrivePolicy: ${detail}`,
          retryable: false,
          cause
        })
      const policy = yield* Schema.decodeEffect(RedrivePolicy)(redrivePolicy).pipe(
        Effect.mapError((error) => unreadable(error.message, error))
      )
      const target = parseQueueArn(policy.deadLetterTargetArn)
      if (Option.isNone(target)) return yield* unreadable(`no usable deadLetterTargetArn in ${redrivePolicy}`, redrivePolicy)
      const dlq = yield* call("GetQueueUrl", queueUrl, (abortSignal) =>
        client.send(
          new GetQueueUrlCommand({ QueueName: target.value.name, QueueOwnerAWSAccountId: target.value.account }),
          { abortSignal }
        ))
      deadLetterQueueUrl = Option.fromUndefinedOr(dlq.QueueUrl)
      // SQS answers with a number, but accepts (and moto echoes) a string
      const receives = Number(policy.maxReceiveCount)
      maxReceiveCount = Number.isInteger(receives) && receives > 0 ? Option.some(receives) : Option.none()
    }
    return {
      visibilityTimeout: toInt(attrs.VisibilityTimeout),
      approximateVisible: toInt(attrs.ApproximateNumberOfMessages),
      approximateInFlight: toInt(attrs.ApproximateNumberOfMessagesNotVisible),
      approximateDelayed: toInt(attrs.ApproximateNumberOfMessagesDelayed),
      fifo: attrs.FifoQueue === "true",
      deadLetterQueueUrl,
      maxReceiveCount
    } satisfies QueueAttributes
  })

  return MessageQueue.of({ send, receive, delete: delete_, changeVisibility, attributes })
})
