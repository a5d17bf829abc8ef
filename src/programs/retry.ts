/**
 * The one retry policy: exponential from 100 ms, jittered so that workers retrying the same
 * outage spread out, for as long as the failure is retryable and at most `duration` in all.
 */
import { type Duration, Schedule } from "effect"
import { isRetryable, type StepFailure } from "../domain/errors.ts"

export const retryPolicy = (duration: Duration.Input): Schedule.Schedule<Duration.Duration, StepFailure> =>
  Schedule.exponential("100 millis").pipe(
    Schedule.jittered,
    Schedule.while(({ input }: Schedule.Metadata<Duration.Duration, StepFailure>) => isRetryable(input)),
    Schedule.upTo({ duration })
  )

/** For calls that only tidy up (deletes): a failure costs a redelivery, not a record. */
export const briefRetry = retryPolicy("5 seconds")
