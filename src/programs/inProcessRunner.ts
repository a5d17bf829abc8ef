/**
 * The `BatchRunner` that runs each batch through the engine in this process, on this process's
 * services: what Lambda would do with the batch, without the event round trip.
 */
import { Effect, Layer, Option } from "effect"
import type { AnyPipeline } from "../domain/Pipeline.ts"
import { BatchRunner, BatchRunnerError, type OutcomeCounts } from "../services/BatchRunner.ts"
import type { EngineSettings } from "../services/EngineSettings.ts"
import type { MessageQueue, QueueError } from "../services/MessageQueue.ts"
import { failedMessageIds, type Outcome, processBatch } from "./engine.ts"
import { batchFigures, StepTimings, timedPipeline } from "./stepFigures.ts"

/**
 * How many messages of a batch ended each way (`Failed` ones are handed back for a retry);
 * `advanced` counts steps run, several for a message that ran ahead.
 */
export const countOutcomes = (outcomes: ReadonlyArray<Outcome>): OutcomeCounts => {
  const counts = { advanced: 0, done: 0, deadLettered: 0, retried: 0, duplicates: 0 }
  for (const outcome of outcomes) {
    if (outcome._tag === "Advanced") counts.advanced += outcome.transitions
    else if (outcome._tag === "Done") {
      counts.done++
      counts.advanced += outcome.transitions
    }
    else if (outcome._tag === "DeadLettered") counts.deadLettered++
    else if (outcome._tag === "Failed") counts.retried++
    else counts.duplicates++
  }
  return counts
}

export const inProcessRunner = (pipeline: AnyPipeline): Layer.Layer<BatchRunner, never, MessageQueue | EngineSettings> =>
  Layer.effect(
    BatchRunner,
    Effect.gen(function*() {
      // the pipeline's own services are erased from its type (AnyPipeline): they are in this context
      const context = yield* Effect.context<MessageQueue | EngineSettings>()
      // each step timed, for the agent's summary (what the Lambda handler's metrics say)
      const process = processBatch(timedPipeline(pipeline)) as (
        messages: Parameters<ReturnType<typeof processBatch>>[0]
      ) => Effect.Effect<ReadonlyArray<Outcome>, QueueError, MessageQueue | EngineSettings>
      return BatchRunner.of({
        run: (messages) => {
          const timings: StepTimings["Service"] = new Map()
          return process(messages).pipe(
            Effect.provideService(StepTimings, timings),
            Effect.map((outcomes) => ({
              failed: new Set(failedMessageIds(outcomes)),
              outcomes: Option.some(countOutcomes(outcomes)),
              figures: batchFigures(timings, outcomes)
            })),
            Effect.mapError((error) => new BatchRunnerError({ message: error.message, cause: error })),
            Effect.catchDefect((cause) => Effect.fail(new BatchRunnerError({ message: `the handler died: ${String(cause)}`, cause }))),
            Effect.provideContext(context)
          )
        }
      })
    })
  )
