/**
 * The one retry policy: exponential from 100 ms, jittered so that workers retrying the same
 * outage spread out, for as long as the failure is retryable and at most `duration` in all (the
 * last delay is cut short so that the last attempt is made at `duration` at the latest).
 */
import { Duration, Effect, Schedule } from "effect"
import { dual } from "effect/Function"
import { isRetryable, type StepFailure } from "../domain/errors.ts"

const makePolicy = (budget: number): Schedule.Schedule<Duration.Duration, StepFailure> =>
  Schedule.exponential("100 millis").pipe(
    Schedule.jittered,
    Schedule.while(({ elapsed, input }: Schedule.Metadata<Duration.Duration, StepFailure>) => isRetryable(input) && budget - elapsed >= 1),
    Schedule.modifyDelay(({ duration: delay, elapsed }) => Effect.succeed(Duration.min(delay, Duration.millis(Math.ceil(budget - elapsed)))))
  )

/** Made once a budget: a schedule is an immutable value, and building one costs about a transition's work. */
const policies = new Map<number, Schedule.Schedule<Duration.Duration, StepFailure>>()

export const retryPolicy = (duration: Duration.Input): Schedule.Schedule<Duration.Duration, StepFailure> => {
  const budget = Duration.toMillis(Duration.fromInputUnsafe(duration))
  let policy = policies.get(budget)
  if (policy === undefined) {
    policy = makePolicy(budget)
    policies.set(budget, policy)
  }
  return policy
}

/** For calls that only tidy up (deletes): a failure costs a redelivery, not a record. */
export const briefRetry = retryPolicy("5 seconds")

/**
 * `Effect.retry`, with the schedule set up only once `self` has failed: most calls succeed at once,
 * and setting up a schedule's step costs more than a quick call. The same attempts, delays and
 * final error: the first failure is handed to the schedule as its first input (a schedule's
 * elapsed time starts at its first input), then `self` is run again as the schedule says.
 */
export const retryOnFailure: {
  <E, O>(schedule: Schedule.Schedule<O, NoInfer<E>>): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R, O>(self: Effect.Effect<A, E, R>, schedule: Schedule.Schedule<O, NoInfer<E>>): Effect.Effect<A, E, R>
} = dual(2, <A, E, R, O>(self: Effect.Effect<A, E, R>, schedule: Schedule.Schedule<O, NoInfer<E>>) =>
  Effect.catchEager(self, (first) => {
    let replay = true
    return Effect.retry(
      Effect.suspend(() => {
        if (!replay) return self
        replay = false
        return Effect.fail(first)
      }),
      schedule
    )
  }))
