/**
 * The agent: a local event source mapping. It long-polls a queue, keeps up to `concurrency`
 * messages in flight, runs each batch through a `BatchRunner` (the handler in process, or the
 * deployed Lambda), deletes what succeeded, and leaves what failed to SQS redelivery.
 *
 * While a batch runs, a heartbeat extends its visibility so slow steps are not delivered twice.
 * When `stop` completes it stops receiving, finishes in-flight work and returns; messages it
 * received but never started are made visible again at once.
 *
 * One receive is out at a time while the queue is thin, so that each brings as much as it can. On a
 * backlog (receives come back with all they asked for) more go out beside it, each for a full batch
 * of free slots, so that a call's latency does not cap the throughput; one that comes back short
 * drops it back to one.
 *
 * With a batching window (like an event source mapping's `MaximumBatchingWindowInSeconds`) it
 * gathers a batch for up to the window before running it: once a receive comes back short (the
 * queue is drained), it waits for about as long as the arrival rate needs to fill a batch before
 * asking again, so that one receive brings a full batch instead of one message. No message it
 * received is held longer than the window, nor longer than a third of the visibility timeout.
 */
import { Cause, Clock, Config, Deferred, Duration, Effect, Fiber, FiberSet, Option, Schedule, Semaphore, Stream } from "effect"
import { isRetryable } from "../domain/errors.ts"
import { MAX_BATCH, type QueueMessage } from "../domain/messages.ts"
import { MessageQueue, type QueueError } from "../services/MessageQueue.ts"
import { setting } from "../services/settings.ts"
import { type BatchResult, BatchRunner } from "../services/BatchRunner.ts"
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
  /** How long to gather a batch before running it (none or zero: run what each receive brings at once). */
  readonly batchWindow?: Duration.Input | undefined
}

/** The longest batching window, as for an event source mapping's `MaximumBatchingWindowInSeconds`. */
export const MAX_BATCH_WINDOW = Duration.seconds(300)

/** What a batching window accepts, for people (the flag's and the setting's errors). */
export const BATCH_WINDOW_ACCEPTED = `a duration from zero to 300 seconds such as "1 second", "500 millis" or "2 minutes" ` +
  "(a number, a space and a unit: nanos, micros, millis, seconds, minutes, hours, days or weeks)"

/** A batching window in Effect's form, from zero to `MAX_BATCH_WINDOW`, or none. */
export const parseBatchWindow = (text: string): Option.Option<Duration.Duration> =>
  Option.filter(
    Duration.fromInput(text.trim() as Duration.Input),
    (duration) => Duration.isFinite(duration) && !Duration.isNegative(duration) && Duration.isLessThanOrEqualTo(duration, MAX_BATCH_WINDOW)
  )

/** `PIPELINE_BATCH_WINDOW`: the agent's batching window (default zero: none). */
export const BatchWindowSetting: Config.Config<Duration.Duration> = setting("PIPELINE_BATCH_WINDOW", BATCH_WINDOW_ACCEPTED, parseBatchWindow).pipe(
  Config.withDefault(Duration.zero)
)

/** The arrival rate is estimated from the messages received over this span. */
const RATE_SPAN_MILLIS = 2000
/** How many of the messages it deleted last the agent remembers, to tell a late copy of one. */
const DELETED_REMEMBERED = 10_000

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
  /** Each step's runs and their milliseconds in all, as the runner reports them (the handler's metrics say the same). */
  readonly steps: ReadonlyMap<string, StepTotals>
  /** Dead letters by reason (the error's tag). */
  readonly deadLetteredBy: ReadonlyMap<string, number>
}

export interface StepTotals {
  readonly runs: number
  readonly millis: number
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
  const steps = new Map<string, StepTotals>()
  const deadLetteredBy = new Map<string, number>()
  const stats = Effect.map(Clock.currentTimeMillis, (now): AgentStats => ({
    ...totals,
    elapsedMillis: now - startedAt,
    steps: new Map(steps),
    deadLetteredBy: new Map(deadLetteredBy)
  }))
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

  /**
   * The messages this agent is working on, by id, with the receipt handle of the latest copy
   * received. A standard queue may deliver a message again while it is worked on (SQS at least
   * once; moto when receives overlap; any queue once a visibility timeout lapses): the copy is not
   * run again, and its handle, the only one the queue is sure to honour, is the one extended and
   * deleted.
   */
  const working = new Map<string, string>()
  /**
   * The ids of the messages this agent deleted last, oldest first. A copy that arrives after its
   * message was worked off (SQS may deliver a deleted message again; so does moto when a slower
   * overlapping receive answers late) is deleted without running: run, it would fork the chain
   * where no ledger stops it.
   */
  const deletedLately = new Set<string>()
  const rememberDeleted = (messageId: string) => {
    deletedLately.add(messageId)
    if (deletedLately.size > DELETED_REMEMBERED) deletedLately.delete(deletedLately.values().next().value!)
  }

  const entries = (messages: ReadonlyArray<QueueMessage>) =>
    messages.map((message, index) => ({ id: `e${index}`, receiptHandle: working.get(message.messageId) ?? message.receiptHandle }))

  const heartbeat = (messages: ReadonlyArray<QueueMessage>) =>
    // each beat with the newest handles: a copy received since replaces its message's
    Effect.suspend(() => queue.changeVisibility(options.queueUrl, entries(messages), visibilityTimeout)).pipe(
      Effect.tap((result) =>
        result.failed.length === 0 ? Effect.void : Effect.logWarning(`heartbeat: ${result.failed.length} messages could not be extended`)
      ),
      Effect.catch((error) => Effect.logWarning(`heartbeat failed: ${error.message}`)),
      Effect.delay(heartbeatEvery),
      Effect.forever
    )

  const work = (messages: ReadonlyArray<QueueMessage>) => {
    // once, at the latest when the batch ends
    let holding = true
    const freeSlots = Effect.suspend(() => {
      if (!holding) return Effect.void
      holding = false
      totals.inFlight -= messages.length
      return Semaphore.release(slots, messages.length)
    })
    return Effect.gen(function*() {
      const beating = yield* Effect.forkChild(heartbeat(messages))
      const result = yield* runner.run(messages).pipe(
        Effect.catch((error) =>
          Effect.logError(`batch of ${messages.length} failed as a whole: ${error.message}`).pipe(
            Effect.as<BatchResult>({ failed: new Set(messages.map((message) => message.messageId)), outcomes: Option.none() })
          )
        )
      )
      yield* Fiber.interrupt(beating)
      // the successors are sent: the next batch may start while this one's messages are deleted
      // (a worker the stop waits for, like the rest of the batch)
      yield* freeSlots
      const succeeded = messages.filter((message) => !result.failed.has(message.messageId))
      const failures = yield* deleteAll(options.queueUrl, entries(succeeded), briefRetry)
      succeeded.forEach((message, index) => failures.has(`e${index}`) || rememberDeleted(message.messageId))
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
      for (const [step, figure] of Object.entries(result.figures?.steps ?? {})) {
        const sum = steps.get(step) ?? { runs: 0, millis: 0 }
        steps.set(step, { runs: sum.runs + figure.runs, millis: sum.millis + figure.millis })
      }
      for (const [reason, count] of Object.entries(result.figures?.deadLetteredBy ?? {})) {
        deadLetteredBy.set(reason, (deadLetteredBy.get(reason) ?? 0) + count)
      }
    }).pipe(
      Effect.ensuring(freeSlots),
      Effect.ensuring(Effect.sync(() => messages.forEach((message) => working.delete(message.messageId))))
    )
  }

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

  // a batch is as big as SQS allows, or as the concurrency allows
  const batchSize = Math.min(MAX_BATCH, options.concurrency)
  const askedWindow = Math.min(Duration.toMillis(Duration.fromInputUnsafe(options.batchWindow ?? 0)), Duration.toMillis(MAX_BATCH_WINDOW))
  // no heartbeat keeps a gathered message invisible until its batch runs: gather for a third of its timeout at most
  const windowMillis = Math.min(askedWindow, (visibilityTimeout * 1000) / 3)
  if (windowMillis < askedWindow) {
    yield* Effect.logWarning(
      `batch window ${Duration.format(Duration.millis(askedWindow))} held to ${Duration.format(Duration.millis(windowMillis))}, a third of the queue's visibility timeout (${visibilityTimeout} s)`
    )
  }

  /** The receives of the last RATE_SPAN_MILLIS: when, and how many messages each brought. */
  const recent: Array<{ readonly at: number; readonly count: number }> = []
  /**
   * Whether batches wait for arrivals (a receive brought fewer messages than it asked for) rather than
   * for the agent (a backlog): then the agent waits for a batch to arrive before it receives.
   */
  let drained = false
  /**
   * How much of the time a batch takes to arrive the agent waits before it receives. A full receive
   * after such a wait may have left more behind: the wait shrinks a little each time; a short one
   * grows it more, so that most receives come back full. Once it is small, full receives mean a
   * backlog, and the agent receives without waiting until one comes back short.
   */
  let pace = 1
  let lastReceiveAt = 0
  /** Messages per millisecond: once the queue is drained, the receives take what arrives. */
  const arrivalRate = (now: number) => recent.reduce((sum, { at, count }) => (at > now - RATE_SPAN_MILLIS ? sum + count : sum), 0) / RATE_SPAN_MILLIS
  /** How long `room` more messages take to arrive at the recent rate. */
  const timeToFill = (room: number, now: number) => {
    const rate = arrivalRate(now)
    return rate > 0 ? room / rate : Number.POSITIVE_INFINITY
  }

  /**
   * Whether the last receive brought all it asked for without waiting for arrivals (a backlog): then
   * more receives go out beside the agent's one, each for a full batch, while there are free slots
   * for one. A receive that comes back short ends them: on a thin queue there is one receive at a
   * time, so that each brings as much as it can.
   */
  let backlog = false

  const receive = (maxMessages: number, waitSeconds: number) =>
    queue.receive(options.queueUrl, { maxMessages, waitSeconds }).pipe(Effect.tapError(() => Effect.sync(() => totals.receiveErrors++)))
  const noted = (messages: ReadonlyArray<QueueMessage>) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      recent.push({ at: now, count: messages.length })
      while (recent[0]!.at <= now - RATE_SPAN_MILLIS) recent.shift()
      lastReceiveAt = now
    })

  /**
   * Receives more into `batch` until it is full, it fills the slots it holds (when no more are
   * free) or `deadline` comes: before each receive it waits about as long as the arrival rate needs to fill the room left,
   * so that a receive brings several messages rather than the first one to arrive. A stop or a failed
   * receive ends it with what it has.
   */
  const fill = (batch: Array<QueueMessage>, held: { count: number }, deadline: number) =>
    Effect.gen(function*() {
      while (batch.length < batchSize && !stopping()) {
        while (held.count < batchSize && (yield* Semaphore.takeIfAvailable(slots, 1))) held.count++
        const room = held.count - batch.length
        const now = yield* Clock.currentTimeMillis
        if (room === 0 || now >= deadline) break
        // at least a twentieth of the window apart: a slow trickle costs a few receives a window, not a storm
        const pause = Math.min(deadline - now, Math.max(windowMillis / 20, timeToFill(room, now)))
        if (Option.isNone(yield* unlessStopped(Effect.sleep(pause)))) break
        const left = deadline - (yield* Clock.currentTimeMillis)
        // a long poll (whole seconds) only as long as the window has left; a short one at its end
        const more = Option.flatten(yield* unlessStopped(Effect.option(receive(room, Math.floor(Math.max(0, left) / 1000)))))
        if (Option.isNone(more)) break
        yield* noted(more.value)
        batch.push(...more.value)
      }
      return batch
    })

  /**
   * A receive beside the agent's one, into a full batch's slots it was given: it runs what it brings
   * at once and goes on while its receives come back full and a full batch's slots are free. A short
   * poll: it does not wait for arrivals (on SQS one samples some of the servers, so a small queue
   * may answer short; that only ends it), and a failure ends it (the agent's receive retries).
   */
  const besideReceive: Effect.Effect<void, never, MessageQueue> = Effect.gen(function*() {
    do {
      const received = Option.flatten(yield* unlessStopped(Effect.option(receive(batchSize, 0))))
      const messages = Option.getOrElse(received, () => [])
      if (Option.isSome(received)) yield* noted(messages)
      if (messages.length < batchSize) backlog = false
      yield* Semaphore.release(slots, batchSize - messages.length)
      if (messages.length > 0) yield* dispatch(messages)
    } while (backlog && !stopping() && (yield* Semaphore.takeIfAvailable(slots, batchSize)))
  })

  /** One more receive beside the others, on a backlog, if a full batch's slots are free. */
  const widen = Effect.suspend(() => backlog && !stopping() ? Semaphore.takeIfAvailable(slots, batchSize) : Effect.succeed(false)).pipe(
    Effect.flatMap((taken) => taken ? FiberSet.run(workers, besideReceive) : Effect.void)
  )

  /** The next batch, received into the slots that are free; the stream of batches ends once the agent is told to stop. */
  const nextBatch = Effect.gen(function*() {
    if (stopping()) return yield* Cause.done()
    const wanted = yield* unlessStopped(takeSlots)
    if (Option.isNone(wanted)) return yield* Cause.done()
    const held = { count: wanted.value }
    // the queue was empty at the last receive, so what is in it now arrived since: its window started then
    const gatherStart = windowMillis > 0 && drained ? Option.some(lastReceiveAt) : Option.none<number>()
    const now = yield* Clock.currentTimeMillis
    // let the next batch arrive before asking for it, within the window
    const before = Option.match(gatherStart, {
      onNone: () => 0,
      onSome: (start) => Math.max(0, Math.min(start + windowMillis - now, pace * timeToFill(held.count, now)))
    })
    // until-empty polls briefly so it notices the end; a service waits as long as SQS allows
    const waitSeconds = options.untilEmpty ? Math.min(options.waitSeconds, 1) : options.waitSeconds
    const receiving = receive(held.count, waitSeconds).pipe(
      Effect.retry(retryLogged(options.queueUrl, (attempt, error) => `receive from ${options.queueUrl} failed (attempt ${attempt}: ${error.message})`, false))
    )
    const received = yield* unlessStopped(before > 0 ? Effect.andThen(Effect.sleep(before), receiving) : receiving)
    if (Option.isSome(received)) yield* noted(received.value)
    const messages = [...Option.getOrElse(received, () => [])]
    if (Option.isSome(received) && windowMillis > 0) {
      const full = messages.length >= held.count
      if (before > 0) pace = full ? pace * 0.9 : Math.min(2, pace * 1.5)
      drained = !full || (before > 0 && pace >= 0.25)
      if (!drained) pace = 1
    }
    if (Option.isSome(received)) {
      backlog = messages.length >= held.count && !drained
      yield* widen
    }
    if (windowMillis > 0 && messages.length > 0 && messages.length < batchSize) {
      // a long poll answers as soon as a message arrives: one that came after the window's end started a window of its own
      const at = yield* Clock.currentTimeMillis
      const deadline = Option.match(gatherStart, {
        onNone: () => at + windowMillis,
        onSome: (start) => (at <= start + windowMillis ? start + windowMillis : at + windowMillis)
      })
      yield* fill(messages, held, deadline)
    }
    yield* Semaphore.release(slots, held.count - messages.length)
    return Option.isSome(received) ? messages : yield* Cause.done()
  })

  /**
   * Works a batch in the background, or, received as the stop landed, hands it straight back.
   * Copies of messages being worked on keep only their newest handles; copies of messages deleted
   * lately are deleted again; neither runs. Which is which is decided and recorded in one step, so
   * that two receives answering at once with the same message cannot both run it.
   */
  const dispatch = (received: ReadonlyArray<QueueMessage>): Effect.Effect<unknown, never, MessageQueue> =>
    Effect.suspend(() => {
      const fresh = new Map<string, QueueMessage>()
      const late: Array<QueueMessage> = []
      for (const message of received) {
        if (working.has(message.messageId)) working.set(message.messageId, message.receiptHandle)
        else if (deletedLately.has(message.messageId)) late.push(message)
        // a copy in the same batch: the later handle
        else fresh.set(message.messageId, message)
      }
      const messages = fresh.size === received.length ? received : [...fresh.values()]
      const copies = received.length - messages.length
      const handBack = stopping()
      if (!handBack) {
        totals.received += messages.length
        totals.inFlight += messages.length
        for (const message of messages) working.set(message.messageId, message.receiptHandle)
      }
      const deleteLate = late.length === 0 ? Effect.void : FiberSet.run(
        workers,
        queue.delete(options.queueUrl, entries(late)).pipe(
          Effect.catch((error) => Effect.logDebug(`could not delete ${late.length} late copies (${error.message}): they come back and are deleted then`))
        )
      )
      const settleCopies = copies === 0 ? Effect.void : Semaphore.release(slots, copies).pipe(
        Effect.andThen(deleteLate),
        Effect.andThen(Effect.logDebug(`received ${copies} copies of messages being worked on or done: not run again`))
      )
      const start = messages.length === 0
        ? Effect.void
        : handBack
        ? release(messages).pipe(Effect.andThen(Semaphore.release(slots, messages.length)))
        : FiberSet.run(workers, work(messages))
      return Effect.andThen(settleCopies, start)
    })

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
