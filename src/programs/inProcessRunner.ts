/**
 * The `BatchRunner` that runs each batch through the engine in this process, on this process's
 * services: what Lambda would do with the batch, without the event round trip.
 */
import { Effect, Layer } from "effect"
import type { AnyPipeline } from "../domain/Pipeline.ts"
import { BatchRunner, BatchRunnerError } from "../services/BatchRunner.ts"
import type { EngineSettings } from "../services/EngineSettings.ts"
import type { MessageQueue, QueueError } from "../services/MessageQueue.ts"
import { failedMessageIds, type Outcome, processBatch } from "./engine.ts"

export const inProcessRunner = (pipeline: AnyPipeline): Layer.Layer<BatchRunner, never, MessageQueue | EngineSettings> =>
  Layer.effect(
    BatchRunner,
    Effect.gen(function*() {
      // the pipeline's own services are erased from its type (AnyPipeline): they are in this context
      const context = yield* Effect.context<MessageQueue | EngineSettings>()
      const process = processBatch(pipeline) as (
        messages: Parameters<ReturnType<typeof processBatch>>[0]
      ) => Effect.Effect<ReadonlyArray<Outcome>, QueueError, MessageQueue | EngineSettings>
      return BatchRunner.of({
        run: (messages) =>
          process(messages).pipe(
            Effect.map((outcomes): ReadonlySet<string> => new Set(failedMessageIds(outcomes))),
            Effect.mapError((error) => new BatchRunnerError({ message: error.message, cause: error })),
            Effect.catchDefect((cause) => Effect.fail(new BatchRunnerError({ message: `the handler died: ${String(cause)}`, cause }))),
            Effect.provideContext(context)
          )
      })
    })
  )
