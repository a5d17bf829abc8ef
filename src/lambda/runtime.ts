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
 * The runtime is built at init under Lambda (`initialized`), else on the first invocation. `handler.ts` is the entry for the built-in
 * pipelines; `handlerFor` is the entry `build --pipeline ./module.ts` bundles an author's module with.
 */
import { Config, Effect, Layer, ManagedRuntime, Option, Schema } from "effect"
import { type BatchResponse, batchResponse, HandlerEvent, messagesOf } from "../domain/sqsEvent.ts"
import { acknowledge, failedMessageIds, type Outcome, processBatch } from "../programs/engine.ts"
import { countOutcomes } from "../programs/inProcessRunner.ts"
import { batchFigures, deadLetteredByReason, StepTimings, timedPipeline } from "../programs/stepFigures.ts"
import { isPipeline, type RuntimeServices } from "../domain/Pipeline.ts"
import type { BatchFigures, OutcomeCounts } from "../services/BatchRunner.ts"
import { CurrentPipeline } from "../services/CurrentPipeline.ts"
import { EngineSettings } from "../services/EngineSettings.ts"
import { collectGarbageHoldingBuffers } from "../services/garbage.ts"
import { InvocationDeadline } from "../services/InvocationDeadline.ts"
import { MessageQueue, type QueueError } from "../services/MessageQueue.ts"
import { ObjectStore } from "../services/ObjectStore.ts"
import { settingProblem } from "../services/settings.ts"
import { TransitionLedger } from "../services/TransitionLedger.ts"
import { lambdaLoggingLayer, MAX_LOGGED_TEXT, scrub } from "./logging.ts"
import { emfLines, MetricsSink } from "./metrics.ts"

/** The handler's answer: the batch response, how the messages ended, and what the steps did. */
export type HandlerResponse = BatchResponse & { readonly outcomes: OutcomeCounts; readonly figures: BatchFigures }

/** The services a handler runs on. */
export type HandlerServices = CurrentPipeline | MessageQueue | EngineSettings | RuntimeServices

// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const handleEvent = Effect.fn("handleEvent")(function*(event: unknown) {
  // a malformed event is a wiring bug, not bad data: fail the invocation loudly
  const decoded = yield* Schema.decodeUnknownEffect(HandlerEvent)(event, { errors: "all" }).pipe(
    // the text quotes the event: an excerpt only
    Effect.mapError((error) => new Error(`not an SQS event nor an SQS message:\n${scrub(error.message, 2 * MAX_LOGGED_TEXT)}`)),
    Effect.orDie
  )
  const pipeline = yield* CurrentPipeline
  const metrics = yield* Effect.serviceOption(MetricsSink)
  const timings: StepTimings["Service"] = new Map()
  const started = performance.now()
  const messages = messagesOf(decoded)
  // the pipeline's own services are erased from its type: its layer is part of this runtime's
  const outcomes = yield* (processBatch(timedPipeline(pipeline))(messages) as Effect.Effect<
    ReadonlyArray<Outcome>,
    QueueError,
    MessageQueue | EngineSettings
  >).pipe(Effect.provideService(StepTimings, timings))
  if (!("Records" in decoded)) yield* acknowledge((yield* EngineSettings).queueUrl, outcomes)
  const counts = countOutcomes(outcomes)
  if (Option.isSome(metrics)) {
    metrics.value.write(emfLines(metrics.value.namespace, Date.now(), {
      pipeline: pipeline.name,
      records: messages.length,
      counts,
      deadLetteredBy: deadLetteredByReason(outcomes),
      steps: timings,
      batchMillis: performance.now() - started
    }))
  }
  return { ...batchResponse(failedMessageIds(outcomes)), outcomes: counts, figures: batchFigures(timings, outcomes) } satisfies HandlerResponse
})

/**
 * A failure as Lambda reports it (`errorType` is the error's name): a setting that is missing or
 * wrong named (`the setting PIPELINE_BUCKET is missing`), receipt handles scrubbed, texts cut.
 */
export const lambdaError = (failure: unknown): Error => {
  if (failure instanceof Config.ConfigError) return Object.assign(new Error(settingProblem(failure)), { name: "ConfigError" })
  const tag = typeof failure === "object" && failure !== null && "_tag" in failure ? String(failure._tag) : undefined
  const message = typeof failure === "object" && failure !== null && "message" in failure ? String(failure.message) : String(failure)
  const error = new Error(scrub(message, 2 * MAX_LOGGED_TEXT))
  error.name = failure instanceof Error && tag === undefined ? failure.name : tag ?? "Error"
  if (failure instanceof Error && failure.stack !== undefined) error.stack = scrub(failure.stack, 4 * MAX_LOGGED_TEXT)
  return error
}

/** Buffers left after a batch above which the batch's garbage is collected before answering. */
export const COLLECT_AFTER_BUFFER_BYTES = 8 * 1024 * 1024

/**
 * A full garbage collection when the process has `--expose-gc` (the stack sets it) and Buffers of
 * `COLLECT_AFTER_BUFFER_BYTES` or more are held, dead or alive: a raw image a step read or stored.
 * Lambda freezes the process between invocations, so V8 would otherwise collect it during the next
 * one, after it had raised that one's peak (the 24 MP chain under RIE: the download's 17.9 MB was
 * still there while the thumbnail step read it back, 120 MB peak). A collection takes a few ms.
 */
export const collectBatchGarbage = (minBytes = COLLECT_AFTER_BUFFER_BYTES): void => {
  collectGarbageHoldingBuffers(minBytes)
}

/**
 * One runtime per container: `pipeline` on top of `backends`, built by `init` or else on the
 * first invocation. Tests pass test layers.
 */
export const makeHandler = <R, E1, E2>(
  pipeline: Layer.Layer<CurrentPipeline, E1, RuntimeServices>,
  backends: Layer.Layer<R | Exclude<HandlerServices, CurrentPipeline>, E2>
) => {
  const runtime = ManagedRuntime.make(Layer.provideMerge(pipeline, backends))
  // Lambda's context says how long the invocation has left: run-ahead stops short of it
  const handler = (event: unknown, context?: { getRemainingTimeInMillis?: () => number }): Promise<HandlerResponse> => {
    const remaining = context?.getRemainingTimeInMillis?.()
    const deadline = remaining === undefined ? Option.none<number>() : Option.some(Date.now() + remaining)
    return runtime.runPromise(handleEvent(event).pipe(Effect.provideService(InvocationDeadline, deadline)))
      .catch((failure: unknown) => Promise.reject(lambdaError(failure)))
      .finally(() => collectBatchGarbage())
  }
  /** Builds the runtime now; a missing or invalid setting rejects with an Error naming it. */
  const init = (): Promise<void> => runtime.context().then(() => undefined, (failure: unknown) => Promise.reject(lambdaError(failure)))
  return Object.assign(handler, { runtime, init })
}

/**
 * Under Lambda's runtime (`AWS_LAMBDA_RUNTIME_API` is set), builds the handler's runtime during
 * the INIT phase (the module's top-level await), so that a missing or invalid setting fails the
 * init with an Error naming it, instead of every invocation of a container Lambda keeps. Elsewhere
 * (tests, bundles imported by a tool) the runtime is built on the first invocation.
 */
export const initialized = async <H extends { readonly init: () => Promise<void> }>(handler: H): Promise<H> => {
  if (process.env["AWS_LAMBDA_RUNTIME_API"] !== undefined) await handler.init()
  return handler
}

/** Production: SQS and S3 from the environment; log lines at the levels Lambda's logging controls filter by (logging.ts); EMF metrics per batch (metrics.ts). */
export const liveLayer = Layer.mergeAll(
  MessageQueue.layerSqs,
  ObjectStore.layerS3Config,
  EngineSettings.layerSqs,
  TransitionLedger.layerSqs,
  MetricsSink.layerStdout
  // under the layers, so that what they log while they are built (the ledger's warning) is Lambda's too
).pipe(Layer.provideMerge(lambdaLoggingLayer))

/** The handler for an author's pipeline, as `build --pipeline` bundles it: a module that exports no pipeline fails the init. */
export const handlerFor = (pipeline: unknown) => {
  if (!isPipeline(pipeline)) throw new Error("the pipeline module exports no pipeline (expected a default or \"pipeline\" export made with definePipeline)")
  return makeHandler(CurrentPipeline.layerOf(pipeline), liveLayer)
}
