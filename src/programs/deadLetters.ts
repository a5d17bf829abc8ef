/**
 * The dead-letter queue as an operator sees it: look at its messages without consuming them, and
 * send them back to their source queue once the cause is fixed.
 *
 * - A peek receives every message (up to a limit) and makes them all visible again at once, so
 *   they stay in the DLQ. The DLQ has no redrive policy of its own, so the receives cost nothing.
 * - A redrive, on SQS for a standard queue with no filter, is SQS's own `StartMessageMoveTask`.
 *   Otherwise (a filter, FIFO, the local queue, or `copy`) it is receive → send → delete, entry
 *   by entry, with the redrive journal closing the window between the send and the delete.
 */
import { Clock, Effect, Option, Schema } from "effect"
import { Attribute } from "../domain/transition.ts"
import { MessageMoveTasks, type MoveTask } from "../services/MessageMoveTasks.ts"
import { isFifo, type OutgoingMessage, type QueueMessage } from "../domain/messages.ts"
import { MessageQueue } from "../services/MessageQueue.ts"
import { RedriveJournal } from "../services/RedriveJournal.ts"
import { EngineSettings } from "../services/EngineSettings.ts"
import { deleteAll, sendAll } from "./sendAll.ts"

/** The attributes the engine puts on a dead letter (see the engine's `deadLetterAttributes`). */
export const ErrorAttribute = {
  tag: "error.tag",
  message: "error.message",
  step: "error.step",
  receiveCount: "error.receive_count",
  sourceQueue: "error.source_queue"
} as const

/** The reason shown for a dead letter that carries none (moved by a queue's own redrive). */
export const NO_REASON = "unknown"

export class NoDeadLetterQueue extends Schema.TaggedError<NoDeadLetterQueue>()("NoDeadLetterQueue", {
  message: Schema.String
}) {}

export class RedriveFailed extends Schema.TaggedError<RedriveFailed>()("RedriveFailed", {
  message: Schema.String
}) {}

export interface DeadLetter {
  readonly messageId: string
  readonly body: string
  readonly attributes: Readonly<Record<string, string>>
  /** `error.tag`, or `unknown`. */
  readonly reason: string
  readonly errorMessage: string | undefined
  /** `error.step`: the mutation, or `decode` / `route`. */
  readonly step: string | undefined
  /** `error.receive_count`: receives in the source queue when it was dead-lettered. */
  readonly receiveCount: number | undefined
  readonly sourceQueue: string | undefined
}

export const toDeadLetter = (message: QueueMessage): DeadLetter => {
  const count = Number(message.attributes[ErrorAttribute.receiveCount])
  return {
    messageId: message.messageId,
    body: message.body,
    attributes: message.attributes,
    reason: message.attributes[ErrorAttribute.tag] ?? NO_REASON,
    errorMessage: message.attributes[ErrorAttribute.message],
    step: message.attributes[ErrorAttribute.step],
    receiveCount: Number.isInteger(count) ? count : undefined,
    sourceQueue: message.attributes[ErrorAttribute.sourceQueue]
  }
}

/** The pipeline's queue and its dead-letter queue: `PIPELINE_DLQ_URL`, or the queue's redrive target. */
export const pipelineQueues = Effect.gen(function*() {
  const settings = yield* EngineSettings
  const queue = yield* MessageQueue
  const deadLetterQueueUrl = Option.isSome(settings.deadLetterQueueUrl)
    ? settings.deadLetterQueueUrl
    : (yield* queue.attributes(settings.queueUrl)).deadLetterQueueUrl
  if (Option.isNone(deadLetterQueueUrl)) {
    return yield* new NoDeadLetterQueue({
      message: `${settings.queueUrl} has no dead-letter queue (no redrive policy, and PIPELINE_DLQ_URL is not set)`
    })
  }
  return { queueUrl: settings.queueUrl, deadLetterQueueUrl: deadLetterQueueUrl.value }
})

/**
 * Receives until `done` says stop or nothing more comes; calls `take` on each message seen the
 * first time and keeps the ones it does not consume (returns false for) invisible meanwhile, so
 * every receive brings new ones (or kept ones that outlived the visibility timeout, which that
 * receive hides again). Those are made visible again at the end, however it ends.
 */
const scan = <E, R>(
  queueUrl: string,
  take: (batch: ReadonlyArray<QueueMessage>) => Effect.Effect<ReadonlyArray<QueueMessage>, E, R>,
  done: () => boolean,
  waitForInFlight: boolean,
  batchSize = 10
) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const held = new Map<string, QueueMessage>()
    const release = Effect.suspend(() =>
      // Stryker disable next-line ConditionalExpression: saves a call; every queue answers an empty batch with nothing
      held.size === 0 ? Effect.void : queue.changeVisibility(
        queueUrl,
        [...held.values()].map((message, index) => ({ id: `h${index}`, receiptHandle: message.receiptHandle })),
        0
      ).pipe(Effect.ignore)
    )
    const loop = Effect.gen(function*() {
      const atStart = yield* queue.attributes(queueUrl)
      let seen = 0
      // messages in flight before we began (a redrive that was killed) come back after the visibility timeout
      const waitUntil = atStart.approximateInFlight === 0 ? 0 : (yield* Clock.currentTimeMillis) + (atStart.visibilityTimeout + 2) * 1000
      while (!done()) {
        let batch = yield* queue.receive(queueUrl, { maxMessages: batchSize, waitSeconds: 0 })
        // an SQS short poll samples some servers only: while fewer came than the queue said it had, a long poll asks them all
        if (batch.length === 0 && seen < atStart.approximateVisible) {
          batch = yield* queue.receive(queueUrl, { maxMessages: batchSize, waitSeconds: 1 })
        }
        if (batch.length === 0) {
          if (!waitForInFlight) return
          const inFlight = (yield* queue.attributes(queueUrl)).approximateInFlight - held.size
          if (inFlight <= 0 || (yield* Clock.currentTimeMillis) > waitUntil) return
          yield* Effect.logInfo(`${inFlight} dead letters are in flight elsewhere (a peek, or a redrive that was stopped); waiting for them`)
          yield* Effect.sleep("1 second")
          continue
        }
        const fresh = batch.filter((message) => !held.has(message.messageId))
        // one held too long came back with a new receipt handle: keep the handle that works
        for (const message of batch) if (held.has(message.messageId)) held.set(message.messageId, message)
        if (fresh.length === 0) {
          // with no visibility timeout they come straight back: that was all of them
          if (atStart.visibilityTimeout === 0) return
          // they outlived the visibility timeout (a paced or waiting redrive); that receive hid them again
          continue
        }
        seen += fresh.length
        const kept = yield* take(fresh)
        for (const message of kept) held.set(message.messageId, message)
      }
    })
    yield* loop.pipe(Effect.ensuring(release))
  })

export interface Peek {
  readonly deadLetterQueueUrl: string
  /** The DLQ's approximate size (visible + in flight + delayed), from its attributes. */
  readonly count: number
  readonly letters: ReadonlyArray<DeadLetter>
  /** True when the DLQ holds more than were looked at. */
  readonly truncated: boolean
}

/** Looks at up to `limit` dead letters without consuming them (visible again as soon as the peek ends). */
// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const peekDeadLetters = Effect.fn("peekDeadLetters")(function*(limit: number) {
  const queue = yield* MessageQueue
  const { deadLetterQueueUrl } = yield* pipelineQueues
  const seen: Array<QueueMessage> = []
  yield* scan(
    deadLetterQueueUrl,
    (batch) => Effect.sync(() => {
      seen.push(...batch.slice(0, limit - seen.length))
      return batch
    }),
    () => seen.length >= limit,
    false
  )
  const attributes = yield* queue.attributes(deadLetterQueueUrl)
  const count = attributes.approximateVisible + attributes.approximateInFlight + attributes.approximateDelayed
  return {
    deadLetterQueueUrl,
    count: Math.max(count, seen.length),
    letters: seen.map(toDeadLetter),
    truncated: seen.length >= limit && count > seen.length
  } satisfies Peek
})

/** Counts by a key, most frequent first. */
export const countBy = (letters: ReadonlyArray<DeadLetter>, key: (letter: DeadLetter) => string): Record<string, number> => {
  const counts = new Map<string, number>()
  for (const letter of letters) counts.set(key(letter), (counts.get(key(letter)) ?? 0) + 1)
  return Object.fromEntries([...counts].sort(([a, x], [b, y]) => y - x || a.localeCompare(b)))
}

export interface RedriveOptions {
  /** At most this many messages. */
  readonly max?: number | undefined
  /** Only dead letters of this step (`error.step`). */
  readonly step?: string | undefined
  /** Only dead letters with this reason (`error.tag`). */
  readonly reason?: string | undefined
  /** Receive → send → delete even where an SQS move task could do it. */
  readonly copy?: boolean | undefined
  /** At most this many messages a second (a large redrive need not flood the pipeline). */
  readonly perSecond?: number | undefined
}

export type RedriveResult =
  | {
    readonly _tag: "MoveTask"
    readonly deadLetterQueueUrl: string
    readonly destination: string
    readonly taskHandle: string
    /** The DLQ's approximate size when the task started. */
    readonly approximateCount: number
  }
  | {
    readonly _tag: "Copied"
    readonly deadLetterQueueUrl: string
    /** Sent back to their source queue and deleted from the DLQ. */
    readonly redriven: number
    /** Sent back by an earlier run that stopped before deleting them: now only deleted. */
    readonly finished: number
    /** Sent back, but the delete from the DLQ failed: the journal has them, so a later run only deletes them. */
    readonly notDeleted: number
    readonly failed: ReadonlyArray<{ readonly messageId: string; readonly reason: string }>
  }

const matches = (options: RedriveOptions) => (message: QueueMessage) =>
  (options.step === undefined || message.attributes[ErrorAttribute.step] === options.step) &&
  (options.reason === undefined || (message.attributes[ErrorAttribute.tag] ?? NO_REASON) === options.reason)

/** The message to send back: body and attributes as they were, without the `error.*` ones. */
const redriveEntry = (message: QueueMessage, id: string, target: string): OutgoingMessage => {
  const attributes = Object.fromEntries(Object.entries(message.attributes).filter(([name]) => !name.startsWith("error.")))
  return {
    id,
    body: message.body,
    attributes,
    // FIFO: the chain's own group, and a deduplication id that makes a resend within 5 minutes a no-op
    ...(isFifo(target)
      ? { groupId: message.attributes[Attribute.traceId] ?? message.messageId, deduplicationId: `redrive-${message.messageId}` }
      : {})
  }
}

/** Redrives one batch: journal check, send, journal, delete. Not interruptible: a stop waits for it. */
const redriveBatch = (deadLetterQueueUrl: string, defaultTarget: string, chosen: ReadonlyArray<QueueMessage>) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const journal = yield* RedriveJournal
    const already = yield* journal.sent(deadLetterQueueUrl, chosen.map((message) => message.messageId))
    const toSend = chosen.filter((message) => !already.has(message.messageId))
    const byTarget = new Map<string, Array<{ readonly message: QueueMessage; readonly entry: OutgoingMessage }>>()
    toSend.forEach((message, index) => {
      const target = message.attributes[ErrorAttribute.sourceQueue] ?? defaultTarget
      const list = byTarget.get(target) ?? []
      list.push({ message, entry: redriveEntry(message, `e${index}`, target) })
      byTarget.set(target, list)
    })
    const sent: Array<QueueMessage> = []
    const failed: Array<{ readonly message: QueueMessage; readonly reason: string }> = []
    for (const [target, items] of byTarget) {
      const failures = yield* sendAll(target, items.map((item) => item.entry))
      for (const { message, entry } of items) {
        const failure = failures.get(entry.id)
        if (failure === undefined) sent.push(message)
        else failed.push({ message, reason: `${failure._tag}: ${failure.message}` })
      }
    }
    // durable before the delete: from here a kill leaves a dead letter that the next run only deletes
    yield* journal.markSent(deadLetterQueueUrl, sent.map((message) => message.messageId))
    const toDelete = [...sent, ...chosen.filter((message) => already.has(message.messageId))]
    const deleteFailures = yield* deleteAll(
      deadLetterQueueUrl,
      toDelete.map((message, index) => ({ id: `d${index}`, receiptHandle: message.receiptHandle }))
    )
    const deleted = toDelete.filter((_, index) => !deleteFailures.has(`d${index}`))
    yield* journal.forget(deadLetterQueueUrl, deleted.map((message) => message.messageId))
    // not sent: back in the DLQ at once, for the next run
    // Stryker disable next-line ConditionalExpression,EqualityOperator: saves a call; every queue answers an empty batch with nothing
    if (failed.length > 0) {
      yield* queue.changeVisibility(
        deadLetterQueueUrl,
        failed.map(({ message }, index) => ({ id: `f${index}`, receiptHandle: message.receiptHandle })),
        0
      ).pipe(Effect.ignore)
    }
    const deletedIds = new Set(deleted.map((message) => message.messageId))
    return {
      redriven: sent.filter((message) => deletedIds.has(message.messageId)).length,
      finished: chosen.filter((message) => already.has(message.messageId) && deletedIds.has(message.messageId)).length,
      notDeleted: toDelete.length - deleted.length,
      failed: failed.map(({ message, reason }) => ({ messageId: message.messageId, reason }))
    }
  }).pipe(Effect.uninterruptible)

/** Sends dead letters back to their source queue (`error.source_queue`, else the pipeline's queue). */
// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const redriveDeadLetters = Effect.fn("redriveDeadLetters")(function*(options: RedriveOptions) {
  const queue = yield* MessageQueue
  const { queueUrl, deadLetterQueueUrl } = yield* pipelineQueues
  const mover = yield* Effect.serviceOption(MessageMoveTasks)
  const unfiltered = options.max === undefined && options.step === undefined && options.reason === undefined
  if (Option.isSome(mover) && options.copy !== true && unfiltered && !isFifo(deadLetterQueueUrl) && !isFifo(queueUrl)) {
    const attributes = yield* queue.attributes(deadLetterQueueUrl)
    const taskHandle = yield* mover.value.start(deadLetterQueueUrl, queueUrl, options.perSecond).pipe(
      Effect.mapError((error) =>
        new RedriveFailed({
          message: `StartMessageMoveTask failed: ${error.message} (\`dlq redrive --copy\` redrives by receive, send and delete instead)`
        })
      )
    )
    return {
      _tag: "MoveTask",
      deadLetterQueueUrl,
      destination: queueUrl,
      taskHandle,
      approximateCount: attributes.approximateVisible + attributes.approximateDelayed
    } satisfies RedriveResult
  }

  const select = matches(options)
  // a message whose send failed is visible again at once: tried once per run, then left alone
  const attempted = new Set<string>()
  let chosenSoFar = 0
  const totals = { redriven: 0, finished: 0, notDeleted: 0, failed: [] as Array<{ readonly messageId: string; readonly reason: string }> }
  const remaining = () => (options.max === undefined ? Infinity : options.max - chosenSoFar)
  const startedAt = yield* Clock.currentTimeMillis
  /** Waits until sending `count` more keeps the average at `perSecond` at most. */
  const pace = (count: number) =>
    Effect.gen(function*() {
      if (options.perSecond === undefined) return
      const due = startedAt + ((chosenSoFar + count) / options.perSecond) * 1000 - 1000
      const now = yield* Clock.currentTimeMillis
      // Stryker disable next-line ConditionalExpression,EqualityOperator: saves a call; a sleep of no time or less returns at once
      if (due > now) yield* Effect.sleep(due - now)
    })
  yield* scan(
    deadLetterQueueUrl,
    (batch) =>
      Effect.gen(function*() {
        const chosen: Array<QueueMessage> = []
        const kept: Array<QueueMessage> = []
        for (const message of batch) {
          if (select(message) && !attempted.has(message.messageId) && chosen.length < remaining()) chosen.push(message)
          else kept.push(message)
        }
        for (const message of chosen) attempted.add(message.messageId)
        // Stryker disable next-line ConditionalExpression,EqualityOperator: saves calls; pacing none waits for nothing (the last batch already waited), an empty batch sends and deletes nothing
        if (chosen.length > 0) {
          yield* pace(chosen.length)
          chosenSoFar += chosen.length
          const result = yield* redriveBatch(deadLetterQueueUrl, queueUrl, chosen)
          totals.redriven += result.redriven
          totals.finished += result.finished
          totals.notDeleted += result.notDeleted
          totals.failed.push(...result.failed)
        }
        return kept
      }),
    () => remaining() <= 0,
    true,
    Math.min(10, Math.max(1, Math.floor(options.perSecond ?? 10)))
  )
  return { _tag: "Copied", deadLetterQueueUrl, ...totals } satisfies RedriveResult
})

/** SQS's move tasks for the dead-letter queue; none where there is no such thing (the local queue). */
// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const moveTasks = Effect.fn("moveTasks")(function*() {
  const { deadLetterQueueUrl } = yield* pipelineQueues
  const mover = yield* Effect.serviceOption(MessageMoveTasks)
  if (Option.isNone(mover)) return { deadLetterQueueUrl, supported: false, tasks: [] as ReadonlyArray<MoveTask> }
  return { deadLetterQueueUrl, supported: true, tasks: yield* mover.value.list(deadLetterQueueUrl) }
})
