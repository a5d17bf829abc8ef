/**
 * Sending a batch so that each message either goes out or comes back with its reason: entries
 * that failed for a retryable reason (throttling, a server fault) are resent until `retry` gives up.
 */
import { Effect, Schedule } from "effect"
import { isRetryable, type StepFailure } from "../domain/errors.ts"
import { type OutgoingMessage, Queue, QueueError } from "../services/Queue.ts"

/** Returns the failure of each entry (by id) that never made it; an empty map means all were sent. */
export const sendAll = Effect.fnUntraced(function*(
  queueUrl: string,
  entries: ReadonlyArray<OutgoingMessage>,
  retry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis").pipe(Schedule.upTo({ duration: "10 seconds" }))
) {
  const queue = yield* Queue
  const failures = new Map<string, StepFailure>()
  let pending = entries
  if (pending.length === 0) return failures
  yield* Effect.suspend(() => queue.send(queueUrl, pending)).pipe(
    Effect.flatMap((result) => {
      const retryLater = new Set<string>()
      for (const failure of result.failed) {
        if (failure.senderFault) {
          failures.set(failure.id, { _tag: "SendRejected", message: `${failure.code}: ${failure.message}` })
        } else retryLater.add(failure.id)
      }
      pending = pending.filter((entry) => retryLater.has(entry.id))
      return pending.length === 0 ? Effect.void : Effect.fail(
        new QueueError({
          operation: "SendMessageBatch",
          queueUrl,
          message: `${pending.length} entries were not sent`,
          retryable: true,
          cause: result.failed
        })
      )
    }),
    Effect.retry({ schedule: retry, while: isRetryable }),
    Effect.catch((error) => Effect.sync(() => pending.forEach((entry) => failures.set(entry.id, error))))
  )
  return failures
})
