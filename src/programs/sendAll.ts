/**
 * Batch calls whose entries each either go through or come back with their reason: entries that
 * failed for a retryable reason (throttling, a server fault, a request that never got an answer)
 * are tried again, only they, until `retry` gives up. An entry that went through is never sent
 * again by these retries.
 */
import { Effect, Schedule } from "effect"
import { isRetryable, type StepFailure } from "../domain/errors.ts"
import type { BatchResult, OutgoingMessage, ReceiptEntry } from "../domain/messages.ts"
import { MessageQueue, QueueError } from "../services/MessageQueue.ts"

const defaultRetry = Schedule.exponential("100 millis").pipe(Schedule.upTo({ duration: "10 seconds" }))

/** For calls that only tidy up (deletes): a failure costs a redelivery, not a record. */
export const briefRetry = Schedule.exponential("100 millis").pipe(Schedule.upTo({ duration: "5 seconds" }))

/** Returns the failure of each entry (by id) that never made it; an empty map means all went through. */
export const settleAll = Effect.fnUntraced(function*<Entry extends { readonly id: string }>(
  operation: string,
  queueUrl: string,
  call: (entries: ReadonlyArray<Entry>) => Effect.Effect<BatchResult, QueueError>,
  entries: ReadonlyArray<Entry>,
  retry: Schedule.Schedule<unknown, unknown> = defaultRetry
) {
  const failures = new Map<string, StepFailure>()
  let pending = entries
  // Stryker disable next-line ConditionalExpression: saves a call; every queue answers an empty batch with nothing
  if (pending.length === 0) return failures
  yield* Effect.suspend(() => call(pending)).pipe(
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
          operation,
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

/** Sends messages, 10 a request, resending only the entries that failed for a retryable reason. */
export const sendAll = Effect.fnUntraced(function*(
  queueUrl: string,
  entries: ReadonlyArray<OutgoingMessage>,
  retry?: Schedule.Schedule<unknown, unknown>
) {
  const queue = yield* MessageQueue
  return yield* settleAll("SendMessageBatch", queueUrl, (pending) => queue.send(queueUrl, pending), entries, retry)
})

/** Deletes received messages, retrying only the entries that failed for a retryable reason. */
export const deleteAll = Effect.fnUntraced(function*(
  queueUrl: string,
  entries: ReadonlyArray<ReceiptEntry>,
  retry?: Schedule.Schedule<unknown, unknown>
) {
  const queue = yield* MessageQueue
  return yield* settleAll("DeleteMessageBatch", queueUrl, (pending) => queue.delete(queueUrl, pending), entries, retry)
})
