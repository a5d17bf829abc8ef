/**
 * What a batch's steps did, for the Lambda handler's metrics (EMF) and the agent's summary: each
 * mutation's runs and how long they took, and the dead letters by reason.
 */
import { Context, Effect, Option } from "effect"
import type { AnyPipeline, Route } from "../domain/Pipeline.ts"
import type { BatchFigures } from "../services/BatchRunner.ts"
import type { Outcome } from "./engine.ts"

/** How long each step's runs took in one batch, by mutation name (milliseconds). */
export class StepTimings extends Context.Service<StepTimings, Map<string, Array<number>>>()("pipeline/programs/StepTimings") {}

/**
 * `pipeline`, each of its mutations timed into the batch's `StepTimings` when there is one (a
 * retried run counts once per attempt). The engine is unchanged: this wraps what the router returns.
 */
export const timedPipeline = (pipeline: AnyPipeline): AnyPipeline => ({
  ...pipeline,
  router: (record: unknown) => {
    const route = pipeline.router(record) as Route<unknown, never, never>
    if (route._tag !== "Mutation") return route
    return {
      ...route,
      run: (input: unknown) =>
        Effect.serviceOption(StepTimings).pipe(Effect.flatMap((timings) => {
          if (Option.isNone(timings)) return route.run(input)
          const started = performance.now()
          return route.run(input).pipe(Effect.ensuring(Effect.sync(() => {
            const runs = timings.value.get(route.name) ?? []
            runs.push(performance.now() - started)
            timings.value.set(route.name, runs)
          })))
        }))
    }
  }
})

/** The dead letters of a batch by reason (the error's tag). */
export const deadLetteredByReason = (outcomes: ReadonlyArray<Outcome>): Map<string, number> => {
  const byReason = new Map<string, number>()
  for (const outcome of outcomes) {
    if (outcome._tag === "DeadLettered") byReason.set(outcome.error._tag, (byReason.get(outcome.error._tag) ?? 0) + 1)
  }
  return byReason
}

/** A batch's figures as the agent adds them up: runs and total milliseconds a step, dead letters by reason. */
export const batchFigures = (timings: StepTimings["Service"], outcomes: ReadonlyArray<Outcome>): BatchFigures => ({
  steps: Object.fromEntries(
    Array.from(timings, ([step, runs]) => [step, { runs: runs.length, millis: runs.reduce((sum, millis) => sum + millis, 0) }])
  ),
  deadLetteredBy: Object.fromEntries(deadLetteredByReason(outcomes))
})
