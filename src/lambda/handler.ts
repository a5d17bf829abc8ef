/**
 * The AWS Lambda entry point (`dist/lambda/handler.handler`).
 *
 * Two event shapes:
 * - an SQS event from an event source mapping (`{ Records: [...] }`): answers with
 *   `batchItemFailures` for ReportBatchItemFailures and never deletes (Lambda does);
 * - the original design's single raw SQS message (`{ MessageId, ReceiptHandle, Body, ... }`):
 *   deletes the message itself once its successor is sent.
 *
 * The runtime is built once per container, on the first invocation.
 */
import { type Config, Effect, Layer, Logger, ManagedRuntime, Schema } from "effect"
import type { AnyPipeline, RuntimeServices } from "../domain/Pipeline.ts"
import { builtinPipeline, defaultPipelineName } from "../pipelines/index.ts"
import { acknowledge, failedMessageIds, processBatch } from "../programs/engine.ts"
import { EngineSettings } from "../services/EngineSettings.ts"
import type { Queue, QueueError, QueueMessage } from "../services/MessageQueue.ts"
import * as S3ObjectStore from "../services/objectStore/s3.ts"
import { sqsLedgerLayer } from "../services/backends.ts"
import * as SqsQueue from "../services/queue/sqs.ts"

const EventRecord = Schema.Struct({
  messageId: Schema.String,
  receiptHandle: Schema.String,
  body: Schema.String,
  attributes: Schema.optionalKey(Schema.Struct({ ApproximateReceiveCount: Schema.optionalKey(Schema.String) })),
  messageAttributes: Schema.optionalKey(
    Schema.Record(Schema.String, Schema.Struct({ stringValue: Schema.optionalKey(Schema.String), dataType: Schema.String }))
  )
})

const SqsEvent = Schema.Struct({ Records: Schema.Array(EventRecord) })

/** The original design's event: one message as ReceiveMessage returns it. */
const RawMessage = Schema.Struct({
  MessageId: Schema.String,
  ReceiptHandle: Schema.String,
  Body: Schema.String,
  MD5OfBody: Schema.optionalKey(Schema.String),
  Attributes: Schema.optionalKey(Schema.Struct({ ApproximateReceiveCount: Schema.optionalKey(Schema.String) })),
  MessageAttributes: Schema.optionalKey(
    Schema.Record(Schema.String, Schema.Struct({ StringValue: Schema.optionalKey(Schema.String), DataType: Schema.String }))
  )
})

const HandlerEvent = Schema.Union([SqsEvent, RawMessage])

export interface BatchResponse {
  readonly batchItemFailures: ReadonlyArray<{ readonly itemIdentifier: string }>
}

const stringValues = (attributes: Readonly<Record<string, { readonly [k: string]: string | undefined }>> | undefined, key: string) =>
  Object.fromEntries(
    Object.entries(attributes ?? {}).flatMap(([name, value]) => value[key] === undefined ? [] : [[name, value[key]]])
  ) as Record<string, string>

const receiveCount = (text: string | undefined) => Math.max(1, Number(text ?? "1") || 1)

/**
 * Runs one Lambda event through the engine. The pipeline's own services are erased from the type
 * (`AnyPipeline`): whoever runs this provides `pipeline.layer` too, as `makeHandler` does.
 */
export const handleEvent = (
  pipeline: AnyPipeline
): (event: unknown) => Effect.Effect<BatchResponse, QueueError, HandlerServices> => {
  const process = processBatch(pipeline)
  return Effect.fn("handleEvent")(function*(event: unknown) {
    // a malformed event is a wiring bug, not bad data: fail the invocation loudly
    const decoded = yield* Schema.decodeUnknownEffect(HandlerEvent)(event, { errors: "all" }).pipe(
      Effect.mapError((error) => new Error(`not an SQS event nor an SQS message:\n${error.message}`)),
      Effect.orDie
    )
    if ("Records" in decoded) {
      const messages = decoded.Records.map((record): QueueMessage => ({
        messageId: record.messageId,
        receiptHandle: record.receiptHandle,
        body: record.body,
        attributes: stringValues(record.messageAttributes, "stringValue"),
        receiveCount: receiveCount(record.attributes?.ApproximateReceiveCount)
      }))
      const outcomes = yield* process(messages)
      return { batchItemFailures: failedMessageIds(outcomes).map((id) => ({ itemIdentifier: id })) } satisfies BatchResponse
    }
    const message: QueueMessage = {
      messageId: decoded.MessageId,
      receiptHandle: decoded.ReceiptHandle,
      body: decoded.Body,
      attributes: stringValues(decoded.MessageAttributes, "StringValue"),
      receiveCount: receiveCount(decoded.Attributes?.ApproximateReceiveCount)
    }
    const outcomes = yield* process([message])
    const settings = yield* EngineSettings
    yield* acknowledge(settings.queueUrl, outcomes)
    return { batchItemFailures: failedMessageIds(outcomes).map((id) => ({ itemIdentifier: id })) } satisfies BatchResponse
  })
}

/** The services a handler runs on; the pipeline's own layer is built on top of them. */
export type HandlerServices = Queue | EngineSettings | RuntimeServices

/** One runtime per container; tests pass test layers. */
export const makeHandler = <R, E>(pipeline: AnyPipeline, layer: Layer.Layer<R | HandlerServices, E>) => {
  // R includes the RuntimeServices the pipeline's layer needs; TypeScript cannot see through the Exclude
  const services = Layer.provideMerge(pipeline.layer, layer) as Layer.Layer<R | HandlerServices, E | Config.ConfigError>
  const runtime = ManagedRuntime.make(services)
  const handle = handleEvent(pipeline)
  return Object.assign((event: unknown): Promise<BatchResponse> => runtime.runPromise(handle(event)), { runtime })
}

/** Production: SQS and S3, configured from the environment; JSON log lines, which CloudWatch Logs can query. */
export const liveLayer = Layer.mergeAll(
  SqsQueue.layer,
  S3ObjectStore.layer,
  EngineSettings.layer,
  sqsLedgerLayer,
  Logger.layer([Logger.consoleJson])
)

export const handler = makeHandler(builtinPipeline(process.env.PIPELINE_NAME ?? defaultPipelineName), liveLayer)
