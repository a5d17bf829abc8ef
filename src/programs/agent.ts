/**
 * The agent: a local event source mapping. It long-polls a queue, keeps up to `concurrency`
 * messages in flight, runs each batch through a `BatchRunner` (the handler in process, or the
 * deployed Lambda), deletes what succeeded, and leaves what failed to SQS redelivery.
 *
 * While a batch runs, a heartbeat extends its visibility so slow steps are not delivered twice.
 * When `stop` completes it stops receiving, finishes in-flight work and returns; messages it
 * received but never started are made visible again at once.
 */
import { Cause, Clock, Deferred, Duration, Effect, Fiber, FiberSet, Option, Schedule, Semaphore, Stream } from "effect"
import { isRetryable } from "../domain/errors.ts"
import type { QueueMessage } from "../domain/messages.ts"
import { MessageQueue, type QueueError } from "../services/MessageQueue.ts"
import { BatchRunner } from "../services/BatchRunner.ts"
import { briefRetry } from "./retry.ts"
import { deleteAll } from "./sendAll.ts"

export interface AgentOptions {
  readonly queueUrl: string
  /** Messages in flight at most (more than 10 means several batches at once). */
  readonly concurrency: number
  /** Return once the queue and the in-flight work are empty. */
  readonly untilEmpty: boolean
  /** Long-poll wait; 20 s is SQS's maximum. */
  readonly waitSeconds: number
  /** Completed when the agent should stop (a signal, a test). */
  readonly stop: Deferred.Deferred<void>
  /** Called about every `progressEvery` with the running totals. */
  readonly onProgress?: ((stats: AgentStats) => Effect.Effect<void>) | undefined
  readonly progressEvery?: Duration.Input | undefined
}

export interface AgentStats {
  readonly received: number
  /** Messages handled (deleted): advanced, done, dead-lettered or skipped as duplicates. */
  readonly succeeded: number
  /** Messages handed back for a retry (left to redelivery), a batch that failed as a whole included. */
  readonly failed: number
  /** Of the handled messages: records moved one step (transitions), records done, dead-lettered, duplicates skipped. */
  readonly advanced: number
  readonly done: number
  readonly deadLettered: number
  readonly duplicates: number
  readonly inFlight: number
  /** Received after the stop and handed back at once. */
  readonly released: number
  readonly receiveErrors: number
  readonly elapsedMillis: number
}

/** Waiting for a queue that cannot be reached: 0.2 s doubling to 30 s, ±20% jitter so that agents spread out. */
export const unreachableBackoff: Schedule.Schedule<Duration.Duration> = Schedule.exponential("200 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(30)))),
  Schedule.jittered
)

/** `unreachableBackoff` (while the failure is retryable, or always), saying each time what failed and when it is tried again. */
const retryLogged = (queueUrl: string, what: (attempt: number, error: QueueError) => string, retryableOnly: boolean) =>
  unreachableBackoff.pipe(
    Schedule.while(({ input }: Schedule.Metadata<Duration.Duration, QueueError>) => !retryableOnly || isRetryable(input)),
    Schedule.modifyDelay(({ attempt, duration, input }) =>
      Effect.logError(`${what(attempt, input)}; retrying in ${Duration.format(duration)}`).pipe(
        Effect.annotateLogs({ queueUrl, attempt }),
        Effect.as(duration)
      ))
  )

// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const runAgent = Effect.fn("agent")(function*(options: AgentOptions) {
  const queue = yield* MessageQueue
  const runner = yield* BatchRunner
  const startedAt = yield* Clock.currentTimeMillis
  const totals = {
    received: 0,
    succeeded: 0,
    failed: 0,
    advanced: 0,
    done: 0,
    deadLettered: 0,
    duplicates: 0,
    inFlight: 0,
    released: 0,
    receiveErrors: 0
  }
  const stats = Effect.map(Clock.currentTimeMillis, (now): AgentStats => ({ ...totals, elapsedMillis: now - startedAt }))
  // read synchronously, so a stop that lands as a receive answers is seen before its messages start
  const stopping = () => Deferred.isDoneUnsafe(options.stop)
  /** Runs `effect` unless the agent is told to stop first; a long poll in progress is abandoned (its request aborted). */
  const unlessStopped = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.raceFirst(effect.pipe(Effect.map(Option.some)), Effect.as(Deferred.await(options.stop), Option.none<A>()))

  /** A long-running consumer outlives its queue's outages: it waits for the queue, however long, until told to stop. */
  const reachQueue = queue.attributes(options.queueUrl).pipe(
    Effect.tapError(() => Effect.sync(() => totals.receiveErrors++)),
    Effect.retry(retryLogged(options.queueUrl, (attempt, error) => `cannot reach the queue ${options.queueUrl} (attempt ${attempt}: ${error.message})`, true))
  )
  const reached = yield* unlessStopped(reachQueue)
  if (Option.isNone(reached)) return yield* stats
  const { visibilityTimeout } = reached.value
  // well inside the timeout, so an extension always lands before the message reappears
  const heartbeatEvery = Duration.millis(Math.max(200, (visibilityTimeout * 1000) / 3))
  const slots = yield* Semaphore.make(options.concurrency)
  const workers = yield* FiberSet.make<void, never>()

  const entries = (messages: ReadonlyArray<QueueMessage>) =>
    messages.map((message, index) => ({ id: `e${index}`, receiptHandle: message.receiptHandle }))

  const heartbeat = (messages: ReadonlyArray<QueueMessage>) =>
    queue.changeVisibility(options.queueUrl, entries(messages), visibilityTimeout).pipe(
      Effect.tap((result) =>
        result.failed.length === 0 ? Effect.void : Effect.logWarning(`heartbeat: ${result.failed.length} messages could not be extended`)
      ),
      Effect.catch((error) => Effect.logWarning(`heartbeat failed: ${error.message}`)),
      Effect.delay(heartbeatEvery),
      Effect.forever
    )

  const work = (messages: ReadonlyArray<QueueMessage>) =>
    Effect.gen(function*() {
      const beating = yield* Effect.forkChild(heartbeat(messages))
      const result = yield* runner.run(messages).pipe(
        Effect.catch((error) =>
          Effect.logError(`batch of ${messages.length} failed as a whole: ${error.message}`).pipe(
            Effect.as({ failed: new Set(messages.map((message) => message.messageId)), outcomes: Option.none() })
          )
        )
      )
      yield* Fiber.interrupt(beating)
      const succeeded = messages.filter((message) => !result.failed.has(message.messageId))
      const failures = yield* deleteAll(options.queueUrl, entries(succeeded), briefRetry)
      if (failures.size > 0) {
        const reason = [...failures.values()][0]!.message
        yield* Effect.logWarning(`could not delete ${failures.size} handled messages (${reason}); they will be redelivered`)
      }
      totals.succeeded += succeeded.length
      totals.failed += messages.length - succeeded.length
      // a runner that cannot tell how they ended (a function that does not say): each handled message counts as a step
      const outcomes = Option.getOrElse(result.outcomes, () => ({ advanced: succeeded.length, done: 0, deadLettered: 0, duplicates: 0 }))
      totals.advanced += outcomes.advanced
      totals.done += outcomes.done
      totals.deadLettered += outcomes.deadLettered
      totals.duplicates += outcomes.duplicates
    }).pipe(
      Effect.ensuring(Effect.sync(() => (totals.inFlight -= messages.length))),
      Effect.ensuring(Semaphore.release(slots, messages.length))
    )

  /** Takes one free slot (waiting for it), then as many more as are free, up to a batch of 10. */
  const takeSlots = Effect.gen(function*() {
    yield* Semaphore.take(slots, 1)
    let taken = 1
    while (taken < 10 && (yield* Semaphore.takeIfAvailable(slots, 1))) taken++
    return taken
  })

  const queueIsEmpty = Effect.gen(function*() {
    if (totals.inFlight > 0) return false
    const attributes = yield* queue.attributes(options.queueUrl)
    return attributes.approximateVisible + attributes.approximateInFlight + attributes.approximateDelayed === 0
  }).pipe(Effect.catch(() => Effect.succeed(false)))

  const release = (messages: ReadonlyArray<QueueMessage>) =>
    queue.changeVisibility(options.queueUrl, entries(messages), 0).pipe(
      Effect.tap(() => Effect.sync(() => (totals.released += messages.length))),
      Effect.catch((error) => Effect.logWarning(`could not hand back ${messages.length} messages: ${error.message}`))
    )

  /** The next batch, received into the slots that are free; the stream of batches ends once the agent is told to stop. */
  const nextBatch = Effect.gen(function*() {
    if (stopping()) return yield* Cause.done()
    const wanted = yield* unlessStopped(takeSlots)
    if (Option.isNone(wanted)) return yield* Cause.done()
    // until-empty polls briefly so it notices the end; a service waits as long as SQS allows
    const waitSeconds = options.untilEmpty ? Math.min(options.waitSeconds, 1) : options.waitSeconds
    const received = yield* unlessStopped(
      queue.receive(options.queueUrl, { maxMessages: wanted.value, waitSeconds }).pipe(
        Effect.tapError(() => Effect.sync(() => totals.receiveErrors++)),
        Effect.retry(retryLogged(options.queueUrl, (attempt, error) => `receive from ${options.queueUrl} failed (attempt ${attempt}: ${error.message})`, false))
      )
    )
    const messages = Option.getOrElse(received, () => [])
    yield* Semaphore.release(slots, wanted.value - messages.length)
    return Option.isSome(received) ? messages : yield* Cause.done()
  })

  /** Works a batch in the background, or, received as the stop landed, hands it straight back. */
  const dispatch = (messages: ReadonlyArray<QueueMessage>): Effect.Effect<unknown, never, MessageQueue> =>
    stopping()
      ? release(messages).pipe(Effect.andThen(Semaphore.release(slots, messages.length)))
      : Effect.sync(() => {
        totals.received += messages.length
        totals.inFlight += messages.length
      }).pipe(Effect.andThen(FiberSet.run(workers, work(messages))))

  const poll = Stream.fromEffectRepeat(nextBatch).pipe(
    // SQS's message counts are approximate and lag: only believe "empty" after a receive found nothing too
    Stream.takeUntilEffect((messages) => options.untilEmpty && messages.length === 0 ? queueIsEmpty : Effect.succeed(false)),
    Stream.filter((messages) => messages.length > 0),
    Stream.runForEach(dispatch)
  )

  const progress = options.onProgress === undefined
    ? Effect.void
    : Effect.flatMap(stats, options.onProgress).pipe(
      Effect.repeat(Schedule.spaced(options.progressEvery ?? "1 second")),
      Effect.asVoid
    )
  const progressFiber = yield* Effect.forkChild(progress)

  yield* poll
  yield* Effect.logInfo(`stopping: finishing ${totals.inFlight} messages in flight`).pipe(
    Effect.when(Effect.succeed(totals.inFlight > 0))
  )
  yield* FiberSet.awaitEmpty(workers)
  yield* Fiber.interrupt(progressFiber)
  return yield* stats
}, Effect.scoped)
