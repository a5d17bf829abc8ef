/**
 * Batch calls whose entries each either go through or come back with their reason: entries that
 * failed for a retryable reason (throttling, a server fault, a request that never got an answer)
 * are tried again, only they, until the retry policy gives up. An entry that went through is never
 * sent again by these retries.
 */
import { Effect, Schedule, Schema } from "effect"
import type { StepFailure } from "../domain/errors.ts"
import type { BatchResult, EntryFailure, OutgoingMessage, ReceiptEntry } from "../domain/messages.ts"
import { MessageQueue, QueueError } from "../services/MessageQueue.ts"
import { retryOnFailure, retryPolicy } from "./retry.ts"

/** Some entries of a batch call failed for a retryable reason: what the retry policy retries. */
class EntriesPending extends Schema.TaggedError<EntriesPending>()("EntriesPending", {
  message: Schema.String
}) {
  readonly retryable = true
}

/**
 * Returns the failure of each entry (by id) that never made it; an empty map means all went through.
 * Plain effects, not a generator: the engine sends a batch's successors through this once a batch.
 */
export const settleAll = <Entry extends { readonly id: string }>(
  operation: string,
  queueUrl: string,
  call: (entries: ReadonlyArray<Entry>) => Effect.Effect<BatchResult, QueueError>,
  entries: ReadonlyArray<Entry>,
  retry: Schedule.Schedule<unknown, StepFailure> = retryPolicy("10 seconds")
): Effect.Effect<Map<string, StepFailure>> =>
  Effect.suspend(() => {
    const failures = new Map<string, StepFailure>()
    // Stryker disable next-line ConditionalExpression: saves a call; every queue answers an empty batch with nothing
    if (entries.length === 0) return Effect.succeed(failures)
    let pending = entries
    /** The last entry-level failure of each entry still pending. */
    const lastFailure = new Map<string, EntryFailure>()
    const attempt = Effect.flatMap(Effect.suspend(() => call(pending)), (result) => {
      // Stryker disable next-line ConditionalExpression: saves the bookkeeping below; with no failures it changes nothing
      if (result.failed.length === 0) {
        pending = []
        return Effect.void
      }
      const retryLater = new Set<string>()
      for (const failure of result.failed) {
        if (failure.senderFault) {
          failures.set(failure.id, { _tag: "SendRejected", message: `${failure.code}: ${failure.message}` })
        } else {
          retryLater.add(failure.id)
          lastFailure.set(failure.id, failure)
        }
      }
      pending = pending.filter((entry) => retryLater.has(entry.id))
      return pending.length === 0 ? Effect.void : Effect.fail(new EntriesPending({ message: `${pending.length} entries not through yet` }))
    })
    return attempt.pipe(
      retryOnFailure(retry),
      Effect.catch((error) =>
        Effect.sync(() => {
          for (const entry of pending) {
            const entryFailure = lastFailure.get(entry.id)
            failures.set(
              entry.id,
              error._tag === "QueueError" || entryFailure === undefined
                ? error
                : new QueueError({
                  operation,
                  queueUrl,
                  message: `${entryFailure.code}: ${entryFailure.message}`,
                  retryable: true,
                  cause: entryFailure
                })
            )
          }
        })
      ),
      Effect.as(failures)
    )
  })

/** Sends messages, 10 a request, resending only the entries that failed for a retryable reason. */
export const sendAll = (
  queueUrl: string,
  entries: ReadonlyArray<OutgoingMessage>,
  retry?: Schedule.Schedule<unknown, StepFailure>
): Effect.Effect<Map<string, StepFailure>, never, MessageQueue> =>
  MessageQueue.use((queue) => settleAll("SendMessageBatch", queueUrl, (pending) => queue.send(queueUrl, pending), entries, retry))

/** Deletes received messages, retrying only the entries that failed for a retryable reason. */
export const deleteAll = (
  queueUrl: string,
  entries: ReadonlyArray<ReceiptEntry>,
  retry?: Schedule.Schedule<unknown, StepFailure>
): Effect.Effect<Map<string, StepFailure>, never, MessageQueue> =>
  MessageQueue.use((queue) => settleAll("DeleteMessageBatch", queueUrl, (pending) => queue.delete(queueUrl, pending), entries, retry))
