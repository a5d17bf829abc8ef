/**
 * The AWS Lambda entry point (`dist/lambda/handler.handler`). It decodes the event, runs the
 * engine on the services its layer provides, and encodes the answer. Two event shapes:
 * - an SQS event from an event source mapping (`{ Records: [...] }`): answers with
 *   `batchItemFailures` for ReportBatchItemFailures and never deletes (Lambda does); next to it,
 *   `outcomes` counts how the messages ended (the event source mapping ignores it, the agent's
 *   `--lambda` runner reads it);
 * - the original design's single raw SQS message (`{ MessageId, ReceiptHandle, Body, ... }`):
 *   deletes the message itself once its successor is sent.
 *
 * The runtime is built on the first invocation. `handler.ts` is the entry for the built-in
 * pipelines; `handlerFor` is the entry `build --pipeline ./module.ts` bundles an author's module with.
 */
import { Effect, Layer, Logger, ManagedRuntime, Schema } from "effect"
import { type BatchResponse, batchResponse, HandlerEvent, messagesOf } from "../domain/sqsEvent.ts"
import { acknowledge, failedMessageIds, type Outcome, processBatch } from "../programs/engine.ts"
import { countOutcomes } from "../programs/inProcessRunner.ts"
import { isPipeline, type RuntimeServices } from "../domain/Pipeline.ts"
import type { OutcomeCounts } from "../services/BatchRunner.ts"
import { CurrentPipeline } from "../services/CurrentPipeline.ts"
import { EngineSettings } from "../services/EngineSettings.ts"
import { MessageQueue, type QueueError } from "../services/MessageQueue.ts"
import { ObjectStore } from "../services/ObjectStore.ts"
import { logLevelLayer } from "../services/settings.ts"
import { TransitionLedger } from "../services/TransitionLedger.ts"

/** The handler's answer: the batch response, and how the messages ended. */
export type HandlerResponse = BatchResponse & { readonly outcomes: OutcomeCounts }

/** The services a handler runs on. */
export type HandlerServices = CurrentPipeline | MessageQueue | EngineSettings | RuntimeServices

// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const handleEvent = Effect.fn("handleEvent")(function*(event: unknown) {
  // a malformed event is a wiring bug, not bad data: fail the invocation loudly
  const decoded = yield* Schema.decodeUnknownEffect(HandlerEvent)(event, { errors: "all" }).pipe(
    Effect.mapError((error) => new Error(`not an SQS event nor an SQS message:\n${error.message}`)),
    Effect.orDie
  )
  const pipeline = yield* CurrentPipeline
  // the pipeline's own services are erased from its type: its layer is part of this runtime's
  const outcomes = yield* (processBatch(pipeline)(messagesOf(decoded)) as Effect.Effect<
    ReadonlyArray<Outcome>,
    QueueError,
    MessageQueue | EngineSettings
  >)
  if (!("Records" in decoded)) yield* acknowledge((yield* EngineSettings).queueUrl, outcomes)
  return { ...batchResponse(failedMessageIds(outcomes)), outcomes: countOutcomes(outcomes) } satisfies HandlerResponse
})

/**
 * One runtime per container, built on the first invocation: `pipeline` on top of `backends`.
 * Tests pass test layers.
 */
export const makeHandler = <R, E1, E2>(
  pipeline: Layer.Layer<CurrentPipeline, E1, RuntimeServices>,
  backends: Layer.Layer<R | Exclude<HandlerServices, CurrentPipeline>, E2>
) => {
  const runtime = ManagedRuntime.make(Layer.provideMerge(pipeline, backends))
  return Object.assign((event: unknown): Promise<HandlerResponse> => runtime.runPromise(handleEvent(event)), { runtime })
}

/** Production: SQS and S3 from the environment; JSON log lines, which CloudWatch Logs can query, from PIPELINE_LOG_LEVEL up. */
export const liveLayer = Layer.mergeAll(
  MessageQueue.layerSqs,
  ObjectStore.layerS3Config,
  EngineSettings.layerSqs,
  TransitionLedger.layerSqs,
  Logger.layer([Logger.consoleJson]),
  logLevelLayer
)

/** The handler for an author's pipeline, as `build --pipeline` bundles it: a module that exports no pipeline fails the init. */
export const handlerFor = (pipeline: unknown) => {
  if (!isPipeline(pipeline)) throw new Error("the pipeline module exports no pipeline (expected a default or \"pipeline\" export made with definePipeline)")
  return makeHandler(CurrentPipeline.layerOf(pipeline), liveLayer)
}
